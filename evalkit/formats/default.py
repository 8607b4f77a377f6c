"""`default`: LM Studio's fallback tool use, done on the client side.

No `tools` field is sent; a system prompt lists the tools as JSON and asks for
`[TOOL_REQUEST]{...}[END_TOOL_REQUEST]` blocks, and `tool` results go back as `user` messages,
exactly as LM Studio does for models without a native tool template.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..schema import ToolCall
from .base import ParsedReply, call_from_wire, load_json, over_length, prompt_history

# The prompt LM Studio's docs show (`lms log stream`), kept word for word.
SYSTEM_PROMPT = """You are a tool-calling AI. You can request calls to available tools with this EXACT format:
[TOOL_REQUEST]{{"name": "tool_name", "arguments": {{"param1": "value1"}}}}[END_TOOL_REQUEST]

AVAILABLE TOOLS:
{tools}

RULES:
- Only use tools from AVAILABLE TOOLS
- Include all required arguments
- Use one [TOOL_REQUEST] block per tool
- Never use [TOOL_RESULT]
- If you decide to call one or more tools, there should be no other text in your message

Examples:
"Check Paris weather"
[TOOL_REQUEST]{{"name": "get_weather", "arguments": {{"location": "Paris"}}}}[END_TOOL_REQUEST]

"Send email to John about meeting and open browser"
[TOOL_REQUEST]{{"name": "send_email", "arguments": {{"to": "John", "subject": "meeting"}}}}[END_TOOL_REQUEST]
[TOOL_REQUEST]{{"name": "open_browser", "arguments": {{}}}}[END_TOOL_REQUEST]

Respond conversationally if no matching tools exist."""

# An unterminated block (the model stopped early) still counts as an attempt. Linear: the lazy
# body stops at the first end marker, next block or the end, and blocks do not overlap.
BLOCK = re.compile(r"\[TOOL_REQUEST\](.*?)(\[END_TOOL_REQUEST\]|(?=\[TOOL_REQUEST\])|$)", re.S)


def tool_array(tools: list[dict[str, Any]]) -> str:
    """The tools as LM Studio lists them in its prompt (also what `constrained` lists)."""
    return json.dumps({"type": "toolArray", "tools": tools}, indent=2, ensure_ascii=False)


def render_system_prompt(tools: list[dict[str, Any]]) -> str:
    return SYSTEM_PROMPT.format(tools=tool_array(tools))


def request_block(call: ToolCall) -> str:
    payload = {"name": call.name, "arguments": call.arguments if call.arguments is not None else {}}
    return f"[TOOL_REQUEST]{json.dumps(payload, ensure_ascii=False)}[END_TOOL_REQUEST]"


def parse_block(body: str) -> ToolCall:
    """One block's body -> a call; never raises (anything unreadable is a call with parse_error)."""
    payload, error = load_json(body, "[TOOL_REQUEST] body")
    if error:
        return ToolCall(raw_arguments=body.strip(), parse_error=error)
    if not isinstance(payload, dict):
        return ToolCall(raw_arguments=body.strip(), parse_error="[TOOL_REQUEST] body is not a JSON object")
    return call_from_wire(payload.get("name"), payload.get("arguments", {}))


class DefaultFormat:
    name = "default"

    def build_request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        prompt = render_system_prompt(tools) if tools else None
        return {"messages": prompt_history(messages, self._render_calls, prompt)}

    @staticmethod
    def _render_calls(text: str, calls: list[ToolCall]) -> str:
        return "\n".join(filter(None, [text, *(request_block(c) for c in calls)]))

    def parse_reply(self, content: str | None, tool_calls: list[dict[str, Any]]) -> ParsedReply:
        text = content or ""
        calls = []
        too_long = over_length("the reply", text) if "[TOOL_REQUEST]" in text else None
        if too_long:  # not read: a malformed attempt, whatever the blocks hold
            calls.append(ToolCall(raw_arguments=text[:1000], parse_error=too_long))
            text = ""
        blocks = BLOCK.findall(text)
        for body, end in blocks:
            call = parse_block(body)
            if not end and call.parse_error is None:
                # LM Studio only parses closed blocks; an open one (cut off, or the model forgot the
                # marker) reaches the user as text. Kept whole for the lenient intent verdict.
                call = ToolCall(raw_arguments=body.strip(), parse_error="[TOOL_REQUEST] block is never closed")
            calls.append(call)
        # A server that parsed the blocks itself (LM Studio with `tools`) hands them back as tool_calls.
        calls += [call_from_wire(c.get("name"), c.get("arguments"), c.get("id")) for c in tool_calls]
        return ParsedReply(calls=calls, text=BLOCK.sub("", text).strip(), syntax="lmstudio" if blocks or too_long else None)

    def assistant_message(self, content: str | None, calls: list[ToolCall]) -> dict[str, Any]:
        return {"role": "assistant", "content": self._render_calls((content or "").strip(), calls)}

    def tool_messages(self, calls: list[ToolCall], results: list[str]) -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": f"Result of {c.name}: {r}"} for c, r in zip(calls, results)
        ]


FORMAT = DefaultFormat()
