"""What a run is made of: jobs (suite x case x format x repeat, and x distractor count with
--distractors), the endpoints that answer them, the context every sample shares, and the steps
every sample takes: choose the tools to offer, build the request, fetch the completion (from the
response cache when allowed), and, with --tool-cost, what the tools cost in prompt tokens."""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .access import Access
from .cache import ResponseCache
from .client import ChatClient, Completion, complete
from .distractors import with_distractors
from .formats import ToolFormat, get_format
from .formats.base import ParsedReply
from .schema import Case, Sample, SampleKey, Settings, Suite, ToolDef, sample_key
from .scoring import VERDICT_FIELDS, Verdict
from .slots import slot_fields
from .suites import LoadedSuite, sample_cases, select_cases
from .toolboxes import Toolboxes


@dataclass(frozen=True)
class Job:
    loaded: LoadedSuite
    case: Case
    format: str
    repeat: int
    distractors: int | None = None  # --distractors N: pool tools offered besides the case's own

    def key(self) -> SampleKey:
        return sample_key(self.loaded.suite.name, self.case.id, self.format, self.repeat, self.distractors)


@dataclass
class Endpoint:
    base_url: str
    concurrency: int
    client: ChatClient | None = None
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
    # The call-syntax family the model writes natively (rundir.own_family): with `native`, a clean
    # call in it left in the content is one the server's parser lost.
    own_family: str | None = None
    # The MCP servers of agent cases, started when first needed; dispatch.run_jobs stops them.
    toolboxes: Toolboxes = field(default_factory=Toolboxes)
    tool_cost: bool = False  # measure each sample's tool_tokens against a tools-free request
    # The key and extra headers every request carries (never written anywhere).
    access: Access = field(default_factory=Access)
    # What the server said it serves (identity.served_identity): part of every cache key, so a
    # restarted server with another template or quantization never answers from old replies.
    served: dict[str, Any] | None = None
    # A llama.cpp server's slots per endpoint: each worker keeps to its own (evalkit/slots.py); None: no pinning.
    pinned_slots: int | None = None
    _tools_free: dict[str, asyncio.Task[int | None]] = field(default_factory=dict, repr=False, init=False)


def plan(
    suites: Iterable[LoadedSuite], formats: list[str], repeats: int, tags: list[str] | None = None,
    limit: int | None = None, sample: int | None = None, seed: int = 0, distractors: list[int] | None = None,
) -> list[Job]:
    """Every job of a run; with `distractors`, each case and format once per count."""
    counts: list[int | None] = list(dict.fromkeys(distractors)) if distractors else [None]
    return [
        Job(loaded, case, fmt, repeat, count)
        for loaded in suites
        for case in sample_cases(select_cases(loaded.suite, tags), sample, seed)[:limit]
        for fmt in formats
        for count in counts
        for repeat in range(repeats)
    ]


def offered_tools(suite: Suite, case: Case, seed: int | None, distractors: int | None) -> list[ToolDef]:
    """The tools a sample offers: the case's own, plus `distractors` drawn from the pool by seed
    and case id (the same for every model, format and repeat; never one of the case's tools)."""
    own = suite.tools_for(case)
    return with_distractors(case.id, seed, own, distractors) if distractors else own


def done_keys(samples: Iterable[Sample]) -> set[SampleKey]:
    """Samples a resumed run need not redo: everything but transport errors."""
    return {s.key() for s in samples if s.error is None}


def tool_payload(tools: list[ToolDef]) -> list[dict[str, Any]]:
    return [_payload(t) for t in tools]


# A suite's tools are the same objects for every sample: each is dumped once (found by identity;
# an entry holds its tool, so an id is never reused). The payloads are shared: never mutate one.
_payloads: dict[int, tuple[ToolDef, dict[str, Any]]] = {}


def _payload(tool: ToolDef) -> dict[str, Any]:
    known = _payloads.get(id(tool))
    if known is not None and known[0] is tool:
        return known[1]
    # `x-*` keys are evalkit's own annotations (e.g. BFCL's original names), not for the server.
    payload = {k: v for k, v in tool.model_dump(mode="json", exclude_none=True).items() if not k.startswith("x-")}
    if len(_payloads) < 65536:
        _payloads[id(tool)] = (tool, payload)
    return payload


