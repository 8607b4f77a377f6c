"""Running suites against endpoints: jobs in, scored samples appended to the run log as they finish."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import openai

from .client import Completion, TransportError, complete, make_client
from .formats import ToolFormat, get_format
from .schema import Case, Sample, Settings, ToolDef
from .scoring import score
from .suites import LoadedSuite


@dataclass(frozen=True)
class Job:
    loaded: LoadedSuite
    case: Case
    format: str
    repeat: int

    def key(self) -> tuple[str, str, str, int]:
        return (self.loaded.suite.name, self.case.id, self.format, self.repeat)


@dataclass
class Endpoint:
    base_url: str
    concurrency: int
    client: openai.AsyncOpenAI | None = None
    alive: bool = True
    failures: int = 0
    # What the cache knows this endpoint by; the embedded engine's port changes every run.
    identity: str | None = None


@dataclass
class RunContext:
    """What every sample of a run shares."""

    model: str
    settings: Settings
    cache: Any = None  # evalkit.cache.ResponseCache, when enabled
    max_parallel_tool_calls: int = 1
    clock: Callable[[], float] = time.perf_counter


def plan(
    suites: Iterable[LoadedSuite], formats: list[str], repeats: int, tags: list[str] | None = None,
    limit: int | None = None, sample: int | None = None, seed: int = 0,
) -> list[Job]:
    from .suites import sample_cases, select_cases

    return [
        Job(loaded, case, fmt, repeat)
        for loaded in suites
        for case in sample_cases(select_cases(loaded.suite, tags), sample, seed)[:limit]
        for fmt in formats
        for repeat in range(repeats)
    ]


def tool_payload(tools: list[ToolDef]) -> list[dict[str, Any]]:
    # `x-*` keys are evalkit's own annotations (e.g. BFCL's original names), not for the server.
    return [
        {k: v for k, v in t.model_dump(mode="json", exclude_none=True).items() if not k.startswith("x-")}
        for t in tools
    ]


def request_params(ctx: RunContext, fmt: ToolFormat, messages: list[dict[str, Any]], tools: list[ToolDef]) -> dict[str, Any]:
    params = fmt.build_request(messages, tool_payload(tools))
    params["model"] = ctx.model
    params["temperature"] = ctx.settings.temperature
    params["max_tokens"] = ctx.settings.max_tokens
    if ctx.settings.seed is not None:
        params["seed"] = ctx.settings.seed
    return params


async def fetch(
    endpoint: Endpoint, ctx: RunContext, params: dict[str, Any], repeat: int, fmt: str
) -> tuple[Completion, bool]:
    """A completion from the cache when allowed, else from the server. Returns (completion, cached)."""
    cache = ctx.cache
    key = None
    if cache is not None:
        key = cache.key(endpoint.identity or endpoint.base_url, ctx.model, params, ctx.settings.stream, repeat, fmt)
        hit = cache.get(key)
        if hit is not None:
            return hit, True
    assert endpoint.client is not None
    completion = await complete(endpoint.client, params, stream=ctx.settings.stream, retries=ctx.settings.retries)
    if cache is not None and key is not None:
        cache.put(key, completion, ctx.model, endpoint.base_url)
    return completion, False


def _base_sample(job: Job, ctx: RunContext) -> Sample:
    case = job.case
    return Sample(
        suite=job.loaded.suite.name,
        case_id=case.id,
        format=job.format,
        repeat=job.repeat,
        model=ctx.model,
        tags=case.tags,
        mode=case.mode,
        expected_calls=len(case.expect.calls),
    )


async def run_single(job: Job, endpoint: Endpoint, ctx: RunContext) -> Sample:
    fmt = get_format(job.format)
    offered = job.loaded.suite.tools_for(job.case)
    messages = [m.model_dump(exclude_none=True) for m in job.case.messages]
    params = request_params(ctx, fmt, messages, offered)
    sample = _base_sample(job, ctx)
    sample.request = params
    sample.endpoint = endpoint.base_url
    completion, sample.cached = await fetch(endpoint, ctx, params, job.repeat, job.format)
    parsed = fmt.parse_reply(completion.content, completion.tool_calls)
    verdict = score(job.case, offered, parsed.calls, parsed.text)
    sample.raw = completion.raw()
    sample.calls = parsed.calls
    sample.final_answer = parsed.text or None
    apply_verdict(sample, verdict)
    apply_timings(sample, completion)
    return sample


def apply_verdict(sample: Sample, verdict: Any) -> None:
    sample.malformed = verdict.malformed
    sample.hallucinated_tool = verdict.hallucinated_tool
    sample.args_valid = verdict.args_valid
    sample.call_correct = verdict.call_correct
    sample.intent_correct = verdict.intent_correct
    sample.failure = verdict.failure if not verdict.detail else f"{verdict.failure}: {verdict.detail}"


def apply_timings(sample: Sample, completion: Completion) -> None:
    sample.latency_s = round(completion.latency_s, 4)
    sample.ttft_s = round(completion.ttft_s, 4) if completion.ttft_s is not None else None
    sample.prompt_tokens = completion.prompt_tokens
    sample.completion_tokens = completion.completion_tokens
    tps = completion.tokens_per_s
    sample.tokens_per_s = round(tps, 2) if tps is not None else None


async def run_job(job: Job, endpoint: Endpoint, ctx: RunContext) -> Sample:
    if job.case.mode == "agent":
        from .agent import run_agent

        return await run_agent(job, endpoint, ctx)
    return await run_single(job, endpoint, ctx)


def error_sample(job: Job, ctx: RunContext, endpoint: Endpoint, message: str) -> Sample:
    sample = _base_sample(job, ctx)
    sample.error = message
    sample.failure = "error"
    sample.endpoint = endpoint.base_url
    return sample


async def run_jobs(
    jobs: list[Job],
    endpoints: list[Endpoint],
    ctx: RunContext,
    on_sample: Callable[[Sample], None],
) -> None:
    """Share the jobs among the endpoints' workers. A job whose endpoint fails for transport
    reasons is handed to another live endpoint before it is recorded as an error."""
    queue: asyncio.Queue[tuple[Job, frozenset[str]]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait((job, frozenset()))
    remaining = len(jobs)
    done = asyncio.Event()
    if remaining == 0:
        return
    for endpoint in endpoints:
        if endpoint.client is None:
            endpoint.client = make_client(endpoint.base_url, ctx.settings.timeout_s)

    def finish(sample: Sample) -> None:
        nonlocal remaining
        on_sample(sample)
        remaining -= 1
        if remaining == 0:
            done.set()

    stopping = False  # set when run_jobs is cancelled (Ctrl-C): take no further jobs

    async def worker(endpoint: Endpoint) -> None:
        while not done.is_set() and not stopping:
            if not endpoint.alive and any(e.alive for e in endpoints):
                return
            # Not `wait_for(queue.get(), ...)`: on Python 3.11 it can swallow a cancellation that
            # races with the get, and the worker then ran the whole queue after Ctrl-C (or hung).
            try:
                job, tried = queue.get_nowait()
            except asyncio.QueueEmpty:
                await asyncio.sleep(0.05)  # all jobs are queued up front; only failovers come later
                continue
            try:
                sample = await run_job(job, endpoint, ctx)
            except TransportError as exc:
                tried = tried | {endpoint.base_url}
                if exc.retryable:
                    endpoint.failures += 1
                    if endpoint.failures >= 3 and len(endpoints) > 1:
                        endpoint.alive = False  # consistently failing: leave its work to the others
                others = [e for e in endpoints if e.alive and e.base_url not in tried]
                if exc.retryable and others:
                    queue.put_nowait((job, tried))
                    continue
                sample = error_sample(job, ctx, endpoint, str(exc))
            else:
                endpoint.failures = 0
            finish(sample)

    workers = [asyncio.create_task(worker(e)) for e in endpoints for _ in range(max(1, e.concurrency))]
    try:
        await done.wait() if workers else None
    finally:
        stopping = True
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for endpoint in endpoints:
            if endpoint.client is not None:
                await endpoint.client.close()
                endpoint.client = None


def done_keys(samples: Iterable[Sample]) -> set[tuple[str, str, str, int]]:
    """Samples a resumed run need not redo: everything but transport errors."""
    return {s.key() for s in samples if s.error is None}


def run_dir_path(out: Path, run_id: str) -> Path:
    return out / run_id
