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
4. When nothing above was found in the answer and the offered tools are known, the safety net (net.py)
   reads calls in a syntax no family knows (family `unknown`). A call-shaped JSON object in Harmony's
   final channel is answer text, not an attempt (only the commentary channel carries calls).

Linear in the length of the text: every search moves forward (readers use one shared Finder),
JSON extents are found by jumping between structural characters, and nothing is decoded twice.
Never raises: a reader that fails turns into a broken attempt with the failure as its reason.
"""

from __future__ import annotations

import bisect
import re
from typing import Any

from ..schema import ToolCall
from . import net
from . import readers as r
from .families import BY_NAME, FAMILIES, Family
from .model import Attempt, Location, Scan, Tools
from .text import MAX_STRUCTURE, Finder, loads_lenient

class _Alternatives:
    """Search for any of many literals (plus a few regex tails) in linear time and fast: one regex per
    first character, each starting with that literal character so the engine skips ahead to it at C
    speed (a single big alternation tries every alternative at every position: ~150 ms per MB of
    prose). Each group remembers its next hit, so repeated searches never rescan text."""

    def __init__(self, literals: list[str], tails: dict[str, str] | None = None):
        groups: dict[str, list[str]] = {}
        for lit in sorted(literals, key=len, reverse=True):
            groups.setdefault(lit[0], []).append(re.escape(lit[1:]))
        for first, tail in (tails or {}).items():
            groups.setdefault(first, []).append(tail)
        self.patterns = [re.compile(re.escape(c) + "(?:" + "|".join(alts) + ")") for c, alts in groups.items()]

    def search(self, text: str, pos: int, end: int, memo: dict[int, tuple[int, re.Match[str] | None]]) -> re.Match[str] | None:
        best = None
        for i, pattern in enumerate(self.patterns):
            known = memo.get(i)
            if known is not None and known[0] <= pos and (known[1] is None or known[1].start() >= pos):
                m = known[1]
            else:
                m = pattern.search(text, pos)
                memo[i] = (pos, m)
            if m is not None and m.end() <= end and (best is None or m.start() < best.start()):
                best = m
        return best


_READERS: dict[str, list[tuple[Family, r.Reader]]] = {}
for _family in FAMILIES:
    for _marker, _reader in _family.markers:
        _READERS.setdefault(_marker, []).append((_family, _reader))
# Longest first, so ```tool_code wins over ``` and <|tool_call_begin|> over shorter prefixes.
# Bare JSON calls are found in the same pass (so markers inside their strings are never seen).
_BARE = "bare JSON"
_READERS[_BARE] = [(BY_NAME["json"], r.bare_json)]
_BARE_TAIL = r'\s*"(?:name|function|tool_name)"\s*:'
_MARKERS = _Alternatives([m for m in _READERS if m != _BARE],
                         {"{": f"(?P<bare>{_BARE_TAIL})", "[": rf"(?P<bare_list>\s*\{{{_BARE_TAIL})"})

_REASONING: dict[str, str] = {}
for _family in FAMILIES:
    for _open, _close in _family.reasoning:
        _REASONING.setdefault(_open, _close)
_OPENS = _Alternatives(list(_REASONING))
_CLOSES = tuple(sorted({c for c in _REASONING.values()} - {"<|end|>"}))
_HARMONY_ANALYSIS = "<|channel|>analysis<|message|>"
assert all(p.startswith("<") for f in FAMILIES for p in f.noise), "noise patterns start with <: see _NOISE"
_NOISE = re.compile("<(?:" + "|".join(p[1:] for f in FAMILIES for p in f.noise) + ")")

_FUNCTIONARY_START = re.compile(r"\s*([A-Za-z_][\w.\-]*)\n(?=\s*\{)")

MAX_READS = 500
"""Blocks read (markers and `[name(` lists) per scan. Each read is linear, but one costs 5-200 us, and
a 1 MB reply of `>>>a\n` or `[TOOL_CALLS]` repeated held 200,000 of them (1-2 s per MB, on the
event loop); 500 is far beyond any real reply (8,000 calls in one list is one read). Past it, the
rest of the part is one broken attempt, and further `[name(` lists are prose."""
TOO_MANY_READS = f"more than {MAX_READS:,} call blocks in one reply: the rest was not read (the scanner's limit)"


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
        self.memo_markers: dict[int, tuple[int, re.Match[str] | None]] = {}
        self.memo_opens: dict[int, tuple[int, re.Match[str] | None]] = {}
        self.final = _harmony_final(text)
        self.reads = 0  # blocks read so far, against MAX_READS

    def run(self) -> Scan:
        for lo, hi, location in self._parts():
            self._markers(lo, hi, location)
        pieces = []
        for lo, hi, location in self.gaps:
            for start, end in self._unmarked(lo, hi, location):
                if location == "answer":
                    pieces.append((start, end))
        # The net is for replies no entry recognised: where one did, the answer is already no prose.
        known = any(a.location == "answer" for a in self.attempts)
        prose = [self.text[a:b] for start, end in pieces for a, b in
                 ([(start, end)] if known else self._net(start, end))]
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
            m = _OPENS.search(text, pos, n, self.memo_opens)
            while m and (self._backticked(m.start()) or (m.group() == _HARMONY_ANALYSIS and self._has_recipient(m.start()))):
                m = _OPENS.search(text, m.end(), n, self.memo_opens)
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
        opened = _OPENS.search(self.text, 0, at, self.memo_opens)
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
            m = _MARKERS.search(self.text, pos, hi, self.memo_markers)
            if m is None:
                break
            at, marker = m.start(), (_BARE if m.lastgroup in ("bare", "bare_list") else m.group())
            self.reads += 1  # backticked markers too: cheap, but 70,000 of them took 0.2 s per MB
            if self.reads > MAX_READS:
                self.gaps.append((pos, at, location))
                if self._backticked(at):
                    self.gaps.append((at, hi, location))
                else:
                    self._add(_READERS[marker][0][0].name, at, hi, location, [], TOO_MANY_READS)
                return
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
            if read.family in _JSON_SHAPED and self.final and self._in_final(at):
                # A call-shaped JSON object in Harmony's final channel is the answer's text: only the
                # commentary channel carries calls (docs/callsyntax.md, borderline cases).
                self.gaps.append((start, end, location))
            elif read.family == "":  # a block the reader skipped whole as prose (a non-call code fence)
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

    # --------------------------------------------------------------------------- safety net
    def _net(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Answer prose [lo, hi) with calls in a syntax no family knows taken out (net.py); Harmony's
        final channel is left whole (only its commentary channel carries calls)."""
        if not self.tools:
            return [(lo, hi)]
        pieces, pos = [], lo
        for a, b in self._outside_final(lo, hi):
            found_all, used = net.attempts(self.text, a, b, self.tools, max(0, MAX_READS - self.reads))
            self.reads += used
            for found in found_all:
                self._add("unknown", found.start, found.end, "answer", found.calls, found.broken)
                pieces.append((pos, found.start))
                pos = found.end
        pieces.append((pos, hi))
        return [(a, b) for a, b in pieces if b > a]

    def _outside_final(self, lo: int, hi: int) -> list[tuple[int, int]]:
        out, pos = [], lo
        i = max(0, bisect.bisect_right(self.final, (lo, len(self.text) + 1)) - 1)
        while i < len(self.final) and self.final[i][0] < hi:
            a, b = self.final[i]
            i += 1
            if b <= pos:
                continue
            if a > pos:
                out.append((pos, a))
            pos = max(pos, b)
        if pos < hi:
            out.append((pos, hi))
        return out

    def _in_final(self, at: int) -> bool:
        i = bisect.bisect_right(self.final, (at, len(self.text) + 1)) - 1  # the spans are sorted, disjoint
        return i >= 0 and self.final[i][0] <= at < self.final[i][1]

    # ------------------------------------------------------------------------------- unmarked
    def _unmarked(self, lo: int, hi: int, location: Location) -> list[tuple[int, int]]:
        """Bare Python call lists `[f(a=1), ...]` in [lo, hi) (bare JSON was read with the markers).
        Returns the pieces of [lo, hi) left as prose. Only `[name(` starts are examined, and each
        examined span is skipped whole, so the pass stays linear."""
        text, found, pos = self.text, [], lo
        while pos < hi:
            m = _PY_HEAD.search(text, pos, hi)
            self.reads += 1
            if m is None or self.reads > MAX_READS:
                break
            end = _python_extent(text, m.start(), hi)
            if self._pythonic(m.start(), end, hi, location, m.group(1)):
                found.append((m.start(), end if end is not None else hi))
            if end is None:
                break
            pos = end
        pieces, pos = [], lo
        for start, end in found:
            pieces.append((pos, start))
            pos = end
        pieces.append((pos, hi))
        return [(a, b) for a, b in pieces if b > a]

    def _pythonic(self, start: int, end: int | None, hi: int, location: Location, name: str) -> bool:
        """Is `[name(...` a call list? Records the attempt and says so. An unoffered name in a list that
        does not parse is prose (`[see(above)]`); an offered one is a broken call."""
        tools = self.tools
        offered = tools is not None and name in tools
        if end is None:
            if offered:
                self._add("pythonic", start, hi, location, [], "cut off: the list never closes")
            return offered
        calls, error = r.pythonic_calls(self.text[start:end], tools)
        good = bool(calls) and not error and all(c.parse_error is None for c in calls)
        if good and (tools is None or all(c.name in tools for c in calls)):
            self._add("pythonic", start, end, location, calls, None)
            return True
        if offered:
            self._add("pythonic", start, end, location, calls, error or next(
                (c.parse_error for c in calls if c.parse_error), "a call to a tool that was not offered"))
            return True
        return False


