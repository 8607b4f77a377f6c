"""Which model x format to deploy under a user's constraints, and why the others are out.

The rules, in order:

1. Options are compared on the same cases only. When the runs ran different cases, every option
   is re-scored on the cases all of them ran, and the card says so; when they share none, there
   is no recommendation (`evalkit recommend` refuses in one line).
2. An option must meet every constraint (`Constraints`; each has a default the card shows):
   call accuracy, hallucinated tools, no-call accuracy, latency p95, scored samples, server errors.
3. Among those that do, the highest call accuracy leads. Every option whose gap to the leader is
   within the noise (McNemar's exact test on the shared cases, p >= 0.05; see compare.py) is
   tied with it, and the tie is broken by `TIE_BREAKERS` in order (fewer hallucinated tools,
   then higher no-call accuracy, then lower latency p95); the card names the criterion that
   decided.
4. When no option meets the constraints, none is ready for deployment: the card says so and
   `evalkit recommend` exits 1. It still names the closest option under the same rules among those
   that miss only the accuracy floor, for a user who must choose anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import EvalkitError
from ..metrics import BY_KEY, interval, pct, secs
from .compare import Difference, difference
from .model import Entry, case_keys, expand_run_dirs, load_run, make_entries, ranked, restrict_entries

DEFAULT_MIN_ACCURACY = 0.80
DEFAULT_MIN_SAMPLES = 10
DEFAULT_MAX_ERROR_RATE = 0.10
BELOW_ACCURACY = "below accuracy"


@dataclass(frozen=True)
class TieBreaker:
    key: str  # a field of schema.Aggregate
    name: str  # how the card names it
    lower_is_better: bool


# The secondary criteria that decide between options tied on call accuracy, in order.
TIE_BREAKERS: tuple[TieBreaker, ...] = (
    TieBreaker("hallucination_rate", "hallucinated tools", True),
    TieBreaker("no_call_accuracy", "no-call accuracy", False),
    TieBreaker("latency_p95_s", "latency p95", True),
)


@dataclass
class Constraints:
    min_accuracy: float | None = DEFAULT_MIN_ACCURACY
    max_latency_p95: float | None = None
    suites: list[str] | None = None
    min_samples: int = DEFAULT_MIN_SAMPLES
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    max_hallucination: float | None = None
    min_no_call_accuracy: float | None = None

    def rows(self) -> list[tuple[str, str]]:
        """(the constraint as it applies, the flag that sets it and its default)."""
        def limit(value: Any, text: str) -> str:
            return text if value is not None else "no limit"

        return [
            (f"call accuracy: {limit(self.min_accuracy, f'>= {pct(self.min_accuracy)}')}",
             f"--min-accuracy (default {pct(DEFAULT_MIN_ACCURACY, 0)})"),
            (f"hallucinated tools: {limit(self.max_hallucination, f'<= {pct(self.max_hallucination)}')}",
             "--max-hallucination (default no limit)"),
            (f"no-call accuracy: {limit(self.min_no_call_accuracy, f'>= {pct(self.min_no_call_accuracy)}')}",
             "--min-no-call-accuracy (default no limit)"),
            (f"latency p95: {limit(self.max_latency_p95, f'<= {secs(self.max_latency_p95)}')}",
             "--max-latency-p95 (default no limit)"),
            (f"at least {self.min_samples} scored samples", f"--min-samples (default {DEFAULT_MIN_SAMPLES})"),
            (f"at most {pct(self.max_error_rate, 0)} server errors",
             f"--max-error-rate (default {pct(DEFAULT_MAX_ERROR_RATE, 0)})"),
            ("suites: " + (", ".join(self.suites) if self.suites else "all in the runs"), "--suite (default all)"),
        ]


@dataclass
class Ruling:
    entry: Entry
    found: list[tuple[str, str]]  # (kind, specifics) for every constraint the option misses

    @property
    def kinds(self) -> list[str]:
        """The reasons' short names: not enough samples, too many errors, below accuracy, ..."""
        return [kind for kind, _ in self.found]

    @property
    def reasons(self) -> list[str]:
        return [f"{kind}: {specifics}" for kind, specifics in self.found]


