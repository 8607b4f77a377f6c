"""Is one accuracy really higher than another, and which cases flipped between two runs?

Two tests, chosen by the data:

The unit is the case (suite, case id), never the sample: a case's repeats and its --distractors
counts are one cluster. Two options are compared at one distractor count (the smallest both ran,
+0 by default), and with repeats a case's outcome is the share of its scored repeats that pass.

* McNemar's exact test when the two options answered the same cases: only the discordant cases
  carry information — `b` cases right in the first option and wrong in the second (with repeats:
  a higher share of passing repeats), `c` the reverse — and under "no difference" each discordant
  case is a fair coin, so p = P(Binomial(b + c, 1/2) at least as lopsided as observed), two-sided.
* A two-proportion z-test (pooled) over cases otherwise, e.g. runs over different case sets.

A difference is called "larger than the noise" when p < 0.05.

How small a difference a comparison can detect (at alpha 0.05, power 0.8) follows from the same
two tests, solved for the difference instead of the sample size:

* paired (McNemar; Connor 1987): n = (z_a * sqrt(psi) + z_b * sqrt(psi - d^2))^2 / d^2, psi the
  share of cases on which the two options disagree (discordant pairs), taken as observed;
* unpaired (two-proportion): n per option = (z_a + z_b)^2 * 2 p (1 - p) / d^2, p the accuracy.

`cases_needed` gives n for a target difference (README: how many cases separate 5 points).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..schema import FailureKind, Sample

ALPHA = 0.05
POWER = 0.8
Z_ALPHA = 1.959964  # two-sided 5%
Z_POWER = 0.841621  # one-sided 20%: power 0.8
# Paired when the shared cases make up at least this share of each side's scored samples.
PAIRED_SHARE = 0.8


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def two_proportion_z(x1: float, n1: int, x2: float, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when it cannot tell)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (x1 / n1 - x2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


def cases_needed(delta: float, *, discordant: float | None = None, accuracy: float = 0.5) -> int:
    """Cases (per option) to detect a difference of `delta` at alpha 0.05 with power 0.8: paired
    when `discordant` (the share of cases the two options disagree on) is given, else unpaired
    at accuracies near `accuracy`."""
    if discordant is not None:
        if delta * delta >= discordant:
            raise ValueError("a difference larger than the share of disagreeing cases is impossible")
        root = Z_ALPHA * math.sqrt(discordant) + Z_POWER * math.sqrt(discordant - delta * delta)
        return math.ceil(root * root / (delta * delta))
    return math.ceil((Z_ALPHA + Z_POWER) ** 2 * 2 * accuracy * (1 - accuracy) / (delta * delta))


def detectable_difference(n: int, *, discordant: float | None = None, accuracy: float = 0.5) -> float | None:
    """The smallest difference in accuracy `n` cases detect at alpha 0.05 with power 0.8 (the
    inverse of `cases_needed`); None when n is 0."""
    if n <= 0:
        return None
    if discordant is not None:
        psi = min(1.0, max(discordant, 1 / n))  # at least one disagreement: a test needs something to count
        low, high = 1e-6, math.sqrt(psi) - 1e-9
        for _ in range(60):  # n falls as delta grows: bisect
            mid = (low + high) / 2
            root = Z_ALPHA * math.sqrt(psi) + Z_POWER * math.sqrt(psi - mid * mid)
            low, high = (mid, high) if root * root / (mid * mid) > n else (low, mid)
        return high
    p = accuracy if 0 < accuracy < 1 else 0.5
    return (Z_ALPHA + Z_POWER) * math.sqrt(2 * p * (1 - p) / n)


def format_p(p: float) -> str:
    if p < 0.001:
        return "p < 0.001"
    if p >= 0.995:
        return "p = 1.00"
    return f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def _scored(samples: Iterable[Sample], count: int) -> dict[tuple[str, str], list[bool]]:
    """Per case, the verdicts of its scored repeats at `count` distractor tools."""
    out: dict[tuple[str, str], list[bool]] = {}
    for s in samples:
        if s.error is None and (s.distractors or 0) == count:
            out.setdefault((s.suite, s.case_id), []).append(bool(s.call_correct))
    return out


def _share(verdicts: list[bool]) -> float:
    return sum(verdicts) / len(verdicts)


@dataclass
class Difference:
    """Option A against option B on call accuracy (A is the reference, e.g. the native format)."""

    label_a: str
    label_b: str
    correct_a: int
    n_a: int
    correct_b: int
    n_b: int
    test: str  # "mcnemar" | "two-proportion"
    p_value: float
    paired: int = 0  # cases answered by both (McNemar)
    only_a: int = 0  # cases right in A, wrong in B (McNemar's b; with repeats: more repeats right)
    only_b: int = 0  # the reverse (McNemar's c)
    cases_a: int = 0  # cases behind each side (n_a, n_b count samples)
    cases_b: int = 0
    count: int = 0  # the --distractors count compared
    other_counts: tuple[int, ...] = ()  # counts also run, compared separately (not pooled)

    @property
    def acc_a(self) -> float | None:
        return self.correct_a / self.n_a if self.n_a else None

    @property
    def acc_b(self) -> float | None:
        return self.correct_b / self.n_b if self.n_b else None

    @property
    def diff(self) -> float | None:
        """Accuracy of A minus accuracy of B, in [-1, 1]."""
        if self.acc_a is None or self.acc_b is None:
            return None
        return self.acc_a - self.acc_b

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA and (self.diff or 0) != 0

    @property
    def verdict(self) -> str:
        return "larger than the noise" if self.significant else "within the noise"

    @property
    def detectable(self) -> float | None:
        """The smallest difference this comparison's n detects (alpha 0.05, power 0.8)."""
        if self.test == "mcnemar":
            return detectable_difference(self.paired, discordant=(self.only_a + self.only_b) / max(1, self.paired))
        pooled = (self.correct_a + self.correct_b) / max(1, self.n_a + self.n_b)
        return detectable_difference(min(self.cases_a, self.cases_b), accuracy=pooled)

    def detectable_text(self) -> str:
        """The smallest detectable difference, with the assumptions it rests on."""
        d = self.detectable
        if d is None:
            return "no samples to compare"
        if self.test == "mcnemar":
            share = (self.only_a + self.only_b) / max(1, self.paired)
            return (f"with {self.paired} paired cases, the smallest difference this test detects is about "
                    f"{d * 100:.0f} points (alpha {ALPHA:g}, power {POWER:g}, paired, the two disagreeing on "
                    f"{share * 100:.0f}% of cases as here)")
        return (f"with {min(self.cases_a, self.cases_b)} cases per option, the smallest difference this test detects is "
                f"about {d * 100:.0f} points (alpha {ALPHA:g}, power {POWER:g}, unpaired)")

    @property
    def repeats(self) -> bool:
        return self.n_a > self.cases_a or self.n_b > self.cases_b

    def at_text(self) -> str:
        """Which distractor count was compared, when the runs asked several."""
        if not self.other_counts:
            return ""
        return f" at +{self.count} distractor tools (+{', +'.join(map(str, self.other_counts))} compared apart)"

    def test_text(self) -> str:
        if self.test == "mcnemar":
            only = "more often" if self.repeats else "only"
            per = ", a case's repeats as one: its share that pass" if self.repeats else ""
            return (
                f"McNemar's exact test on cases{per}, {format_p(self.p_value)}: of the {self.paired} cases run both "
                f"ways{self.at_text()}, {self.only_a} pass {only} in {self.label_a} and {self.only_b} {only} in "
                f"{self.label_b}"
            )
        return (f"two-proportion z-test over cases, {format_p(self.p_value)}: {self.cases_a} vs {self.cases_b} "
                f"cases{self.at_text()}, not the same cases")

    def _lead(self, a: str, b: str) -> str | None:
        """Who is ahead and by how much (None: not comparable)."""
        if self.diff is None:
            return None
        if self.diff == 0:
            return f"{a} and {b} tie at {_pct(self.acc_a)}"
        ahead, behind = (a, b) if self.diff > 0 else (b, a)
        return (f"{ahead} beats {behind} by {abs(self.diff) * 100:.1f} points "
                f"({a} {_pct(self.acc_a)}, {b} {_pct(self.acc_b)})")

    def brief(self, name_a: str | None = None, name_b: str | None = None) -> str:
        """The verdict in one short line: who is ahead, by how much, and the test's p."""
        a, b = name_a or self.label_a, name_b or self.label_b
        lead = self._lead(a, b)
        if lead is None:
            return f"{a} vs {b}: not comparable (no scored samples on one side)"
        cases = self.paired if self.test == "mcnemar" else min(self.cases_a, self.cases_b)
        name = "McNemar" if self.test == "mcnemar" else "two-proportion z-test"
        return f"{lead}: {self.verdict} ({name}, {format_p(self.p_value)}, {cases} cases)"

    def sentence(self, name_a: str | None = None, name_b: str | None = None) -> str:
        """One line a person reads: who is ahead, by how much, and whether it is more than noise."""
        a, b = name_a or self.label_a, name_b or self.label_b
        lead = self._lead(a, b)
        if lead is None:
            return f"{a} vs {b}: not comparable (no scored samples on one side)."
        return f"{lead}: {self.verdict} ({self.test_text()}; {self.detectable_text()})."


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def difference(samples_a: Sequence[Sample], samples_b: Sequence[Sample], label_a: str, label_b: str,
               count: int | None = None) -> Difference:
    """Compare two options' call accuracy on cases at one distractor count (`count`, default the
    smallest both ran); paired (McNemar) when they answered the same cases."""
    counts_a = {s.distractors or 0 for s in samples_a if s.error is None}
    counts_b = {s.distractors or 0 for s in samples_b if s.error is None}
    both = sorted(counts_a & counts_b) or sorted(counts_a | counts_b) or [0]
    chosen = count if count is not None else both[0]
    others = tuple(c for c in sorted(counts_a | counts_b) if c != chosen)
    a, b = _scored(samples_a, chosen), _scored(samples_b, chosen)
    common = set(a) & set(b)
    correct_a, correct_b = sum(sum(v) for v in a.values()), sum(sum(v) for v in b.values())
    n_a, n_b = sum(len(v) for v in a.values()), sum(len(v) for v in b.values())
    sides = dict(cases_a=len(a), cases_b=len(b), count=chosen, other_counts=others)
    paired = bool(common) and len(common) >= PAIRED_SHARE * max(len(a), len(b))
    if paired:
        only_a = sum(1 for k in common if _share(a[k]) > _share(b[k]))
        only_b = sum(1 for k in common if _share(b[k]) > _share(a[k]))
        return Difference(label_a, label_b, correct_a, n_a, correct_b, n_b, "mcnemar",
                          mcnemar_exact(only_a, only_b), len(common), only_a, only_b, **sides)
    # Unpaired: each case weighs one, its repeats averaged.
    x_a, x_b = sum(_share(v) for v in a.values()), sum(_share(v) for v in b.values())
    return Difference(label_a, label_b, correct_a, n_a, correct_b, n_b, "two-proportion",
                      two_proportion_z(x_a, len(a), x_b, len(b)), **sides)


