"""The viewer's table: one light row per sample, read once from each run's samples.jsonl.

A row keeps only what the table shows, filters, sorts and searches, plus where its line starts in
the file, so a 30,000-sample BFCL run costs a few MB here; the full sample (request, reply,
trajectory) is read from disk only when a case is opened (detail.py). A later line of the same key
wins, as everywhere else (a resumed run appends the redone samples).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import failures
from ..errors import EvalkitError
from ..rundir import SAMPLES, read_header
from ..schema import Header, sample_key

PROMPT_CHARS = 240  # of the prompt kept per row, for the table and the search
PAGE_MAX = 500  # rows per page at most: the browser never holds a whole large run

# The filters of the table: query parameter -> the row field it matches exactly.
FILTERS = {"model": "model", "format": "format", "suite": "suite", "kind": "kind", "syntax": "syntax",
           "cached": "cached", "distractors": "distractors", "verdict": "verdict", "run": "run", "mode": "mode"}
SORTABLE = ("run", "model", "format", "suite", "case_id", "repeat", "distractors", "verdict", "kind", "syntax",
            "cached", "latency_s", "tools_offered", "rounds")


@dataclass
class RunInfo:
    number: int
    path: Path
    header: Header

    @property
    def run_id(self) -> str:
        return self.header.run_id


@dataclass
class Index:
    runs: list[RunInfo]
    rows: list[dict[str, Any]]
    by_case: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (suite, case) -> row numbers

    def facets(self) -> dict[str, Any]:
        """Every value each filter can take, with its count, for the filter menus."""
        out: dict[str, Any] = {}
        for name, key in FILTERS.items():
            counts: dict[str, int] = {}
            for row in self.rows:
                value = row[key]
                if value is not None:
                    counts[str(value)] = counts.get(str(value), 0) + 1
            out[name] = sorted(counts.items())
        tags: dict[str, int] = {}
        for row in self.rows:
            for tag in row["tags"]:
                tags[tag] = tags.get(tag, 0) + 1
        out["tag"] = sorted(tags.items())
        out["kind_labels"] = {k: failures.label(k) for k in failures.KEYS}
        out["runs"] = [{"run": r.number, "run_id": r.run_id, "model": r.header.model, "path": str(r.path)}
                       for r in self.runs]
        return out

    def query(self, params: dict[str, str]) -> dict[str, Any]:
        """One page of the rows that pass every filter and the search, sorted; `total` counts them all."""
        rows = self.rows
        for name, key in FILTERS.items():
            wanted = params.get(name)
            if wanted and name == "run":  # a run's number in this viewer, or its run id (links from reports)
                rows = [r for r in rows if str(r["run"]) == wanted or r["run_id"] == wanted]
            elif wanted:
                rows = [r for r in rows if str(r[key]) == wanted]
        if params.get("tag"):
            rows = [r for r in rows if params["tag"] in r["tags"]]
        text = (params.get("q") or "").strip().lower()
        if text:
            rows = [r for r in rows if text in r["search"]]
        sort = params.get("sort") or ""
        if sort in SORTABLE:
            present = [r for r in rows if r[sort] is not None]
            missing = [r for r in rows if r[sort] is None]  # unknown values last, whichever the direction
            present.sort(key=lambda r: r[sort], reverse=params.get("desc") == "1")
            rows = present + missing
        offset = _int(params.get("offset"), 0)
        limit = min(_int(params.get("limit"), 100), PAGE_MAX)
        page = [{k: v for k, v in r.items() if k not in ("search", "offset")} for r in rows[offset:offset + limit]]
        return {"total": len(rows), "offset": offset, "rows": page}


def _int(text: str | None, default: int) -> int:
    try:
        return max(0, int(text)) if text else default
    except ValueError:
        return default


def _prompt(request: dict[str, Any]) -> str:
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")[:PROMPT_CHARS]
    return ""


def _row(run: RunInfo, data: dict[str, Any], offset: int) -> dict[str, Any]:
    kind = data.get("failure_kind")
    detail = data.get("failure_detail")
    if kind is None and data.get("failure"):  # an older run's one string, "kind: detail"
        kind, detail = failures.from_legacy(data["failure"])
    if data.get("error") is not None:
        verdict, kind, detail = "error", "error", data["error"]
    elif data.get("call_correct"):
        verdict, kind = "pass", None
    else:
        verdict, kind = "fail", kind or "other"
    request = data.get("request") or {}
    if not request and data.get("trajectory"):
        request = data["trajectory"][0].get("request") or {}
    prompt = _prompt(request)
    tags = [str(t) for t in data.get("tags") or []]
    row = {
        "run": run.number, "run_id": run.run_id, "model": data.get("model") or run.header.model,
        "format": data.get("format"), "suite": data.get("suite"), "case_id": data.get("case_id"),
        "repeat": data.get("repeat", 0), "distractors": data.get("distractors"), "tags": tags,
        "mode": data.get("mode") or "single", "verdict": verdict, "kind": kind, "detail": detail or "",
        "intent_correct": bool(data.get("intent_correct")), "syntax": data.get("syntax"),
        "cached": bool(data.get("cached")), "latency_s": data.get("latency_s"),
        "tools_offered": data.get("tools_offered"), "rounds": data.get("rounds", 1), "prompt": prompt,
        "offset": offset,
    }
    row["search"] = " ".join([str(row["case_id"]), prompt, row["detail"], " ".join(tags)]).lower()
    return row


def read_run(run: RunInfo) -> list[dict[str, Any]]:
    """The latest row per sample key of one run, in file order."""
    path = run.path / SAMPLES
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    if not path.is_file():
        return []
    offset = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            start, offset = offset, offset + len(line)
            if not line.endswith(b"\n"):
                break  # torn by a crash: the sample was never completed
            try:
                data = json.loads(line)
                key = sample_key(data["suite"], data["case_id"], data["format"], data.get("repeat", 0),
                                 data.get("distractors"))
            except (ValueError, KeyError, TypeError) as exc:
                raise EvalkitError(f"{path}:{number}: not a valid sample ({exc})") from None
            latest.pop(key, None)  # re-inserted: a redone sample takes the place of the first one
            latest[key] = _row(run, data, start)
    return list(latest.values())


def build_index(run_dirs: list[Path]) -> Index:
    runs = [RunInfo(number, path, read_header(path)) for number, path in enumerate(run_dirs)]
    rows = [row for run in runs for row in read_run(run)]
    index = Index(runs, rows)
    for number, row in enumerate(rows):
        index.by_case.setdefault((row["suite"], row["case_id"]), []).append(number)
    return index
