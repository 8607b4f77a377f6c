"""Which model x format to deploy under a user's constraints, and why the others are out.

The rules, in order:

1. Options are compared on the same cases only. When the runs ran different cases, every option
   is re-scored on the cases all of them ran, and the card says so; when they share none, there
   is no recommendation (`evalkit recommend` refuses in one line).
2. An option must meet every constraint (`Constraints`; each has a default the card shows):
   call accuracy, hallucinated tools, no-call accuracy, latency p95, scored samples, server errors.
3. Among those that do, `decide.decide` chooses, on cases (not samples) at one --distractors
   count (+0 unless `Constraints.distractors` says otherwise): the highest call accuracy leads;
   options within the noise of it are tied, and the tie goes to the first of fewer hallucinated
   tools, higher no-call accuracy, lower latency p95 that has a basis on both sides and a
   difference beyond the noise. When none does, the card says it is a tie and what would
   separate the options. The card names the criterion that decided, its numbers and its test.
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
from ..metrics import interval, pct, secs
from .decide import ACCURACY, Decision, Option, cases, cases_to_separate, count_of, decide, value_of
from .model import Entry, case_keys, expand_run_dirs, load_run, make_entries, ranked, restrict_entries

DEFAULT_MIN_ACCURACY = 0.80
DEFAULT_MIN_SAMPLES = 10
DEFAULT_MAX_ERROR_RATE = 0.10
BELOW_ACCURACY = "below accuracy"


@dataclass
class Constraints:
    min_accuracy: float | None = DEFAULT_MIN_ACCURACY
    max_latency_p95: float | None = None
    suites: list[str] | None = None
    min_samples: int = DEFAULT_MIN_SAMPLES
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    max_hallucination: float | None = None
    min_no_call_accuracy: float | None = None
    distractors: int | None = None  # the --distractors count options are compared at (None: the smallest, +0)

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
            (f"distractor tools: +{self.distractors if self.distractors is not None else 0}",
             "--distractors (default +0, the smallest count run)"),
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
    """Which cases the options are compared on. A case is (suite, case id): its repeats and its
    --distractors counts are not more cases."""

    shared: int  # cases every option ran (at the compared distractor count)
    per_run: dict[str, int]  # run id -> cases it ran
    restricted: bool  # some run ran cases that others did not: they were left out
    count: int = 0  # the --distractors count compared
    counts: list[int] = field(default_factory=list)  # every count the runs asked

    def text(self) -> str:
        if not self.shared:
            ran = ", ".join(f"{run} ran {n}" for run, n in self.per_run.items())
            return f"the runs share no cases ({ran}); compare runs over the same suites, --limit/--sample and --seed"
        at = ""
        if len(self.counts) > 1:
            others = ", ".join(f"+{c}" for c in self.counts if c != self.count)
            at = (f" at +{self.count} distractor tools (also asked at {others}: options are compared per count; "
                  "--distractors N compares another)")
        if not self.restricted:
            return f"all {self.shared} cases{at}, which every option ran"
        left = ", ".join(f"{run} ran {n} ({n - self.shared} left out)" if n > self.shared else f"{run} ran {n}"
                         for run, n in self.per_run.items())
        return f"only the {self.shared} cases{at} every option ran, as the runs ran different cases: {left}"


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


def _cases_text(entry: Entry) -> str:
    n_cases, n = cases(entry.samples), entry.overall.n
    return f"{n_cases} cases" if n_cases == n else f"{n} samples of {n_cases} cases"


@dataclass
class Choice:
    """How the best of a set of eligible options was chosen (`decide.Decision`), in the card's words."""

    decision: Decision
    by_label: dict[str, Entry]

    @property
    def best(self) -> Entry:
        return self.by_label[self.decision.best.label]

    @property
    def tied(self) -> list[Entry]:
        return [self.by_label[o.label] for o in self.decision.tied]

    @property
    def still_tied(self) -> list[Entry]:
        return [self.by_label[label] for label in self.decision.remaining]

    @property
    def decided_by(self) -> str:
        return self.decision.decided_by or "tie"

    def head(self) -> str:
        agg = self.best.overall
        return (f"call accuracy {pct(agg.call_accuracy)} (95% CI {interval(agg.call_accuracy_ci95)}, "
                f"{_cases_text(self.best)}), intent accuracy {pct(agg.intent_accuracy)}, {latency_text(agg)}")

    def decided_text(self) -> str:
        """Which criterion decided, with its numbers and its test; or the tie."""
        d = self.decision
        if d.decided_by == "only option":
            return "only option: every other option is ruled out"
        if d.decided_by == ACCURACY.name:
            assert d.runner_up is not None
            return f"call accuracy, higher is better: {d.runner_up.values_text()} ({d.runner_up.test_text()})"
        if d.decided_by is None:
            names = ", ".join(f"{e.label} {pct(e.overall.call_accuracy)}" for e in self.still_tied)
            return f"nothing, a tie between {names}: no criterion with a basis tells them apart beyond the noise"
        step = d.deciding
        assert step is not None
        better = "lower" if step.criterion.lower_is_better else "higher"
        return f"{step.criterion.name}, {better} is better: {step.text()}"

    def passed_over(self) -> list[tuple[str, str]]:
        """The secondary criteria tried before the deciding one (all of them in a tie), and why each
        did not decide: (criterion, why)."""
        steps = self.decision.steps[1:]
        last = self.decision.deciding
        among = self.decision.contenders
        return [(step.criterion.name, step.why_not(among)) for step in steps
                if step is not last and step.why_not(among)]

    def change_text(self) -> str:
        """What would change the pick."""
        d = self.decision
        if d.decided_by == "only option":
            return "relaxing a constraint (see Ruled out) would let other options compete"
        if d.decided_by == ACCURACY.name:
            return "nothing on these cases: the call-accuracy gap is beyond the noise"
        if d.decided_by is None:
            return d.separate
        assert d.runner_up is not None
        return f"a call-accuracy gap beyond the noise between the tied options: {cases_to_separate(d.runner_up)}"

    def bullets(self) -> list[tuple[str, str]]:
        """The card as short bullets: (title, text)."""
        d = self.decision
        out = [("Why", self.head())]
        if len(d.tied) > 1:
            leader = d.steps[0].comparisons[0].label_a
            others = "; ".join(f"{c.label_b} {pct(c.value_b)} ({c.test_text()})"
                               for c in d.steps[0].comparisons if c.label_b in d.steps[0].kept)
            out.append(("Tied on call accuracy", f"within the noise of {leader} {pct(value_of(ACCURACY, d.tied[0].samples))}: {others}"))
        out.append(("Decided by", self.decided_text()))
        out += [(f"Not decided by {name}", why) for name, why in self.passed_over()]
        out.append(("What would change it", self.change_text()))
        return out

    def text(self) -> str:
        """The card's reasoning in one paragraph (--json's reason, the closest option's line)."""
        return " ".join(f"{title}: {text}." for title, text in self.bullets())

    def as_json(self) -> dict[str, Any]:
        return {**self.decision.as_json(), "decided_by": self.decided_by,
                "decided_text": self.decided_text(), "change": self.change_text()}


