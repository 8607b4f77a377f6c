"""The safety net: a call attempt in a syntax no family knows (family `unknown`).

In a reply's answer (never its reasoning), an offered tool's name together with one or more of that
tool's parameter names close after it, in a structured setting, is a call attempt, however it is spelt: `malformed` (no entry knows the syntax, so no parser could have read it), and recovered for
intent only where every value reads unambiguously against the tool's schema. Prose that mentions a tool
("I could use get_weather if you tell me the city") stays plain.

What counts as structured, and what stays prose (a signature, inline code, a definition, a tool's name
as a data key, a sentence speaking of a tool), is decided in docs/callsyntax.md and tested in
tests/test_callsyntax_net.py. The net runs only where no family recognised an attempt (scanner.py).

Linear: tool names are found with str.find; every look around a name is bounded (WINDOW characters),
and names are visited once, left to right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..schema import ToolCall
from .readers import make_call
from .text import json_extent, loads_lenient, schema_types, typed_value

WINDOW = 400  # how far after a tool's name its parameters may be
_NAME_BEFORE = set("<\"'=.|[{/>@#:!$")
_NAME_AFTER = set("(\"'{<[:=>|")
_PARAM_AFTER = set("=:>|")
_TYPE_WORDS = {"string", "str", "integer", "int", "number", "float", "boolean", "bool", "object", "dict", "array",
               "list", "null", "none", "any"}
_BARE_VALUE = re.compile(r"[^<,;)}\]\n|&]*")
_QUOTED = {'"': re.compile(r'[^"\\\n]*(?:\\.[^"\\\n]*)*"'), "'": re.compile(r"[^'\\\n]*(?:\\.[^'\\\n]*)*'")}
_WORD = re.compile(r"[\w.\-]")
_DEFINITION = re.compile(r"(?<![\w.\-])(?:def|function|func|fn|class|async def)[ \t]+$")
_PROSE_WORD = re.compile(r"(?<![\w.\-])[A-Za-z][a-z]+[ \t]+$")  # `use `, `Use ` (not `CALL `)
_WORDS = re.compile(r"[A-Za-z]{2,}")
_SENTENCE = re.compile(r"[A-Za-z]{2,}[ \t]+[A-Za-z]{2,}[ \t]+[A-Za-z]{2,}")


@dataclass(frozen=True)
class Found:
    start: int
    end: int
    calls: list[ToolCall]
    broken: str


def _names(text: str, lo: int, hi: int, tools: Mapping[str, Any]) -> list[tuple[int, int, str]]:
    """Every whole-word occurrence of an offered tool's name in [lo, hi), in order (longest name wins)."""
    hits: dict[int, tuple[int, str]] = {}
    for name in tools:
        if not name:
            continue
        at = text.find(name, lo, hi)
        while at >= 0:
            end = at + len(name)
            whole = (at == 0 or not _WORD.match(text, at - 1)) and (end >= len(text) or not _WORD.match(text, end))
            if whole and (at not in hits or hits[at][0] < end):
                hits[at] = (end, name)
            at = text.find(name, end, hi)
    return [(at, end, name) for at, (end, name) in sorted(hits.items())]


def _next_char(text: str, pos: int, hi: int) -> str:
    while pos < hi and text[pos] in " \t":
        pos += 1
    return text[pos] if pos < hi else ""


def _inline_code(text: str, at: int, lo: int) -> bool:
    """`at` is inside a one-line backtick span (a fence's ``` does not count)."""
    line = text.rfind("\n", max(lo, at - WINDOW), at) + 1
    head = text[max(line, lo, at - WINDOW):at].replace("```", "")
    return head.count("`") % 2 == 1


def _name_structured(text: str, at: int, end: int, lo: int, hi: int, sentence: bool) -> bool:
    """Markup or punctuation around the name. In a sentence a colon after it is a label
    ("Result of get_current_time: ..."), not a call's structure."""
    back = at
    while back > max(lo, at - 8) and text[back - 1] in " \t":
        back -= 1
    before = text[back - 1] if back > lo else ""
    after = _next_char(text, end, hi)
    return before in _NAME_BEFORE or (after in _NAME_AFTER and not (sentence and after == ":"))


