"""Reports from run directories: load runs, assemble what a reader needs, write the files.

`write_run_report(run_dir)` writes `report.md`, `report.html` (self-contained: CSS inline,
figures embedded as base64 PNG), the same figures as PNG files and `leaderboard.csv` into the run
directory. `write_comparison(run_dirs, out_dir)` does the same across several runs.

Every number in a leaderboard comes from results.json (recomputed from samples.jsonl with
`evalkit.aggregate` only when results.json is missing or a suite subset is asked for).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..aggregate import ALL, aggregate
from ..errors import EvalkitError
from ..rundir import HEADER, latest_samples, read_header, read_results, write_atomic
from ..schema import Aggregate, Case, Header, Results, Sample
from .compare import Difference, FlipSet, difference, flips

MAX_FAILURES = 50  # failing cases listed per model x format; the rest are counted
TEXT_LIMIT = 2000  # characters of a reply shown before it is cut

STRICT_VS_LENIENT = (
    "Call accuracy is strict: the reply must contain exactly the expected tool calls in a form the "
    "format parses; intent accuracy is lenient: it also counts a malformed call when its intended "
    "tool and arguments can be recovered from the text, so a large gap between the two means the "
    "model knows what to call but the format (or the server's parser) loses it."
)

# failure key -> (short label, what it means in a person's words)
FAILURE_KINDS: dict[str, tuple[str, str]] = {
    "malformed": ("malformed call", "the reply tried to call a tool, but the call could not be parsed"),
    "wrong_tool": ("wrong tool", "it called a different tool than the task needs"),
    "wrong_value": ("wrong value", "the right tool, but an argument has the wrong value"),
    "invalid_args": ("invalid arguments", "the arguments do not satisfy the tool's JSON Schema"),
    "called_when_should_not": ("called when it should not",
                               "it called a tool although a plain-text reply was expected"),
    "did_not_call": ("did not call", "it answered in text instead of calling a tool"),
    "wrong_count": ("wrong number of calls", "it made a different number of calls than the task needs"),
    "final_answer": ("wrong final answer", "the tool calls were right, but the final answer was not"),
    "round_limit": ("round limit", "it never gave a final answer within the allowed rounds"),
    "error": ("server error", "the request failed (timeout, HTTP error) after retries; not counted in accuracy"),
    "other": ("other", "the reply did not match the expected calls"),
}


# ---------------------------------------------------------------- formatting shared by the renderers


def pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def ci(agg: Aggregate) -> str:
    if agg.call_accuracy_ci95 is None:
        return "-"
    return f"{agg.call_accuracy_ci95.low * 100:.1f}-{agg.call_accuracy_ci95.high * 100:.1f}%"


def secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def pass_k(agg: Aggregate) -> str:
    if not agg.pass_hat_k:
        return "-"
    k = max(agg.pass_hat_k, key=int)
    return f"{agg.pass_hat_k[k] * 100:.1f}% (k={k})"


@dataclass(frozen=True)
class Column:
    key: str  # CSV name
    header: str  # table header
    text: Callable[["Entry"], str]


def _metric(name: str) -> Callable[["Entry"], Any]:
    return lambda e: getattr(e.overall, name)


LEADERBOARD: list[Column] = [
    Column("model", "model", lambda e: e.model),
    Column("format", "format", lambda e: e.format),
    Column("n", "n", lambda e: str(e.overall.n)),
    Column("call_accuracy", "call acc", lambda e: pct(e.overall.call_accuracy)),
    Column("call_accuracy_ci95", "95% CI", lambda e: ci(e.overall)),
    Column("intent_accuracy", "intent acc", lambda e: pct(e.overall.intent_accuracy)),
    Column("args_validity", "args valid", lambda e: pct(e.overall.args_validity)),
    Column("malformed_rate", "malformed", lambda e: pct(e.overall.malformed_rate)),
    Column("hallucination_rate", "halluc.", lambda e: pct(e.overall.hallucination_rate)),
    Column("no_call_accuracy", "no-call acc", lambda e: pct(e.overall.no_call_accuracy)),
    Column("no_call_accuracy_bfcl", "no-call, BFCL rule", lambda e: pct(e.overall.no_call_accuracy_bfcl)),
    Column("latency_p50_s", "lat p50", lambda e: secs(e.overall.latency_p50_s)),
    Column("latency_p95_s", "lat p95", lambda e: secs(e.overall.latency_p95_s)),
    Column("ttft_p50_s", "TTFT p50", lambda e: secs(e.overall.ttft_p50_s)),
    Column("tokens_per_s", "tok/s", lambda e: rate(e.overall.tokens_per_s)),
    Column("errors", "errors", lambda e: str(e.overall.errors)),
]

METRIC_NOTES = [
    ("call acc", "strict: exactly the expected calls, parsed by the format, arguments valid (agent cases: and "
                 "the right final answer); 95% CI is the Wilson interval"),
    ("intent acc", "lenient: call accuracy after recovering malformed calls from the text"),
    ("args valid", "share of replies with calls whose arguments all validate against the tool's JSON Schema"),
    ("malformed", "share of replies with a call attempt that could not be parsed"),
    ("halluc.", "share of replies calling a tool that was not offered"),
    ("no-call acc", "accuracy on cases where the right reply is plain text, no call; a malformed attempt is wrong"),
    ("no-call, BFCL rule", "the same, but a reply whose call attempt did not parse counts as abstaining, as the "
                           "Berkeley Function Calling Leaderboard counts it on its irrelevance categories"),
    ("lat p50 / p95", "median and 95th percentile of the whole reply time (agent cases: all rounds)"),
    ("TTFT p50", "median time to the first streamed token"),
    ("tok/s", "median decode speed (the server's own figure when it reports one)"),
    ("errors", "server or transport failures, excluded from every rate above"),
]

CSV_COLUMNS = [
    "run_id", "model", "format", "n", "errors", "call_accuracy", "call_accuracy_ci95_low", "call_accuracy_ci95_high",
    "intent_accuracy", "args_validity", "malformed_rate", "hallucination_rate", "no_call_accuracy",
    "no_call_accuracy_bfcl", "latency_p50_s", "latency_p95_s", "ttft_p50_s", "tokens_per_s", "pass_hat_k", "pass_hat_k_k",
]


# ---------------------------------------------------------------- loading runs


@dataclass
class Run:
    path: Path
    header: Header
    results: Results
    samples: list[Sample]  # the latest sample per (suite, case, format, repeat), as results.json counts them
    _cases: dict[tuple[str, str], Case] | None = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        return self.header.run_id

    @property
    def cases(self) -> dict[tuple[str, str], Case]:
        """The run's cases, for "expected" lines; empty when the suite files changed or are gone."""
        if self._cases is None:
            self._cases = {}
            for ref in self.header.suites:
                for case in _suite_cases(ref.name, ref.path, ref.sha256):
                    self._cases[(ref.name, case.id)] = case
        return self._cases


