"""Linear-time building blocks for reading call bodies: bounded finds, JSON extents, forgiving decodes.

Everything here is O(length of what it reads) and never raises on the model's text: failures come
back as a reason string. The scanner relies on both promises (issue 16 feeds it hostile input).
"""

from __future__ import annotations

import ast
import json
import re
from json.decoder import scanstring
from typing import Any

from ..formats.pythonic import _jsonable  # tuples and sets as lists, as a JSON round trip would
from ..formats.base import value_problem  # the parser limits (formats.base.LIMITS) every reader keeps

# One structural character of JSON, or a string opening; strings are skipped whole with _STRING_TAIL.
_STRUCTURAL = re.compile(r'[{}\[\]"]')
# The rest of a JSON string after its opening quote (unrolled loop: no backtracking).
_STRING_TAIL = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_CLOSERS = {"{": "}", "[": "]"}
_DECODER = json.JSONDecoder()

MAX_STRUCTURE = 20_000
"""Brackets and strings walked, one at a time, in a JSON body that is not valid JSON. Valid JSON is
measured by json's C decoder; the walk (about 1 us per bracket or string) took 0.5 s per MB of
`[{[{...` or `{"name":` repeated. Past it the body counts as never closing."""


class Finder:
    """`str.find` for a fixed text with memory: repeated searches for the same needle from
    increasing positions cost O(text) in total, not O(text) each (a cut-off reply would otherwise
    make every unmatched end marker rescan the rest of the text)."""

    def __init__(self, text: str, limit: int):
        self.text, self.limit = text, limit
        self._next: dict[str, tuple[int, int]] = {}

    def find(self, needle: str, start: int, end: int | None = None) -> int:
        """Index of `needle` at or after `start`, wholly before `end` (default: the limit), or -1."""
        end = self.limit if end is None else min(end, self.limit)
        known = self._next.get(needle)
        # A search from an earlier point that found nothing before `at` answers this one too.
        if known is not None and known[0] <= start and (known[1] == -1 or known[1] >= start):
            at = known[1]
        else:
            at = self.text.find(needle, start, self.limit)
            self._next[needle] = (start, at)
        return at if at >= 0 and at + len(needle) <= end else -1

    def first(self, needles: tuple[str, ...], start: int, end: int | None = None) -> tuple[int, str]:
        """The earliest of several needles: (index, needle), or (-1, "")."""
        best, which = -1, ""
        for needle in needles:
            at = self.find(needle, start, end)
            if at >= 0 and (best < 0 or at < best):
                best, which = at, needle
        return best, which


def json_extent(text: str, start: int, limit: int) -> tuple[int, str | None]:
    """Where the JSON object or array opening at `start` ends: (end, None), or (stop, reason) when it
    never closes before `limit` or its brackets do not match. Strings are honoured, so a `}` or an end
    marker inside a string argument does not end the value. Iterative: any depth is fine."""
    try:  # valid JSON (the usual case) at C speed, however many strings and brackets it holds
        end = _DECODER.raw_decode(text, start)[1]
        if end <= limit and text[start] in _CLOSERS:
            return end, None
    except (ValueError, RecursionError, MemoryError):
        pass
    stack: list[str] = []
    pos = start
    for _ in range(MAX_STRUCTURE):
        m = _STRUCTURAL.search(text, pos, limit)
        if m is None:
            return limit, "cut off: the JSON never closes"
        ch = m.group()
        pos = m.end()
        if ch == '"':
            if not stack:  # a string before any bracket: not JSON we are reading
                return pos, "not a JSON object"
            pos = _string_end(text, pos, limit)
            if pos < 0:
                return limit, "cut off inside a JSON string"
        elif ch in "{[":
            stack.append(_CLOSERS[ch])
        else:
            if not stack or stack.pop() != ch:
                return pos, "brackets do not match"
            if not stack:
                return pos, None
    return limit, f"cut off: the JSON never closes within {MAX_STRUCTURE:,} brackets and strings"


