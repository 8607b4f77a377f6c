"""`constrained`: the tools listed in the prompt (as `default` lists them), and the server made to
hold the reply to a JSON Schema that admits exactly the offered calls or a plain answer.

The schema goes as OpenAI `response_format: {"type": "json_schema", "json_schema": {"name",
"schema"}}`, which llama.cpp's server, vLLM and LM Studio enforce by constrained decoding.
Ollama's OpenAI endpoint hands that schema on as `format` to its native chat API (ollama/ollama,
openai/openai.go, `FromChatRequest`), so the one request serves every server evalkit talks to.

Each call is `{"name": <const>, "arguments": <that tool's own parameter schema>}`, an `anyOf`
over the offered tools; every request admits several calls, as `native` requests do (evalkit
never sets `parallel_tool_calls` to false). No `tools` field is sent; tool results go back as user
turns, as in `default`, and the model's earlier turns as the JSON it wrote.

The envelope around the calls decides what a model does with the freedom left to it: the naive
one ({"tool_calls": [...]} or {"answer": "..."}) took malformed calls to zero on the bundled 0.5B
and made it answer instead of calling (issue 22). ENVELOPES is the one table of designs, each a
variant (`constrained+naive`); `constrained` alone is DEFAULT_ENVELOPE, the design that measured
best (docs/constrained.md has the numbers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

from ..schema import ToolCall
from .base import ParsedReply, call_from_wire, load_json, prompt_history
from .default import FORMAT as DEFAULT
from .default import tool_array

SCHEMA_NAME = "tool_reply"

Calls = list[dict[str, Any]]  # [{"name", "arguments"}], as the reply holds them


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    """A closed object whose every property is required, in this order (llama.cpp's grammar writes
    required properties in the order given: what comes first is what the model decides first)."""
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _calls(item: dict[str, Any], min_items: int) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": min_items}


ANSWER = {"type": "string"}


@dataclass(frozen=True)
class Envelope:
    """One way to wrap the calls: its reply schema around a schema of one call, and how it
    writes calls and an answer (the prompt's examples and the agent history use the same)."""

    name: str
    idea: str  # what the design tries, in a sentence (as docs/constrained.md tells it)
    wrap: Callable[[dict[str, Any]], dict[str, Any]]  # schema of one call -> schema of the reply
    render: Callable[[Calls, str], dict[str, Any]]  # calls (may be none) and text -> a reply
    note: str = ""  # an extra line of instructions, when the design needs one

    @cached_property
    def reader(self) -> Any:
        """A validator of the envelope alone: any object where a call goes (scoring judges the
        calls themselves, as it does for every format)."""
        import jsonschema  # here: its import would delay a run's first request

        return jsonschema.Draft202012Validator(self.wrap({"type": "object"}))


ENVELOPES: dict[str, Envelope] = {
    e.name: e
    for e in (
        Envelope(
            "naive", "calls or an answer, told apart by the first key (the design tried by hand in issue 22)",
            lambda call: {"anyOf": [_object({"tool_calls": _calls(call, 1)}), _object({"answer": ANSWER})]},
            lambda calls, text: {"tool_calls": calls} if calls else {"answer": text},
        ),
        Envelope(
            "choice", 'the model first chooses "call" or "answer" by an enum key, then writes what it chose',
            lambda call: {"anyOf": [_object({"action": {"const": "call"}, "tool_calls": _calls(call, 1)}),
                                    _object({"action": {"const": "answer"}, "answer": ANSWER})]},
            lambda calls, text: {"action": "call", "tool_calls": calls} if calls else {"action": "answer", "answer": text},
            note='First choose the "action": "call" to call tools, or "answer" to reply in text.',
        ),
        Envelope(
            "calls_first", "one object whose call list comes first: answering means closing an empty list",
            lambda call: _object({"tool_calls": _calls(call, 0), "answer": ANSWER}),
            lambda calls, text: {"tool_calls": calls, "answer": text},
        ),
    )
}
DEFAULT_ENVELOPE = "choice"


def call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """One call to one of the offered tools, with that tool's own parameter schema."""
    branches = [
        _object({"name": {"const": t["function"]["name"]},
                 "arguments": t["function"].get("parameters") or {"type": "object", "properties": {}}})
        for t in tools
    ]
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


SYSTEM_PROMPT = """You are a tool-calling AI. You reply with one JSON object in this EXACT format.
To call tools: {call_shape}
To reply in text: {answer_shape}
{note}
AVAILABLE TOOLS:
{tools}

RULES:
- Only use tools from AVAILABLE TOOLS
- Include all required arguments
- One entry in "tool_calls" per tool call
- Reply in text only if no matching tools exist, or to give the user the results of your tool calls

Examples:
"Check Paris weather"
{example_one}

"Send email to John about meeting and open browser"
{example_two}

"Hello, who are you?"
{example_answer}"""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


class ConstrainedFormat:
    # The probe check a server must pass before a run sends it these requests (session preflight).
    needs_check = "json_schema"

    def __init__(self, envelope: Envelope):
        self.envelope = envelope
        self.name = f"constrained+{envelope.name}"

    def system_prompt(self, tools: list[dict[str, Any]]) -> str:
        render = self.envelope.render
        return SYSTEM_PROMPT.format(
            call_shape=_dumps(render([_call("tool_name", {"param1": "value1"})], "")),
            answer_shape=_dumps(render([], "your reply")),
            note=f"{self.envelope.note}\n" if self.envelope.note else "",
            tools=tool_array(tools),
            example_one=_dumps(render([_call("get_weather", {"location": "Paris"})], "")),
            example_two=_dumps(render([_call("send_email", {"to": "John", "subject": "meeting"}),
                                       _call("open_browser", {})], "")),
            example_answer=_dumps(render([], "I am an assistant that can use tools for you.")),
        )

    def reply_schema(self, tools: list[dict[str, Any]]) -> dict[str, Any]:
        return self.envelope.wrap(call_schema(tools))

    def build_request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        if not tools:  # nothing to call (the tools-free baseline of --tool-cost): no prompt, no schema
            return {"messages": prompt_history(messages, self._render_calls, None)}
        return {
            "messages": prompt_history(messages, self._render_calls, self.system_prompt(tools)),
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": SCHEMA_NAME, "schema": self.reply_schema(tools)}},
        }

    def _render_calls(self, text: str, calls: list[ToolCall]) -> str:
        wire = [_call(c.name or "", c.arguments if c.arguments is not None else {}) for c in calls]
        return _dumps(self.envelope.render(wire, text))

    def parse_reply(self, content: str | None, tool_calls: list[dict[str, Any]]) -> ParsedReply:
        text = (content or "").strip()
        # A server that parsed calls itself hands them back as tool_calls (none should: no tools are sent).
        server_calls = [call_from_wire(c.get("name"), c.get("arguments"), c.get("id")) for c in tool_calls]
        if not text.startswith(("{", "[")):
            # Not the schema's JSON at all: the server did not constrain. Prose is an answer, or
            # an attempt in some call syntax that scoring flags, as for any format.
            return ParsedReply(calls=server_calls, text=text)
        value, error = load_json(text, "the constrained reply")
        if error is None:
            error = self._off_envelope(value)
        if error is not None:  # cut off by max_tokens, or a server that let the model stray
            return ParsedReply(calls=server_calls + [ToolCall(raw_arguments=text[:1000], parse_error=error)],
                               syntax="json")
        calls = [call_from_wire(item.get("name"), item.get("arguments", {})) for item in value.get("tool_calls") or []]
        answer = value.get("answer") or ""
        return ParsedReply(calls=server_calls + calls, text=answer.strip(), syntax="json" if calls else None)

    def _off_envelope(self, value: Any) -> str | None:
        import jsonschema

        problem = jsonschema.exceptions.best_match(self.envelope.reader.iter_errors(value))
        if problem is None:
            return None
        where = "/".join(str(p) for p in problem.absolute_path) or "the reply"
        return f"the reply is JSON outside the {self.envelope.name} envelope ({where}: {problem.message[:200]})"

    def assistant_message(self, content: str | None, calls: list[ToolCall]) -> dict[str, Any]:
        return {"role": "assistant", "content": self._render_calls((content or "").strip(), calls)}

    def tool_messages(self, calls: list[ToolCall], results: list[str]) -> list[dict[str, Any]]:
        return DEFAULT.tool_messages(calls, results)  # results as user turns, word for word as `default`


VARIANTS = {name: ConstrainedFormat(envelope) for name, envelope in ENVELOPES.items()}
FORMAT = VARIANTS[DEFAULT_ENVELOPE]