@lru_cache(maxsize=64)
def _suite_cases(name: str, path: str, sha256: str) -> tuple[Case, ...]:
    """A suite's cases when the same file (same SHA-256) is still at hand, by path or by name."""
    from ..suites import find_suite, read_suite

    for attempt in (lambda: read_suite(path), lambda: find_suite(name)):
        try:
            candidate = attempt()
        except Exception:  # noqa: BLE001 - expected calls are a nicety, never fatal
            continue
        if candidate.sha256 == sha256:
            return tuple(candidate.suite.cases)
    return ()


def load_run(run_dir: Path | str) -> Run:
    run_dir = Path(run_dir)
    header = read_header(run_dir)
    samples = latest_samples(run_dir)
    results = read_results(run_dir)
    if results is None:  # an interrupted run: aggregate what is there
        results = aggregate(samples, header.run_id, header.model)
    return Run(run_dir, header, results, samples)


def expand_run_dirs(paths: Iterable[Path | str]) -> list[Path]:
    """Run directories as given; a folder of run directories (e.g. reports/runs) stands for all of them."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / HEADER).is_file():
            out.append(path)
            continue
        children = sorted(p for p in path.iterdir() if (p / HEADER).is_file()) if path.is_dir() else []
        if not children:
            raise EvalkitError(f"{path}: not a run directory (no {HEADER})")
        out.extend(children)
    return out


# ---------------------------------------------------------------- model x format entries


@dataclass
class Entry:
    """One model x format of one run, the unit every table and figure compares."""

    run: Run
    model: str
    format: str
    label: str
    overall: Aggregate
    suites: dict[str, Aggregate]
    tags: dict[str, Aggregate]
    samples: list[Sample]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.run.run_id, self.model, self.format)

    @property
    def error_share(self) -> float:
        total = self.overall.n + self.overall.errors
        return self.overall.errors / total if total else 0.0


def make_entries(runs: Sequence[Run], suites: Sequence[str] | None = None) -> list[Entry]:
    """Entries from results.json, or re-aggregated over only `suites` when given."""
    entries: list[Entry] = []
    for run in runs:
        if suites:
            # Re-aggregated over the chosen suites; per-tag figures are left out (recommend needs none).
            wanted = set(suites)
            chosen = [s for s in run.samples if s.suite in wanted]
            results = aggregate([s.model_copy(update={"tags": []}) for s in chosen], run.run_id, run.header.model)
        else:
            chosen, results = run.samples, run.results
        overall = [a for a in results.aggregates if a.suite == ALL and a.tag is None]
        for agg in overall:
            mine = [s for s in chosen if s.model == agg.model and s.format == agg.format]
            per_suite = {a.suite: a for a in results.aggregates
                         if a.model == agg.model and a.format == agg.format and a.suite != ALL and a.tag is None}
            per_tag = {a.tag: a for a in results.aggregates
                       if a.model == agg.model and a.format == agg.format and a.tag is not None}
            entries.append(Entry(run, agg.model, agg.format, f"{agg.model} [{agg.format}]", agg, per_suite,
                                 per_tag, mine))  # type: ignore[arg-type]
    if suites and not entries:
        known = sorted({s.suite for run in runs for s in run.samples})
        raise EvalkitError(f"no samples for suite(s) {', '.join(suites)}; "
                           f"the runs hold {', '.join(known) or 'nothing'}")
    _unique_labels(entries)
    return entries


def _unique_labels(entries: list[Entry]) -> None:
    seen: dict[str, int] = {}
    for entry in entries:
        seen[entry.label] = seen.get(entry.label, 0) + 1
    if all(count == 1 for count in seen.values()):
        return
    run_numbers = {id(e.run): n for n, e in enumerate({id(e.run): e for e in entries}.values(), 1)}
    for entry in entries:
        if seen[entry.label] > 1:
            entry.label = f"{entry.label} (run {run_numbers[id(entry.run)]})"


def ranked(entries: Sequence[Entry]) -> list[Entry]:
    """Best first: call accuracy, then lower latency p50."""
    inf = float("inf")
    return sorted(entries, key=lambda e: (
        -(e.overall.call_accuracy if e.overall.call_accuracy is not None else -1),
        e.overall.latency_p50_s if e.overall.latency_p50_s is not None else inf,
        e.label,
    ))


# ---------------------------------------------------------------- failing cases


def failure_kind(sample: Sample) -> str:
    if sample.error is not None:
        return "error"
    key = (sample.failure or "other").split(":", 1)[0].strip()
    return key if key in FAILURE_KINDS else "other"


def failure_detail(sample: Sample) -> str:
    """The specific part of the failure (e.g. "compare_data: num1=9.9, expected 9.11"), or ""."""
    if sample.error is not None:
        return sample.error
    if sample.failure and ":" in sample.failure:
        return sample.failure.split(":", 1)[1].strip()
    return ""


def describe_failure(failure: str | None) -> str:
    """A stored failure string ("wrong_value: ...") with its kind in words: "wrong value: ..."."""
    if not failure:
        return "-"
    key, _, detail = failure.partition(":")
    label = FAILURE_KINDS.get(key.strip(), (key.strip(),))[0]
    return f"{label}: {detail.strip()}" if detail.strip() else label


def explain(sample: Sample) -> str:
    """Why the sample failed, in a person's words."""
    kind = failure_kind(sample)
    meaning = FAILURE_KINDS[kind][1]
    detail = failure_detail(sample)
    text = f"{meaning[0].upper()}{meaning[1:]}" + (f" ({detail})" if detail else "") + "."
    if kind not in ("malformed", "error") and sample.malformed:
        text += " The reply also held a call attempt that could not be parsed."
    if kind == "malformed" and sample.intent_correct:
        text += " Read leniently, the intended call was right, so it counts for intent accuracy."
    if sample.hallucinated_tool:
        text += " It named a tool that was not offered."
    return text