def _string_end(text: str, pos: int, limit: int) -> int:
    """Index after the JSON string whose body starts at `pos`, or -1 when it does not close before
    `limit`. json's C scanner is much faster on escape-heavy strings; the regex handles what it rejects."""
    if text.find('"', pos, limit) < 0:  # never closes: said at C speed, before either walks the rest
        return -1
    try:
        end = scanstring(text, pos, False)[1]
        if end <= limit:
            return end
    except (ValueError, IndexError):
        pass
    tail = _STRING_TAIL.match(text, pos, limit)
    return tail.end() if tail else -1


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number out of range: {text[:20]}")  # 1e999 is no JSON number a tool can take
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(raw: str) -> tuple[Any, str | None]:
    """Strict JSON -> (value, None) or (None, reason). Never raises (deep nesting, huge numbers and
    lone surrogates included)."""
    try:
        value = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} at char {exc.pos}"
    except (ValueError, RecursionError, MemoryError) as exc:  # 5000-digit ints, 10k-deep nesting
        return None, f"invalid JSON: {type(exc).__name__}: {str(exc)[:80]}"
    problem = value_problem(value)  # a 400-digit integer, nesting past max_depth: no value a tool takes
    if problem is None and ("\\u" in raw or "\\U" in raw):
        problem = _unencodable(value)
    if problem:
        return None, problem
    return value, None


def _unencodable(value: Any) -> str | None:
    # A `\ud800` escape decodes to a lone surrogate, which no UTF-8 file can hold later on.
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        return "invalid unicode escape (a lone surrogate)"
    except (TypeError, ValueError, RecursionError, MemoryError) as exc:  # bytes, sets, inf, deep nesting
        return f"unusable value: {type(exc).__name__}"
    return None


def loads_lenient(raw: str) -> tuple[Any, str | None]:
    """JSON, else a Python literal (single quotes, True/None), else JSON without trailing commas.
    The reason returned is the strict one, so a repaired value can still say what was wrong."""
    value, reason = loads(raw)
    if reason is None:
        return value, None
    for attempt in (_literal, lambda r: loads(_TRAILING_COMMA.sub(r"\1", r))[0]):
        try:
            repaired = attempt(raw)
        except Exception:  # noqa: BLE001 - any failure of a repair just means "not repairable"
            continue
        if repaired is not None and value_problem(repaired) is None and _unencodable(repaired) is None:
            return repaired, reason
    return None, reason


def _literal(raw: str) -> Any:
    stripped = raw.strip()
    if not stripped or stripped[0] not in "{[" or len(stripped) > 1_000_000:
        return None
    return _jsonable(ast.literal_eval(stripped))


def schema_types(schema: Any) -> set[str]:
    """The JSON types a parameter schema allows (`type`, a list of types, or anyOf/oneOf branches)."""
    if not isinstance(schema, dict):
        return set()
    declared = schema.get("type")
    types = {declared} if isinstance(declared, str) else {t for t in declared or [] if isinstance(t, str)}
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key) or []:
            types |= schema_types(branch)
    if not types and "enum" in schema and all(isinstance(v, str) for v in schema["enum"] or []):
        types.add("string")
    return types


def typed_value(raw: str, schema: Any) -> Any:
    """An XML-style argument value (always text on the wire) typed by the parameter's JSON Schema:
    a string parameter keeps its text exactly (newlines, indentation); other types are decoded,
    and a value that does not decode stays text so validation can say what is wrong with it."""
    types = schema_types(schema)
    if types == {"string"}:
        return raw
    text = raw.strip()
    if "boolean" in types and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "null" in types and text.lower() in ("null", "none"):
        return None
    value, reason = loads(text)
    if reason is not None and text[:1] in "{[" and types & {"object", "array"}:
        value, _ = loads_lenient(text)  # Seed-OSS's template writes dicts as Python reprs
        reason = None if value is not None else reason
    if reason is not None:
        return raw
    if types and "string" in types and isinstance(value, (dict, list)) and not types & {"object", "array"}:
        return raw
    if not types and isinstance(value, (dict, list, str)) and text[:1] not in "{[\"":
        return raw
    return value
