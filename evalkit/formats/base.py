"""What every tool-call format provides: build the request, parse the reply, render history."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .. import limits
from ..schema import ToolCall


@dataclass
class ParsedReply:
    calls: list[ToolCall] = field(default_factory=list)
    text: str = ""  # the reply's prose once recognised call blocks are taken out
    syntax: str | None = None  # the call-syntax family (evalkit/callsyntax) the format read calls in, if any
    # The server was asked to parse the model's calls (native): a clean call in the model's own
    # syntax left in `text` is one the server's parser lost.
    server_parses: bool = False


class ToolFormat(Protocol):
    name: str

    def build_request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        """The `messages` (and `tools`, for native) of a chat-completions request."""

    def parse_reply(self, content: str | None, tool_calls: list[dict[str, Any]]) -> ParsedReply:
        """Calls from the reply; `tool_calls` are the server's parsed calls `{id, name, arguments}`."""

    def assistant_message(self, content: str | None, calls: list[ToolCall]) -> dict[str, Any]:
        """The assistant turn to append to the history in an agent case."""

    def tool_messages(self, calls: list[ToolCall], results: list[str]) -> list[dict[str, Any]]:
        """The messages that carry tool results back to the model."""


@dataclass
class ParseLimits:
    """Bounds on what the reply parsers read, so that parsing stays linear in the reply's length
    and every value they return can be stored and scored. Each is a setting with a sane default;
    a reply that passes one becomes a call with `parse_error` naming the limit."""

    max_chars: int = limits.MAX_REPLY_CHARS  # characters of one reply (or one call's arguments) the parsers read
    max_depth: int = limits.MAX_ARG_DEPTH  # nesting of an argument value; pydantic serialises at most ~255 levels
    max_int_bits: int = limits.MAX_INT_BITS  # beyond a double's range an integer cannot be compared as a number


LIMITS = ParseLimits()
"""The limits in force (evalkit.formats.base.LIMITS); a run's settings may replace its fields."""



def nested_too_deep() -> str:
    return f"nested deeper than the parser limit of {LIMITS.max_depth} levels (max_depth)"

_SCALARS = (bool, float, type(None))
# A `\ud800` escape (JSON) or literal (Python) decodes to a lone surrogate, which no UTF-8 file,
# cache or terminal can hold: writing the sample failed ("evalkit failed on this sample").
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_KEYS = (str, int, float, bool, type(None))  # what JSON can hold as an object key (as a string)


LONE_SURROGATE = "invalid unicode escape (a lone surrogate)"


def over_length(what: str, text: str) -> str | None:
    """The parse error for text longer than the parser reads, or None."""
    if len(text) > LIMITS.max_chars:
        return f"{what}: {len(text):,} characters, over the parser limit of {LIMITS.max_chars:,} (max_chars)"
    return None


def load_json(text: str, what: str, be: str = "is") -> tuple[Any, str | None]:
    """`json.loads` within the limits -> (value, parse_error naming `what`). Never raises."""
    too_long = over_length(what, text)
    if too_long:
        return None, too_long
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"{what} {be} not valid JSON: {exc.msg} at char {exc.pos}"
    except RecursionError:
        return None, f"{what}: {nested_too_deep()}"
    except ValueError as exc:  # an integer of more than 4,300 digits
        return None, f"{what} {be} not valid JSON: {str(exc).split(';')[0]}"


def value_problem(value: Any) -> str | None:
    """What in a parsed argument value cannot be stored and scored as JSON, or None. Iterative and
    linear: a value from `json.loads` or `ast.literal_eval` of any shape is checked without
    recursion (tuples and sets are allowed: they become lists)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                return LONE_SURROGATE
            continue
        if isinstance(item, _SCALARS):
            continue
        if isinstance(item, int):
            if item.bit_length() > LIMITS.max_int_bits:
                return f"an integer of {item.bit_length():,} bits, over the parser limit of {LIMITS.max_int_bits} (max_int_bits)"
            continue
        if depth > LIMITS.max_depth:
            return nested_too_deep()
        if isinstance(item, dict):
            for key in item:
                if isinstance(key, str) and _LONE_SURROGATE.search(key):
                    return LONE_SURROGATE
                if not isinstance(key, _KEYS):
                    return f"an object key of type {type(key).__name__}, which JSON cannot hold"
                if isinstance(key, int) and not isinstance(key, bool) and key.bit_length() > LIMITS.max_int_bits:
                    return f"an integer object key of {key.bit_length():,} bits, over the parser limit of {LIMITS.max_int_bits} (max_int_bits)"
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((v, depth + 1) for v in item)
        else:
            return f"a value of type {type(item).__name__}, which JSON cannot hold"
    return None


def parse_arguments(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Arguments as sent on the wire -> (object, parse_error). Never raises; linear in len(raw)."""
    if isinstance(raw, dict):
        problem = value_problem(raw)
        return (None, f"arguments: {problem}") if problem else (raw, None)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None  # some servers send "" for a call without arguments
    if not isinstance(raw, str):
        return None, f"arguments are {type(raw).__name__}, not a JSON object"
    value, error = load_json(raw, "arguments", "are")
    if error:
        return None, error
    if not isinstance(value, dict):
        return None, f"arguments are a JSON {type(value).__name__}, not an object"
    problem = value_problem(value)
    return (None, f"arguments: {problem}") if problem else (value, None)


def call_from_wire(name: Any, raw_arguments: Any, call_id: str | None = None) -> ToolCall:
    arguments, error = parse_arguments(raw_arguments)
    raw = raw_arguments if isinstance(raw_arguments, str) or raw_arguments is None else _dumps(raw_arguments)
    if not isinstance(name, str) or not name:
        error = error or "call has no function name"
        name = None
    return ToolCall(name=name, arguments=arguments, raw_arguments=raw, parse_error=error, id=call_id)


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"<arguments JSON cannot hold: {type(exc).__name__}>"


def result_text(result: Any) -> str:
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)


def prompt_history(
    messages: list[dict[str, Any]],
    render_calls: Callable[[str, list[ToolCall]], str],
    system_prompt: str | None,
    separator: str = "\n\n",
) -> list[dict[str, Any]]:
    """History for a prompt format (no `tools` field), the way LM Studio's fallback does it:
    `tool` results become `user` turns, assistant tool calls become the format's call text, and
    the format's system prompt goes first (ahead of the case's own system message)."""
    converted: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            converted.append({"role": "user", "content": message.get("content") or ""})
        elif role == "assistant" and message.get("tool_calls"):
            calls = [call_from_wire(tc["function"]["name"], tc["function"].get("arguments")) for tc in message["tool_calls"]]
            converted.append({"role": "assistant", "content": render_calls(message.get("content") or "", calls)})
        else:
            converted.append({k: v for k, v in message.items() if k in ("role", "content")})
    if system_prompt:
        if converted and converted[0]["role"] == "system":
            converted[0] = {"role": "system", "content": f"{system_prompt}{separator}{converted[0]['content']}"}
        else:
            converted.insert(0, {"role": "system", "content": system_prompt})
    return converted
