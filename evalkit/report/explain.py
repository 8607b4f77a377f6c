"""Why a sample failed and what it was asked, as text a person reads (for every renderer)."""

from __future__ import annotations

import json
from typing import Any

from .. import failures
from ..matchers import describe_value
from ..schema import Case, FailureKind, Sample

TEXT_LIMIT = 2000  # characters of a reply shown before it is cut


def failure_kind(sample: Sample) -> FailureKind:
    """The sample's failure kind; server errors are their own kind."""
    if sample.error is not None:
        return "error"
    return sample.failure_kind or "other"


def failure_detail(sample: Sample) -> str:
    """The specific part of the failure (e.g. "compare_data: num1=9.9, expected 9.11"), or ""."""
    if sample.error is not None:
        return sample.error
    return sample.failure_detail or ""


def describe_failure(kind: FailureKind | None, detail: str | None = None) -> str:
    """A failure with its kind in words: "wrong value: compare_data: num1=9.9, expected 9.11"."""
    if kind is None:
        return "-"
    label = failures.label(kind)
    return f"{label}: {detail}" if detail else label


def explain(sample: Sample) -> str:
    """Why the sample failed, in a person's words."""
    kind = failure_kind(sample)
    meaning = failures.meaning(kind)
    detail = failure_detail(sample)
    text = f"{meaning[0].upper()}{meaning[1:]}" + (f" ({detail})" if detail else "") + "."
    if kind not in ("malformed", "server_parse_lost", "error") and sample.malformed:
        text += " The reply also held a call attempt that could not be parsed."
    if kind in ("malformed", "server_parse_lost") and sample.intent_correct:
        text += " Read leniently, the intended call was right, so it counts for intent accuracy."
    if sample.hallucinated_tool and kind != "hallucinated_tool":
        text += " It named a tool that was not offered."
    return text


def prompt_of(sample: Sample, case: Case | None = None) -> str:
    """The last user message of the first request: the task as the user typed it."""
    request = sample.request or (sample.trajectory[0].request if sample.trajectory else {})
    messages = request.get("messages") or ([m.model_dump() for m in case.messages] if case is not None else [])
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    text = text.rstrip()
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... ({len(text) - limit} more characters)"


def call_text(name: str | None, arguments: Any) -> str:
    if isinstance(arguments, str):
        args = arguments
    else:
        args = json.dumps(arguments, ensure_ascii=False)
    return f"{name or '?'}({args})"


def reply_lines(raw: dict[str, Any]) -> tuple[str, list[str]]:
    """(content, tool calls as `name(arguments)`) from a sample's raw reply."""
    content = raw.get("content") or ""
    calls = [call_text(c.get("name"), c.get("arguments")) for c in raw.get("tool_calls") or []]
    return content, calls


def expected_text(case: Case | None) -> str | None:
    if case is None:
        return None
    if not case.expect.calls:
        expect = "no tool call (a plain-text reply)"
    else:
        expect = ", ".join(
            f"{c.name}({', '.join(f'{k}={describe_value(v)}' for k, v in c.args.items())})"
            for c in case.expect.calls
        )
        if case.expect.order == "strict" and len(case.expect.calls) > 1:
            expect += " in this order"
    if case.expect.final_answer is not None:
        spec = case.expect.final_answer
        parts = [f"contains {json.dumps(n, ensure_ascii=False)}" for n in spec.contains]
        if spec.regex:
            parts.append(f"matches /{spec.regex}/")
        if spec.number is not None:
            parts.append(f"states {spec.number:g}")
        expect += "; final answer " + " and ".join(parts)
    return expect


def trajectory_text(sample: Sample) -> str:
    """An agent case's whole trajectory as plain text: each round's reply, calls and tool results."""
    lines: list[str] = []
    for number, rnd in enumerate(sample.trajectory, 1):
        lines.append(f"Round {number}")
        content = rnd.raw.get("content") or ""
        if content.strip():
            lines.append("  model said: " + clip(content, 600).replace("\n", "\n              "))
        wire_calls = rnd.raw.get("tool_calls") or []
        for call in wire_calls:
            lines.append(f"  model called: {call_text(call.get('name'), call.get('arguments'))}")
        for parsed in rnd.calls:
            if parsed.parse_error:
                lines.append(f"  -> unparseable call: {parsed.parse_error}: {clip(parsed.raw_arguments or '', 300)}")
            elif not wire_calls:  # calls written in the text (prompt formats): show what was read from it
                lines.append(f"  -> parsed call: {call_text(parsed.name, parsed.arguments)}")
        for result in rnd.tool_results:
            mark = "" if result.get("ok", True) else " (tool error)"
            lines.append(f"  tool {result.get('name')} returned{mark}: {clip(str(result.get('result')), 400)}")
    ended = sample.ended_by or "?"
    lines.append(f"Ended by: {ended} after {sample.rounds} round(s)")
    if sample.final_answer:
        lines.append("Final answer: " + clip(sample.final_answer, 600))
    return "\n".join(lines)
