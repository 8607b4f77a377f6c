"""The MCP servers a run's agent cases call: their lifecycle over one run.

A suite whose tools run on an MCP server (`implementations: {mcp: ...}`) gets one server for the
whole run, started when its first agent sample needs it (a run that never reaches an agent case
of the suite never starts it) and shared by all its samples; with `isolate: true`, each sample
gets its own server on a fresh working root, stopped when the sample ends. Every server still
running is stopped by `close()`, which `dispatch.run_jobs` calls in a `finally`, so the end of a
run, an error and Ctrl-C (the cancellation of run_jobs) all stop them.

A server that cannot start fails each sample that needs it with that one-line error (a sample
error: not scored, redone by --resume); a shared server that died during a sample (its calls
became tool errors there) is started afresh for the samples after it.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from .mcp_tools import McpError, McpToolbox
from .suites import LoadedSuite


class Toolboxes:
    """The MCP toolboxes of one run. Not bound to an event loop until first used."""

    def __init__(self) -> None:
        self._shared: dict[Path, asyncio.Task[McpToolbox]] = {}
        self._reaping: set[asyncio.Task[None]] = set()  # closes of dead shared servers
        self._closed = False

    @asynccontextmanager
    async def use(self, loaded: LoadedSuite) -> AsyncIterator[McpToolbox]:
        """The toolbox for one sample of `loaded` (an MCP suite); McpError when its server cannot start."""
        server = loaded.suite.mcp
        assert server is not None, f"{loaded.path} has no MCP server"
        if self._closed:
            raise McpError(f"{loaded.path}: the run is over; its MCP servers are stopped")
        if server.isolate:
            async with McpToolbox(server, loaded.path, loaded.suite.tools) as box:
                yield box
        else:
            yield await self._shared_box(loaded)

    async def _shared_box(self, loaded: LoadedSuite) -> McpToolbox:
        key = loaded.path.resolve()
        task = self._shared.get(key)
        if task is not None and task.done() and not task.cancelled() and task.exception() is None:
            box = task.result()
            if box.connection is None or not box.connection.alive:
                task = None  # it died during an earlier sample: a fresh server for the rest
                reap = asyncio.create_task(box.close())  # what is left of it; close() is bounded
                self._reaping.add(reap)
                reap.add_done_callback(self._reaping.discard)
        if task is None:
            server = loaded.suite.mcp
            assert server is not None
            # A task, not a plain await: samples waiting for the start may be cancelled one by one
            # without cancelling the start the others wait for.
            task = asyncio.create_task(McpToolbox(server, loaded.path, loaded.suite.tools).start(),
                                       name=f"mcp-start:{loaded.suite.name}")
            self._shared[key] = task
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Stop every shared server (a start still under way is cancelled, which stops it too)."""
        self._closed = True
        tasks = list(self._shared.values())
        self._shared.clear()
        for task in tasks:
            if not task.done():
                task.cancel()
        started = await asyncio.gather(*tasks, return_exceptions=True)
        boxes = [box for box in started if isinstance(box, McpToolbox)]
        await asyncio.gather(*(box.close() for box in boxes), *self._reaping, return_exceptions=True)