def prompt_of(sample: Sample, case: Case | None = None) -> str:
    """The last user message of the first request: the task as the user typed it."""
    request = sample.request or (sample.trajectory[0].request if sample.trajectory else {})
    messages = request.get("messages") or ([m.model_dump() for m in case.messages] if case is not None else [])
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    text = text.rstrip()
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... ({len(text) - limit} more characters)"


def call_text(name: str | None, arguments: Any) -> str:
    if isinstance(arguments, str):
        args = arguments
    else:
        args = json.dumps(arguments, ensure_ascii=False)
    return f"{name or '?'}({args})"


def reply_lines(raw: dict[str, Any]) -> tuple[str, list[str]]:
    """(content, tool calls as `name(arguments)`) from a sample's raw reply."""
    content = raw.get("content") or ""
    calls = [call_text(c.get("name"), c.get("arguments")) for c in raw.get("tool_calls") or []]
    return content, calls


def matcher_text(value: Any) -> str:
    """An argument matcher as a person reads it: 8.9, one of 24 | 15, ~3.14 (tol 0.01), /regex/."""
    from ..schema import is_matcher

    if not is_matcher(value):
        return json.dumps(value, ensure_ascii=False)
    if "one_of" in value:
        text = "one of " + " | ".join(json.dumps(v, ensure_ascii=False) for v in value["one_of"])
    elif "exact" in value:
        text = "exactly " + json.dumps(value["exact"], ensure_ascii=False)
    elif "regex" in value:
        text = f"/{value['regex']}/"
    elif "approx" in value:
        text = f"~{value['approx']}" + (f" (tol {value['tol']})" if "tol" in value else "")
    else:
        text = "anything"
    return text + (" (optional)" if value.get("optional") else "")


