"""`native`: tools in the request's `tools` field; the server parses the model's own call syntax.

Variants by `tool_choice` (`--tool-choice`, or `--format native+required`): `auto` is the plain
`native`, which sends no `tool_choice` (auto is the OpenAI default whenever tools are given, and
requests stay as earlier runs sent them); `required` and `none` send it, so "native + required"
is measured as an option of its own.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import EvalkitError
from ..schema import ToolCall
from .base import ParsedReply, call_from_wire


TOOL_CHOICES = ("auto", "required", "none")


class NativeFormat:
    def __init__(self, tool_choice: str = "auto"):
        self.tool_choice = tool_choice
        self.name = "native" if tool_choice == "auto" else f"native+{tool_choice}"

    def build_request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        request: dict[str, Any] = {"messages": messages}
        if tools:
            request["tools"] = tools
            if self.tool_choice != "auto":
                request["tool_choice"] = self.tool_choice
        return request

    def parse_reply(self, content: str | None, tool_calls: list[dict[str, Any]]) -> ParsedReply:
        calls = [call_from_wire(c.get("name"), c.get("arguments"), c.get("id")) for c in tool_calls]
        return ParsedReply(calls=calls, text=content or "", server_parses=True)

    def assistant_message(self, content: str | None, calls: list[ToolCall]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if calls:
            message["tool_calls"] = [
                {
                    "id": c.id or f"call_{i}",
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.raw_arguments or json.dumps(c.arguments or {})},
                }
                for i, c in enumerate(calls)
            ]
        return message

    def tool_messages(self, calls: list[ToolCall], results: list[str]) -> list[dict[str, Any]]:
        return [
            {"role": "tool", "tool_call_id": c.id or f"call_{i}", "name": c.name, "content": r}
            for i, (c, r) in enumerate(zip(calls, results))
        ]


FORMAT = NativeFormat()
VARIANTS = {choice: FORMAT if choice == "auto" else NativeFormat(choice) for choice in TOOL_CHOICES}


def with_tool_choices(formats: list[str], choices: list[str]) -> list[str]:
    """--format and --tool-choice together: each `native` becomes one format per tool choice
    (`--tool-choice auto --tool-choice required`: native and native+required), in place."""
    if not choices:
        return formats
    if "native" not in formats:
        raise EvalkitError("--tool-choice applies to --format native, which this run does not use")
    out: list[str] = []
    for name in formats:
        out += [VARIANTS[c].name for c in dict.fromkeys(choices)] if name == "native" else [name]
    return out