# ---------------------------------------------------------------- flipped cases between runs


@dataclass
class Flip:
    suite: str
    case_id: str
    before: str  # "pass" | "fail"
    after: str
    kind: FailureKind | None  # the failure that appeared (broken) or went away (fixed)
    detail: str | None = None


@dataclass
class FlipSet:
    """Cases whose verdict changed between two runs for one format."""

    label_before: str
    label_after: str
    format: str
    common_cases: int
    fixed: list[Flip] = field(default_factory=list)
    broken: list[Flip] = field(default_factory=list)
    suites_changed: list[str] = field(default_factory=list)  # same name, different SHA-256


def _case_status(samples: Iterable[Sample]) -> dict[tuple[str, str], tuple[bool, Sample | None]]:
    """Per case: passes when more than half its scored repeats are correct; the first failing sample."""
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    reasons: dict[tuple[str, str], Sample] = {}
    for s in samples:
        if s.error is not None:
            continue
        key = (s.suite, s.case_id)
        tally[key][0] += int(bool(s.call_correct))
        tally[key][1] += 1
        if not s.call_correct and key not in reasons:
            reasons[key] = s
    return {k: (c * 2 > n, reasons.get(k)) for k, (c, n) in tally.items()}


def flips(
    before: Sequence[Sample], after: Sequence[Sample], label_before: str, label_after: str, fmt: str,
    suites_changed: list[str] | None = None,
) -> FlipSet:
    old, new = _case_status(before), _case_status(after)
    common = sorted(set(old) & set(new))
    result = FlipSet(label_before, label_after, fmt, len(common), suites_changed=list(suites_changed or []))
    for key in common:
        (was, why_before), (now, why_after) = old[key], new[key]
        if was and not now and why_after is not None:
            result.broken.append(Flip(key[0], key[1], "pass", "fail", why_after.failure_kind, why_after.failure_detail))
        elif now and not was and why_before is not None:
            result.fixed.append(Flip(key[0], key[1], "fail", "pass", why_before.failure_kind, why_before.failure_detail))
    return result