def choose(options: Sequence[Entry]) -> Choice | None:
    """The best of `options` (all eligible) by the rules of `decide`."""
    decision = decide([Option(e.label, e.samples) for e in options])
    return None if decision is None else Choice(decision, {e.label: e for e in options})


@dataclass
class Recommendation:
    constraints: Constraints
    best: Entry | None
    reason: str
    eligible: list[Entry] = field(default_factory=list)  # best first
    ruled_out: list[Ruling] = field(default_factory=list)
    scope: Scope | None = None
    decision: Choice | None = None
    closest: Choice | None = None  # no option qualifies: the best of those only below the accuracy floor

    @property
    def pick(self) -> Entry | None:
        """The option the card names first: the recommendation, or the closest when none is ready."""
        return self.best if self.best is not None else (self.closest.best if self.closest else None)

    @property
    def choice(self) -> Choice | None:
        return self.decision if self.decision is not None else self.closest

    def order(self) -> list[Entry]:
        """Every option as the card ranks them: the pick, the options tied with it, the others
        meeting the constraints, then those ruled out (each group by call accuracy). The
        leaderboard follows it."""
        first = [self.pick] if self.pick is not None else []
        tied = [e for e in (self.choice.tied if self.choice else []) if e is not self.pick]
        placed = {id(e) for e in first + tied}
        eligible = {id(e) for e in self.eligible}
        rest = ranked([e for e in self.eligible if id(e) not in placed])
        out = ranked([r.entry for r in self.ruled_out if id(r.entry) not in placed])
        return (first + [e for e in tied if id(e) in eligible] + rest
                + [e for e in tied if id(e) not in eligible] + out)

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
        if self.decision is not None and self.decision.decision.decided_by is None:
            others = ", ".join(e.label for e in self.decision.still_tied if e is not self.best)
            return f"A tie: {option_name(self.best)} (listed first), or {others}: nothing separates them"
        return f"Recommended: {option_name(self.best)}"

    def text(self) -> str:
        """Plain text for the terminal (and the reports)."""
        lines = ["Constraints (defaults unless set):"]
        width = max(len(text) for text, _ in self.constraints.rows())
        lines += [f"  {text:<{width}}  {flag}" for text, flag in self.constraints.rows()]
        if self.scope is not None:
            lines.append(f"Compared on {self.scope.text()}.")
        lines.append(self.headline)
        lines += [f"  {title}: {text}" for title, text in self.bullets()]
        others = self.eligible[1:]
        if others:
            lines.append("Also meets the constraints (by call accuracy):")
            for entry in others:
                lines.append(f"  - {entry.label}: call accuracy {pct(entry.overall.call_accuracy)}, "
                             f"{latency_text(entry.overall)}")
        if self.ruled_out:
            lines.append("Ruled out:")
            lines += [f"  - {line}" for line in self.ruled_out_lines()]
        return "\n".join(lines)

    def bullets(self) -> list[tuple[str, str]]:
        """The card's reasoning as short bullets (title, text), after the headline."""
        if self.best is not None and self.decision is not None:
            return self.decision.bullets()
        if self.closest is not None:
            return [("Closest, if you must choose", option_name(self.closest.best))] + self.closest.bullets()
        return []

    def ruled_out_lines(self) -> list[str]:
        """One line per ruled-out option; the closest pick is marked as such."""
        mark = lambda e: " (the closest pick)" if e is self.pick else ""  # noqa: E731
        return [f"{r.entry.label}{mark(r.entry)}: {'; '.join(r.reasons)}" for r in self.ruled_out]

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
                "distractors": c.distractors,
            },
            "compared_on": None if self.scope is None else {
                "shared_cases": self.scope.shared, "restricted": self.scope.restricted, "cases_per_run": self.scope.per_run,
                "distractors": self.scope.count, "distractor_counts": self.scope.counts},
            "ready": self.best is not None,
            "best": option(self.best) if self.best else None,
            "decided_by": self.choice.decided_by if self.choice else None,
            "tied": [e.label for e in self.choice.tied] if self.choice else [],
            "decision": self.choice.as_json() if self.choice else None,
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


