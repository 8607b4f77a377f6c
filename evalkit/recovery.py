"""Recognising tool-call syntax left in reply text, and recovering the calls leniently.

Strict scoring uses `find_call_syntax` to tell a malformed attempt from a plain answer; the
lenient `recover_calls` feeds `intent_correct` ("right call, lost by the format or the server").
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from .formats.base import value_problem
from .schema import ToolCall

# Families' opening markers; any of them in the content means the model tried to call a tool.
MARKERS = {
    "qwen": re.compile(r"<tool_call>"),
    "lmstudio": re.compile(r"\[TOOL_REQUEST\]"),
    "llama": re.compile(r"<\|python_tag\|>"),
    "mistral": re.compile(r"\[TOOL_CALLS\]"),
    "function_tag": re.compile(r"<function="),
}

_BLOCKS = [
    re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S),
    re.compile(r"\[TOOL_REQUEST\]\s*(.*?)\s*(?:\[END_TOOL_REQUEST\]|$)", re.S),
    re.compile(r"<\|python_tag\|>\s*(.*?)\s*(?:<\|eom_id\|>|<\|eot_id\|>|$)", re.S),
    re.compile(r"\[TOOL_CALLS\]\s*(.*?)\s*(?:</s>|$)", re.S),
]
_FUNCTION_TAG = re.compile(r"<function=([\w.\-]+)>\s*(.*?)\s*(?:</function>|$)", re.S)
_FENCE = re.compile(r"```(?:json|JSON|tool_call|python)?\s*\n?(.*?)```", re.S)
_NAME_KEY = re.compile(r'["\']name["\']\s*:')
_ARG_KEY = re.compile(r'["\'](arguments|parameters|args)["\']\s*:')


def find_call_syntax(text: str | None, tool_names: set[str] | None = None) -> list[str]:
    """Which call syntaxes appear in `text` (empty list: none, the text is a plain answer)."""
    if not text:
        return []
    found = [family for family, pattern in MARKERS.items() if pattern.search(text)]
    for value in _json_objects(text):
        candidates = value if isinstance(value, list) else [value]
        if any(isinstance(c, dict) and _looks_like_call(c, tool_names) for c in candidates):
            found.append("json")
            break
    else:
        # A JSON-ish call that does not even parse: a "name" key next to an arguments key.
        if _NAME_KEY.search(text) and _ARG_KEY.search(text) and "{" in text:
            found.append("json")
    if tool_names and "pythonic" not in found and _pythonic_calls(text, tool_names):
        found.append("pythonic")
    return found


def _looks_like_call(obj: dict[str, Any], tool_names: set[str] | None) -> bool:
    inner = obj["function"] if isinstance(obj.get("function"), dict) else obj
    name = inner.get("name")
    if not isinstance(name, str):
        return False
    has_args = any(k in inner for k in ("arguments", "parameters", "args"))
    return has_args or bool(tool_names and name in tool_names)


_SPACE = re.compile(r"[ \t\r\n]*")
_MAY_FOLLOW = {"{": set('"}'), "[": set('"{[]-0123456789tfnNI')}  # what JSON allows after an opener


def _json_objects(text: str) -> list[Any]:
    """Every top-level JSON value that decodes somewhere in the text (objects and arrays).

    Decoding is tried at every `{` and `[` that JSON could follow. A failed try costs as much as
    the text before it (the JSON error counts lines up to its position), so failed tries draw on
    a budget linear in the text: a reply of many openers cannot take minutes.
    """
    decoder = json.JSONDecoder()
    values: list[Any] = []
    budget = 64 * len(text) + (1 << 20)
    i = 0
    while i < len(text) and budget > 0:
        if text[i] in "{[":
            after = _SPACE.match(text, i + 1).end()  # type: ignore[union-attr]
            if after >= len(text) or text[after] not in _MAY_FOLLOW[text[i]]:
                i += 1  # `[TOOL_REQUEST]`, `[f(x=1)]`: not JSON, no need to try
                continue
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError as exc:
                budget -= exc.pos
                i += 1
                continue
            except (ValueError, RecursionError):  # a 5,000-digit integer; nesting past the stack
                budget -= len(text)
                i += 1
                continue
            values.append(value)
            i = end
        else:
            i += 1
    return values


def loads_lenient(raw: str) -> Any:
    """JSON, else a Python literal (single quotes, True/None), else JSON minus trailing commas.

    Returns only values JSON can hold; anything else raises ValueError."""
    raw = raw.strip()
    try:
        return _checked(json.loads(raw))
    except (ValueError, RecursionError):
        pass
    try:
        return _checked(ast.literal_eval(raw))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return _checked(json.loads(re.sub(r",\s*([}\]])", r"\1", raw)))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _checked(value: Any) -> Any:
    problem = value_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _to_calls(value: Any) -> list[ToolCall]:
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("function"), dict):  # OpenAI-shaped {"type": "function", "function": {...}}
            item = item["function"]
        name = item.get("name")
        args = next((item[k] for k in ("arguments", "parameters", "args") if k in item), {})
        if isinstance(args, str):
            try:
                args = loads_lenient(args)
            except Exception:  # noqa: BLE001 - anything unparseable stays unrecovered
                continue
        if isinstance(name, str) and isinstance(args, dict):
            calls.append(ToolCall(name=name, arguments=args, raw_arguments=json.dumps(args, ensure_ascii=False)))
    return calls


def _pythonic_calls(text: str, tool_names: set[str] | None = None) -> list[ToolCall]:
    from .formats.pythonic import parse_pythonic  # local import: formats import this module

    stripped = text.strip()
    start, end = stripped.find("["), stripped.rfind("]")
    if start < 0 or end <= start:
        return []
    calls, error = parse_pythonic(stripped[start : end + 1])
    if error or not calls:
        return []
    if tool_names is not None and not all(c.name in tool_names for c in calls):
        return []
    return calls


def recover_calls(text: str | None, tool_names: set[str] | None = None) -> list[ToolCall]:
    """Lenient recovery of calls from any family's syntax, fenced or bare JSON, or pythonic lists."""
    if not text:
        return []
    calls: list[ToolCall] = []
    for pattern in _BLOCKS:
        for body in pattern.findall(text):
            calls += _recover_body(body)
    for name, body in _FUNCTION_TAG.findall(text):
        try:
            args = loads_lenient(body) if body.strip() else {}
        except Exception:  # noqa: BLE001
            continue
        if isinstance(args, dict):
            calls.append(ToolCall(name=name, arguments=args, raw_arguments=body))
    if calls:
        return calls
    for body in _FENCE.findall(text):
        calls += _recover_body(body) or _pythonic_calls(body, tool_names)
    if calls:
        return calls
    for value in _json_objects(text):
        calls += [c for c in _to_calls(value) if tool_names is None or c.name in tool_names or _ARG_KEY.search(text)]
    if calls:
        return calls
    return _pythonic_calls(text, tool_names)


def _recover_body(body: str) -> list[ToolCall]:
    body = body.strip()
    if not body:
        return []
    # Llama's python_tag may carry `fn.call(x=1)` style; Mistral's `name[ARGS]{...}`.
    if "[ARGS]" in body:
        name, _, args = body.partition("[ARGS]")
        try:
            parsed = loads_lenient(args)
        except Exception:  # noqa: BLE001
            return []
        return [ToolCall(name=name.strip(), arguments=parsed, raw_arguments=args)] if isinstance(parsed, dict) else []
    try:
        return _to_calls(loads_lenient(body))
    except Exception:  # noqa: BLE001
        values = _json_objects(body)
        return [c for v in values for c in _to_calls(v)]


def strip_blocks(text: str | None) -> str:
    """The text with every recognised call block removed (what is left is the model's prose)."""
    if not text:
        return ""
    for pattern in _BLOCKS:
        text = pattern.sub("", text)
    return _FUNCTION_TAG.sub("", text).strip()