def expected_text(case: Case | None) -> str | None:
    if case is None:
        return None
    if not case.expect.calls:
        expect = "no tool call (a plain-text reply)"
    else:
        expect = ", ".join(
            f"{c.name}({', '.join(f'{k}={matcher_text(v)}' for k, v in c.args.items())})"
            for c in case.expect.calls
        )
        if case.expect.order == "strict" and len(case.expect.calls) > 1:
            expect += " in this order"
    if case.expect.final_answer is not None:
        spec = case.expect.final_answer
        parts = [f"contains {json.dumps(n, ensure_ascii=False)}" for n in spec.contains]
        if spec.regex:
            parts.append(f"matches /{spec.regex}/")
        if spec.number is not None:
            parts.append(f"states {spec.number:g}")
        expect += "; final answer " + " and ".join(parts)
    return expect


def trajectory_text(sample: Sample) -> str:
    """An agent case's whole trajectory as plain text: each round's reply, calls and tool results."""
    lines: list[str] = []
    for number, rnd in enumerate(sample.trajectory, 1):
        lines.append(f"Round {number}")
        content = rnd.raw.get("content") or ""
        if content.strip():
            lines.append("  model said: " + clip(content, 600).replace("\n", "\n              "))
        wire_calls = rnd.raw.get("tool_calls") or []
        for call in wire_calls:
            lines.append(f"  model called: {call_text(call.get('name'), call.get('arguments'))}")
        for parsed in rnd.calls:
            if parsed.parse_error:
                lines.append(f"  -> unparseable call: {parsed.parse_error}: {clip(parsed.raw_arguments or '', 300)}")
            elif not wire_calls:  # calls written in the text (prompt formats): show what was read from it
                lines.append(f"  -> parsed call: {call_text(parsed.name, parsed.arguments)}")
        for result in rnd.tool_results:
            mark = "" if result.get("ok", True) else " (tool error)"
            lines.append(f"  tool {result.get('name')} returned{mark}: {clip(str(result.get('result')), 400)}")
    ended = sample.ended_by or "?"
    lines.append(f"Ended by: {ended} after {sample.rounds} round(s)")
    if sample.final_answer:
        lines.append("Final answer: " + clip(sample.final_answer, 600))
    return "\n".join(lines)