def _scalar_key(text: str, end: int, hi: int) -> bool:
    """The name is a quoted key whose value is not an object (`"is_prime": false` in a result)."""
    if end >= hi or text[end] not in "\"'" or _next_char(text, end + 1, hi) != ":":
        return False
    colon = text.find(":", end + 1, hi)
    return _next_char(text, colon + 1, hi) not in ("{", "")


def _in_sentence(text: str, at: int, lo: int) -> bool:
    """The name follows a word (`use get_weather`, `Call search`; not a keyword in capitals such as `CALL`):
    a sentence speaking of it."""
    m = _PROSE_WORD.search(text, max(lo, at - 30), at)
    return m is not None


def _value(text: str, pos: int, hi: int) -> tuple[str | None, Any, int]:
    """The value written at `pos` (after a parameter's delimiter): (raw text, decoded or None, end)."""
    while pos < hi and text[pos] in " \t":
        pos += 1
    if pos >= hi:
        return None, None, hi
    ch = text[pos]
    if ch in _QUOTED:
        m = _QUOTED[ch].match(text, pos + 1, hi)
        if m:
            return text[pos + 1:m.end() - 1], None, m.end()
        pos += 1  # a quote that never closes on its line: read what follows as a bare value
        ch = text[pos] if pos < hi else ""
    if ch in "{[":
        end, reason = json_extent(text, pos, hi)
        raw = text[pos:end]
        value, _ = loads_lenient(raw) if reason is None else (None, None)
        return raw, value, end
    m = _BARE_VALUE.match(text, pos, hi)
    raw = m.group().strip().rstrip("\"'")
    return (raw or None), None, m.end()


def _fits(value: Any, schema: Any) -> bool:
    """The value is of a type the parameter's schema allows (and in its enum, if it has one)."""
    types = schema_types(schema)
    if isinstance(schema, dict) and isinstance(schema.get("enum"), list) and value not in schema["enum"]:
        return False
    if not types:
        return True
    kinds = {bool: "boolean", str: "string", dict: "object", list: "array", type(None): "null"}
    kind = kinds.get(type(value)) or ("integer" if isinstance(value, int) else "number")
    return kind in types or (kind == "integer" and "number" in types)


def _delimiter(text: str, at: int, end: int, lo: int, hi: int) -> tuple[int, bool] | None:
    """How the parameter at [at, end) is set, if it is: (where its value starts, strong). Strong: `key=`,
    `"key":`, `key ->`, `--key`, a tag or an attribute; weak: a bare `key:`, `key|`, `:key` or `@key`,
    which prose also writes."""
    after = end + 1 if end < hi and text[end] in "\"'" else end
    pos = after
    while pos < hi and text[pos] in " \t":
        pos += 1
    ch = text[pos] if pos < hi else ""
    if text.startswith("->", pos, hi) or ch == "→":
        return pos + (2 if ch == "-" else 1), True
    if ch in _PARAM_AFTER:
        return pos + 1, ch in "=>" or (ch == ":" and after > end)
    if text[max(lo, at - 2):at] in ('="', "='") or (at > lo and text[at - 1] == "<"):
        gt = text.find(">", pos, min(hi, pos + 120))  # `name="city" ...>Paris<` or `<city ...>Paris<`
        return (gt + 1, True) if gt >= 0 else None
    if text[max(lo, at - 2):at] == "--":
        return pos, True  # a command-line flag: `--location Paris`
    if at > lo and text[at - 1] in ":@" and (at - 1 == lo or text[at - 2] in " \t\n(["):
        return pos, False  # `:location "Paris"`, `@location Paris`
    return None


def _params(text: str, lo: int, hi: int, schema: Mapping[str, Any]) -> list[tuple[int, int, str, str, Any, bool]]:
    """Structured parameter occurrences in [lo, hi): (start, value end, key, raw value, typed value, strong)."""
    found = []
    for key, prop in schema.items():
        at = text.find(key, lo, hi)
        while at >= 0:
            end = at + len(key)
            flag = text[max(lo, at - 2):at] == "--" and (at - 2 <= lo or not _WORD.match(text, at - 3))
            whole = (flag or at == 0 or not _WORD.match(text, at - 1)) and (
                end >= len(text) or not _WORD.match(text, end))
            setting = _delimiter(text, at, end, lo, hi) if whole else None
            if setting is not None:
                raw, decoded, vend = _value(text, setting[0], hi)
                if raw is not None and raw.strip().lower() not in _TYPE_WORDS:
                    value = decoded if decoded is not None else typed_value(raw, prop)
                    found.append((at, vend, key, raw, value, setting[1]))
            at = text.find(key, end, hi)
    return sorted(found)


