"""`scan(text, tools)`: every call attempt in a reply, by family and place, in one left-to-right pass.

1. Reasoning is split from the answer: `<think>`...`</think>` and the other families' delimiters
   (an unopened close at the start means the prompt opened it: the generation-prompt forced it),
   and Harmony's analysis channel unless its header names a recipient (then it is a call).
2. In each part, one regex finds the families' opening markers; the readers of the families that
   use that marker are tried in table order; a reader returns the block's end, its calls, and why
   it is broken. A marker right after a backtick is prose (`<tool_call>` mentioned in Markdown).
3. What is left is searched for unmarked calls: a bare or fenced JSON call object (family `json`,
   or `llama3` for Llama's `"parameters"` form), a bare Python call list (`pythonic`), or
   Functionary v3.2's `NAME\\n{json}` at the start of the reply.

Linear in the length of the text: every search moves forward (readers use one shared Finder),
JSON extents are found by jumping between structural characters, and nothing is decoded twice.
Never raises: a reader that fails turns into a broken attempt with the failure as its reason.
"""

from __future__ import annotations

import re
from typing import Any

from ..schema import ToolCall
from . import readers as r
from .families import BY_NAME, FAMILIES, Family
from .model import Attempt, Location, Scan, Tools
from .text import Finder, loads_lenient

_READERS: dict[str, list[tuple[Family, r.Reader]]] = {}
for _family in FAMILIES:
    for _marker, _reader in _family.markers:
        _READERS.setdefault(_marker, []).append((_family, _reader))
# Longest first, so ```tool_code wins over ``` and <|tool_call_begin|> over shorter prefixes.
# Bare JSON calls are found in the same pass (so markers inside their strings are never seen).
_BARE = "bare JSON"
_READERS[_BARE] = [(BY_NAME["json"], r.bare_json)]
_MARKERS = re.compile("|".join(re.escape(m) for m in sorted(_READERS, key=len, reverse=True) if m != _BARE)
                      + r'|(?P<bare>\[?\{\s*"(?:name|function|tool_name)"\s*:)')

_REASONING: dict[str, str] = {}
for _family in FAMILIES:
    for _open, _close in _family.reasoning:
        _REASONING.setdefault(_open, _close)
_OPENS = re.compile("|".join(re.escape(o) for o in sorted(_REASONING, key=len, reverse=True)))
_CLOSES = tuple(sorted({c for c in _REASONING.values()} - {"<|end|>"}))
_HARMONY_ANALYSIS = "<|channel|>analysis<|message|>"
_NOISE = re.compile("|".join(p for f in FAMILIES for p in f.noise))

_FUNCTIONARY_START = re.compile(r"\s*([A-Za-z_][\w.\-]*)\n(?=\s*\{)")
_STRUCT = re.compile(r'[{}\[\]"]')
_STRING_TAIL = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_UNMARKED_RETRIES = 8  # restarts after an unclosed bracket swallowed the rest (bounded: stays linear)


def scan(text: Any, tools: Tools = None) -> Scan:
    """Every call attempt in `text` (a reply's content), its prose and its reasoning. `tools` maps each
    offered tool's name to its JSON Schema `parameters` (None if unknown): schemas type the values of
    XML-style families; names decide whether an unmarked Python list is a call."""
    if not isinstance(text, str) or not text:
        return Scan(text if isinstance(text, str) else "")
    try:
        return _Scanner(text, tools).run()
    except Exception as exc:  # noqa: BLE001 - the promise is "never raises"; a bug becomes a finding
        return Scan(text, (Attempt("unknown", (0, len(text)), "answer", (),
                                   f"scanner failure: {type(exc).__name__}"),), text.strip(), "",
                    (f"scanner failure: {type(exc).__name__}: {exc}",))


