"""One single-turn sample: one request, one reply, scored."""

from __future__ import annotations

from .formats import get_format
from .jobs import Endpoint, Job, RunContext, apply_verdict, fetch, new_sample, offered_tools, request_params, tool_tokens
from .schema import Sample
from .scoring import score_reply


async def run_single(job: Job, endpoint: Endpoint, ctx: RunContext) -> Sample:
    fmt = get_format(job.format)
    offered = offered_tools(job.loaded.suite, job.case, ctx.settings.seed, job.distractors)
    messages = [m.model_dump(exclude_none=True) for m in job.case.messages]
    params = request_params(ctx, fmt, messages, offered)
    sample = new_sample(job, ctx, endpoint)
    sample.request = params
    sample.tools_offered = len(offered)
    completion, parsed, sample.cached = await fetch(endpoint, ctx, params, job.repeat, job.format)
    sample.raw = completion.raw()
    sample.calls = parsed.calls
    sample.final_answer = parsed.text or None
    apply_verdict(sample, score_reply(job.case, offered, parsed, ctx.own_family))
    sample.latency_s = round(completion.latency_s, 4)
    sample.ttft_s = round(completion.ttft_s, 4) if completion.ttft_s is not None else None
    sample.prompt_tokens = completion.prompt_tokens
    sample.completion_tokens = completion.completion_tokens
    tps = completion.tokens_per_s
    sample.tokens_per_s = round(tps, 2) if tps is not None else None
    sample.tool_tokens = await tool_tokens(endpoint, ctx, fmt, messages, sample.prompt_tokens)
    return sample