_JSON_SHAPED = ("json", "llama3")  # families read from a bare or fenced JSON object, not from a marker
_FINAL = re.compile(r"<\|channel\|>\s*final\s*(?:<\|constrain\|>\s*[\w/+.-]+\s*)?<\|message\|>")
_FINAL_END = re.compile(r"<\|end\|>|<\|return\|>|<\|start\|>")


def _harmony_final(text: str) -> list[tuple[int, int]]:
    """The bodies of Harmony's final-channel messages, in order (empty for any other reply)."""
    if "<|channel|>" not in text:
        return []
    out, pos = [], 0
    while (m := _FINAL.search(text, pos)) is not None:
        end = _FINAL_END.search(text, m.end())
        stop = end.start() if end else len(text)
        out.append((m.end(), stop))
        pos = stop
    return out


_PY_HEAD = re.compile(r"\[\s*([A-Za-z_][\w.]*)\(")
_PY_STRUCT = re.compile(r"[\[\](){}\"']")
_PY_STRINGS = {'"': re.compile(r'[^"\\\n]*(?:\\.[^"\\\n]*)*"'), "'": re.compile(r"[^'\\\n]*(?:\\.[^'\\\n]*)*'")}
_PY_CLOSE = {"[": "]", "(": ")", "{": "}"}


def _python_extent(text: str, start: int, hi: int) -> int | None:
    """End of the Python list opening at `start` (after its `]`), or None when it never closes.
    Brackets of all kinds nest; quoted strings are skipped; a mismatch ends the span there."""
    stack: list[str] = []
    pos = start
    for _ in range(MAX_STRUCTURE):  # brackets and strings walked one at a time: bounded, as for JSON
        m = _PY_STRUCT.search(text, pos, hi)
        if m is None:
            return None
        ch, pos = m.group(), m.end()
        if ch in _PY_STRINGS:
            tail = _PY_STRINGS[ch].match(text, pos, hi)
            if tail is None:
                return None
            pos = tail.end()
        elif ch in _PY_CLOSE:
            stack.append(_PY_CLOSE[ch])
        elif not stack or stack.pop() != ch or not stack:
            return pos
    return None


def family(name: str) -> Family:
    return BY_NAME[name]
