"""Does today's code give the verdicts and aggregates stored in measured run directories?

For each run directory:
* aggregates: results.json recomputed from samples.jsonl (as `finalize` does) against the committed
  results.json, field by field over the fields the committed file has (new fields aside);
* verdicts: every scored sample re-scored from its stored reply (single-turn: the format's
  `parse_reply` on the stored raw reply, then `scoring.score`; agent: each round's stored reply,
  then `scoring.score_agent`) against the verdicts stored in samples.jsonl.

The suites must be the files the run used (same SHA-256): the built-in ones are found in suites/,
imported BFCL suites in the directories given with --suites (e.g. after `evalkit import bfcl`).
A failure kind may differ from the stored one only where the kind table grew a more telling
kind (a call to a tool that was not offered is now `hallucinated_tool`; a call, where none was due,
with a value the user never gave is now `invented_argument`); those are counted apart.

    python benchmarks/check_measured.py [RUN_DIR...] [--suites DIR]...
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evalkit.aggregate import aggregate  # noqa: E402
from evalkit.formats import get_format  # noqa: E402
from evalkit.rundir import latest_samples, read_header  # noqa: E402
from evalkit.schema import Case, Sample, ToolDef  # noqa: E402
from evalkit.scoring import Verdict, score, score_agent  # noqa: E402
from evalkit.suites import LoadedSuite, builtin_dir, read_suite  # noqa: E402

VERDICT_FIELDS = ("malformed", "hallucinated_tool", "args_valid", "call_correct", "intent_correct")
# Kinds a stored sample may now carry instead of its stored kind: why, and which stored samples may move.
RECLASSIFIED: dict[str, tuple[str, Callable[[Sample], bool]]] = {
    "hallucinated_tool": ("a call to a tool that was not offered, formerly filed as another kind",
                          lambda stored: stored.hallucinated_tool),
    "invented_argument": ("a call, where none was due, with a required value the conversation never gave "
                          "(issue 12), formerly filed as called_when_should_not",
                          lambda stored: stored.failure_kind == "called_when_should_not"),
}


@dataclass
class RunCheck:
    run: str
    aggregates: int = 0
    aggregate_diffs: list[str] = field(default_factory=list)
    rescored: int = 0
    verdict_diffs: list[str] = field(default_factory=list)
    kind_diffs: list[str] = field(default_factory=list)  # not explained by RECLASSIFIED
    reclassified: int = 0  # moved to a kind of RECLASSIFIED
    detail_changed: int = 0
    skipped: str | None = None  # why the run could not be checked

    @property
    def ok(self) -> bool:
        return self.skipped is None and not (self.aggregate_diffs or self.verdict_diffs or self.kind_diffs)


def find_suites(run_dir: Path, suite_dirs: list[Path]) -> dict[str, LoadedSuite] | str:
    """The run's suites by name (same SHA-256 as the header says), or why they are not at hand."""
    found: dict[str, LoadedSuite] = {}
    for ref in read_header(run_dir).suites:
        name = Path(ref.path).name
        candidates = [Path(ref.path), builtin_dir() / name, *(d / name for d in suite_dirs)]
        for path in candidates:
            if path.is_file() and (loaded := read_suite(path)).sha256 == ref.sha256:
                found[ref.name] = loaded
                break
        else:
            return f"suite {ref.name} ({name}, sha256 {ref.sha256[:12]}) not found"
    return found


def rescore(sample: Sample, case: Case, offered: list[ToolDef]) -> Verdict:
    fmt = get_format(sample.format)
    if sample.mode == "agent":
        replies = [fmt.parse_reply(r.raw.get("content"), r.raw.get("tool_calls") or []) for r in sample.trajectory]
        return score_agent(case, offered, replies)[0]
    parsed = fmt.parse_reply(sample.raw.get("content"), sample.raw.get("tool_calls") or [])
    return score(case, offered, parsed.calls, parsed.text)


def check_run(run_dir: Path, suite_dirs: list[Path]) -> RunCheck:
    result = RunCheck(run_dir.name)
    header = read_header(run_dir)
    samples = latest_samples(run_dir)

    committed = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    fresh = aggregate(samples, header.run_id, header.model).model_dump(mode="json")
    if len(fresh["aggregates"]) != len(committed["aggregates"]):
        result.aggregate_diffs.append(f"{len(fresh['aggregates'])} aggregates, committed {len(committed['aggregates'])}")
    for old, new in zip(committed["aggregates"], fresh["aggregates"]):
        result.aggregates += 1
        where = f"{old['model']}/{old['format']}/{old['suite']}/{old['tag']}"
        result.aggregate_diffs += [f"{where}: {k} {new.get(k)!r} != {v!r}" for k, v in old.items() if new.get(k) != v]

    suites = find_suites(run_dir, suite_dirs)
    if isinstance(suites, str):
        result.skipped = suites
        return result
    cases = {(name, c.id): (c, loaded.suite.tools_for(c)) for name, loaded in suites.items() for c in loaded.suite.cases}
    for sample in samples:
        if sample.error is not None:
            continue
        case, offered = cases[(sample.suite, sample.case_id)]
        verdict = rescore(sample, case, offered)
        result.rescored += 1
        where = "/".join(map(str, sample.key()))
        for name in VERDICT_FIELDS:
            if getattr(verdict, name) != getattr(sample, name):
                result.verdict_diffs.append(f"{where}: {name} {getattr(verdict, name)!r} != {getattr(sample, name)!r}")
        if verdict.failure_kind != sample.failure_kind:
            if verdict.failure_kind in RECLASSIFIED and RECLASSIFIED[verdict.failure_kind][1](sample):
                result.reclassified += 1
            else:
                result.kind_diffs.append(f"{where}: {verdict.failure_kind} != {sample.failure_kind}")
        elif verdict.failure_detail != sample.failure_detail:
            result.detail_changed += 1  # wording only (e.g. matchers shown as matchers, not dict reprs)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="*", type=Path)
    parser.add_argument("--suites", action="append", default=[], type=Path, help="a folder of imported suites")
    args = parser.parse_args(argv)
    run_dirs = args.run_dirs or sorted(p.parent for p in (ROOT / "reports" / "measured").rglob("header.json"))
    failed = False
    for run_dir in run_dirs:
        r = check_run(run_dir, args.suites)
        status = "SKIPPED" if r.skipped else ("same" if r.ok else "DIFFERENT")
        print(f"{r.run}: {status}: {r.aggregates} aggregates, {len(r.aggregate_diffs)} differ; "
              f"{r.rescored} samples re-scored, {len(r.verdict_diffs)} verdicts differ, "
              f"{len(r.kind_diffs)} kinds differ, {r.reclassified} reclassified ({', '.join(RECLASSIFIED)}), "
              f"{r.detail_changed} details reworded" + (f" ({r.skipped})" if r.skipped else ""))
        for line in (r.aggregate_diffs + r.verdict_diffs + r.kind_diffs)[:10]:
            print("   ", line)
        failed = failed or not r.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
