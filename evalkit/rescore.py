"""`evalkit rescore RUN_DIR...`: today's parsing and scoring, applied to the replies a run stored.

No request is sent. A run is rescored only when every suite it used is at hand as the very same
file (same SHA-256, `suites.same_suite`); otherwise it is left untouched. Each stored sample is
scored again from its stored reply (single-turn: the format's `parse_reply` on `raw`, then
`scoring.score_reply`; agent: each round's stored reply, then `scoring.score_agent`). Only the
verdict fields change; every other stored field stays as it was (a line whose verdicts did not
move is kept byte for byte).

samples.jsonl is replaced whole (`rundir.write_atomic`: a new file renamed over the old one), so
an interrupted rescore leaves either the old file or the new one, never a mix; results.json and
the reports are then written again from it, and running rescore again finishes the job.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pydantic import ValidationError

from .errors import EvalkitError
from .formats import get_format
from .jobs import offered_tools
from .rundir import SAMPLES, file_mode, finalize, own_family, read_header, run_lock
from .schema import Case, Header, Sample, Suite, ToolDef
from .scoring import VERDICT_FIELDS, Verdict, score_agent, score_reply
from .suites import LoadedSuite, same_suite

COUNTED = ("call_correct", "intent_correct", "malformed")  # verdicts whose totals the summary reports
LEGACY = "failure"  # older runs' one failure string, superseded by failure_kind and failure_detail


def verdict_for(sample: Sample, case: Case, offered: list[ToolDef], family: str | None) -> Verdict:
    """Today's verdict on a sample's stored reply (all rounds for an agent case)."""
    fmt = get_format(sample.format)
    if sample.mode == "agent":
        replies = [fmt.parse_reply(r.raw.get("content"), r.raw.get("tool_calls") or []) for r in sample.trajectory]
        verdict, _ = score_agent(case, offered, replies, family)
        return verdict
    parsed = fmt.parse_reply(sample.raw.get("content"), sample.raw.get("tool_calls") or [])
    return score_reply(case, offered, parsed, family)


def run_suites(header: Header, extra_dirs: Sequence[Path] = ()) -> dict[str, LoadedSuite] | str:
    """The run's suites by name, each the very file the run used, or why they are not at hand."""
    found: dict[str, LoadedSuite] = {}
    for ref in header.suites:
        loaded = same_suite(ref.name, ref.path, ref.sha256, extra_dirs)
        if loaded is None:
            return (f"suite {ref.name} ({ref.path}, sha256 {ref.sha256[:12]}) changed since the run or is gone; "
                    "the run is left as it was")
        found[ref.name] = loaded
    return found


@dataclass
class RunScorer:
    """Today's scoring for one run's stored samples: its cases, its seed (which fixed each sample's
    --distractors draw) and its model's own call syntax."""

    cases: dict[tuple[str, str], tuple[Suite, Case]]
    seed: int | None
    family: str | None  # rundir.own_family of the run's header

    def verdict(self, sample: Sample) -> Verdict:
        found = self.cases.get((sample.suite, sample.case_id))
        if found is None:
            raise EvalkitError(f"case {sample.suite}/{sample.case_id} is not in the suite file the run used")
        suite, case = found
        # The tools the sample offered: the case's own, plus its distractor draw (fixed by the seed).
        return verdict_for(sample, case, offered_tools(suite, case, self.seed, sample.distractors), self.family)


def run_scorer(run_dir: Path, extra_dirs: Sequence[Path] = ()) -> RunScorer | str:
    """The scorer of a run, or why its suites are not at hand (see `run_suites`)."""
    header = read_header(run_dir)
    suites = run_suites(header, extra_dirs)
    if isinstance(suites, str):
        return suites
    cases = {(name, c.id): (loaded.suite, c) for name, loaded in suites.items() for c in loaded.suite.cases}
    return RunScorer(cases, header.settings.seed, own_family(header))


@dataclass
class Rescore:
    """What rescoring one run changed."""

    run_dir: Path
    refused: str | None = None  # why the run was not rescored
    rescored: int = 0  # scored samples scored again (server errors have no verdict to redo)
    changed: int = 0  # samples with any verdict field changed
    kinds: Counter[tuple[str, str]] = field(default_factory=Counter)  # (old kind, new kind) -> samples
    deltas: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    syntax_recorded: int = 0  # samples that gained a `syntax`
    details: int = 0  # samples whose failure detail alone was reworded

    def summary(self) -> str:
        """One line: what moved, e.g. "malformed → server_parse_lost: 38; call_correct unchanged; ..."."""
        if self.refused:
            return f"{self.run_dir}: not rescored: {self.refused}"
        parts = [f"{old} → {new}: {n}" for (old, new), n in sorted(self.kinds.items(), key=lambda kv: -kv[1])]
        for name in COUNTED:
            delta = self.deltas[name]
            parts.append(f"{name} {delta:+d}" if delta else f"{name} unchanged")
        if self.syntax_recorded:
            parts.append(f"syntax recorded on {self.syntax_recorded}")
        if self.details:
            parts.append(f"{self.details} failure details reworded")
        moved = f"{self.changed} of {self.rescored} samples changed" if self.changed else f"{self.rescored} samples, nothing moved"
        return f"{self.run_dir}: {moved}: " + "; ".join(parts)


