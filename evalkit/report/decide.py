"""Deciding between options on the cases they share: which criterion tells them apart, and by
what test (docs/recommendation.md states the rules for users).

The unit is the case, `(suite, case id)`: its repeats and its --distractors counts are one
cluster, never independent pairs. Callers pass the samples of ONE distractor count (`at_count`
picks it; the recommendation uses +0 unless told otherwise), so a case appears once per option.

Criteria, in order (`CRITERIA`): call accuracy first, then fewer hallucinated tools, higher no-call
accuracy, lower latency p95. A criterion decides between two options only when

1. both have a basis for it: `MIN_BASIS` cases that carry it (scored cases; cases with a parsed
   call for hallucinated tools, which an option that parses no call cannot commit; no-call cases;
   cases timed live for latency, never a cached reply), and
2. their difference is beyond the noise on the shared cases:
   * a rate: McNemar's exact test on per-case outcomes. With repeats a case's outcome is the share
     of its scored repeats that pass; a case counts for the option whose share is higher (a sign
     test on the per-case shares, which is McNemar's exact test when there are no repeats);
   * latency p95: a 95% bootstrap interval of the p95 difference, resampling shared cases (all of
     a case's live repeats move together), must exclude 0.

`decide(options)` walks the criteria and returns a `Decision`: the pick, the criterion that decided
(or a tie naming every tied option, with what would separate them), and every step with its test.
`compare(a, b, criterion)` is one criterion between two options. Both take `Option`s (a label and
samples), nothing from the report, so any caller (the recommendation, sequential stopping) can use
them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..metrics import pct, quantile, secs
from ..schema import Sample
from .compare import ALPHA, POWER, cases_needed, detectable_difference, format_p, mcnemar_exact

Cluster = tuple[str, str]  # (suite, case id): a case, with all its repeats and distractor counts

MIN_BASIS = 5  # cases an option needs behind a secondary criterion for it to decide anything
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 21  # fixed: the same runs give the same card
TARGET_GAP = 0.05  # "cases to detect 5 points" when the observed gap is zero


def cluster(sample: Sample) -> Cluster:
    return (sample.suite, sample.case_id)


def count_of(sample: Sample) -> int:
    """A sample's --distractors count (no --distractors: +0)."""
    return sample.distractors or 0


def at_count(samples: Sequence[Sample], count: int) -> list[Sample]:
    """The samples asked with `count` distractor tools."""
    return [s for s in samples if count_of(s) == count]


def cases(samples: Sequence[Sample]) -> int:
    """How many cases (not samples) `samples` cover."""
    return len({cluster(s) for s in samples})


@dataclass(frozen=True)
class Option:
    """What a decision reads of an option: its name and its samples (of one distractor count)."""

    label: str
    samples: Sequence[Sample]


@dataclass(frozen=True)
class Criterion:
    key: str  # the schema.Aggregate field it matches
    name: str  # how the card names it
    lower_is_better: bool
    basis: str  # what the basis counts, as the card says it ("3 cases with a parsed call")
    in_basis: Callable[[Sample], bool]  # the sample carries this criterion
    outcome: Callable[[Sample], float | None]  # the sample's value (rates: 1/0; latency: seconds)
    latency: bool = False

    def fmt(self, value: float | None) -> str:
        return secs(value) if self.latency else pct(value)


def _scored(s: Sample) -> bool:
    return s.error is None


CRITERIA: tuple[Criterion, ...] = (
    Criterion("call_accuracy", "call accuracy", False, "scored cases", _scored,
              lambda s: float(bool(s.call_correct))),
    Criterion("hallucination_rate", "hallucinated tools", True, "cases with a parsed call",
              lambda s: _scored(s) and bool(s.calls), lambda s: float(bool(s.hallucinated_tool))),
    Criterion("no_call_accuracy", "no-call accuracy", False, "no-call cases",
              lambda s: _scored(s) and s.expected_calls == 0, lambda s: float(bool(s.call_correct))),
    Criterion("latency_p95_s", "latency p95", True, "cases timed live",
              lambda s: _scored(s) and not s.cached and s.latency_s is not None,
              lambda s: s.latency_s, latency=True),
)
ACCURACY = CRITERIA[0]
BY_NAME = {c.name: c for c in CRITERIA}