def comparable(entries: Sequence[Entry], count: int | None = None) -> tuple[list[Entry], Scope]:
    """The options restricted to the questions all of them ran (rule 1) at one --distractors count
    (`count`, default the smallest), and what that scope is, in cases."""
    counts = sorted({count_of(s) for e in entries for s in e.samples})
    chosen = count if count is not None else (counts[0] if counts else 0)
    if counts and chosen not in counts:
        raise EvalkitError(f"--distractors {chosen}: the runs asked no case with {chosen} distractor tools "
                           f"(they hold {', '.join(f'+{c}' for c in counts)})")
    keys = {id(e): {k for k in case_keys(e) if (k[3] or 0) == chosen} for e in entries}
    per_run: dict[str, int] = {}
    for e in entries:
        per_run[e.run.run_id] = max(per_run.get(e.run.run_id, 0), len({k[:2] for k in keys[id(e)]}))
    shared = set.intersection(*keys.values()) if keys else set()
    restricted = any(k != shared for k in keys.values())
    scope = Scope(len({k[:2] for k in shared}), per_run, restricted, chosen, counts)
    if not shared or (not restricted and len(counts) < 2):
        return list(entries), scope
    return restrict_entries(entries, shared), scope


def recommend_entries(entries: Sequence[Entry], constraints: Constraints) -> Recommendation:
    entries, scope = comparable(entries, constraints.distractors)
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
    distractors: int | None = None,
) -> Recommendation:
    """The best model x format across the runs under the constraints (see the module docstring).
    Runs that share no cases are refused with one line."""
    runs = [load_run(d) for d in expand_run_dirs(run_dirs)]
    constraints = Constraints(min_accuracy, max_latency_p95, list(suites) if suites else None, min_samples,
                              max_error_rate, max_hallucination, min_no_call_accuracy, distractors)
    rec = recommend_entries(make_entries(runs, constraints.suites), constraints)
    if rec.refused:
        raise EvalkitError(f"no recommendation: {rec.reason}")
    return rec
