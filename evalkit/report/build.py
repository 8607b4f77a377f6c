"""A report, assembled: entries, format differences, flipped cases, the recommendation and each
option's failing cases, ready for the renderers (markdown.py, html.py, figures.py).

`write.py` turns a `Report` into files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence

from ..aggregate import server_lost_lines
from ..errors import EvalkitError
from ..rundir import own_family
from ..schema import Sample
from .compare import Difference, FlipSet, difference, flips
from .explain import failure_kind
from .model import Entry, Run, make_entries, ranked
from .recommend import Constraints, Recommendation, recommend_entries
from .serving import ProbeView, probe_views

MAX_FAILURES = 50  # failing cases listed per model x format; the rest are counted

STRICT_VS_LENIENT = (
    "Call accuracy is strict: the reply must contain exactly the expected tool calls in a form the "
    "format parses; intent accuracy is lenient: it also counts a malformed call when its intended "
    "tool and arguments can be recovered from the text, so a large gap between the two means the "
    "model knows what to call but the format (or the server's parser) loses it."
)


SIGNIFICANCE_NOTE = (
    "A difference is called larger than the noise when p < 0.05: McNemar's exact test on the per-case "
    "outcomes when both formats answered the same cases (a paired test: only cases that pass in one "
    "format and fail in the other count), otherwise a two-proportion z-test. The unit is the case: with "
    "repeats a case's outcome is the share of its repeats that pass, and with --distractors the formats "
    "are compared at +0 distractor tools (the tool-count section shows the other counts)."
)


@dataclass
class FigureFile:
    """One figure as the renderers use it: PNG bytes, saved beside the report and embedded in the HTML."""

    name: str
    filename: str
    title: str
    caption: str
    png: bytes


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

LEADERBOARD_ORDER = ("Ordered as the card decides (\"Which to deploy\"): its pick first, highlighted, then the options "
                     "tied with it, the others meeting the constraints, and those ruled out, each by call accuracy.")


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
    recommendation: Recommendation
    failures: list[FailureList]
    generated_at: str
    comparison: bool = False
    max_failures: int = MAX_FAILURES
    probes: list[ProbeView] = field(default_factory=list)  # runs started with --probe
    notes: list[str] = field(default_factory=list)  # one line each, said before anything else (e.g. calls the server lost)

    @property
    def suites(self) -> list[str]:
        return sorted({s for e in self.entries for s in e.suites})

    @property
    def tags(self) -> list[str]:
        return sorted({t for e in self.entries for t in e.tags})


def leaderboard_order(report: Report) -> list[Entry]:
    """The report's entries in the card's order (`Recommendation.order`): the recommendation may
    compare options on fewer cases (shared cases, one distractor count), so its entries are matched
    to the report's by key."""
    mine = {e.key: e for e in report.entries}
    order = [mine[e.key] for e in report.recommendation.order() if e.key in mine]
    placed = {id(e) for e in order}
    return order + [e for e in ranked(report.entries) if id(e) not in placed]


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


def unknown_syntax_lines(entries: Sequence[Entry]) -> list[str]:
    """Per option, the replies whose call the safety net read (`syntax: unknown`: no family's syntax), and
    what to file: the model's own family when evalkit knows it, else that its family is missing."""
    lines = []
    for entry in entries:
        # In case order, not arrival order: samples.jsonl is written as replies come back, so the
        # same run's examples would differ from one reading of it to the next.
        unknown = sorted((s for s in entry.samples if s.syntax == "unknown"), key=lambda s: (s.suite, s.case_id))
        if not unknown:
            continue
        family = own_family(entry.run.header)
        cases = ", ".join(dict.fromkeys(s.case_id for s in unknown[:3]))
        line = (f"{entry.label}: {len(unknown)} of {len(entry.samples)} replies held a call in a syntax no family "
                f"knows (syntax: unknown; scored malformed, e.g. {cases}: see the failing cases).")
        if family is None:
            line += (f" No family in evalkit's table matches {entry.model} (its name or chat template): its call "
                     "syntax is the one missing; file it with one of these replies.")
        else:
            line += f" Its own family is {family}: these replies are outside it."
        lines.append(line)
    return lines


def build_report(runs: Sequence[Run], comparison: bool = False, max_failures: int = MAX_FAILURES,
                 constraints: Constraints | None = None, stopped: str | None = None) -> Report:
    """`constraints`: the recommendation's (default: its defaults); `stopped`: why an
    --until-decided run stopped where it did, shown as the report's first note."""
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
        recommendation=recommend_entries(entries, constraints or Constraints()),
        failures=[failure_list(e, max_failures) for e in ranked(entries)],
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        comparison=comparison,
        max_failures=max_failures,
        probes=probe_views(runs),
        notes=([stopped] if stopped else [])
        + [line for run in runs for line in server_lost_lines(run.results.aggregates, own_family(run.header))]
        + unknown_syntax_lines(entries),
    )