def _json_after(text: str, end: int, hi: int) -> tuple[Any, int] | None:
    """The JSON object just after the name (within a few characters, on its line): (its value, or None
    when it does not parse; its end)."""
    brace = text.find("{", end, min(hi, end + 40))
    if brace < 0 or "\n" in text[end:brace].strip("\n"):
        return None
    stop, reason = json_extent(text, brace, hi)
    value, _ = loads_lenient(text[brace:stop]) if reason is None else (None, None)
    return value, stop


def attempts(text: str, lo: int, hi: int, tools: Mapping[str, Any], budget: int) -> tuple[list[Found], int]:
    """Call attempts in no known syntax in the answer text [lo, hi), left to right, never overlapping,
    and how many names were looked around (at most `budget`: the scanner's MAX_READS; past it the rest
    is left as prose, since a name alone is no evidence of a call)."""
    names = _names(text, lo, hi, tools)
    out: list[Found] = []
    floor, used = lo, 0
    for i, (at, end, name) in enumerate(names):
        if at < floor:
            continue
        if used >= budget:
            break
        schema = tools.get(name)
        props = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(props, dict) or not props:
            continue  # a tool without parameters: its name alone is no evidence of a call
        if _scalar_key(text, end, hi) or _DEFINITION.search(text, max(lo, at - 12), at):
            continue  # `"is_prime": false` is a key of some data; `def get_weather(location):` defines it
        ceiling = min(hi, end + WINDOW, names[i + 1][0] if i + 1 < len(names) else hi)
        blank = text.find("\n\n", end, ceiling)  # a paragraph break ends the setting
        ceiling = blank if blank >= 0 else ceiling
        back = max(floor, text.rfind("\n", max(floor, at - WINDOW), at) + 1)  # the line the name is on
        used += 1
        obj = _json_after(text, end, ceiling)
        if obj is not None and isinstance(obj[0], dict) and not set(obj[0]) <= set(props):
            continue  # `get_current_time: {"timezone": ..., "datetime": ...}`: data of the tool (a result), no call
        found = _params(text, end, ceiling, props)
        sentence = _in_sentence(text, at, lo)
        structured = _name_structured(text, at, end, lo, hi, sentence)
        if not found or not (structured or (any(f[5] for f in found) and not sentence)):
            continue
        if _inline_code(text, at, lo):
            continue  # checked last: it looks back along the line
        start = min(at, found[0][0])
        stop = max([end] + [f[1] for f in found])
        eol = text.find("\n", stop, ceiling)
        eol = eol if eol >= 0 else ceiling
        if sentence and _WORDS.search(text, stop, eol):
            continue  # "I called get_weather(location="Paris") and it is sunny": a sentence about a call
        # The block's own markup around it (`<invoke tool="...` up to the line's end) is part of the attempt,
        # unless a sentence shares the line.
        line = text.rfind("\n", back, start) + 1 or back
        if not _SENTENCE.search(text, max(line, back), start):
            start = max(line, back)
        if not _SENTENCE.search(text, stop, eol):
            stop = eol
        if obj is not None and isinstance(obj[0], dict) and obj[0]:  # its keys are all parameters
            args, stop = obj[0], max(stop, obj[1])
        else:
            args = _unambiguous(found, schema)
        calls = [make_call(name, args, text[start:stop])] if args is not None else []
        keys = ", ".join(dict.fromkeys(f[2] for f in found))
        out.append(Found(start, stop, calls, f"a call of {name} ({keys}) in a syntax no family knows"))
        floor = stop
    return out, used


def _unambiguous(found: list[tuple[int, int, str, str, Any, bool]], schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The arguments, when each parameter has one value, of its schema's type, and every required one is there."""
    props = schema.get("properties") or {}
    args: dict[str, Any] = {}
    for _, _, key, _, value, _ in found:
        if key in args and args[key] != value:
            return None
        if not _fits(value, props.get(key)):
            return None
        args[key] = value
    required = schema.get("required") or []
    return args if all(k in args for k in required) else None