@dataclass
class FailureList:
    """An option's failing scored samples (server errors are listed apart, in `errors`).

    With repeats, a case is shown once (its first failing repeat) with how many repeats failed."""

    entry: Entry
    failing: list[Sample]  # one sample per failing case, the first `limit` cases
    total: int  # failing samples
    cases: int  # failing cases
    counts: dict[str, int]  # failure kind -> samples
    repeats: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # case -> (failed, scored)
    errors: list[Sample] = field(default_factory=list)

    @property
    def rest(self) -> int:
        """Failing cases not shown."""
        return self.cases - len(self.failing)

    def repeat_note(self, sample: Sample) -> str:
        failed, scored = self.repeats.get((sample.suite, sample.case_id), (1, 1))
        return f" (failed {failed} of {scored} repeats)" if scored > 1 else ""


def failure_list(entry: Entry, limit: int = MAX_FAILURES) -> FailureList:
    order = lambda s: (s.suite, s.case_id, s.repeat)  # noqa: E731
    scored = [s for s in entry.samples if s.error is None]
    failing = sorted((s for s in scored if not s.call_correct), key=order)
    errors = sorted((s for s in entry.samples if s.error is not None), key=order)
    counts: dict[str, int] = {}
    for s in failing:
        kind = failure_kind(s)
        counts[kind] = counts.get(kind, 0) + 1
    tally: dict[tuple[str, str], list[int]] = {}
    for s in scored:
        pair = tally.setdefault((s.suite, s.case_id), [0, 0])
        pair[0] += int(not s.call_correct)
        pair[1] += 1
    first: dict[tuple[str, str], Sample] = {}
    for s in failing:
        first.setdefault((s.suite, s.case_id), s)
    shown = list(first.values())[:limit]
    return FailureList(entry, shown, len(failing), len(first), counts,
                       {k: (v[0], v[1]) for k, v in tally.items()}, errors)


# ---------------------------------------------------------------- the report


@dataclass
class FormatDifference:
    model_label: str
    reference: Entry
    other: Entry
    result: Difference

    def sentence(self) -> str:
        return self.result.sentence(self.reference.format, self.other.format)


@dataclass
class Report:
    title: str
    runs: list[Run]
    entries: list[Entry]
    differences: list[FormatDifference]
    flipsets: list[FlipSet]
    recommendation: Any  # recommend.Recommendation
    failures: list[FailureList]
    generated_at: str
    comparison: bool = False
    max_failures: int = MAX_FAILURES

    @property
    def suites(self) -> list[str]:
        return sorted({s for e in self.entries for s in e.suites})

    @property
    def tags(self) -> list[str]:
        return sorted({t for e in self.entries for t in e.tags})


def format_differences(entries: Sequence[Entry]) -> list[FormatDifference]:
    """Per model (and run): every other format against native (or the first format when no native)."""
    out: list[FormatDifference] = []
    groups: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        groups.setdefault((entry.run.run_id, entry.model), []).append(entry)
    for (_run, model), group in groups.items():
        if len(group) < 2:
            continue
        reference = next((e for e in group if e.format == "native"), group[0])
        for other in group:
            if other is reference:
                continue
            model_label = reference.label.replace(f" [{reference.format}]", "")
            result = difference(reference.samples, other.samples, reference.format, other.format)
            out.append(FormatDifference(model_label, reference, other, result))
    return out