@dataclass
class Scope:
    """Which cases the options are compared on."""

    shared: int  # cases (suite, case, repeat) every option ran
    per_run: dict[str, int]  # run id -> cases it ran
    restricted: bool  # some run ran cases that others did not: they were left out

    def text(self) -> str:
        if not self.shared:
            ran = ", ".join(f"{run} ran {n}" for run, n in self.per_run.items())
            return f"the runs share no cases ({ran}); compare runs over the same suites, --limit/--sample and --seed"
        if not self.restricted:
            return f"all {self.shared} cases, which every option ran"
        left = ", ".join(f"{run} ran {n} ({n - self.shared} left out)" if n > self.shared else f"{run} ran {n}"
                         for run, n in self.per_run.items())
        return f"only the {self.shared} cases every option ran, as the runs ran different cases: {left}"


@dataclass
class Decision:
    """How the best of a set of eligible options was chosen."""

    best: Entry
    tied: list[Entry]  # options within the noise of the accuracy leader (the leader first)
    decided_by: str  # "call accuracy", a TieBreaker name, or "only option"
    runner_up: Difference | None = None  # the leader against the next option (the test behind "tied")

    def text(self) -> str:
        agg = self.best.overall
        head = (f"call accuracy {pct(agg.call_accuracy)} (95% CI {interval(agg.call_accuracy_ci95)}, {agg.n} samples), "
                f"intent accuracy {pct(agg.intent_accuracy)}, {latency_text(agg)}.")
        if self.decided_by == "only option":
            return f"The only option left: {head}"
        diff = self.runner_up
        assert diff is not None
        if self.decided_by == "call accuracy" and len(self.tied) == 1:
            return (f"The highest {head} The runner-up {diff.label_b} at {pct(diff.acc_b)} is behind by more than "
                    f"the noise ({diff.test_text()}).")
        names = ", ".join(f"{e.label} {pct(e.overall.call_accuracy)}" for e in self.tied)
        text = (f"{head} Tied on call accuracy within the noise: {names} ({diff.test_text()}; "
                f"{diff.detectable_text()}).")
        return text + " " + self.tie_sentence()

    def tie_sentence(self) -> str:
        """Which criterion broke the tie, with every tied option's value."""
        breaker = next((b for b in TIE_BREAKERS if b.name == self.decided_by), None)
        if breaker is None:
            return ("No tie-breaker told them apart (hallucinated tools, no-call accuracy, latency p95 all equal): "
                    "the higher call accuracy decided.")
        fmt = BY_KEY[breaker.key].fmt
        values = ", ".join(f"{e.label} {fmt(getattr(e.overall, breaker.key))}" for e in self.tied)
        better = "lower" if breaker.lower_is_better else "higher"
        earlier = [b.name for b in TIE_BREAKERS[:TIE_BREAKERS.index(breaker)]]
        after = f" (after {', '.join(earlier)}: equal)" if earlier else ""
        return f"Decided by {breaker.name}{after}, {better} is better: {values}."


def latency_text(agg: Any) -> str:
    """Latency as the card states it: never a cached reply's time, and saying when there is none."""
    if agg.latency_p50_s is None:
        cached = f" (from cache {agg.from_cache}/{agg.n})" if agg.from_cache else ""
        return f"latency not measured{cached}"
    cached = f", over {agg.n - agg.from_cache} live samples (from cache {agg.from_cache}/{agg.n})" if agg.from_cache else ""
    return f"latency p50 {secs(agg.latency_p50_s)} / p95 {secs(agg.latency_p95_s)}{cached}"


def option_name(entry: Entry) -> str:
    """An option with its run id (once: a label may carry it already)."""
    run_id = entry.run.run_id
    return entry.label if run_id in entry.label else f"{entry.label} (run {run_id})"


def _sort_value(entry: Entry, breaker: TieBreaker) -> float:
    value = getattr(entry.overall, breaker.key)
    if value is None:
        return float("inf")  # nothing measured: never wins a tie
    return value if breaker.lower_is_better else -value


