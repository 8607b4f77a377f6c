"""`pythonic`: BFCL's prompt mode. The model answers `[f(a=1), g(b="x")]`.

Parsed with Python's `ast`, values taken with `ast.literal_eval`: literals only, never `eval`.
Never raises, and linear in the reply's length: anything unreadable (nesting past the parser's
stack, a value JSON cannot hold, a reply over the limit) is a call with `parse_error`.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from ..schema import ToolCall
from .base import ParsedReply, call_from_wire, over_length, prompt_history, value_problem

# BFCL's default prompt-mode system prompt (bfcl_eval/constants/default_prompts.py).
SYSTEM_PROMPT = """You are an expert in composing functions. You are given a question and a set of possible functions. Based on the question, you will need to make one or more function/tool calls to achieve the purpose.
If none of the functions can be used, point it out. If the given question lacks the parameters required by the function, also point it out.
You should only return the function calls in your response.

If you decide to invoke any of the function(s), you MUST put it in the format of [func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]
You SHOULD NOT include any other text in the response.

At each turn, you should try your best to complete the tasks requested by the user within the current turn. Continue to output functions to call until you have fulfilled the user's request to the best of your ability. Once you have no more functions to call, the system will consider the current turn complete and proceed to the next turn or task.

Here is a list of functions in JSON format that you can invoke.
{functions}
"""

_FENCE = re.compile(r"^```(?:python|py|tool_code)?\s*\n?(.*?)\n?```$", re.S)
_BARE_CALL = re.compile(r"^[A-Za-z_][\w.]*\(.*\)$", re.S)  # `f(a=1)` without the list brackets


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


class _Segments:
    """Source text of AST nodes. `ast.get_source_segment` splits the whole source into lines on
    every call, which made a list of 8,000 calls take half a minute; this splits once."""

    def __init__(self, source: str):
        self.encoded = source.encode("utf-8")  # AST column offsets count UTF-8 bytes
        self.line_starts = [0]
        position = self.encoded.find(b"\n")
        while position >= 0:
            self.line_starts.append(position + 1)
            position = self.encoded.find(b"\n", position + 1)

    def __call__(self, node: ast.AST) -> str:
        start = self.line_starts[node.lineno - 1] + node.col_offset  # type: ignore[attr-defined]
        end = self.line_starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[attr-defined]
        return self.encoded[start:end].decode("utf-8", errors="replace")


def parse_pythonic(text: str) -> tuple[list[ToolCall], str | None]:
    """`[f(a=1), g(b='x')]` -> calls. Returns (calls, error); a call with a bad value carries its own parse_error."""
    too_long = over_length("the reply", text)
    if too_long:
        return [], too_long
    source = text.strip()
    fenced = _FENCE.match(source)
    if fenced:
        source = fenced.group(1).strip()
    if not source.startswith("["):
        source = f"[{source}]"  # BFCL accepts a bare `f(a=1)` too
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        return [], f"not a Python call list: {exc.msg}"
    except (RecursionError, MemoryError):  # `1+1+...` or `- - -1` nested past the parser's stack
        return [], "not a Python call list: nested too deeply for Python's parser"
    except ValueError as exc:  # e.g. a NUL character in the source
        return [], f"not a Python call list: {exc}"
    if not isinstance(tree.body, (ast.List, ast.Tuple)):
        return [], "not a list of calls"
    segment = _Segments(source)
    calls: list[ToolCall] = []
    for element in tree.body.elts:
        if not isinstance(element, ast.Call):
            return [], "list element is not a function call"
        name = _dotted_name(element.func)
        raw = segment(element)
        if name is None:
            calls.append(ToolCall(raw_arguments=raw, parse_error="call target is not a plain name"))
            continue
        if element.args:
            calls.append(ToolCall(name=name, raw_arguments=raw, parse_error="positional arguments; keywords expected"))
            continue
        arguments: dict[str, Any] = {}
        error = None
        for kw in element.keywords:
            if kw.arg is None:
                error = "**kwargs are not allowed"
                break
            try:
                value = ast.literal_eval(kw.value)
            except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
                # TypeError: an unhashable set member or dict key, `{[1]: 2}`
                error = f"argument {kw.arg!r} is not a literal: {segment(kw.value)[:200]}"
                break
            problem = value_problem(value)  # bytes, `...`, complex, an integer past the limit
            if problem:
                error = f"argument {kw.arg!r}: {problem}"
                break
            arguments[kw.arg] = value
        if error:
            calls.append(ToolCall(name=name, raw_arguments=raw, parse_error=error))
        else:
            calls.append(ToolCall(name=name, arguments=_jsonable(arguments), raw_arguments=raw))
    return calls, None


def _jsonable(value: Any) -> Any:
    """Tuples and sets become lists, as they would after a JSON round trip."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return value


def render_call(call: ToolCall) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in (call.arguments or {}).items())
    return f"{call.name}({args})"


def render_list(calls: list[ToolCall]) -> str:
    return f"[{', '.join(render_call(c) for c in calls)}]"


class PythonicFormat:
    name = "pythonic"

    def build_request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        functions = json.dumps([t["function"] for t in tools], indent=4, ensure_ascii=False)
        prompt = SYSTEM_PROMPT.format(functions=functions) if tools else None
        return {"messages": prompt_history(messages, lambda _text, calls: render_list(calls), prompt, "\n")}

    def parse_reply(self, content: str | None, tool_calls: list[dict[str, Any]]) -> ParsedReply:
        text = (content or "").strip()
        server_calls = [call_from_wire(c.get("name"), c.get("arguments"), c.get("id")) for c in tool_calls]
        if not (text.startswith(("[", "```")) or _BARE_CALL.match(text)) or "(" not in text:
            return ParsedReply(calls=server_calls, text=text)  # prose: an answer, or an attempt scoring will flag
        calls, error = parse_pythonic(text)
        if error:
            calls = [ToolCall(raw_arguments=text, parse_error=error)]
        return ParsedReply(calls=server_calls + calls, text="", syntax="pythonic")

    def assistant_message(self, content: str | None, calls: list[ToolCall]) -> dict[str, Any]:
        return {"role": "assistant", "content": render_list(calls) if calls else content or ""}

    def tool_messages(self, calls: list[ToolCall], results: list[str]) -> list[dict[str, Any]]:
        return [{"role": "user", "content": f"Result of {c.name}: {r}"} for c, r in zip(calls, results)]


FORMAT = PythonicFormat()
