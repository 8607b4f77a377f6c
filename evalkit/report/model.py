"""The report's data: runs loaded from their directories, one entry per model x format, ranked.

Every number comes from results.json (recomputed from samples.jsonl with `evalkit.aggregate`
only when results.json is missing or a suite subset is asked for).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from ..aggregate import ALL, aggregate, is_breakdown, is_overall
from ..errors import EvalkitError
from ..rundir import HEADER, latest_samples, read_header, read_probe, read_results
from ..schema import Aggregate, Case, Header, ProbeResult, Results, Sample
from ..suites import same_suite


@dataclass
class Run:
    path: Path
    header: Header
    results: Results
    samples: list[Sample]  # the latest sample per (suite, case, format, repeat), as results.json counts them
    probe: ProbeResult | None = None  # probe.json, when the run was started with --probe
    _cases: dict[tuple[str, str], Case] | None = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        return self.header.run_id

    @property
    def from_cache(self) -> str:
        """"12/64": samples answered from the response cache (their timings are not this run's)."""
        return f"{sum(1 for s in self.samples if s.cached)}/{len(self.samples)}"

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
    loaded = same_suite(name, path, sha256)
    return tuple(loaded.suite.cases) if loaded is not None else ()


def load_run(run_dir: Path | str) -> Run:
    run_dir = Path(run_dir)
    header = read_header(run_dir)
    samples = latest_samples(run_dir)
    results = read_results(run_dir)
    if results is None:  # an interrupted run: aggregate what is there
        results = aggregate(samples, header.run_id, header.model)
    return Run(run_dir, header, results, samples, read_probe(run_dir))


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
    distractors: dict[int, Aggregate] = field(default_factory=dict)  # --distractors count -> all suites

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
        entries += _entries_of(run, chosen, results)
    if suites and not entries:
        known = sorted({s.suite for run in runs for s in run.samples})
        raise EvalkitError(f"no samples for suite(s) {', '.join(suites)}; "
                           f"the runs hold {', '.join(known) or 'nothing'}")
    _unique_labels(entries)
    return entries


def _entries_of(run: Run, samples: Sequence[Sample], results: Results) -> list[Entry]:
    """One entry per model x format of `results` (aggregated over `samples`): its overall row,
    per-suite, per-tag and per-distractor-count rows, and its samples."""
    shown = [a for a in results.aggregates if not is_breakdown(a)]
    entries = []
    for agg in (a for a in shown if is_overall(a)):
        def own(a: Aggregate) -> bool:
            return a.model == agg.model and a.format == agg.format

        mine = [s for s in samples if s.model == agg.model and s.format == agg.format]
        per_suite = {a.suite: a for a in shown if own(a) and a.suite != ALL and a.tag is None}
        per_tag = {a.tag: a for a in shown if own(a) and a.tag is not None}
        by_count = {a.distractors: a for a in results.aggregates if own(a) and is_breakdown(a)}
        entries.append(Entry(run, agg.model, agg.format, f"{agg.model} [{agg.format}]", agg, per_suite,
                             per_tag, mine, by_count))  # type: ignore[arg-type]
    return entries


def _unique_labels(entries: list[Entry]) -> None:
    """Options of the same model and format from different runs are told apart by run id (a
    position such as "run 3" maps to no directory)."""
    seen: dict[str, int] = {}
    for entry in entries:
        seen[entry.label] = seen.get(entry.label, 0) + 1
    for entry in entries:
        if seen[entry.label] > 1:
            entry.label = f"{entry.label} ({entry.run.run_id})"


# (suite, case id, repeat, --distractors count): one question asked of every option. The
# distractor count is part of what was asked.
CaseKey = tuple[str, str, int, int | None]


def case_key(sample: Sample) -> CaseKey:
    return (sample.suite, sample.case_id, sample.repeat, sample.distractors)


def case_keys(entry: Entry) -> set[CaseKey]:
    """The cases an option ran (answered or failed at the server)."""
    return {case_key(s) for s in entry.samples}


def restrict_entries(entries: Sequence[Entry], keys: set[CaseKey]) -> list[Entry]:
    """The same options re-aggregated over only `keys` (per-tag figures left out)."""
    out: list[Entry] = []
    for entry in entries:
        chosen = [s for s in entry.samples if case_key(s) in keys]
        results = aggregate([s.model_copy(update={"tags": []}) for s in chosen], entry.run.run_id, entry.model)
        for restricted in _entries_of(entry.run, chosen, results):  # the entry's own model x format, if any case is left
            restricted.label = entry.label
            out.append(restricted)
    return out


def ranked(entries: Sequence[Entry]) -> list[Entry]:
    """Best first: call accuracy, then lower latency p50."""
    inf = float("inf")
    return sorted(entries, key=lambda e: (
        -(e.overall.call_accuracy if e.overall.call_accuracy is not None else -1),
        e.overall.latency_p50_s if e.overall.latency_p50_s is not None else inf,
        e.label,
    ))
