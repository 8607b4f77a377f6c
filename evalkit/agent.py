"""Multi-round agent cases: execute the requested tools, feed results back, score the ending.

Like LM Studio's `.act()`: the model asks for tools, evalkit runs the suite's Python
implementations (inside a temporary sandbox directory), returns the results in the format's
own way, and asks again until the model answers or `max_rounds` is reached.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import threading
from pathlib import Path
from types import ModuleType

from .client import decode_rate
from .errors import EvalkitError
from .formats import get_format
from .formats.base import ParsedReply, result_text
from .jobs import Endpoint, Job, RunContext, apply_verdict, fetch, new_sample, request_params
from .sandbox import sandbox_dir
from .schema import Round, Sample, ToolCall, ToolDef
from .scoring import argument_errors, score_agent
from .suites import resolve_implementations

_modules: dict[Path, ModuleType] = {}
_modules_lock = threading.Lock()


def load_implementations(job: Job) -> ModuleType:
    path = resolve_implementations(job.loaded.path, job.loaded.suite).resolve()
    with _modules_lock:
        if path not in _modules:
            spec = importlib.util.spec_from_file_location(f"evalkit_impl_{path.stem}", path)
            if spec is None or spec.loader is None:
                raise EvalkitError(f"{job.loaded.path}: implementations {path} cannot be imported")
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001 - a broken suite file is a user mistake
                raise EvalkitError(f"{path}: cannot import implementations: {type(exc).__name__}: {exc}") from None
            _modules[path] = module
        return _modules[path]


def fixtures_dir(job: Job, module: ModuleType) -> Path | None:
    relative = getattr(module, "FIXTURES", None)
    if not relative:
        return None
    module_dir = Path(module.__file__ or ".").resolve().parent
    for base in (job.loaded.path.resolve().parent, module_dir.parent, module_dir):
        if (base / relative).is_dir():
            return base / relative
    raise EvalkitError(f"{module.__file__}: FIXTURES {relative!r} is not a directory")


def execute_call(module: ModuleType, call: ToolCall, tools: dict[str, ToolDef], sandbox: Path) -> tuple[str, bool]:
    """Run one requested tool. Returns (text for the model, ok). Bad requests become error text."""
    if call.parse_error:
        return f"Error: the tool call could not be parsed ({call.parse_error})", False
    problem = argument_errors(call, tools)
    if problem:
        return f"Error: invalid tool request: {problem}", False
    function = getattr(module, call.name or "", None)
    if not callable(function):
        return f"Error: tool {call.name!r} has no implementation", False
    kwargs = dict(call.arguments or {})
    if "sandbox" in inspect.signature(function).parameters:
        kwargs["sandbox"] = sandbox
    try:
        return result_text(function(**kwargs)), True
    except Exception as exc:  # noqa: BLE001 - the model is told, the run goes on
        return f"Error: {call.name} failed: {type(exc).__name__}: {exc}", False


async def _execute_all(
    module: ModuleType, calls: list[ToolCall], tools: dict[str, ToolDef], sandbox: Path, parallel: int
) -> list[tuple[str, bool]]:
    if parallel <= 1:
        return [execute_call(module, c, tools, sandbox) for c in calls]
    gate = asyncio.Semaphore(parallel)

    async def one(call: ToolCall) -> tuple[str, bool]:
        async with gate:
            return await asyncio.to_thread(execute_call, module, call, tools, sandbox)

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def run_agent(job: Job, endpoint: Endpoint, ctx: RunContext) -> Sample:
    case = job.case
    fmt = get_format(job.format)
    offered = job.loaded.suite.tools_for(case)
    tools = {t.function.name: t for t in offered}
    module = load_implementations(job)
    params = request_params(ctx, fmt, [m.model_dump(exclude_none=True) for m in case.messages], offered)
    sample = new_sample(job, ctx, endpoint)
    sample.request = {k: v for k, v in params.items()}

    replies: list[ParsedReply] = []
    latency = 0.0
    completion_tokens = 0
    with sandbox_dir(fixtures_dir(job, module)) as sandbox:
        for number in range(1, case.max_rounds + 1):
            round_params = {**params, "messages": list(params["messages"])}
            completion, cached = await fetch(endpoint, ctx, round_params, job.repeat, job.format)
            sample.cached = sample.cached or cached
            latency += completion.latency_s
            completion_tokens += completion.completion_tokens or 0
            if number == 1:
                sample.ttft_s = round(completion.ttft_s, 4) if completion.ttft_s is not None else None
                sample.prompt_tokens = completion.prompt_tokens
            parsed = fmt.parse_reply(completion.content, completion.tool_calls)
            replies.append(parsed)
            record = Round(request=round_params, raw=completion.raw(), calls=parsed.calls)
            sample.trajectory.append(record)
            sample.rounds = number
            if not parsed.calls:
                break  # an answer, or an attempt the format could not parse: either ends the task
            results = await _execute_all(module, parsed.calls, tools, sandbox, ctx.max_parallel_tool_calls)
            record.tool_results = [{"name": c.name, "result": text, "ok": ok} for c, (text, ok) in zip(parsed.calls, results)]
            sample.tool_errors += sum(1 for _, ok in results if not ok)
            good = [(c, text) for c, (text, _ok) in zip(parsed.calls, results) if not c.parse_error]
            broken = [text for c, (text, _ok) in zip(parsed.calls, results) if c.parse_error]
            # Unparseable calls cannot be echoed back as calls; the model hears about them as a user turn.
            history = [fmt.assistant_message(parsed.text, [c for c, _ in good])]
            history += fmt.tool_messages([c for c, _ in good], [text for _, text in good])
            history += [{"role": "user", "content": text} for text in broken]
            params["messages"] = list(params["messages"]) + history

    verdict, path = score_agent(case, offered, replies, ctx.own_family)
    apply_verdict(sample, verdict)
    sample.calls = path.executed
    sample.final_answer = path.final_text or None
    sample.ended_by = path.ended_by
    sample.final_answer_ok = verdict.final_answer_ok
    sample.latency_s = round(latency, 4)
    sample.completion_tokens = completion_tokens or None
    tps = decode_rate(completion_tokens, latency, sample.ttft_s)
    sample.tokens_per_s = round(tps, 2) if tps is not None else None
    return sample