def _rate_samples(c: Criterion, samples: Sequence[Sample]) -> list[Sample]:
    """The samples a rate is computed over: hallucination is a share of all scored replies (as the
    leaderboard shows it), the others of the samples in their basis."""
    if c.key == "hallucination_rate":
        return [s for s in samples if _scored(s)]
    return [s for s in samples if c.in_basis(s)]


def value_of(c: Criterion, samples: Sequence[Sample]) -> float | None:
    """The criterion's value over `samples` (None: nothing to compute it from)."""
    if c.latency:
        return quantile([s.latency_s for s in samples if c.in_basis(s)], 0.95)
    over = _rate_samples(c, samples)
    return sum(c.outcome(s) or 0.0 for s in over) / len(over) if over else None


def basis_of(c: Criterion, samples: Sequence[Sample]) -> int:
    return cases([s for s in samples if c.in_basis(s)])


def per_case(c: Criterion, samples: Sequence[Sample]) -> dict[Cluster, list[float]]:
    """Each case's values for the criterion (a rate: over the samples it is computed over)."""
    chosen = [s for s in samples if c.in_basis(s)] if c.latency else _rate_samples(c, samples)
    out: dict[Cluster, list[float]] = {}
    for s in chosen:
        value = c.outcome(s)
        if value is not None:
            out.setdefault(cluster(s), []).append(value)
    return out


@dataclass
class Comparison:
    """One criterion between two options on their shared cases."""

    criterion: Criterion
    label_a: str
    label_b: str
    value_a: float | None
    value_b: float | None
    basis_a: int
    basis_b: int
    shared: int  # cases both have values for
    test: str  # "mcnemar" | "bootstrap" | "none"
    p_value: float | None = None
    only_a: int = 0  # cases where A is better (rates: A's share of passing/hallucinating repeats higher)
    only_b: int = 0
    interval: tuple[float, float] | None = None  # bootstrap: p95 of A minus p95 of B
    repeats: bool = False  # some shared case has several samples (its outcome is a share)
    no_basis: list[str] = field(default_factory=list)  # labels without a basis

    @property
    def has_basis(self) -> bool:
        return not self.no_basis

    @property
    def beyond_noise(self) -> bool:
        if not self.has_basis or self.value_a is None or self.value_b is None or self.value_a == self.value_b:
            return False
        if self.test == "mcnemar":
            return self.p_value is not None and self.p_value < ALPHA and self.only_a != self.only_b
        if self.test == "bootstrap" and self.interval is not None:
            low, high = self.interval
            return low > 0 or high < 0
        return False

    @property
    def better(self) -> str | None:
        """The label that is better beyond the noise, or None."""
        if not self.beyond_noise:
            return None
        a_lower = (self.value_a or 0) < (self.value_b or 0)
        return self.label_a if a_lower == self.criterion.lower_is_better else self.label_b

    def values_text(self) -> str:
        c = self.criterion
        return f"{self.label_a} {c.fmt(self.value_a)}, {self.label_b} {c.fmt(self.value_b)}"

    def test_text(self) -> str:
        """The test and its result, in the card's words."""
        c = self.criterion
        if self.no_basis:
            counts = {self.label_a: self.basis_a, self.label_b: self.basis_b}
            return "no basis: " + ", ".join(f"{label} has {counts[label]} {c.basis}" for label in self.no_basis) + (
                f" (a criterion needs {MIN_BASIS})")
        if self.test == "bootstrap" and self.interval is not None:
            low, high = self.interval
            return (f"95% bootstrap interval of the p95 difference over the {self.shared} cases both timed live "
                    f"(cases resampled): {_signed(low)} to {_signed(high)}, "
                    f"{'excludes' if self.beyond_noise else 'includes'} 0")
        if self.test == "mcnemar":
            verb = "hallucinate" if c.key == "hallucination_rate" else "pass"
            only = "more often" if self.repeats else "only"
            return (f"McNemar's exact test on {self.shared} shared cases{' (per case: its share of repeats)' if self.repeats else ''}, "
                    f"{format_p(self.p_value or 1.0)}: {self.only_a} {verb} {only} in {self.label_a}, "
                    f"{self.only_b} {only} in {self.label_b}")
        return f"no shared cases with {c.basis}"

    def as_json(self) -> dict:
        return {"criterion": self.criterion.name, "values": {self.label_a: self.value_a, self.label_b: self.value_b},
                "basis": {self.label_a: self.basis_a, self.label_b: self.basis_b}, "basis_counts": self.criterion.basis,
                "shared_cases": self.shared, "test": self.test, "p_value": self.p_value,
                "discordant": [self.only_a, self.only_b] if self.test == "mcnemar" else None,
                "interval_s": list(self.interval) if self.interval else None,
                "no_basis": self.no_basis, "beyond_noise": self.beyond_noise, "better": self.better,
                "text": self.test_text()}


