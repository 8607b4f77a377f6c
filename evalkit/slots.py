"""Keeping the server's prompt cache warm: requests that share a prefix go one after another, and
on llama.cpp each worker keeps to one server slot.

A sample's prompt is the format's system prompt, the tool definitions and then the case's
messages; the first two are the same for every case of a suite in one format (and one
--distractors count). llama.cpp keeps each slot's last prompt in its KV cache and evaluates only
what follows the longest common prefix (`timings.cache_n` tokens reused, `timings.prompt_n`
evaluated), but only for a request that lands on the slot holding it. So:

- `split_lanes` gives each worker (of every endpoint) a lane of whole prefix groups, in
  `cache_order` (cases in order inside a group, the groups of one format one after another). A
  worker asks one prefix after another; two workers never evaluate the same new prefix at once
  (grouping alone, with a shared queue, made both slots evaluate each group's prefix side by
  side, and served fewer tokens from the cache than the plan's order: measured, docs/deciding.md).
  Per endpoint, its workers' lanes are its affinity: no other server sees those groups' prefixes
  until a worker whose lane ran out takes jobs from the end of the longest lane.
- on a llama.cpp server, worker k of an endpoint sends `id_slot: k` and `cache_prompt: true`
  (llama.cpp server's request fields: the task's slot, read from the body on
  /v1/chat/completions, and prompt reuse, on by default but sent so a changed default cannot turn
  it off). With one worker per slot the slot is free whenever its worker asks, and it holds that
  worker's previous prompt, from the same group.

The fields are sent only to llama.cpp (the embedded engine, or a server whose /props says so):
other servers may reject unknown fields. They are added after the response-cache key is made,
so a cached reply does not depend on the slot that first produced it.
"""

from __future__ import annotations

import contextvars
from collections import deque
from typing import Any, Protocol, Sequence, TypeVar

# The index of the worker running the current task (set by dispatch for each worker task).
WORKER = contextvars.ContextVar[int | None]("evalkit_worker", default=None)


class _Job(Protocol):
    format: str
    distractors: int | None

    @property
    def loaded(self) -> Any: ...


J = TypeVar("J", bound=_Job)


def prefix_group(job: _Job) -> tuple[str, str, int]:
    """What a job's prompt shares with others': the suite (its tools), format (system prompt and
    tool rendering) and --distractors count (the tools offered)."""
    return (job.loaded.suite.name, job.format, -1 if job.distractors is None else job.distractors)


def cache_order(jobs: Sequence[J]) -> list[J]:
    """The jobs with each prefix group together; the groups of one format one after another (a
    format's system prompt, or the chat template's preamble before the tools, is shared across
    suites), formats and suites in order of first appearance, cases in order inside a group."""
    formats: dict[str, int] = {}
    groups: dict[tuple[str, str, int], int] = {}
    for job in jobs:
        formats.setdefault(job.format, len(formats))
        groups.setdefault(prefix_group(job), len(groups))
    return sorted(jobs, key=lambda job: (formats[job.format], groups[prefix_group(job)]))


def split_lanes(jobs: Sequence[J], workers: int) -> list[deque[J]]:
    """`workers` lanes of whole prefix groups (in `cache_order`), each group to the lane with the
    fewest jobs so far, so the lanes end about together."""
    lanes: list[deque[J]] = [deque() for _ in range(max(1, workers))]
    group: list[J] = []
    for job in [*cache_order(jobs), None]:
        if group and (job is None or prefix_group(job) != prefix_group(group[0])):
            min(lanes, key=len).extend(group)
            group = []
        if job is not None:
            group.append(job)
    return lanes


def slot_fields(slots: int | None) -> dict[str, Any]:
    """The request fields that pin the current worker to its own slot on a llama.cpp server with
    `slots` slots (None: not llama.cpp, or slot pinning off); empty when there is nothing to pin."""
    worker = WORKER.get()
    if slots is None or worker is None or worker >= slots:
        return {}
    return {"id_slot": worker, "cache_prompt": True}
