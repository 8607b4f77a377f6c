"""Multi-round agent cases: execute the requested tools, feed results back, score the ending.

Like LM Studio's `.act()`: the model asks for tools, evalkit runs them, returns the results in
the format's own way, and asks again until the model answers or `max_rounds` is reached. The
tools run either as the suite's Python implementations (inside a temporary sandbox directory)
or on the suite's MCP server (evalkit/toolboxes.py starts and stops it); both go through one
guard (`request_problem`) first, and both give back (text for the model, ok), recorded in the
round's `tool_results` the same way.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Awaitable, Callable

from .client import decode_rate
from .errors import EvalkitError, SuiteError
from .formats import get_format
from .formats.base import ParsedReply, result_text
from .jobs import Endpoint, Job, RunContext, apply_verdict, fetch, new_sample, offered_tools, request_params, tool_tokens
from .mcp_tools import McpToolbox
from .sandbox import sandbox_dir
from .schema import Round, Sample, ToolCall, ToolDef
from .scoring import argument_errors, score_agent
from .suites import LoadedSuite, resolve_implementations

_modules: dict[Path, ModuleType] = {}
_modules_lock = threading.Lock()


def load_implementations(loaded: LoadedSuite) -> ModuleType:
    """The suite's implementations module, imported once. A file that fails to import is a suite
    error naming it; `evalkit run` imports it before the run starts (session), so that is one line."""
    path = resolve_implementations(loaded.path, loaded.suite).resolve()
    with _modules_lock:
        if path not in _modules:
            spec = importlib.util.spec_from_file_location(f"evalkit_impl_{path.stem}", path)
            if spec is None or spec.loader is None:
                raise SuiteError(str(loaded.path), None, "implementations", f"{path} cannot be imported")
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except BaseException as exc:  # noqa: BLE001 - a broken suite file is a user mistake (sys.exit too)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise SuiteError(
                    str(loaded.path), None, "implementations",
                    f"{path} fails to import: {type(exc).__name__}: {exc}".replace("\n", " "),
                ) from None
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


def request_problem(call: ToolCall, tools: dict[str, ToolDef], runnable: set[str]) -> str | None:
    """Why a requested call is not run, as the error text the model gets back; None to run it.

    One guard for both kinds of tools: an unparseable call, arguments that do not fit the offered
    tool's schema (or a tool that was not offered), and a tool that was offered but has nothing
    behind it (a --distractors tool) never reach a Python function or an MCP server."""
    if call.parse_error:
        return f"Error: the tool call could not be parsed ({call.parse_error})"
    problem = argument_errors(call, tools)
    if problem:
        return f"Error: invalid tool request: {problem}"
    if call.name not in runnable:
        return f"Error: tool {call.name!r} is offered but has no implementation"
    return None


def execute_call(
    module: ModuleType, call: ToolCall, tools: dict[str, ToolDef], sandbox: Path, runnable: set[str]
) -> tuple[str, bool]:
    """Run one requested tool. Returns (text for the model, ok). Bad requests become error text."""
    problem = request_problem(call, tools, runnable)
    if problem:
        return problem, False
    function = getattr(module, call.name or "", None)
    if not callable(function):
        return f"Error: tool {call.name!r} has no implementation", False
    kwargs = dict(call.arguments or {})
    if "sandbox" in inspect.signature(function).parameters:
        kwargs["sandbox"] = sandbox
    try:
        return result_text(function(**kwargs)), True
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the model is told, the run goes on (sys.exit too)
        return f"Error: {call.name} failed: {type(exc).__name__}: {exc}", False


async def call_mcp(box: McpToolbox, call: ToolCall, tools: dict[str, ToolDef], runnable: set[str]) -> tuple[str, bool]:
    """Run one requested tool on the suite's MCP server: (text for the model, ok). The server's
    timeouts, crashes and protocol errors come back as error text (McpToolbox.call never raises)."""
    problem = request_problem(call, tools, runnable)
    if problem:
        return problem, False
    return await box.call(call)


RunOne = Callable[[ToolCall], Awaitable[tuple[str, bool]]]


async def _execute_all(run_one: RunOne, calls: list[ToolCall], parallel: int) -> list[tuple[str, bool]]:
    if parallel <= 1:
        return [await run_one(c) for c in calls]
    gate = asyncio.Semaphore(parallel)

    async def one(call: ToolCall) -> tuple[str, bool]:
        async with gate:
            return await run_one(call)

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def run_agent(job: Job, endpoint: Endpoint, ctx: RunContext) -> Sample:
    suite, case = job.loaded.suite, job.case
    offered = offered_tools(suite, case, ctx.settings.seed, job.distractors)
    tools = {t.function.name: t for t in offered}
    runnable = {t.function.name for t in suite.tools_for(case)}  # distractors are offered, never run
    parallel = ctx.max_parallel_tool_calls
    if suite.mcp is not None:
        async with ctx.toolboxes.use(job.loaded) as box:
            return await _converse(job, endpoint, ctx, offered, lambda c: call_mcp(box, c, tools, runnable))
    module = load_implementations(job.loaded)
    with sandbox_dir(fixtures_dir(job, module)) as sandbox:

        async def run_python(call: ToolCall) -> tuple[str, bool]:
            if parallel <= 1:
                return execute_call(module, call, tools, sandbox, runnable)
            return await asyncio.to_thread(execute_call, module, call, tools, sandbox, runnable)

        return await _converse(job, endpoint, ctx, offered, run_python)


async def _converse(job: Job, endpoint: Endpoint, ctx: RunContext, offered: list[ToolDef], run_one: RunOne) -> Sample:
    """The rounds of one agent sample: ask, run the requested tools, answer with their results."""
    case = job.case
    fmt = get_format(job.format)
    messages: list[dict[str, Any]] = [m.model_dump(exclude_none=True) for m in case.messages]
    params = request_params(ctx, fmt, messages, offered)
    sample = new_sample(job, ctx, endpoint)
    sample.request = {k: v for k, v in params.items()}
    sample.tools_offered = len(offered)

    replies: list[ParsedReply] = []
    latency = 0.0
    completion_tokens = 0
    for number in range(1, case.max_rounds + 1):
        round_params = {**params, "messages": list(params["messages"])}
        completion, parsed, cached = await fetch(endpoint, ctx, round_params, job.repeat, job.format)
        sample.cached = sample.cached or cached
        latency += completion.latency_s
        completion_tokens += completion.completion_tokens or 0
        if number == 1:
            sample.ttft_s = round(completion.ttft_s, 4) if completion.ttft_s is not None else None
            sample.prompt_tokens = completion.prompt_tokens
        replies.append(parsed)
        record = Round(request=round_params, raw=completion.raw(), calls=parsed.calls)
        sample.trajectory.append(record)
        sample.rounds = number
        if not parsed.calls:
            break  # an answer, or an attempt the format could not parse: either ends the task
        results = await _execute_all(run_one, parsed.calls, ctx.max_parallel_tool_calls)
        record.tool_results = [{"name": c.name, "result": text, "ok": ok} for c, (text, ok) in zip(parsed.calls, results)]
        sample.tool_errors += sum(1 for _, ok in results if not ok)
        good = [(c, text) for c, (text, _ok) in zip(parsed.calls, results) if not c.parse_error]
        broken = [text for c, (text, _ok) in zip(parsed.calls, results) if c.parse_error]
        # Unparseable calls cannot be echoed back as calls; the model hears about them as a user turn.
        history = [fmt.assistant_message(parsed.text, [c for c, _ in good])]
        history += fmt.tool_messages([c for c, _ in good], [text for _, text in good])
        history += [{"role": "user", "content": text} for text in broken]
        params["messages"] = list(params["messages"]) + history
        if params.get("tool_choice") == "required":
            # Kept, it would force a call in every round and no answer could end the task: reset
            # to auto after the first tool call, as the OpenAI Agents SDK does (reset_tool_choice,
            # openai-agents-python PR #263).
            del params["tool_choice"]

    verdict, path = score_agent(case, offered, replies, ctx.own_family)
    apply_verdict(sample, verdict)
    sample.calls = path.executed
    sample.final_answer = path.final_text or None
    sample.ended_by = path.ended_by
    sample.latency_s = round(latency, 4)
    sample.completion_tokens = completion_tokens or None
    tps = decode_rate(completion_tokens, latency, sample.ttft_s)
    sample.tokens_per_s = round(tps, 2) if tps is not None else None
    sample.tool_tokens = await tool_tokens(endpoint, ctx, fmt, messages, sample.prompt_tokens)
    return sample
