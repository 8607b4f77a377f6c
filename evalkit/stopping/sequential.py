"""Anytime-valid tests for stopping a comparison as soon as its answer is settled (pure functions).

The unit is a case: each option's score on a case is the share of its samples of that case that
were call-correct (repeats and --distractors counts of one case are one cluster), a number in
[0, 1]. Cases arrive in a fixed order that does not depend on any outcome.

The e-value of every test here is a conjugate mixture martingale (Robbins 1970; Howard,
Ramdas, McAuliffe & Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Ann. Statist. 49(2), section 3): the likelihood ratio of a Bernoulli(p) against the
null value, averaged over p ~ Beta(PRIOR, PRIOR),

    E_n = B(PRIOR + S, PRIOR + F) / B(PRIOR, PRIOR) / (m^S (1 - m)^F).

With 0/1 outcomes (S successes, F failures) it is the beta-binomial mixture sequential
probability ratio test. With outcomes x in [0, 1] (a case's share over several samples) each
factor (p/m)^x ((1-p)/(1-m))^(1-x) is convex in x, so it lies below the chord between x = 0 and
x = 1, whose mean is 1 when E[x] = m: E_n is then a nonnegative supermartingale under the null,
and Ville's inequality gives P(E_n >= 1/alpha at any n) <= alpha. Stopping whenever it crosses
is therefore valid however often the data are looked at, which a fixed-sample test is not.

Two options A and B, case by case: d = score_A - score_B in [-1, 1]. A "win" for A counts
max(d, 0), a loss max(-d, 0); ties count nothing. The pair's e-value is the mixture above with
m = 1/2 over wins and losses: with single samples these are McNemar's discordant pairs and the
test is the mixture SPRT on their sign. Each factor (2p)^(d+) (2(1-p))^(d-) <= 1 + (2p - 1) d, so
it is a supermartingale whenever E[d | past] = 0; in particular under McNemar's null that the
two options are exchangeable on every case (the sign of each d a fair coin given |d|), which
holds for any order of a finite set of cases.

An option's accuracy against a floor f: the mixture with m = f over its case scores. Its
confidence sequence is every m whose e-value stays below 1/alpha; an option is clear of the
floor only when the whole interval is on one side of it.

Several tests at once share alpha by Bonferroni (each at alpha / number of tests), so the chance
that any of them ever declares a difference that is not there stays at or below alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Mapping, Sequence

PRIOR = 1.0  # Beta(1, 1): uniform over the alternative; the e-value is closed-form for any prior
ALPHA = 0.05


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def log_e_value(successes: float, failures: float, null: float = 0.5, prior: float = PRIOR) -> float:
    """log of the beta-mixture e-value of `successes` and `failures` (sums of outcomes in [0, 1]
    and of their complements) against a Bernoulli(`null`) mean; `null` strictly inside (0, 1)."""
    if not 0.0 < null < 1.0:
        raise ValueError(f"null must be strictly between 0 and 1, not {null}")
    return (_log_beta(prior + successes, prior + failures) - _log_beta(prior, prior)
            - successes * math.log(null) - failures * math.log1p(-null))


def p_value(log_e: float, tests: int = 1) -> float:
    """The anytime-valid p-value of an e-value, Bonferroni-adjusted over `tests` tests."""
    return min(1.0, tests * math.exp(-log_e)) if log_e < 700 else 0.0


@dataclass(frozen=True)
class PairTest:
    """Option a against option b over their shared cases."""

    a: str
    b: str
    cases: int
    diff: float  # mean of score_a - score_b: positive when a is better
    wins: float  # sum of max(d, 0): a's edge over b
    losses: float
    log_e: float

    def p(self, tests: int) -> float:
        return p_value(self.log_e, tests)


def pair_test(a: str, b: str, scores_a: Sequence[float], scores_b: Sequence[float]) -> PairTest:
    if len(scores_a) != len(scores_b):
        raise ValueError("the options' scores must be over the same cases")
    d = [x - y for x, y in zip(scores_a, scores_b)]
    wins = sum(v for v in d if v > 0)
    losses = -sum(v for v in d if v < 0)
    diff = sum(d) / len(d) if d else 0.0
    return PairTest(a, b, len(d), diff, wins, losses, log_e_value(wins, losses, 0.5))


def confidence_bounds(scores: Sequence[float], alpha: float) -> tuple[float, float]:
    """The anytime-valid (1 - alpha) confidence interval of the mean of `scores` (in [0, 1]):
    every m whose mixture e-value is below 1/alpha. The e-value is convex in m with its minimum
    near the sample mean, so each bound is found by bisection."""
    n = len(scores)
    if n == 0:
        return 0.0, 1.0
    s = float(sum(scores))
    f = n - s
    mean = s / n
    level = math.log(1 / alpha)

    def inside(m: float) -> bool:
        return 0.0 < m < 1.0 and log_e_value(s, f, m) < level

    def edge(lo: float, hi: float) -> float:  # lo inside, hi outside (or the end of [0, 1])
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if inside(mid) else (lo, mid)
        return lo

    centre = min(max(mean, 1e-9), 1 - 1e-9)
    if not inside(centre):  # cannot happen for a proper mixture; keep the point, not a crash
        return mean, mean
    return edge(centre, 0.0), edge(centre, 1.0)


@dataclass(frozen=True)
class FloorTest:
    """One option's accuracy against the floor (--min-accuracy)."""

    option: str
    cases: int
    mean: float
    log_e: float  # against accuracy == floor
    floor: float

    @property
    def side(self) -> int:
        """+1 above the floor, -1 below (by the point estimate)."""
        return 1 if self.mean >= self.floor else -1

    def clear(self, tests: int, alpha: float) -> bool:
        """The floor is outside the option's anytime-valid interval (on the `side` of the mean):
        the mixture is convex in m, so rejecting m = floor rejects every m beyond it too."""
        return self.p(tests) <= alpha

    def p(self, tests: int) -> float:
        return p_value(self.log_e, tests)


