"""Embedded engines, each started once and stopped with the pool: a run's own engine, and those
kept running across a sweep's `--until-decided` rounds.

Each round of a sweep runs every member in turn. Starting a member's engine once per round cost
a model load and, worse, a cold prompt cache: every suite's tools and system prompt (1,000-7,000
tokens) were evaluated again each round. On the measured 0.5B vs 1.5B question that made the
until-decided run 58% slower than the fixed run (docs/deciding.md). A pool starts each engine
the first time a member asks for it and stops them all when the sweep's rounds are over; an idle
llama.cpp server waits on its task queue, so the engine not in use does not take the cores.
"""

from __future__ import annotations

from pathlib import Path

from .server import EmbeddedEngine


class EnginePool:
    """One running engine per (model file, per-slot context, slots, threads); a context manager."""

    def __init__(self) -> None:
        self._engines: dict[tuple[Path, int, int, int | None], EmbeddedEngine] = {}

    def get(self, path: Path, n_ctx: int, n_parallel: int, n_threads: int | None) -> tuple[EmbeddedEngine, bool]:
        """The running engine for these settings, and whether it was started just now."""
        key = (Path(path), n_ctx, n_parallel, n_threads)
        engine = self._engines.get(key)
        if engine is not None and engine.running:
            return engine, False
        engine = EmbeddedEngine(path, n_ctx=n_ctx, n_parallel=n_parallel, n_threads=n_threads).start()
        self._engines[key] = engine
        return engine, True

    def close(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.stop()

    def __enter__(self) -> "EnginePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