def choose(options: Sequence[Entry]) -> Decision | None:
    """The best of `options` (all eligible) by rule 3 of the module docstring."""
    ordered = ranked(options)
    if not ordered:
        return None
    leader = ordered[0]
    if len(ordered) == 1:
        return Decision(leader, [leader], "only option")
    diffs = {id(o): difference(leader.samples, o.samples, leader.label, o.label) for o in ordered[1:]}
    tied = [leader] + [o for o in ordered[1:] if not diffs[id(o)].significant]
    runner_up = diffs[id(tied[1])] if len(tied) > 1 else diffs[id(ordered[1])]
    if len(tied) == 1:
        return Decision(leader, tied, "call accuracy", runner_up)
    candidates = list(tied)
    for breaker in TIE_BREAKERS:
        best_value = min(_sort_value(e, breaker) for e in candidates)
        candidates = [e for e in candidates if _sort_value(e, breaker) == best_value]
        if len(candidates) == 1:
            return Decision(candidates[0], tied, breaker.name, runner_up)
    return Decision(candidates[0], tied, "call accuracy", runner_up)  # `ranked` order: accuracy, then p50


@dataclass
class Recommendation:
    constraints: Constraints
    best: Entry | None
    reason: str
    eligible: list[Entry] = field(default_factory=list)  # best first
    ruled_out: list[Ruling] = field(default_factory=list)
    scope: Scope | None = None
    decision: Decision | None = None
    closest: Decision | None = None  # no option qualifies: the best of those only below the accuracy floor

    @property
    def refused(self) -> bool:
        """The options share no cases: nothing can be compared."""
        return self.scope is not None and self.scope.shared == 0

    @property
    def headline(self) -> str:
        if self.refused:
            return "No recommendation: the options share no cases."
        if self.best is None:
            return "None is ready for deployment: no option meets the constraints."
        return f"Recommended: {option_name(self.best)}"

    def text(self) -> str:
        """Plain text for the terminal (and the reports)."""
        lines = ["Constraints (defaults unless set):"]
        width = max(len(text) for text, _ in self.constraints.rows())
        lines += [f"  {text:<{width}}  {flag}" for text, flag in self.constraints.rows()]
        if self.scope is not None:
            lines.append(f"Compared on {self.scope.text()}.")
        lines.append(self.headline)
        if self.best is not None:
            lines.append(f"  Why: {self.reason}")
            if self.decision is not None:
                lines.append(f"  Decided by: {self.decision.decided_by}")
        elif self.closest is not None:
            lines.append(f"  Closest, if you must choose: {option_name(self.closest.best)} - {self.closest.text()}")
        others = self.eligible[1:]
        if others:
            lines.append("Also meets the constraints (by call accuracy):")
            for entry in others:
                lines.append(f"  - {entry.label}: call accuracy {pct(entry.overall.call_accuracy)}, "
                             f"{latency_text(entry.overall)}")
        if self.ruled_out:
            lines.append("Ruled out:")
            for ruling in self.ruled_out:
                lines.append(f"  - {ruling.entry.label}: {'; '.join(ruling.reasons)}")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        def option(entry: Entry) -> dict[str, Any]:
            return {"run_id": entry.run.run_id, "model": entry.model, "format": entry.format,
                    "label": entry.label, **entry.overall.model_dump(mode="json", exclude={"model", "format"})}

        c = self.constraints
        return {
            "constraints": {
                "min_accuracy": c.min_accuracy, "max_hallucination": c.max_hallucination,
                "min_no_call_accuracy": c.min_no_call_accuracy, "max_latency_p95": c.max_latency_p95,
                "suites": c.suites, "min_samples": c.min_samples, "max_error_rate": c.max_error_rate,
            },
            "compared_on": None if self.scope is None else {
                "shared_cases": self.scope.shared, "restricted": self.scope.restricted, "cases_per_run": self.scope.per_run},
            "ready": self.best is not None,
            "best": option(self.best) if self.best else None,
            "decided_by": self.decision.decided_by if self.decision else None,
            "tied": [e.label for e in self.decision.tied] if self.decision else [],
            "closest": option(self.closest.best) if self.closest else None,
            "reason": self.reason,
            "eligible": [option(e) for e in self.eligible],
            "ruled_out": [{**option(r.entry), "reasons": r.reasons} for r in self.ruled_out],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_json(), indent=2, ensure_ascii=False)