def _kind(value: Any) -> str:
    return str(value) if value else "correct"


def rescore_run(run_dir: Path | str, extra_dirs: Sequence[Path] = (), *, write: bool = True,
                report: bool = True) -> Rescore:
    """Rescore one run directory in place (or only count what would move, with `write=False`)."""
    run_dir = Path(run_dir)
    result = Rescore(run_dir)
    scorer = run_scorer(run_dir, extra_dirs)
    if isinstance(scorer, str):
        result.refused = scorer
        return result
    with run_lock(run_dir) if write else nullcontext():  # not while a run appends to it
        try:
            _rescore_samples(run_dir, scorer, result, write)
        except _BadLine as exc:  # this run is left as it was; the runs after it are still rescored
            result.refused = str(exc)
            return result
        if write:
            finalize(run_dir)  # always: a rescore interrupted after samples.jsonl is finished by the next one
    if write and report:
        from .report.write import write_run_report  # here: the renderers only when a report is written

        write_run_report(run_dir)
    return result


class _BadLine(Exception):
    """A line of samples.jsonl that is not a sample: the run is not rescored (one line says where)."""


def _rescore_samples(run_dir: Path, scorer: RunScorer, result: Rescore, write: bool) -> None:
    """Line by line, into a new file beside the old one (a 198 MB samples.jsonl once took 630 MB
    read whole), which replaces it, with the old file's mode, only when something moved."""
    path = run_dir / SAMPLES
    if not path.is_file():
        return
    out = None
    if write:
        fd, tmp = tempfile.mkstemp(prefix=f".{SAMPLES}.", dir=run_dir)
        out = os.fdopen(fd, "w", encoding="utf-8", newline="")
    moved = False
    try:
        with open(path, encoding="utf-8", newline="") as lines:
            for number, line in enumerate(lines, 1):
                new_line = _rescored_line(line, number, path, scorer, result)
                moved = moved or new_line is not line
                if out is not None:
                    out.write(new_line)
        if out is not None:
            out.flush()
            os.fsync(out.fileno())
            out.close()
            if moved:
                os.chmod(tmp, file_mode(path))
                os.replace(tmp, path)
    finally:
        if out is not None:
            out.close()
            Path(tmp).unlink(missing_ok=True)


def _rescored_line(line: str, number: int, path: Path, scorer: RunScorer, result: Rescore) -> str:
    """The line as it stays (the same object) or rescored; _BadLine when it is not a sample."""
    if not line.endswith("\n") or not line.strip():
        return line  # a line torn by a crash stays as it was (the next append cuts it)
    try:
        data = json.loads(line)
        sample = Sample.model_validate(data)
    except (ValueError, RecursionError) as exc:  # not JSON, or JSON that is not a sample
        what = "not JSON" if not isinstance(exc, ValidationError) else f"not a sample ({_first_problem(exc)})"
        raise _BadLine(f"{path} line {number}: {what}; fix or remove the line") from None
    if sample.error is not None:
        return line
    verdict = scorer.verdict(sample)
    # final_answer_ok too: single-turn replies are checked against a case's final_answer (clarify).
    new = {name: getattr(verdict, name) for name in VERDICT_FIELDS}
    result.rescored += 1
    _tally(result, sample, new)
    updated = {k: v for k, v in data.items() if k != LEGACY} | new
    return line if updated == data else json.dumps(updated, ensure_ascii=False, separators=(",", ":")) + "\n"


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(map(str, error['loc'])) or 'the line'}: {error['msg']}"


def _tally(result: Rescore, old: Sample, new: dict[str, Any]) -> None:
    if any(getattr(old, k) != v for k, v in new.items()):
        result.changed += 1
    if _kind(old.failure_kind) != _kind(new["failure_kind"]):
        result.kinds[(_kind(old.failure_kind), _kind(new["failure_kind"]))] += 1
    elif old.failure_detail != new["failure_detail"]:
        result.details += 1
    for name in COUNTED:
        result.deltas[name] += int(bool(new[name])) - int(bool(getattr(old, name)))
    if old.syntax is None and new["syntax"] is not None:
        result.syntax_recorded += 1


# ---------------------------------------------------------------- command line


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rescore", help="apply today's parsing and scoring to the replies stored in run directories (no requests)",
        description="Scores every stored reply again with today's evalkit and rewrites samples.jsonl (verdict "
                    "fields only), results.json and the reports. A run whose suite files changed or are gone is "
                    "left untouched (exit 2). A folder of runs stands for all of them.")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--suites", action="append", default=[], type=Path, dest="suite_dirs", metavar="DIR",
                   help="also look for the runs' suite files here (e.g. imported BFCL suites); repeatable")
    p.add_argument("--dry-run", action="store_true", help="only print what would move; write nothing")
    p.add_argument("--no-report", action="store_true", help="rewrite samples.jsonl and results.json, not the reports")
    p.set_defaults(func=cmd_rescore)


def cmd_rescore(args: argparse.Namespace) -> int:
    from .report.model import expand_run_dirs

    refused = 0
    for run_dir in expand_run_dirs(args.run_dirs):
        result = rescore_run(run_dir, args.suite_dirs, write=not args.dry_run, report=not args.no_report)
        print(result.summary())
        refused += result.refused is not None
    return 2 if refused else 0
