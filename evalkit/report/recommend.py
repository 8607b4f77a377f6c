"""Which model x format to deploy under a user's constraints, and why the others are out.

The best option is the one with the highest call accuracy among those meeting every constraint;
equal accuracies go to the lower latency p50 (then p95). Each other option is either eligible
(ranked below the best) or ruled out with every reason that applies:

* not enough samples: fewer scored samples than `min_samples` (the interval would be too wide);
* too many errors: more than `max_error_rate` of its samples failed at the server;
* below accuracy: call accuracy under `min_accuracy`;
* above latency: latency p95 over `max_latency_p95` seconds (or no latency measured).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..metrics import interval, pct, secs
from .compare import difference
from .model import Entry, expand_run_dirs, load_run, make_entries, ranked

DEFAULT_MIN_SAMPLES = 10
DEFAULT_MAX_ERROR_RATE = 0.10


@dataclass
class Constraints:
    min_accuracy: float | None = None
    max_latency_p95: float | None = None
    suites: list[str] | None = None
    min_samples: int = DEFAULT_MIN_SAMPLES
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE

    def describe(self) -> str:
        parts = []
        if self.min_accuracy is not None:
            parts.append(f"call accuracy >= {pct(self.min_accuracy)}")
        if self.max_latency_p95 is not None:
            parts.append(f"latency p95 <= {secs(self.max_latency_p95)}")
        parts.append(f"at least {self.min_samples} scored samples")
        parts.append(f"at most {pct(self.max_error_rate, 0)} server errors")
        parts.append("suites: " + (", ".join(self.suites) if self.suites else "all in the runs"))
        return "; ".join(parts)


@dataclass
class Ruling:
    entry: Entry
    found: list[tuple[str, str]]  # (kind, specifics) for every constraint the option misses

    @property
    def kinds(self) -> list[str]:
        """The reasons' short names: not enough samples, too many errors, below accuracy, above latency."""
        return [kind for kind, _ in self.found]

    @property
    def reasons(self) -> list[str]:
        return [f"{kind}: {specifics}" for kind, specifics in self.found]


@dataclass
class Recommendation:
    constraints: Constraints
    best: Entry | None
    reason: str
    eligible: list[Entry] = field(default_factory=list)  # best first
    ruled_out: list[Ruling] = field(default_factory=list)

    def text(self) -> str:
        """Plain text for the terminal (and the reports)."""
        lines = [f"Constraints: {self.constraints.describe()}."]
        if self.best is None:
            lines.append("Nothing meets the constraints.")
        else:
            lines.append(f"Recommended: {self.best.label}")
            lines.append(f"  Why: {self.reason}")
        others = self.eligible[1:]
        if others:
            lines.append("Also meets the constraints (in rank order):")
            for entry in others:
                lines.append(f"  - {entry.label}: call accuracy {pct(entry.overall.call_accuracy)}, "
                             f"latency p50 {secs(entry.overall.latency_p50_s)}")
        if self.ruled_out:
            lines.append("Ruled out:")
            for ruling in self.ruled_out:
                lines.append(f"  - {ruling.entry.label}: {'; '.join(ruling.reasons)}")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        def option(entry: Entry) -> dict[str, Any]:
            return {"run_id": entry.run.run_id, "model": entry.model, "format": entry.format,
                    "label": entry.label, **entry.overall.model_dump(mode="json", exclude={"model", "format"})}

        return {
            "constraints": {
                "min_accuracy": self.constraints.min_accuracy,
                "max_latency_p95": self.constraints.max_latency_p95,
                "suites": self.constraints.suites,
                "min_samples": self.constraints.min_samples,
                "max_error_rate": self.constraints.max_error_rate,
            },
            "best": option(self.best) if self.best else None,
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
        reasons.append(("below accuracy", f"call accuracy {pct(agg.call_accuracy)} < {pct(c.min_accuracy)}"))
    if c.max_latency_p95 is not None:
        if agg.latency_p95_s is None:
            reasons.append(("above latency", "no latency measured"))
        elif agg.latency_p95_s > c.max_latency_p95:
            reasons.append(("above latency", f"latency p95 {secs(agg.latency_p95_s)} > {secs(c.max_latency_p95)}"))
    return reasons


def _why(best: Entry, eligible: list[Entry]) -> str:
    agg = best.overall
    count = len(eligible)
    scope = "The only option" if count == 1 else f"The highest call accuracy of the {count} options"
    text = (f"{scope} that meet the constraints: {pct(agg.call_accuracy)} "
            f"(95% CI {interval(agg.call_accuracy_ci95)}, {agg.n} samples), intent accuracy {pct(agg.intent_accuracy)}, "
            f"latency p50 {secs(agg.latency_p50_s)} / p95 {secs(agg.latency_p95_s)}.")
    if count > 1:
        runner = eligible[1]
        if runner.overall.call_accuracy == agg.call_accuracy:
            text += (f" Tied on accuracy with {runner.label}; chosen for its lower latency p50 "
                     f"({secs(agg.latency_p50_s)} vs {secs(runner.overall.latency_p50_s)}).")
        else:
            diff = difference(best.samples, runner.samples, best.label, runner.label)
            text += (f" Runner-up {runner.label} at {pct(runner.overall.call_accuracy)}: the gap is {diff.verdict}"
                     f" ({diff.test_text()})")
            text += "." if diff.significant else "; latency and throughput may decide between them."
    return text


def recommend_entries(entries: Sequence[Entry], constraints: Constraints) -> Recommendation:
    eligible, ruled_out = [], []
    for entry in ranked(entries):
        reasons = rule(entry, constraints)
        if reasons:
            ruled_out.append(Ruling(entry, reasons))
        elif entry.overall.call_accuracy is not None:
            eligible.append(entry)
        else:
            ruled_out.append(Ruling(entry, [("not enough samples", "none scored")]))
    if not eligible:
        return Recommendation(constraints, None, "nothing meets the constraints", [], ruled_out)
    return Recommendation(constraints, eligible[0], _why(eligible[0], eligible), eligible, ruled_out)


def recommend(
    run_dirs: Sequence[Path | str],
    *,
    min_accuracy: float | None = None,
    max_latency_p95: float | None = None,
    suites: Sequence[str] | None = None,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE,
) -> Recommendation:
    """The best model x format across the runs under the constraints (see the module docstring)."""
    runs = [load_run(d) for d in expand_run_dirs(run_dirs)]
    constraints = Constraints(min_accuracy, max_latency_p95, list(suites) if suites else None, min_samples,
                              max_error_rate)
    return recommend_entries(make_entries(runs, constraints.suites), constraints)