def rule(entry: Entry, c: Constraints) -> list[tuple[str, str]]:
    agg = entry.overall
    reasons: list[tuple[str, str]] = []
    if agg.n < c.min_samples:
        reasons.append(("not enough samples", f"{agg.n} scored, fewer than {c.min_samples}"))
    if entry.error_share > c.max_error_rate:
        total = agg.n + agg.errors
        reasons.append(("too many errors", f"{agg.errors} of {total} samples failed at the server "
                        f"({pct(entry.error_share)} > {pct(c.max_error_rate, 0)})"))
    if c.min_accuracy is not None and agg.call_accuracy is not None and agg.call_accuracy < c.min_accuracy:
        reasons.append((BELOW_ACCURACY, f"call accuracy {pct(agg.call_accuracy)} < {pct(c.min_accuracy)}"))
    if c.max_hallucination is not None and (agg.hallucination_rate or 0) > c.max_hallucination:
        reasons.append(("too many hallucinated tools",
                        f"hallucinated tools {pct(agg.hallucination_rate)} > {pct(c.max_hallucination)}"))
    if c.min_no_call_accuracy is not None:
        if agg.no_call_accuracy is None:
            reasons.append(("below no-call accuracy", "no no-call cases in the runs"))
        elif agg.no_call_accuracy < c.min_no_call_accuracy:
            reasons.append(("below no-call accuracy",
                            f"no-call accuracy {pct(agg.no_call_accuracy)} < {pct(c.min_no_call_accuracy)}"))
    if c.max_latency_p95 is not None:
        if agg.latency_p95_s is None:
            reasons.append(("above latency", "no latency measured (every reply came from the cache?)"))
        elif agg.latency_p95_s > c.max_latency_p95:
            reasons.append(("above latency", f"latency p95 {secs(agg.latency_p95_s)} > {secs(c.max_latency_p95)}"))
    return reasons


def comparable(entries: Sequence[Entry]) -> tuple[list[Entry], Scope]:
    """The options restricted to the cases all of them ran (rule 1), and what that scope is."""
    keys = {id(e): case_keys(e) for e in entries}
    per_run: dict[str, int] = {}
    for e in entries:
        per_run[e.run.run_id] = max(per_run.get(e.run.run_id, 0), len(keys[id(e)]))
    shared = set.intersection(*keys.values()) if keys else set()
    restricted = any(k != shared for k in keys.values())
    scope = Scope(len(shared), per_run, restricted)
    if not shared or not restricted:
        return list(entries), scope
    return restrict_entries(entries, shared), scope


def recommend_entries(entries: Sequence[Entry], constraints: Constraints) -> Recommendation:
    entries, scope = comparable(entries)
    if scope.shared == 0:
        return Recommendation(constraints, None, scope.text(), [], [], scope)
    eligible, ruled_out = [], []
    for entry in ranked(entries):
        reasons = rule(entry, constraints)
        if reasons:
            ruled_out.append(Ruling(entry, reasons))
        elif entry.overall.call_accuracy is not None:
            eligible.append(entry)
        else:
            ruled_out.append(Ruling(entry, [("not enough samples", "none scored")]))
    decision = choose(eligible)
    if decision is None:
        near = [r.entry for r in ruled_out if r.kinds == [BELOW_ACCURACY]]
        return Recommendation(constraints, None, "nothing meets the constraints", [], ruled_out, scope,
                              closest=choose(near))
    rest = [e for e in eligible if e is not decision.best]
    return Recommendation(constraints, decision.best, decision.text(), [decision.best] + rest, ruled_out, scope,
                          decision)


def recommend(
    run_dirs: Sequence[Path | str],
    *,
    min_accuracy: float | None = DEFAULT_MIN_ACCURACY,
    max_latency_p95: float | None = None,
    suites: Sequence[str] | None = None,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE,
    max_hallucination: float | None = None,
    min_no_call_accuracy: float | None = None,
) -> Recommendation:
    """The best model x format across the runs under the constraints (see the module docstring).
    Runs that share no cases are refused with one line."""
    runs = [load_run(d) for d in expand_run_dirs(run_dirs)]
    constraints = Constraints(min_accuracy, max_latency_p95, list(suites) if suites else None, min_samples,
                              max_error_rate, max_hallucination, min_no_call_accuracy)
    rec = recommend_entries(make_entries(runs, constraints.suites), constraints)
    if rec.refused:
        raise EvalkitError(f"no recommendation: {rec.reason}")
    return rec