def floor_test(option: str, scores: Sequence[float], floor: float) -> FloorTest:
    n = len(scores)
    s = float(sum(scores))
    mean = s / n if n else 0.0
    # A floor of 0 or 1 is a limit of the open interval: clamp it so the test stays defined.
    m = min(max(floor, 1e-9), 1 - 1e-9)
    return FloorTest(option, n, mean, log_e_value(s, n - s, m), floor)


@dataclass
class Settlement:
    """Whether the recommendation over the options is settled, and on what evidence.

    `pick`: the option the card will recommend (or, when none reaches the floor, name as the
    closest); None while open. `kind`: "best" (an option is recommended), "none" (no option
    reaches the floor), or "open" (not settled yet)."""

    kind: str
    pick: str | None
    cases: int
    alpha: float
    tests: int
    floor: float | None
    pairs: list[PairTest] = field(default_factory=list)
    floors: dict[str, FloorTest] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        return self.kind != "open"

    def evidence(self) -> str:
        """Why it is settled, in a line: 'default beats native by 46 points; anytime-valid p < 0.01'."""
        if not self.settled:
            return self.missing()
        assert self.pick is not None
        parts = []
        for pair in self.pairs:
            if self.pick not in (pair.a, pair.b):
                continue
            sign = 1 if pair.a == self.pick else -1
            other = pair.b if sign == 1 else pair.a
            p = pair.p(self.tests)
            if p <= self.alpha:
                parts.append(f"{self.pick} beats {other} by {abs(pair.diff) * 100:.0f} points; "
                             f"anytime-valid {p_text(p)}")
        for name, test in self.floors.items():
            if test.side < 0 and (name != self.pick or self.kind == "none"):
                p = test.p(self.tests)
                parts.append(f"{name} is below the {test.floor * 100:.0f}% floor at {test.mean * 100:.0f}%; "
                             f"anytime-valid {p_text(p)}")
        if self.kind == "best" and self.floor is not None:
            test = self.floors[self.pick]
            parts.append(f"{self.pick} clears the {self.floor * 100:.0f}% floor at {test.mean * 100:.0f}%; "
                         f"anytime-valid {p_text(test.p(self.tests))}")
        if not parts:
            parts.append(f"{self.pick} is the only option")
        return "; ".join(parts)


    def missing(self) -> str:
        """What an open settlement lacks, said of the leader (the highest mean)."""
        if not self.cases:
            return "no case scored by every option yet"
        means = {n: t.mean for n, t in self.floors.items()} or self._means()
        leader = max(means, key=lambda n: means[n])
        gaps = []
        for pair in self.pairs:
            if leader in (pair.a, pair.b) and pair.p(self.tests) > self.alpha:
                other = pair.b if pair.a == leader else pair.a
                gaps.append(f"{leader} vs {other}: {abs(pair.diff) * 100:.0f} points apart, anytime-valid "
                            f"{p_text(pair.p(self.tests))}")
        for name, test in self.floors.items():
            if not test.clear(self.tests, self.alpha):
                gaps.append(f"{name} at {test.mean * 100:.0f}% is not clear of the {test.floor * 100:.0f}% floor")
        return "; ".join(gaps) or "no option is ahead of every other beyond the noise"

    def _means(self) -> dict[str, float]:
        """Each option's mean, from the pairs (no floor tests to read it from)."""
        names = list(dict.fromkeys(n for p in self.pairs for n in (p.a, p.b)))
        base = names[0]
        means = {base: 0.0}
        for pair in self.pairs:
            if pair.a == base:
                means[pair.b] = -pair.diff
        return means


