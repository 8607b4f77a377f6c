"""The worker pool: jobs in, scored samples out to `on_sample` as they finish.

Each endpoint gets `concurrency` workers, each with a lane of jobs (whole prefix groups,
slots.py) and taking from the others' when its own is empty; a job whose endpoint fails for
transport reasons is handed to another live endpoint before it is recorded as an error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable

from .agent import run_agent
from .access import refusal
from .client import TransportError, make_client
from .errors import EvalkitError, KeyRefused
from .jobs import Endpoint, Job, RunContext, held_cache_puts, new_sample
from .schema import Sample
from .single import run_single
from .slots import WORKER, split_lanes


async def run_job(job: Job, endpoint: Endpoint, ctx: RunContext) -> Sample:
    if job.case.mode == "agent":
        return await run_agent(job, endpoint, ctx)
    return await run_single(job, endpoint, ctx)


def error_sample(job: Job, ctx: RunContext, endpoint: Endpoint, message: str) -> Sample:
    sample = new_sample(job, ctx, endpoint)
    sample.error = ctx.access.scrub(message)  # a server may echo the key it refused
    sample.failure_kind = "error"
    return sample


def failed_inside(exc: BaseException) -> str:
    """The error of a sample evalkit itself failed on (not the server): the exception, in one line."""
    return f"evalkit failed on this sample: {type(exc).__name__}: {exc}"


def key_refused(base_url: str, exc: TransportError, ctx: RunContext) -> KeyRefused:
    """One line: which server refused, what it said (the key scrubbed out), and what to do."""
    return KeyRefused(refusal(base_url, ctx.access.scrub(str(exc)), bool(ctx.access.api_key)))


async def run_jobs(
    jobs: list[Job],
    endpoints: list[Endpoint],
    ctx: RunContext,
    on_sample: Callable[[Sample], None],
) -> None:
    """Share the jobs among the endpoints' workers. A job whose endpoint fails for transport
    reasons is handed to another live endpoint before it is recorded as an error."""
    # One lane of jobs per worker, each a run of whole prefix groups (slots.py): a worker asks one
    # prefix after another on its own slot, and two workers never evaluate the same new prefix at
    # once. A worker whose lane is empty takes from the end of the longest one; failovers go first.
    # No more workers than jobs: `--concurrency 100000` on one job spent 8 s of CPU on idle workers.
    pairs = [(e, k) for e in endpoints for k in range(max(1, min(e.concurrency, len(jobs))))]
    lanes = split_lanes(jobs, len(pairs))
    failovers: deque[tuple[Job, frozenset[str]]] = deque()

    def next_job(lane: deque[Job]) -> tuple[Job, frozenset[str]] | None:
        if failovers:
            return failovers.popleft()
        if lane:
            return lane.popleft(), frozenset()
        longest = max(lanes, key=len)
        return (longest.pop(), frozenset()) if longest else None

    remaining = len(jobs)
    done = asyncio.Event()
    fatal: list[BaseException] = []  # on_sample failed even for an error sample: the run cannot go on
    answered = False  # some request got through: a later 401/403 is that sample's error, not the run's
    if remaining == 0:
        return
    for endpoint in endpoints:
        if endpoint.client is None:
            endpoint.client = make_client(endpoint.base_url, ctx.settings.timeout_s, ctx.access.api_key,
                                          endpoint.concurrency, ctx.access.headers)

    def finish(job: Job, endpoint: Endpoint, sample: Sample, cache_puts: list[Callable[[], None]]) -> None:
        nonlocal remaining
        try:
            on_sample(sample)
        except Exception as exc:  # noqa: BLE001 - writing is part of the sample's boundary
            # a sample evalkit cannot write (a lone surrogate once was one): the sample is that error.
            try:
                on_sample(error_sample(job, ctx, endpoint, failed_inside(exc)))
            except Exception as again:  # noqa: BLE001 - nothing can be written (a full disk): stop
                fatal.append(again)
                done.set()
                return
        else:
            try:
                for put in cache_puts:  # its replies are cached once the sample is written, not before
                    put()
            except Exception:  # noqa: BLE001 - an entry the cache could not take is asked for again, no more
                pass
        remaining -= 1
        if remaining == 0:
            done.set()

    stopping = False  # set when run_jobs is cancelled (Ctrl-C): take no further jobs

    async def worker(endpoint: Endpoint, index: int, lane: deque[Job]) -> None:
        nonlocal answered
        WORKER.set(index)  # this task's own context: its requests keep to slot `index` (slots.py)
        while not done.is_set() and not stopping:
            if not endpoint.alive and any(e.alive for e in endpoints):
                return
            # Never an awaited get: on Python 3.11 `wait_for(queue.get(), ...)` could swallow a
            # cancellation that raced with the get, and the worker then ran every job after Ctrl-C.
            taken = next_job(lane)
            if taken is None:
                await asyncio.sleep(0.05)  # all jobs are laned up front; only failovers come later
                continue
            job, tried = taken
            cache_puts = held_cache_puts()
            try:
                sample = await run_job(job, endpoint, ctx)
            except TransportError as exc:
                if exc.refused_key and not answered:
                    fatal.append(key_refused(endpoint.base_url, exc, ctx))
                    done.set()
                    return
                tried = tried | {endpoint.base_url}
                if exc.retryable:
                    endpoint.failures += 1
                    if endpoint.failures >= 3 and len(endpoints) > 1:
                        endpoint.alive = False  # consistently failing: leave its work to the others
                others = [e for e in endpoints if e.alive and e.base_url not in tried]
                if exc.retryable and others:
                    failovers.append((job, tried))
                    continue
                sample = error_sample(job, ctx, endpoint, str(exc))
            except asyncio.CancelledError:
                raise
            except EvalkitError as exc:
                # A suite's MCP server that cannot start, implementations that cannot load: the
                # message is already one line for the user; the sample is redone by --resume.
                sample = error_sample(job, ctx, endpoint, str(exc))
            except Exception as exc:  # noqa: BLE001 - one boundary per sample
                # Anything else (a hostile reply, a broken tool, a bug) is this sample's error: a
                # worker that died here would leave its job unfinished and the run waiting forever.
                sample = error_sample(job, ctx, endpoint, failed_inside(exc))
            else:
                endpoint.failures = 0
                answered = True
            finish(job, endpoint, sample, cache_puts)

    workers = [asyncio.create_task(worker(e, k, lane)) for (e, k), lane in zip(pairs, lanes)]
    try:
        await done.wait() if workers else None
    finally:
        stopping = True
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        try:
            await ctx.toolboxes.close()  # MCP servers: at the end, on an error and on Ctrl-C alike
        finally:
            for endpoint in endpoints:
                if endpoint.client is not None:
                    await endpoint.client.close()
                    endpoint.client = None
    if fatal:
        raise fatal[0]
