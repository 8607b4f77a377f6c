"""What a scan reports: attempts (where, which family, which calls, broken or not), prose, reasoning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from ..schema import ToolCall

# Tool name -> the tool's JSON Schema `parameters` (None when unknown); None: the offered tools are unknown.
Tools = Mapping[str, Mapping[str, Any] | None] | None
Location = Literal["answer", "reasoning"]


@dataclass(frozen=True)
class Attempt:
    """One call attempt in the reply: a block of one family's syntax, read as far as it goes."""

    family: str
    span: tuple[int, int]  # [start, end) in the scanned text
    location: Location  # "reasoning": written inside <think>, [THINK], Harmony's analysis channel...
    calls: tuple[ToolCall, ...]  # every call read; one that failed carries parse_error
    broken: str | None = None  # why the block is malformed (cut off, no end marker, bad JSON...), or None

    @property
    def clean(self) -> bool:
        """A well-formed block whose calls all parsed: what a server's parser should have returned."""
        return self.broken is None and bool(self.calls) and all(c.parse_error is None for c in self.calls)

    @property
    def good_calls(self) -> list[ToolCall]:
        return [c for c in self.calls if c.parse_error is None]


@dataclass(frozen=True)
class Scan:
    text: str
    attempts: tuple[Attempt, ...] = ()
    prose: str = ""  # the answer with call blocks, reasoning and control tokens taken out
    reasoning: str = ""  # the reasoning text, delimiters taken out
    notes: tuple[str, ...] = field(default_factory=tuple)  # internal failures turned into findings

    def where(self, location: Location) -> list[Attempt]:
        return [a for a in self.attempts if a.location == location]

    @property
    def attempted(self) -> bool:
        """Recognition for `malformed`: the answer holds a call attempt (reasoning is not an answer)."""
        return any(a.location == "answer" for a in self.attempts)

    @property
    def recovered(self) -> list[ToolCall]:
        """Lenient recovery for `intent_correct`: every call that parsed, from every answer attempt."""
        return [c for a in self.where("answer") for c in a.good_calls]

    @property
    def syntax(self) -> str | None:
        """The family the answer's calls were written in (the first attempt's), else the reasoning's."""
        found = self.where("answer") or self.where("reasoning")
        return found[0].family if found else None

    @property
    def broken(self) -> list[Attempt]:
        return [a for a in self.where("answer") if not a.clean]

    def clean_in(self, family: str) -> bool:
        """The answer's attempts are all clean and all in `family`: with no parsed tool_calls from the
        server, this is a call the server's parser lost (`server_parse_lost`)."""
        answer = self.where("answer")
        return bool(answer) and all(a.clean and a.family == family for a in answer)

    def describe(self) -> str | None:
        """One line for a verdict's detail, e.g. "hermes call syntax in the reasoning only"."""
        answer, reasoning = self.where("answer"), self.where("reasoning")
        if answer:
            broken = [a for a in answer if not a.clean]
            first = broken[0] if broken else answer[0]
            what = f"{first.family} call syntax in the reply"
            reason = first.broken or next((c.parse_error for c in first.calls if c.parse_error), None)
            return f"{what}: {reason}" if reason else what
        if reasoning:
            return f"{reasoning[0].family} call syntax in the reasoning only (not in the answer)"
        return None