def _signed(seconds: float) -> str:
    return f"{round(seconds * 1000):+d} ms" if abs(seconds) < 1 else f"{seconds:+.1f} s"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _bootstrap_p95(a: dict[Cluster, list[float]], b: dict[Cluster, list[float]],
                   shared: list[Cluster]) -> tuple[float, float]:
    """A 95% percentile interval of p95(A) - p95(B), resampling shared cases with replacement."""
    rng = random.Random(BOOTSTRAP_SEED)
    diffs = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        pick = [shared[rng.randrange(len(shared))] for _ in shared]
        diffs.append((quantile([v for k in pick for v in a[k]], 0.95) or 0.0)
                     - (quantile([v for k in pick for v in b[k]], 0.95) or 0.0))
    diffs.sort()
    return diffs[int(0.025 * len(diffs))], diffs[min(len(diffs) - 1, int(0.975 * len(diffs)))]


def compare(a: Option, b: Option, criterion: Criterion = ACCURACY, min_basis: int = MIN_BASIS) -> Comparison:
    """`criterion` between two options on the cases both have it for (the module docstring's rules).
    The primary criterion (call accuracy) needs only one scored case each."""
    need = 1 if criterion is ACCURACY else min_basis
    basis_a, basis_b = basis_of(criterion, a.samples), basis_of(criterion, b.samples)
    result = Comparison(criterion, a.label, b.label, value_of(criterion, a.samples), value_of(criterion, b.samples),
                        basis_a, basis_b, 0, "none",
                        no_basis=[o.label for o, n in ((a, basis_a), (b, basis_b)) if n < need])
    if result.no_basis:
        return result
    va, vb = per_case(criterion, a.samples), per_case(criterion, b.samples)
    shared = sorted(set(va) & set(vb))
    result.shared = len(shared)
    if not shared:
        return result
    if criterion.latency:
        result.test, result.interval = "bootstrap", _bootstrap_p95(va, vb, shared)
        return result
    # Per case, the share of repeats with the outcome; a case counts for the side whose share is higher.
    result.repeats = any(len(va[k]) > 1 or len(vb[k]) > 1 for k in shared)
    result.only_a = sum(1 for k in shared if _mean(va[k]) > _mean(vb[k]))
    result.only_b = sum(1 for k in shared if _mean(vb[k]) > _mean(va[k]))
    result.test, result.p_value = "mcnemar", mcnemar_exact(result.only_a, result.only_b)
    return result


def cases_to_separate(comparison: Comparison) -> str:
    """What would separate two options on call accuracy: the cases the detectable-difference
    formula (paired, disagreeing as often as here) needs for the gap observed."""
    c = comparison
    if c.test != "mcnemar" or not c.shared:
        return "more shared cases"
    gap = abs((c.value_a or 0) - (c.value_b or 0)) or TARGET_GAP
    share = max((c.only_a + c.only_b) / c.shared, 1 / c.shared)
    now = detectable_difference(c.shared, discordant=share)
    detect = f"{c.shared} shared cases detect about {now * 100:.0f} points" if now else ""
    try:
        need = cases_needed(gap, discordant=share)
    except ValueError:  # a gap that large needs more disagreement than observed: few cases would do
        return f"{detect}; a gap of {gap * 100:.1f} points cannot be tested at this disagreement rate"
    return (f"{detect}; about {need} cases would detect the {gap * 100:.1f}-point gap in call accuracy "
            f"(alpha {ALPHA:g}, power {POWER:g}, paired, disagreeing on {share * 100:.0f}% of cases as here)")


