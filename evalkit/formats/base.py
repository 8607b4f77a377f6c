"""What every tool-call format provides: build the request, parse the reply, render history."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..schema import ToolCall


@dataclass
class ParsedReply:
    calls: list[ToolCall] = field(default_factory=list)
    text: str = ""  # the reply's prose once recognised call blocks are taken out


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


def parse_arguments(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Arguments as sent on the wire -> (object, parse_error). Never raises."""
    if isinstance(raw, dict):
        return raw, None
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None  # some servers send "" for a call without arguments
    if not isinstance(raw, str):
        return None, f"arguments are {type(raw).__name__}, not a JSON object"
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"arguments are not valid JSON: {exc.msg} at char {exc.pos}"
    if not isinstance(value, dict):
        return None, f"arguments are a JSON {type(value).__name__}, not an object"
    return value, None


def call_from_wire(name: Any, raw_arguments: Any, call_id: str | None = None) -> ToolCall:
    arguments, error = parse_arguments(raw_arguments)
    raw = raw_arguments if isinstance(raw_arguments, str) or raw_arguments is None else json.dumps(raw_arguments)
    if not isinstance(name, str) or not name:
        error = error or "call has no function name"
        name = None
    return ToolCall(name=name, arguments=arguments, raw_arguments=raw, parse_error=error, id=call_id)


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
