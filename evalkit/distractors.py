"""Distractor tools for `--distractors N`: real tool schemas that do not fit the request.

They come from a built-in pool (evalkit/data/tool_pool.json, written by
scripts/build_tool_pool.py): the MCP suites' tools and BFCL's functions, de-duplicated by name.

A draw is fixed by the seed and the case id, and independent of everything else: each pool tool
gets a rank from a hash of (seed, case id, tool name), and the N best-ranked ones that may be
offered are drawn. So every model, format and shard offers the same distractors, and the draw
for N is the start of the draw for a larger N: a curve over N only ever adds tools.

A pool tool may not be offered when its name is one of the case's tools, or when it shares a
topic word with one (`get_current_time` keeps out every `..._time_...` tool): such a tool might
fit the request after all, and the case's expected calls must stay the only right ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from .schema import ToolDef

POOL_PATH = Path(__file__).resolve().parent / "data" / "tool_pool.json"

# Words too common in tool names to say what a tool is about.
GENERIC_WORDS = frozenset(
    "a an the and or of for to in on by from with get set list add create update delete remove show "
    "find search read write make new info data details detail all check calculate compute run current "
    "api v1 v2 tool".split()
)


@lru_cache(maxsize=1)
def pool() -> tuple[ToolDef, ...]:
    document = json.loads(POOL_PATH.read_text(encoding="utf-8"))
    return tuple(ToolDef.model_validate(tool) for tool in document["tools"])


def topic_words(name: str) -> set[str]:
    """`getCurrentTime`, `get_current_time`, `time.now` -> {"time", "now"} (generic words dropped)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return {w for w in re.split(r"[^a-zA-Z0-9]+", spaced.lower()) if w and w not in GENERIC_WORDS}


def _rank(seed: int | None, case_id: str, name: str) -> bytes:
    return hashlib.sha256(f"{seed}:{case_id}:{name}".encode()).digest()


@lru_cache(maxsize=1)
def _pool_topics() -> tuple[tuple[ToolDef, frozenset[str]], ...]:
    """Each pool tool with its topic words, worked out once per process."""
    return tuple((tool, frozenset(topic_words(tool.function.name))) for tool in pool())


# The ranked pool depends only on (case, seed, the case's tools): every format, repeat and count
# of a case reuses it, instead of hashing and sorting all the pool's tools again per sample.
@lru_cache(maxsize=256)
def _ranked(case_id: str, seed: int | None, excluded: frozenset[str]) -> tuple[ToolDef, ...]:
    excluded_words = set().union(*(topic_words(name) for name in excluded)) if excluded else set()
    allowed = [
        tool for tool, words in _pool_topics()
        if tool.function.name not in excluded and not (words & excluded_words)
    ]  # fmt: skip
    return tuple(sorted(allowed, key=lambda tool: _rank(seed, case_id, tool.function.name)))


def draw(case_id: str, seed: int | None, n: int, exclude_names: Iterable[str]) -> list[ToolDef]:
    """n pool tools for this case, best rank first; fewer only if the pool runs out."""
    if n <= 0:
        return []
    return list(_ranked(case_id, seed, frozenset(exclude_names))[:n])


def with_distractors(case_id: str, seed: int | None, own: list[ToolDef], n: int) -> list[ToolDef]:
    """The case's tools and n distractors, in an order fixed by the same hash, so the case's own
    tools sit at varying places in a long list (models favour the first and last tools). With
    n = 0 the case's tools are returned as they are: the run is the one without distractors."""
    if n <= 0:
        return list(own)
    extra = draw(case_id, seed, n, [t.function.name for t in own])
    return sorted([*own, *extra], key=lambda tool: _rank(seed, case_id, tool.function.name))