@dataclass
class Step:
    """One criterion tried on the options still in the running."""

    criterion: Criterion
    comparisons: list[Comparison]
    kept: list[str]  # labels still in the running after it

    @property
    def decided(self) -> bool:
        return len(self.kept) == 1

    def between(self, labels: Sequence[str]) -> list[Comparison]:
        """The comparisons between `labels` (e.g. the options still tied at the end)."""
        return [c for c in self.comparisons if c.label_a in labels and c.label_b in labels]

    def text(self) -> str:
        """The comparisons that decided (the winner against each option it put out), with their tests."""
        shown = [c for c in self.comparisons if c.better in self.kept]
        return "; ".join(f"{c.values_text()} ({c.test_text()})" for c in shown)

    def why_not(self, labels: Sequence[str]) -> str:
        """Why this criterion did not separate `labels`: the options without a basis (once each),
        then each pair with a basis and its test."""
        pairs = self.between(labels)
        lacking: dict[str, int] = {}
        for c in pairs:
            lacking.update({label: n for label, n in ((c.label_a, c.basis_a), (c.label_b, c.basis_b))
                            if label in c.no_basis})
        parts = [f"within the noise, {c.values_text()}: {c.test_text()}" for c in pairs if c.has_basis]
        if lacking:
            what = self.criterion.basis
            parts.insert(0, "no basis: " + ", ".join(f"{label} has {n} {what}" for label, n in lacking.items())
                         + f" (a criterion needs {MIN_BASIS})")
        return "; ".join(parts)


@dataclass
class Decision:
    """The best of a set of options, how it was chosen, and the tests behind it."""

    best: Option
    tied: list[Option]  # within the noise of the accuracy leader (the leader first)
    decided_by: str | None  # a criterion's name, "only option", or None: a tie no criterion broke
    steps: list[Step]
    runner_up: Comparison | None  # call accuracy, the leader against the closest other option
    separate: str = ""  # a tie: what would separate the tied options

    @property
    def deciding(self) -> Step | None:
        return next((s for s in self.steps if s.decided), None)

    @property
    def contenders(self) -> list[str]:
        """The options the last step tried to separate: a tie's survivors, or those that entered the
        deciding step."""
        deciding = self.deciding
        if deciding is None or deciding is self.steps[0]:
            return self.remaining
        return self.steps[self.steps.index(deciding) - 1].kept

    @property
    def remaining(self) -> list[str]:
        """The options still tied at the end (one when a criterion decided)."""
        return self.steps[-1].kept if self.steps else [self.best.label]

    def as_json(self) -> dict:
        return {"decided_by": self.decided_by, "tie": self.decided_by is None,
                "tied": [o.label for o in self.tied], "still_tied": self.remaining,
                "steps": [{"criterion": s.criterion.name, "kept": s.kept,
                           "comparisons": [c.as_json() for c in s.comparisons]} for s in self.steps],
                "separate": self.separate or None}


def _accuracy_order(options: Sequence[Option]) -> list[Option]:
    def key(o: Option) -> tuple[float, str]:
        value = value_of(ACCURACY, o.samples)
        return (-(value if value is not None else -1.0), o.label)

    return sorted(options, key=key)


def decide(options: Sequence[Option], min_basis: int = MIN_BASIS) -> Decision | None:
    """The best of `options` by the module docstring's rules; None when there are none."""
    if not options:
        return None
    ordered = _accuracy_order(options)
    leader = ordered[0]
    if len(ordered) == 1:
        return Decision(leader, [leader], "only option", [], None)
    # Call accuracy: every option not behind the leader beyond the noise is tied with it.
    first = [compare(leader, o, ACCURACY, min_basis) for o in ordered[1:]]
    tied = [leader] + [o for o, c in zip(ordered[1:], first) if not c.beyond_noise]
    runner_up = next((c for c, o in zip(first, ordered[1:]) if o is tied[1]), None) if len(tied) > 1 else first[0]
    steps = [Step(ACCURACY, first, [o.label for o in tied])]
    if len(tied) == 1:
        return Decision(leader, tied, ACCURACY.name, steps, runner_up)
    running = list(tied)
    for criterion in CRITERIA[1:]:
        comparisons = [compare(x, y, criterion, min_basis) for i, x in enumerate(running) for y in running[i + 1:]]
        # An option leaves the running when another is better than it beyond the noise, both with a basis.
        worse = {c.label_b if c.better == c.label_a else c.label_a for c in comparisons if c.better}
        kept = [o for o in running if o.label not in worse] or running
        steps.append(Step(criterion, comparisons, [o.label for o in kept]))
        running = kept
        if len(running) == 1:
            return Decision(running[0], tied, criterion.name, steps, runner_up)
    pair = compare(running[0], running[1], ACCURACY, min_basis)
    return Decision(running[0], tied, None, steps, runner_up, cases_to_separate(pair))
