"""Rounds of `--until-decided`: which cases run, in what order, and when to stop.

Every option runs the same cases in the same order: all the run's cases, ranked by a hash of
`--seed`, the suite and the case id (so the order depends on no outcome, and is the same for
every model and format). Round r runs the first `round_sizes(total)[r]` cases of that order on
every option; after each round the options' scores on the cases all of them have scored (in
that order) go to `sequential.settle`, and the run stops when it says settled, or when the cases
run out (the answer of the fixed run).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..schema import Sample, Stopping
from .sequential import Settlement, settle

DECISION = "decision.json"  # in the run (or sweep) directory: the latest Stopping
CaseId = tuple[str, str]  # (suite, case id): one cluster, whatever its repeats and distractor counts

# The first round is large enough for the recommendation's own minimum of scored samples (10),
# and about as small as the mixture test can ever settle at (8-10 one-sided discordant cases).
FIRST_ROUND = 10
GROWTH = 1.5  # each round runs half as many cases again: a few rounds, little run past the point


def case_order(cases: Iterable[CaseId], seed: int | None) -> list[CaseId]:
    """The cases in the run's fixed order (each once)."""
    unique = list(dict.fromkeys(cases))
    return sorted(unique, key=lambda c: hashlib.sha256(f"{seed or 0}:{c[0]}:{c[1]}".encode()).digest())


def round_sizes(total: int, first: int = FIRST_ROUND, growth: float = GROWTH) -> list[int]:
    """How many cases (of the order) have run after each round; the last is `total`."""
    sizes: list[int] = []
    n = min(first, total)
    while n < total:
        sizes.append(n)
        n = max(n + 1, math.ceil(n * growth))
    sizes.append(total)
    return sizes


class CaseTally:
    """option -> case -> share of its scored samples of the case that are call-correct, fed one
    sample at a time. A later sample of the same key replaces an earlier one (a resumed run's
    redone errors); only what the score needs is kept of a sample. With --distractors only the
    smallest count counts, the one the recommendation decides on by default."""

    def __init__(self, option_of: Callable[[Sample], str]):
        self.option_of = option_of
        self._latest: dict[tuple[str, tuple], tuple[CaseId, int, bool, bool]] = {}

    def add(self, sample: Sample) -> None:
        self._latest[(self.option_of(sample), sample.key())] = (
            (sample.suite, sample.case_id), sample.distractors or 0, sample.error is None, sample.call_correct)

    def add_all(self, samples: Iterable[Sample]) -> "CaseTally":
        for sample in samples:
            self.add(sample)
        return self

    def scores(self) -> dict[str, dict[CaseId, float]]:
        tallies: dict[str, dict[CaseId, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        count = min((c for _case, c, _scored, _correct in self._latest.values()), default=0)
        for (option, _key), (case, distractors, scored, correct) in self._latest.items():
            if scored and distractors == count:
                tally = tallies[option][case]
                tally[0] += int(correct)
                tally[1] += 1
        return {o: {c: right / n for c, (right, n) in by_case.items()} for o, by_case in tallies.items()}


def shared_scores(per_option: dict[str, dict[CaseId, float]], options: Sequence[str],
                  order: Sequence[CaseId]) -> dict[str, list[float]]:
    """Each option's scores on the cases of `order` that every option has scored, in that order."""
    shared = [c for c in order if all(c in per_option.get(o, {}) for o in options)]
    return {o: [per_option[o][c] for c in shared] for o in options}


def evaluate(per_option: dict[str, dict[CaseId, float]], options: Sequence[str], order: Sequence[CaseId],
             run: int, floor: float | None, alpha: float) -> Settlement:
    """The settlement on the first `run` cases of the order."""
    return settle(shared_scores(per_option, options, order[:run]), floor, alpha)


def stopping(settlement: Settlement, run: int, total: int, rounds: int) -> Stopping:
    """What the card says of when and why the run stopped (decision.json)."""
    if settlement.settled:
        text = f"settled after {run} of {total} cases: {settlement.evidence()}"
    else:
        text = (f"not settled after all {total} cases ({settlement.evidence()}): the answer is the fixed run's"
                if run >= total else f"not yet settled after {run} of {total} cases")
    return Stopping(settled=settlement.settled, kind=settlement.kind, pick=settlement.pick, cases_run=run,
                    cases_total=total, cases_compared=settlement.cases, rounds=rounds, alpha=settlement.alpha,
                    tests=settlement.tests, min_accuracy=settlement.floor, text=text)


def read_stopping(directory: Path) -> Stopping | None:
    """decision.json of a run or sweep directory, if it ran --until-decided."""
    path = Path(directory) / DECISION
    return Stopping.model_validate_json(path.read_text(encoding="utf-8")) if path.is_file() else None