def p_text(p: float) -> str:
    for bound in (0.001, 0.01):
        if p < bound:
            return f"p < {bound:g}"
    return f"p = {p:.2g}"


def count_tests(options: int, floor: float | None) -> int:
    """How many tests share alpha: every pair, plus every option against the floor."""
    return options * (options - 1) // 2 + (options if floor is not None else 0)


def settle(scores: Mapping[str, Sequence[float]], floor: float | None = None, alpha: float = ALPHA) -> Settlement:
    """Is the recommendation over `scores` (option -> its scores on the shared cases, in case
    order; the same length for every option) settled at level alpha?

    Settled "best" when one option is clear above the floor (or there is none) and every other
    option is either beaten by it or clear below the floor. Settled "none" when every option is
    clear below the floor and one of them beats every other (the closest, which the card names).
    Anything else is open."""
    names = list(scores)
    lengths = {len(v) for v in scores.values()}
    if len(lengths) > 1:
        raise ValueError("the options' scores must be over the same cases")
    cases = lengths.pop() if lengths else 0
    tests = max(1, count_tests(len(names), floor))
    pairs = [pair_test(a, b, scores[a], scores[b]) for a, b in combinations(names, 2)]
    floors = {n: floor_test(n, scores[n], floor) for n in names} if floor is not None else {}
    result = Settlement("open", None, cases, alpha, tests, floor, pairs, floors)
    if cases == 0:
        return result

    def beats(a: str, b: str) -> bool:
        for pair in pairs:
            if {pair.a, pair.b} == {a, b}:
                better = pair.a if pair.diff > 0 else pair.b
                return better == a and pair.diff != 0 and pair.p(tests) <= alpha
        return False

    def clear(name: str, side: int) -> bool:
        test = floors.get(name)
        if test is None:
            return side > 0  # no floor: every option is "above" it
        return test.side == side and test.clear(tests, alpha)

    for w in names:
        others = [x for x in names if x != w]
        if clear(w, +1) and all(beats(w, x) or clear(x, -1) for x in others):
            result.kind, result.pick = "best", w
            return result
    if floor is not None and all(clear(n, -1) for n in names):
        for w in names:
            if all(beats(w, x) for x in names if x != w):
                result.kind, result.pick = "none", w
                return result
    return result
