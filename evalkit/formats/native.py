"""`native`: tools in the request's `tools` field; the server parses the model's own call syntax."""

from __future__ import annotations

import json
from typing import Any

from ..schema import ToolCall
from .base import ParsedReply, call_from_wire


class NativeFormat:
    name = "native"

    def build_request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        request: dict[str, Any] = {"messages": messages}
        if tools:
            request["tools"] = tools
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
