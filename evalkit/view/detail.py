"""One case across every option the viewer serves: what was asked, what each model x format x
repeat replied, how it was read and judged, and an agent case's rounds, as JSON for the page.

Full samples are read from disk by their line's offset (index.py keeps only light rows).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .. import callsyntax, failures
from ..rundir import SAMPLES
from ..schema import Case, Sample, Suite, ToolCall
from ..suites import same_suite
from ..report.explain import expected_text, explain, prompt_of
from .index import Index, RunInfo


@lru_cache(maxsize=64)
def _suite(name: str, path: str, sha256: str) -> Suite | None:
    loaded = same_suite(name, path, sha256)
    return loaded.suite if loaded is not None else None


def _case(run: RunInfo, suite: str, case_id: str) -> tuple[Suite | None, Case | None]:
    for ref in run.header.suites:
        if ref.name == suite:
            found = _suite(ref.name, ref.path, ref.sha256)
            if found is not None:
                return found, next((c for c in found.cases if c.id == case_id), None)
    return None, None


def read_sample(run: RunInfo, offset: int) -> Sample:
    with open(run.path / SAMPLES, "rb") as handle:
        handle.seek(offset)
        return Sample.model_validate_json(handle.readline())


def _calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [{"name": c.name, "arguments": c.arguments if c.arguments is not None else c.raw_arguments,
             "parse_error": c.parse_error} for c in calls]


def _tool_names(request: dict[str, Any]) -> list[str]:
    return [t.get("function", {}).get("name") for t in request.get("tools") or [] if isinstance(t, dict)]


def _schemas(request: dict[str, Any]) -> dict[str, Any]:
    return {t["function"]["name"]: t["function"].get("parameters")
            for t in request.get("tools") or [] if isinstance(t, dict) and "function" in t}


def _reply(raw: dict[str, Any], tools: dict[str, Any]) -> dict[str, Any]:
    """A reply as the wire gave it, and the calls a lenient read of its text recovers."""
    content = raw.get("content") or ""
    recovered = callsyntax.scan(content, tools or None).recovered if content else []
    return {"content": content, "reasoning": raw.get("reasoning_content") or raw.get("reasoning") or "",
            "tool_calls": [{"name": c.get("name"), "arguments": c.get("arguments")}
                           for c in raw.get("tool_calls") or [] if isinstance(c, dict)],
            "recovered": _calls(recovered)}


def _option(row: dict[str, Any], sample: Sample) -> dict[str, Any]:
    request = sample.request or (sample.trajectory[0].request if sample.trajectory else {})
    tools = _schemas(request)
    out = {key: row[key] for key in ("run", "run_id", "model", "format", "repeat", "distractors", "verdict",
                                     "kind", "detail", "syntax", "cached", "latency_s")}
    out.update({
        "kind_label": failures.label(row["kind"]) if row["kind"] else None,
        "why": explain(sample) if row["verdict"] != "pass" else "Every expected call was made with the right "
                                                                 "arguments, and nothing else.",
        "intent_correct": sample.intent_correct, "malformed": sample.malformed,
        "hallucinated_tool": sample.hallucinated_tool, "args_valid": sample.args_valid,
        "tools_offered": _tool_names(request), "reply": _reply(sample.raw, tools), "calls": _calls(sample.calls),
        "final_answer": sample.final_answer, "final_answer_ok": sample.final_answer_ok,
        "ended_by": sample.ended_by, "error": sample.error,
        "rounds": [{"reply": _reply(r.raw, tools), "calls": _calls(r.calls),
                    "tool_results": [{"name": t.get("name"), "ok": t.get("ok", True), "result": t.get("result")}
                                     for t in r.tool_results]}
                   for r in sample.trajectory],
    })
    return out


def case_detail(index: Index, suite: str, case_id: str) -> dict[str, Any] | None:
    """The case and every option's sample of it; None when no served run has the case."""
    numbers = index.by_case.get((suite, case_id))
    if not numbers:
        return None
    rows = [index.rows[n] for n in numbers]
    options = []
    first: Sample | None = None
    for row in rows:
        sample = read_sample(index.runs[row["run"]], row["offset"])
        first = first or sample
        options.append(_option(row, sample))
    suite_def, case = _case(index.runs[rows[0]["run"]], suite, case_id)
    tools = suite_def.tools_for(case) if suite_def is not None and case is not None else []
    request = first.request or (first.trajectory[0].request if first.trajectory else {})
    messages = ([m.model_dump(exclude_none=True) for m in case.messages] if case is not None
                else [m for m in request.get("messages") or [] if isinstance(m, dict)])
    return {
        "suite": suite, "case_id": case_id, "mode": rows[0]["mode"], "tags": rows[0]["tags"],
        "prompt": prompt_of(first, case), "messages": messages,
        "tools": [{"name": t.function.name, "description": t.function.description,
                   "parameters": t.function.parameters} for t in tools],
        "expected": expected_text(case) or f"(suite file {suite} not found unchanged: expected calls unknown)",
        "options": options,
    }
