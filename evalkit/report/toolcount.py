"""How accuracy and prompt size move with the number of tools offered (--distractors), and what
the tool definitions cost in prompt tokens (--tool-cost): the numbers behind the report's
"Tool count" section, in rows the renderers (markdown.py, html.py) set as tables, and the
figure's data (figures.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..metrics import amount, pct
from ..schema import Aggregate
from .model import Entry

FALL_SHARE = 0.9  # the curve names the count at which accuracy falls below this share of its 0-distractor value

CURVE_NOTE = (
    "Every case offered its own tools plus N tools from evalkit's pool of real tool schemas (the MCP suites' "
    "tools and BFCL's functions) that do not fit the request, drawn by --seed and case id; expected calls are "
    "unchanged, so calling a distractor is a wrong tool. Tools offered and prompt tokens are means over the "
    "samples; prompt tokens are the server's count for the first request."
)
CURVE_HEADERS = ["option", "distractors", "tools offered", "n", "strict acc", "intent acc", "prompt tokens"]

TOOL_COST_NOTE = (
    "Tool tokens: the server's prompt tokens for a request minus its prompt tokens for the same messages sent "
    "with no tools (one tools-free request per distinct prompt, max_tokens 1), so the format's tool instructions "
    "and the definitions both count. Per tool: tool tokens over tools offered. Per added tool: the slope of "
    "prompt tokens between the smallest and largest --distractors count."
)
TOOL_COST_HEADERS = ["option", "tools offered", "prompt tokens", "tool tokens", "per tool", "per added tool"]


@dataclass
class Curve:
    """One model x format's aggregates by distractor count, smallest count first."""

    entry: Entry
    points: list[Aggregate]

    @property
    def baseline(self) -> Aggregate | None:
        return next((p for p in self.points if p.distractors == 0), None)

    def falls_below(self, key: str) -> tuple[Aggregate | None, float | None]:
        """(the first point whose `key` accuracy is below FALL_SHARE of the 0-distractor value, that value)."""
        base = self.baseline
        value = getattr(base, key) if base is not None else None
        if not value:
            return None, value
        for point in self.points:
            accuracy = getattr(point, key)
            if point.distractors and accuracy is not None and accuracy < FALL_SHARE * value:
                return point, value
        return None, value

    def sentence(self) -> str:
        """Where strict and intent accuracy fall below 90% of their value with no distractors."""
        if self.baseline is None:
            return "no samples without distractors (--distractors 0) to compare with."
        parts = []
        largest = self.points[-1]
        for key, name in (("call_accuracy", "strict"), ("intent_accuracy", "intent")):
            point, value = self.falls_below(key)
            if not value:
                parts.append(f"{name} accuracy is {pct(value)} with no distractors")
            elif point is None:
                parts.append(f"{name} accuracy ({pct(value)} with no distractors) stays at or above "
                             f"{FALL_SHARE:.0%} of it up to {largest.distractors} distractors "
                             f"({amount(largest.tools_offered)} tools offered)")
            else:
                parts.append(f"{name} accuracy ({pct(value)} with no distractors) falls below {FALL_SHARE:.0%} of it "
                             f"at {point.distractors} distractors ({amount(point.tools_offered)} tools offered: "
                             f"{pct(getattr(point, key))})")
        return "; ".join(parts) + "."

    def tokens_per_added_tool(self) -> float | None:
        first, last = self.points[0], self.points[-1]
        if None in (first.prompt_tokens, last.prompt_tokens, first.tools_offered, last.tools_offered):
            return None
        added = last.tools_offered - first.tools_offered  # type: ignore[operator]
        return (last.prompt_tokens - first.prompt_tokens) / added if added > 0 else None  # type: ignore[operator]


def curves(entries: Sequence[Entry]) -> list[Curve]:
    """Model x format options that ran with --distractors, in the order given."""
    return [Curve(e, [e.distractors[n] for n in sorted(e.distractors)]) for e in entries if e.distractors]


def curve_rows(found: Sequence[Curve]) -> list[list[str]]:
    rows = []
    for curve in found:
        for p in curve.points:
            rows.append([curve.entry.label, str(p.distractors), amount(p.tools_offered), str(p.n),
                         pct(p.call_accuracy), pct(p.intent_accuracy), amount(p.prompt_tokens)])
    return rows


def tool_cost_rows(entries: Sequence[Entry]) -> list[list[str]]:
    """Per model x format: what its tools cost (at its smallest distractor count when it has a
    curve); empty when no sample measured tool tokens."""
    by_entry = {id(c.entry): c for c in curves(entries)}
    rows = []
    for entry in entries:
        curve = by_entry.get(id(entry))
        agg = curve.points[0] if curve else entry.overall
        if agg.tool_tokens is None:
            continue
        per_tool = agg.tool_tokens / agg.tools_offered if agg.tools_offered else None
        added = curve.tokens_per_added_tool() if curve else None
        label = entry.label + (f" ({agg.distractors} distractors)" if curve and agg.distractors else "")
        rows.append([label, amount(agg.tools_offered), amount(agg.prompt_tokens), amount(agg.tool_tokens),
                     amount(per_tool), amount(added)])
    return rows