def request_params(ctx: RunContext, fmt: ToolFormat, messages: list[dict[str, Any]], tools: list[ToolDef]) -> dict[str, Any]:
    params = fmt.build_request(messages, tool_payload(tools))
    params["model"] = ctx.model
    params["temperature"] = ctx.settings.temperature
    params["max_tokens"] = ctx.settings.max_tokens
    if ctx.settings.seed is not None:
        params["seed"] = ctx.settings.seed
    if ctx.settings.extra_body:  # --extra-body / a config option's extra_body: the user's last word
        params.update(ctx.settings.extra_body)
    return params


async def fetch(
    endpoint: Endpoint, ctx: RunContext, params: dict[str, Any], repeat: int, fmt: str, parse: bool = True
) -> tuple[Completion, ParsedReply, bool]:
    """A completion from the cache when allowed, else from the server, and the format's reading of
    it (an empty one with `parse=False`). Returns (completion, parsed, cached).

    Parse first, cache second: a reply goes into the cache only once it arrived whole and was
    parsed, so a reply that breaks evalkit is asked for again on --resume, not replayed forever.
    Inside a sample's boundary (`held_cache_puts`) the put waits until the sample is written.
    """
    settings = ctx.settings
    reader = get_format(fmt).parse_reply if parse else None
    cache = ctx.cache
    key = None
    if cache is not None:
        key = cache.key(endpoint.identity or endpoint.base_url, ctx.model, params, settings.stream, repeat, fmt,
                        served=ctx.served, headers=ctx.access.headers_digest())
        hit = cache.get(key)
        if hit is not None:
            try:
                return hit, reader(hit.content, hit.tool_calls) if reader else ParsedReply(), True
            except Exception:  # noqa: BLE001 - cached unparsed (by an older evalkit): ask the server again
                pass
    assert endpoint.client is not None
    pinned = slot_fields(ctx.pinned_slots)  # after the cache key: a reply does not depend on its slot
    completion = await complete(
        endpoint.client, {**params, **pinned} if pinned else params, stream=settings.stream,
        retries=settings.retries, deadline_s=settings.deadline_s, max_reply_chars=settings.max_reply_chars,
        retry_after_cap_s=settings.retry_after_cap_s,
    )
    parsed = reader(completion.content, completion.tool_calls) if reader else ParsedReply()
    if cache is not None and key is not None:
        held = _held_puts.get()
        if held is not None:
            held.append(lambda: cache.put(key, completion, ctx.model, endpoint.base_url))
        else:
            cache.put(key, completion, ctx.model, endpoint.base_url)
    return completion, parsed, False


# The cache writes of the sample being run, done only once its line is written (dispatch): a
# reply that scoring or writing failed on (a lone surrogate in the arguments once was one) is
# asked for again on --resume instead of being replayed, failing the same way, forever.
_held_puts: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar("held_puts", default=None)


def held_cache_puts() -> list[Callable[[], None]]:
    """Hold this task's cache writes from now on; the caller runs them once the sample is written."""
    held: list[Callable[[], None]] = []
    _held_puts.set(held)
    return held


async def tool_tokens(
    endpoint: Endpoint, ctx: RunContext, fmt: ToolFormat, messages: list[dict[str, Any]], prompt_tokens: int | None
) -> int | None:
    """What offering the tools cost a request in prompt tokens, by the server's own count: its
    `prompt_tokens` minus those of the same messages sent with no tools at all (the format's tool
    instructions and the definitions both count). One tools-free request (max_tokens 1) per
    distinct prompt in a run, shared by every format, distractor count and repeat; None when the
    server reports no usage or the tools-free request fails (the sample itself is unaffected)."""
    if not ctx.tool_cost or prompt_tokens is None:
        return None
    params = {**request_params(ctx, fmt, messages, []), "max_tokens": 1}
    key = json.dumps(params, sort_keys=True, ensure_ascii=False)
    task = ctx._tools_free.get(key)
    if task is None:
        task = asyncio.create_task(_prompt_tokens(endpoint, ctx, params))
        ctx._tools_free[key] = task
    baseline = await asyncio.shield(task)
    return prompt_tokens - baseline if baseline is not None else None


async def _prompt_tokens(endpoint: Endpoint, ctx: RunContext, params: dict[str, Any]) -> int | None:
    try:
        completion, _parsed, _cached = await fetch(endpoint, ctx, params, 0, "tools-free", parse=False)
    except Exception:  # noqa: BLE001 - a missing baseline leaves tool_tokens empty, nothing more
        return None
    return completion.prompt_tokens


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
        distractors=job.distractors,
    )


def apply_verdict(sample: Sample, verdict: Verdict) -> None:
    for name in VERDICT_FIELDS:
        setattr(sample, name, getattr(verdict, name))
