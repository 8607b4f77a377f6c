"""Kinds of tool support side by side (issue 22): per model, native, default, constrained (each
envelope) and native with a tool_choice, with the rates constraining is meant to move (malformed)
and the ones it can move the wrong way (did not call, called when it should not), and one
sentence per constrained option on what constraining fixed and what it broke."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ..metrics import mean, pct
from ..schema import Sample
from .model import Entry

SUPPORT_NOTE = (
    "Rates over scored samples (server errors left out): malformed of all; did not call of the samples whose "
    "case expects a call; called when it should not of those whose case expects none (a call there, with made-up values or not). Constrained options hold "
    "the reply to a JSON Schema of the offered calls (docs/constrained.md); each is compared with native from "
    "the same run (default when there is no native). These are rates, not a significance test: the format "
    "differences above test accuracy."
)
SUPPORT_HEADERS = ["model", "option", "n", "call acc", "malformed", "did not call", "called when it should not"]


@dataclass(frozen=True)
class Rate:
    name: str
    of: Callable[[Sample], bool]  # which scored samples the rate is over
    hit: Callable[[Sample], bool]


RATES = (
    Rate("malformed", lambda s: True, lambda s: s.malformed),
    Rate("did_not_call", lambda s: s.expected_calls > 0, lambda s: s.failure_kind == "did_not_call"),
    # On a case that wants no call, a call is `called_when_should_not`, or `invented_argument` when
    # its values were made up (scoring names the more telling of the two).
    Rate("called_when_should_not", lambda s: s.expected_calls == 0,
         lambda s: s.failure_kind in ("called_when_should_not", "invented_argument")),
)


def over(entry: Entry, which: Rate) -> list[Sample]:
    """The samples a rate is over: scored (no server error), and of the kind it counts."""
    return [s for s in entry.samples if s.error is None and which.of(s)]


def rate(entry: Entry, which: Rate) -> float | None:
    return mean(which.hit(s) for s in over(entry, which))


def is_constrained(entry: Entry) -> bool:
    return entry.format.split("+")[0] == "constrained"


def shown(entries: Sequence[Entry]) -> bool:
    return any(is_constrained(e) for e in entries)


def support_rows(entries: Sequence[Entry]) -> list[list[str]]:
    ordered = sorted(entries, key=lambda e: (e.model, e.run.run_id, e.format))
    return [[e.model, e.format, str(e.overall.n), pct(e.overall.call_accuracy, 0)] + [pct(rate(e, r), 0) for r in RATES]
            for e in ordered]


def _reference(entry: Entry, entries: Sequence[Entry]) -> Entry | None:
    mates = {e.format: e for e in entries if e.run is entry.run and e.model == entry.model}
    return mates.get("native") or mates.get("default")


def _malformed_there(reference: Entry, which: Rate) -> str:
    """" (native was malformed on 27 of those 29)": a reference's low rate can be its malformed
    calls rather than better judgement (a malformed call on a no-call case is neither a call nor
    a refusal), and the sentence must not credit it with the difference."""
    samples = over(reference, which)
    malformed = sum(1 for s in samples if s.malformed)
    return f" ({reference.format} was malformed on {malformed} of those {len(samples)})" if malformed else ""


def sentence(entry: Entry, reference: Entry) -> str:
    """"constrained+naive against native: malformed 85% → 0%, but did_not_call 3% → 75%; call accuracy 11% → 25%"."""
    fixed, broke = [], []
    for which in RATES:
        before, after = rate(reference, which), rate(entry, which)
        if before is None or after is None or round(before, 2) == round(after, 2):
            continue
        change = f"{which.name} {pct(before, 0)} → {pct(after, 0)}"
        if after > before:
            change += _malformed_there(reference, which)
        (fixed if after < before else broke).append(change)
    accuracy = f"call accuracy {pct(reference.overall.call_accuracy, 0)} → {pct(entry.overall.call_accuracy, 0)}"
    said = ", ".join(fixed) or "nothing fixed"
    said += f", but {', '.join(broke)}" if broke else ", and nothing broken"
    return f"{entry.label} against {reference.format}: {said}; {accuracy}."


def support_sentences(entries: Sequence[Entry]) -> list[str]:
    out = []
    for entry in entries:
        reference = _reference(entry, entries) if is_constrained(entry) else None
        if reference is not None:
            out.append(sentence(entry, reference))
    return out