def run_flips(runs: Sequence[Run], entries: Sequence[Entry]) -> list[FlipSet]:
    """Each later run against the first (the baseline), per format, over the cases both ran."""
    if len(runs) < 2:
        return []
    base = runs[0]
    out: list[FlipSet] = []
    for run in runs[1:]:
        base_sha = {s.name: s.sha256 for s in base.header.suites}
        changed = [s.name for s in run.header.suites if s.name in base_sha and base_sha[s.name] != s.sha256]
        for before in (e for e in entries if e.run is base):
            for after in (e for e in entries if e.run is run and e.format == before.format):
                flipset = flips(before.samples, after.samples, before.label, after.label, before.format, changed)
                if flipset.common_cases:
                    out.append(flipset)
    return out


def build_report(runs: Sequence[Run], comparison: bool = False, max_failures: int = MAX_FAILURES) -> Report:
    from .recommend import Constraints, recommend_entries

    runs = list(runs)
    if not runs:
        raise EvalkitError("no run directories given")
    entries = make_entries(runs)
    if comparison:
        title = f"evalkit comparison: {len(entries)} model x format options from {len(runs)} runs"
    else:
        header = runs[0].header
        title = f"evalkit report: {header.model} (run {header.run_id})"
    return Report(
        title=title,
        runs=runs,
        entries=entries,
        differences=format_differences(entries),
        flipsets=run_flips(runs, entries),
        recommendation=recommend_entries(entries, Constraints()),
        failures=[failure_list(e, max_failures) for e in ranked(entries)],
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        comparison=comparison,
        max_failures=max_failures,
    )


# ---------------------------------------------------------------- writing


def leaderboard_csv(entries: Sequence[Entry]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in ranked(entries):
        agg = entry.overall
        k = max(agg.pass_hat_k, key=int) if agg.pass_hat_k else None
        row = [
            entry.run.run_id, entry.model, entry.format, agg.n, agg.errors, agg.call_accuracy,
            agg.call_accuracy_ci95.low if agg.call_accuracy_ci95 else None,
            agg.call_accuracy_ci95.high if agg.call_accuracy_ci95 else None,
            agg.intent_accuracy, agg.args_validity, agg.malformed_rate, agg.hallucination_rate, agg.no_call_accuracy,
            agg.no_call_accuracy_bfcl, agg.latency_p50_s, agg.latency_p95_s, agg.ttft_p50_s, agg.tokens_per_s,
            agg.pass_hat_k[k] if k else None, k,
        ]
        writer.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
    return buffer.getvalue()


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(report: Report, out_dir: Path | str) -> tuple[Path, Path]:
    """Write report.md, report.html, the figures (PNG) and leaderboard.csv into `out_dir`."""
    from .figures import make_figures
    from .html import render_html
    from .markdown import render_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = make_figures(report)
    for figure in figures:
        _write_bytes(out / figure.filename, figure.png)
    md_path, html_path = out / "report.md", out / "report.html"
    write_atomic(md_path, render_markdown(report, figures))
    write_atomic(html_path, render_html(report, figures))
    write_atomic(out / "leaderboard.csv", leaderboard_csv(report.entries))
    return md_path, html_path


def write_run_report(run_dir: Path | str, out_dir: Path | str | None = None) -> tuple[Path, Path]:
    """One run's report, written into the run directory (or `out_dir`). Returns (md, html) paths."""
    run = load_run(run_dir)
    return write_report(build_report([run]), out_dir if out_dir is not None else run.path)


def default_compare_dir() -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"compare-{stamp}"


def write_comparison(run_dirs: Sequence[Path | str], out_dir: Path | str | None = None) -> tuple[Path, Path]:
    """A side-by-side report over several runs (models x formats); the first run is the baseline
    that flipped cases are counted against. Returns (md, html) paths."""
    runs = [load_run(d) for d in run_dirs]
    return write_report(build_report(runs, comparison=True), out_dir if out_dir is not None else default_compare_dir())