class _Scanner:
    def __init__(self, text: str, tools: Tools):
        self.text, self.tools = text, tools
        self.find = Finder(text, len(text))
        self.attempts: list[Attempt] = []
        self.gaps: list[tuple[int, int, Location]] = []  # text between attempts, by part
        self.reasoning: list[str] = []

    def run(self) -> Scan:
        for lo, hi, location in self._parts():
            self._markers(lo, hi, location)
        prose = []
        for lo, hi, location in self.gaps:
            for start, end in self._unmarked(lo, hi, location):
                if location == "answer":
                    prose.append(self.text[start:end])
        self.attempts.sort(key=lambda a: a.span)
        answer = _NOISE.sub("", "".join(prose)) if prose else ""
        return Scan(self.text, tuple(self.attempts), answer.strip(), "\n".join(s for s in self.reasoning if s))

    # ------------------------------------------------------------------------------ reasoning
    def _parts(self) -> list[tuple[int, int, Location]]:
        """The text cut into answer and reasoning parts (delimiters belong to neither)."""
        text, n = self.text, len(self.text)
        parts: list[tuple[int, int, Location]] = []
        pos = 0
        forced = self._forced_close()
        if forced:
            close_at, close = forced
            parts.append((0, close_at, "reasoning"))
            self.reasoning.append(text[:close_at].strip())
            pos = close_at + len(close)
        while pos < n:
            m = _OPENS.search(text, pos)
            while m and (self._backticked(m.start()) or (m.group() == _HARMONY_ANALYSIS and self._has_recipient(m.start()))):
                m = _OPENS.search(text, m.end())
            if m is None:
                parts.append((pos, n, "answer"))
                break
            parts.append((pos, m.start(), "answer"))
            opener = m.group()
            if opener == _HARMONY_ANALYSIS:
                close_at, close = self.find.first(("<|end|>", "<|start|>"), m.end())
            else:
                close = _REASONING[opener]
                close_at = self.find.find(close, m.end())
            body_end = close_at if close_at >= 0 else n
            parts.append((m.end(), body_end, "reasoning"))
            self.reasoning.append(text[m.end():body_end].strip())
            pos = body_end + (len(close) if close_at >= 0 and close != "<|start|>" else 0)
        return parts

    def _forced_close(self) -> tuple[int, str] | None:
        """A reasoning close with no opening before it: the prompt opened the reasoning (Qwen 3.5,
        GLM-4.7, DeepSeek R1, Gemma 4 and others put `<think>` in the generation prompt)."""
        at, close = self.find.first(_CLOSES, 0)
        if at < 0:
            return None
        opened = _OPENS.search(self.text, 0, at)
        return None if opened else (at, close)

    def _has_recipient(self, at: int) -> bool:
        # ` to=functions.x<|channel|>analysis<|message|>`: the header before the channel names a recipient.
        head = self.text[max(0, at - 120):at]
        head = head[max(head.rfind("<|start|>"), head.rfind("<|end|>"), head.rfind("<|call|>")) + 1:]
        return "to=" in head

    def _backticked(self, at: int) -> bool:
        return at > 0 and self.text[at - 1] == "`" and not self.text.startswith("```", at)

    # -------------------------------------------------------------------------------- markers
    def _markers(self, lo: int, hi: int, location: Location) -> None:
        ctx = r.Ctx(self.text, hi, self.tools, self.find, lo)
        pos = self._functionary_start(ctx, lo, hi, location)
        while pos < hi:
            m = _MARKERS.search(self.text, pos, hi)
            if m is None:
                break
            at, marker = m.start(), (_BARE if m.lastgroup == "bare" else m.group())
            if self._backticked(at):
                self.gaps.append((pos, m.end(), location))
                pos = m.end()
                continue
            family, read = self._read(ctx, at, marker)
            if read is None:
                self.gaps.append((pos, m.end(), location))
                pos = m.end()
                continue
            start = read.start if read.start is not None and pos <= read.start <= at else at
            end = max(min(read.end, hi), m.end())
            self.gaps.append((pos, start, location))
            if read.family == "":  # a block the reader skipped whole as prose (a non-call code fence)
                self.gaps.append((start, end, location))
            else:
                self._add(read.family or family.name, start, end, location, read.calls, read.broken)
            pos = end
        self.gaps.append((pos, hi, location))

    def _functionary_start(self, ctx: r.Ctx, lo: int, hi: int, location: Location) -> int:
        """Functionary v3.2's prompt ends with `>>>`, so a reply may start `NAME\\n{json}`: a call when
        NAME is an offered tool."""
        m = _FUNCTIONARY_START.match(self.text, lo, hi)
        if not (m and self.tools and m.group(1) in self.tools and not self.text[:lo].strip()):
            return lo
        end, call, reason = r.json_arguments(ctx, m.group(1), m.end())
        self.gaps.append((lo, m.start(1), location))
        self._add("functionary", m.start(1), end, location, [call] if call else [], reason)
        return end

    def _read(self, ctx: r.Ctx, at: int, marker: str) -> tuple[Family, r.Read | None]:
        candidates = _READERS[marker]
        for family, reader in candidates:
            try:
                read = reader(ctx, at, marker)
            except Exception as exc:  # noqa: BLE001 - a reader bug must not lose the attempt
                return family, r.Read(ctx.end, [], f"unreadable block ({type(exc).__name__})")
            if read is not None:
                return family, read
        closer = next((f for f, _ in candidates if f.closer), None)
        # A marker right after a quote sits inside some string literal: not an envelope.
        if closer is not None and (at == 0 or self.text[at - 1] not in "\"'\\"):
            return closer, r.unreadable(closer.closer)(ctx, at, marker)  # type: ignore[arg-type]
        return candidates[0][0], None

    def _add(self, family: str, start: int, end: int, location: Location, calls: list[ToolCall],
             broken: str | None) -> None:
        if not calls and not broken:
            broken = "no call could be read"
        self.attempts.append(Attempt(family, (start, end), location, tuple(calls), broken))

    # ------------------------------------------------------------------------------- unmarked
    def _unmarked(self, lo: int, hi: int, location: Location) -> list[tuple[int, int]]:
        """Bare Python call lists in [lo, hi) (bare JSON was read with the markers). Returns the
        pieces of [lo, hi) left as prose."""
        if lo >= hi:
            return []
        found: list[tuple[int, int]] = []
        for start, end in self._brackets(lo, hi):
            if self._bare(start, end, hi, location):
                found.append((start, end if end is not None else hi))
        pieces, pos = [], lo
        for start, end in found:
            if start > pos:
                pieces.append((pos, start))
            pos = max(pos, end)
        if pos < hi:
            pieces.append((pos, hi))
        return pieces

    def _brackets(self, lo: int, hi: int):
        """Top-level bracketed spans in prose: (start, end) when closed, (start, None) when not.
        Quotes count only inside brackets; a mismatch resets; bounded restarts after an unclosed one."""
        text, retries, pos = self.text, 0, lo
        while pos < hi:
            stack: list[str] = []
            start = -1
            while True:
                m = _STRUCT.search(text, pos, hi)
                if m is None:
                    break
                ch, pos = m.group(), m.end()
                if not stack:
                    if ch in "{[":
                        stack.append("}" if ch == "{" else "]")
                        start = m.start()
                    continue
                if ch == '"' and text[m.start() - 1] == "\\":
                    continue  # `\\"` in a Python string literal: not a JSON string
                if ch == '"':
                    tail = _STRING_TAIL.match(text, pos, hi)
                    if tail is None:
                        break
                    pos = tail.end()
                elif ch in "{[":
                    stack.append("}" if ch == "{" else "]")
                elif stack.pop() != ch:
                    stack = []
                elif not stack:
                    yield start, pos
            if not stack:
                return
            yield start, None
            retries += 1
            if retries > _UNMARKED_RETRIES:
                return
            pos = start + 1

    def _bare(self, start: int, end: int | None, hi: int, location: Location) -> bool:
        """Is the bracketed span a call? Records the attempt and says so."""
        text, tools = self.text, self.tools
        stop = end if end is not None else hi
        if r.PYTHONIC_HEAD.match(text, start, stop):
            calls, error = r.pythonic_calls(text[start:stop], tools) if end is not None else ([], "cut off")
            names = [c.name for c in calls]
            first = re.match(r"\s*\[\s*([A-Za-z_][\w.]*)\(", text[start:stop])
            offered = tools is None or (first is not None and first.group(1) in tools)
            if calls and (tools is None or all(n in tools for n in names)):
                self._add("pythonic", start, stop, location, calls, None)
                return True
            if (error or not calls) and offered and tools is not None:
                self._add("pythonic", start, stop, location, calls, error or "cut off")
                return True
        return False


def family(name: str) -> Family:
    return BY_NAME[name]
