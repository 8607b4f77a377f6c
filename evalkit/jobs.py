"""What a run is made of: jobs (suite x case x format x repeat), the endpoints that answer them,
the context every sample shares, and the two steps every sample takes: build the request, fetch
the completion (from the response cache when allowed)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import openai

from .cache import ResponseCache
from .client import Completion, complete
from .formats import ToolFormat
from .schema import Case, Sample, Settings, ToolDef
from .scoring import Verdict
from .suites import LoadedSuite, sample_cases, select_cases


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
    cache: ResponseCache | None = None
    max_parallel_tool_calls: int = 1
    clock: Callable[[], float] = time.perf_counter


def plan(
    suites: Iterable[LoadedSuite], formats: list[str], repeats: int, tags: list[str] | None = None,
    limit: int | None = None, sample: int | None = None, seed: int = 0,
) -> list[Job]:
    return [
        Job(loaded, case, fmt, repeat)
        for loaded in suites
        for case in sample_cases(select_cases(loaded.suite, tags), sample, seed)[:limit]
        for fmt in formats
        for repeat in range(repeats)
    ]


def done_keys(samples: Iterable[Sample]) -> set[tuple[str, str, str, int]]:
    """Samples a resumed run need not redo: everything but transport errors."""
    return {s.key() for s in samples if s.error is None}


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


def new_sample(job: Job, ctx: RunContext, endpoint: Endpoint) -> Sample:
    """A sample with the job's identity filled in and nothing measured yet."""
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
        endpoint=endpoint.base_url,
    )


def apply_verdict(sample: Sample, verdict: Verdict) -> None:
    sample.malformed = verdict.malformed
    sample.hallucinated_tool = verdict.hallucinated_tool
    sample.args_valid = verdict.args_valid
    sample.call_correct = verdict.call_correct
    sample.intent_correct = verdict.intent_correct
    sample.failure_kind = verdict.failure_kind
    sample.failure_detail = verdict.failure_detail
    sample.final_answer_ok = verdict.final_answer_ok
