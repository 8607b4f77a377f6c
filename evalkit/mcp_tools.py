"""Tools from MCP servers: start a server (stdio) or reach one (streamable HTTP), list and call its tools.

Built on the official `mcp` SDK (2.x: snake_case result attributes): `stdio_client` or
`streamable_http_client` under a `ClientSession`. One `McpConnection` is one server session,
shared by concurrent calls. The SDK's transports live in anyio task groups that must be entered
and left by one task, so a background task owns them and callers only send requests.

Nothing here may hang or leak a process: every request has a timeout, a server that exits is
reported with the tail of its stderr, and servers are stopped on close. The SDK already stops a
stdio server by closing its stdin, then signalling its process group; as a last resort (a loop
torn down by Ctrl-C before the SDK could do that) the group is killed here, at close and at exit.
A stdio server runs behind evalkit/mcp_launcher.py (`launched`): it bounds each message where the
bytes arrive, and stops the server and all it started when evalkit itself is killed.

`McpToolbox` is what the agent runner uses: one server with its working root (a fresh copy of
the suite's fixtures for `isolate: true`), its tools as `ToolDef`s, and `call(ToolCall) ->
(text for the model, ok)` as a Python implementation's `execute_call` returns.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import re
import signal
import sys
import tempfile
import weakref
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .errors import EvalkitError
from .limits import MAX_MCP_MESSAGE_BYTES, MAX_TOOL_RESULT_CHARS
from .mcp_launcher import descendants as _descendants
from .mcp_launcher import parents as _parents
from .schema import McpServer, ToolCall, ToolDef

STDERR_TAIL_CHARS = 600
MAX_PAGES = 1000  # tools/list pages followed before a paginator that never ends is refused
# OpenAI's rule for function names; an MCP name outside it is offered renamed, with `x-mcp-name`.
# Whole-string (fullmatch): `$` also matched before a final newline, so `abc\n` passed as it was.
OPENAI_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MCP_NAME_KEY = "x-mcp-name"


class McpError(EvalkitError):
    """A server that cannot be started, reached or used; the message is one line."""


@dataclass(frozen=True)
class ServerInfo:
    name: str
    version: str


# ---------------------------------------------------------------- tool schemas


def offered_name(mcp_name: str) -> str:
    return mcp_name if OPENAI_NAME.fullmatch(mcp_name) else re.sub(r"[^a-zA-Z0-9_-]", "_", mcp_name)[:64] or "_"


def name_clashes(mcp_names: list[str]) -> str | None:
    """Why these MCP tool names cannot all be offered, or None: a name listed twice, or names that
    become the same OpenAI name (`a/b` and `a_b`): every call would reach one of them."""
    repeated = sorted({n for n in mcp_names if mcp_names.count(n) > 1}) if len(set(mcp_names)) < len(mcp_names) else []
    if repeated:
        return f"the server lists the tool(s) {', '.join(map(repr, repeated))} more than once"
    offered: dict[str, list[str]] = {}
    for name in mcp_names:
        offered.setdefault(offered_name(name), []).append(name)
    clashes = [f"{' and '.join(map(repr, names))} (both {as_name!r})" for as_name, names in offered.items() if len(names) > 1]
    if clashes:
        return f"tools whose names become the same OpenAI function name: {'; '.join(clashes)}"
    return None


def tool_def(name: str, description: str | None, input_schema: dict[str, Any]) -> ToolDef:
    """An MCP tool (`tools/list` entry) as an OpenAI tool definition: `inputSchema` -> `parameters`."""
    data: dict[str, Any] = {
        "type": "function",
        "function": {"name": offered_name(name), "description": description or "", "parameters": dict(input_schema)},
    }
    if data["function"]["name"] != name:
        data[MCP_NAME_KEY] = name  # beside `function`: prompt formats show the function object to the model
    return ToolDef.model_validate(data)


def mcp_name(tool: ToolDef) -> str:
    extra = tool.model_extra or {}
    return str(extra.get(MCP_NAME_KEY) or tool.function.name)


def result_text(result: Any) -> str:
    """The text a tool result gives the model: its content blocks in order (structured content
    only when there is no content, as the spec asks servers to mirror it in text). Cut at
    MAX_TOOL_RESULT_CHARS, saying so to the model, and no block past the cut is looked at."""
    parts: list[str] = []
    size = 0
    for count, block in enumerate(result.content or []):
        if size > MAX_TOOL_RESULT_CHARS:
            return _cut_result(parts, len(result.content) - count)
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource":
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[resource {resource.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")
        else:
            parts.append(f"[{kind} {getattr(block, 'mime_type', '')}]".replace(" ]", "]"))
        size += len(parts[-1]) + 1
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(parts)
    return text if len(text) <= MAX_TOOL_RESULT_CHARS else _cut_result([text], 0)


def _cut_result(parts: list[str], blocks_left: int) -> str:
    text = "\n".join(parts)
    more = f" and {blocks_left:,} more content blocks" if blocks_left else ""
    return (text[:MAX_TOOL_RESULT_CHARS] + f"\n[the tool result was cut here: it is over {MAX_TOOL_RESULT_CHARS:,} "
            f"characters{more} (evalkit's limit on a tool result)]")


# ---------------------------------------------------------------- processes


# One per event loop: an asyncio.Lock belongs to the loop it first waited in, and a sweep runs
# each model in its own asyncio.run (the second model's MCP servers then failed to start).
_spawn_locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = weakref.WeakKeyDictionary()
_live_groups: set[int] = set()


def _child_pids() -> set[int]:
    """This process's children (Linux /proc; elsewhere none, and the SDK's own shutdown is all)."""
    me = os.getpid()
    return {pid for pid, parent in _parents().items() if parent == me}


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    _live_groups.discard(pgid)


@atexit.register
def _kill_leftovers() -> None:
    for pgid in list(_live_groups):
        _kill_group(pgid)


def _tail(handle: BinaryIO | None) -> str:
    """The last lines the server wrote to stderr, on one line."""
    if handle is None:
        return ""
    try:
        size = os.fstat(handle.fileno()).st_size
        data = os.pread(handle.fileno(), STDERR_TAIL_CHARS * 4, max(0, size - STDERR_TAIL_CHARS * 4))
    except (OSError, ValueError):
        return ""
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    text = " | ".join(lines)
    return text[-STDERR_TAIL_CHARS:]


if sys.version_info < (3, 11):  # pragma: no cover - anyio brings the backport there
    from exceptiongroup import BaseExceptionGroup


def _unwrap(exc: BaseException) -> BaseException:
    """The first real error inside the SDK's task-group exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def expand(words: list[str], root: Path | None, suite_dir: Path | None) -> list[str]:
    """`{root}` (the working root) and `{suite}` (the suite file's folder) filled in."""
    out = []
    for word in words:
        if root is not None:
            word = word.replace("{root}", str(root))
        if suite_dir is not None:
            word = word.replace("{suite}", str(suite_dir))
        out.append(word)
    return out


def executable(command: list[str]) -> list[str]:
    """A leading `python` is the interpreter running evalkit: the Python servers evalkit depends
    on are installed in its environment, which need not be the first `python` on PATH."""
    if command and command[0] in ("python", "python3"):
        return [sys.executable, *command[1:]]
    return list(command)


def launched(command: list[str]) -> list[str]:
    """The server's command behind evalkit/mcp_launcher.py, which bounds each message at
    MAX_MCP_MESSAGE_BYTES as it arrives and stops the server (and all it started) when evalkit
    dies. Run by path, isolated (`-I`: PYTHON* variables and the script's folder ignored) and
    without site-packages (`-S`): it needs the standard library only. POSIX only (it relies on
    process groups and signals there); elsewhere the server is started as it is."""
    if os.name != "posix":
        return list(command)
    launcher = Path(__file__).with_name("mcp_launcher.py")
    return [sys.executable, "-I", "-S", str(launcher), "--max-bytes", str(MAX_MCP_MESSAGE_BYTES),
            "--parent", str(os.getpid()), "--", *command]  # fmt: skip


# ---------------------------------------------------------------- one server session


class McpConnection:
    """One MCP server session: started over stdio (`command`) or reached over HTTP (`url`)."""

    def __init__(
        self,
        *,
        command: list[str] | None = None,
        url: str | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        if (command is None) == (url is None) or (command is not None and not command):
            raise ValueError("give a command or a url")
        self.label = " ".join(command) if command else str(url)
        self.command = executable(command) if command is not None else None
        self.url, self.cwd, self.env, self.timeout_s = url, cwd, env or {}, timeout_s
        self.info: ServerInfo | None = None
        self._session: Any = None
        self._stderr: BinaryIO | None = None
        self._pgid: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._failure: BaseException | None = None
        self._lost = False  # a call found the server gone (the session may not have noticed yet)

    # ------------------------------------------------ lifecycle

    async def open(self) -> "McpConnection":
        """Start (or connect to) the server and initialize the session; McpError when it cannot."""
        _quiet_sdk()
        self._task = asyncio.create_task(self._own(), name=f"mcp:{self.label}")
        ready = asyncio.create_task(self._ready.wait())
        try:
            await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            ready.cancel()
            await self.close()
            raise
        ready.cancel()
        if self._session is None:
            await asyncio.sleep(0.05)  # let the server's last stderr lines land
            message = self._describe(self._failure, "did not start" if self.command else "did not answer")
            await self.close()
            raise McpError(message)
        return self

    async def close(self) -> None:
        """Stop the server (bounded: the SDK waits about 4 s before it kills), then reap its group
        and whatever it started outside the group (found now, while they are still its descendants)."""
        escaped = _descendants(self._pgid) if self._pgid is not None else set()
        self._stop.set()
        task = self._task
        if task is not None and not task.done():
            if self._session is None:
                task.cancel()  # still starting: nothing to finish gracefully
            try:
                # The SDK's stop is bounded (stdin closed, 2 s, SIGTERM, 2 s, SIGKILL); this bound is a backstop.
                await asyncio.wait_for(asyncio.shield(task), 15)
            except asyncio.TimeoutError:
                task.cancel()
            except BaseException:  # our caller is cancelled (Ctrl-C): no waiting
                task.cancel()
                if self._pgid is not None:
                    _kill_group(self._pgid)
                raise
        if self._pgid is not None:
            _kill_group(self._pgid)  # gone already after a clean stop; a survivor is killed
            self._pgid = None
        for pid in escaped:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    async def __aenter__(self) -> "McpConnection":
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def alive(self) -> bool:
        return self._session is not None and self._task is not None and not self._task.done() and not self._lost

    def stderr_tail(self) -> str:
        return _tail(self._stderr)

    async def _own(self) -> None:
        from mcp import ClientSession
        from mcp_types import Implementation

        from . import __version__

        try:
            async with AsyncExitStack() as stack:
                read, write = await self._transport(stack)
                session = ClientSession(
                    read, write, read_timeout_seconds=self.timeout_s,
                    client_info=Implementation(name="evalkit", version=__version__),
                )  # fmt: skip
                await stack.enter_async_context(session)
                result = await session.initialize()
                self.info = ServerInfo(result.server_info.name, result.server_info.version)
                self._session = session
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported by open() or by the next call
            self._failure = _unwrap(exc)
            if isinstance(self._failure, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self._ready.set()

    async def _transport(self, stack: AsyncExitStack) -> tuple[Any, Any]:
        if self.url is not None:
            from mcp.client.streamable_http import streamable_http_client

            return await stack.enter_async_context(streamable_http_client(self.url))
        from mcp import StdioServerParameters, stdio_client

        assert self.command
        self._stderr = tempfile.TemporaryFile(prefix="evalkit-mcp-stderr-")
        words = launched(self.command)
        params = StdioServerParameters(
            command=words[0], args=words[1:], env=self.env or None,
            cwd=str(self.cwd) if self.cwd else None,
        )  # fmt: skip
        spawn_lock = _spawn_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        # One spawn at a time, so the one new child is this server (its group is killed if it survives).
        async with spawn_lock:
            before = _child_pids()
            streams = await stack.enter_async_context(stdio_client(params, errlog=self._stderr))  # type: ignore[arg-type]
            new = _child_pids() - before
        if len(new) == 1:
            self._pgid = new.pop()  # the SDK starts it in a new session: its pid is its group id
            _live_groups.add(self._pgid)
        return streams

    def _describe(self, exc: BaseException | None, what: str) -> str:
        """One line: which server, what went wrong, and what it said on stderr."""
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        if isinstance(exc, FileNotFoundError):
            reason = f"command not found: {self.command[0] if self.command else exc}"
        elif isinstance(exc, MCPError) and exc.code == REQUEST_TIMEOUT:
            reason = f"no answer within {self.timeout_s:g}s"
        elif isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED:
            reason = "it exited" if self.command else "the connection closed"
        elif exc is not None:
            reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        else:
            reason = "it stopped"
        tail = self.stderr_tail()
        message = f"MCP server `{self.label}` {what}: {reason}"
        return " ".join((message + (f"; stderr: {tail}" if tail else "")).split())

    # ------------------------------------------------ requests

    async def list_tools(self) -> list[Any]:
        """Every tool the server offers, following `nextCursor` page by page."""
        from mcp_types import PaginatedRequestParams

        session = self._require()
        tools: list[Any] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            try:
                page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            except Exception as exc:  # noqa: BLE001 - one line for the user
                raise McpError(self._describe(_unwrap(exc), "did not list its tools")) from None
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                return tools
            if cursor in seen:
                raise McpError(f"MCP server `{self.label}` repeated the tools/list cursor {cursor!r}")
            seen.add(cursor)
        raise McpError(f"MCP server `{self.label}` sent more than {MAX_PAGES} pages of tools")

    async def call(self, name: str, arguments: dict[str, Any] | None, timeout_s: float | None = None) -> tuple[str, bool]:
        """(text of the result's content, ok). A timeout, a crash or a protocol error is an error
        text with ok False, never an exception: the model is told and the sample goes on."""
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        timeout = timeout_s or self.timeout_s
        if not self.alive:
            return f"Error: {self._describe(self._failure, 'is not running')}", False
        try:
            result = await self._session.call_tool(name, arguments or {}, read_timeout_seconds=timeout)
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                return f"Error: tool {name} timed out after {timeout:g}s", False
            if exc.code == CONNECTION_CLOSED:
                self._lost = True  # later calls fail at once, and a shared toolbox is started afresh
                self._failure = self._failure or exc
                await asyncio.sleep(0.05)  # let the server's last stderr lines land
                return f"Error: {self._describe(exc, f'failed during {name}')}", False
            return f"Error: {name}: {exc.message}", False  # the server's protocol error, e.g. unknown tool
        except Exception as exc:  # noqa: BLE001 - an invalid result, a broken stream: the model is told
            exc = _unwrap(exc)
            return f"Error: {name}: MCP protocol error: {type(exc).__name__}: {exc}", False
        return result_text(result), not result.is_error

    def _require(self) -> Any:
        if not self.alive:
            raise McpError(self._describe(self._failure, "is not running"))
        return self._session


def _quiet_sdk() -> None:
    """The MCP SDK logs a traceback for every stdout line of a server that is not JSON-RPC (about
    200 tracebacks, 180 KB of stderr, for a server printing garbage); evalkit's own one line says
    what went wrong, so the SDK's log records go nowhere (a handler of its own stops Python's
    last-resort printing; propagate off keeps them from any root handler)."""
    sdk = logging.getLogger("mcp")
    if not sdk.handlers:
        sdk.addHandler(logging.NullHandler())
        sdk.propagate = False


# ---------------------------------------------------------------- what the agent runner uses

SETUP_TAIL_BYTES = 64 * 1024


async def _tail_of(process: asyncio.subprocess.Process) -> bytes:
    """The process's output read to its end, keeping only the last SETUP_TAIL_BYTES (what an error
    line shows): `communicate()` held it whole, 1.1 GB for a setup that printed 500 MB."""
    assert process.stdout is not None
    tail = b""
    while chunk := await process.stdout.read(65536):
        tail = (tail + chunk)[-SETUP_TAIL_BYTES:]
    await process.wait()
    return tail


class McpToolbox:
    """A suite's MCP server with its working root: tools to offer and a way to run calls.

    With `isolate: true` the runner makes one per sample; otherwise one per run and suite.
    `declared` are the suite's tools (from its YAML); `start` checks that the server offers each.
    """

    def __init__(self, server: McpServer, suite_path: Path | None = None, declared: list[ToolDef] | None = None) -> None:
        self.server = server
        self.suite_dir = Path(suite_path).resolve().parent if suite_path is not None else None
        self.declared = list(declared or [])
        self.root: Path | None = None
        self.connection: McpConnection | None = None
        self._offered: list[ToolDef] = []
        self._names: dict[str, str] = {}  # offered name -> MCP name
        self._files = ExitStack()

    @property
    def info(self) -> ServerInfo | None:
        return self.connection.info if self.connection else None

    def _relative(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() or self.suite_dir is None else self.suite_dir / path

    async def start(self) -> "McpToolbox":
        from .sandbox import sandbox_dir

        server = self.server
        try:
            cwd = None
            isolated = server.command is not None and bool(server.isolate or server.fixtures or server.setup)
            if isolated:
                fixtures = self._relative(server.fixtures) if server.fixtures else None
                self.root = self._files.enter_context(sandbox_dir(fixtures))
                cwd = self.root
            elif server.cwd is not None:
                cwd = self._relative(server.cwd)
            # Once the root exists: `{root}` in a value is this sample's fresh root, for setup and server alike.
            env = {k: expand([v], self.root, self.suite_dir)[0] for k, v in server.env.items()}
            if isolated and server.setup:
                await self._run_setup(server.setup, env)
            command = expand(server.command, self.root, self.suite_dir) if server.command else None
            self.connection = McpConnection(command=command, url=server.url, cwd=cwd, env=env, timeout_s=server.timeout_s)
            await self.connection.open()
            tools = await self.connection.list_tools()
            if (clash := name_clashes([t.name for t in tools])) is not None:
                raise McpError(f"MCP server {self.info.name if self.info else self.connection.label}: {clash}")
            listed = {t.name: t for t in tools}
            self._offered = self._check(listed)
        except BaseException:
            await self.close()
            raise
        return self

    def _check(self, listed: dict[str, Any]) -> list[ToolDef]:
        served = [tool_def(t.name, t.description, t.input_schema) for t in listed.values()]
        if not self.declared:
            chosen = served
        else:
            missing = [t.function.name for t in self.declared if mcp_name(t) not in listed]
            if missing:
                assert self.connection is not None
                who = f"{self.info.name} {self.info.version}" if self.info else self.connection.label
                raise McpError(f"MCP server {who} does not offer the suite's tool(s) {', '.join(missing)} (it offers {', '.join(sorted(listed)) or 'none'})")
            chosen = self.declared
        self._names = {t.function.name: mcp_name(t) for t in chosen}
        return chosen

    async def _run_setup(self, setup: list[str], server_env: dict[str, str]) -> None:
        """The suite's `setup` command, in the fresh working root (e.g. building a git repository),
        with the server's own environment variables."""
        from mcp.client.stdio import get_default_environment

        assert self.root is not None
        words = executable(expand(setup, self.root, self.suite_dir))
        env = get_default_environment() | server_env
        try:
            process = await asyncio.create_subprocess_exec(
                *words, cwd=self.root, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise McpError(f"setup `{' '.join(setup)}` could not start: {exc}") from None
        try:
            output = await asyncio.wait_for(_tail_of(process), self.server.timeout_s)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            _kill_group(process.pid)
            await process.wait()
            raise McpError(f"setup `{' '.join(setup)}` did not finish within {self.server.timeout_s:g}s") from None
        if process.returncode != 0:
            tail = " | ".join(line.strip()[-200:] for line in output.decode("utf-8", "replace").splitlines()[-5:] if line.strip())
            raise McpError(f"setup `{' '.join(setup)}` failed with exit code {process.returncode}: {tail}")

    def tools(self) -> list[ToolDef]:
        return list(self._offered)


    async def call(self, call: ToolCall, timeout_s: float | None = None) -> tuple[str, bool]:
        """Run one requested tool on the server: (text for the model, ok), like `execute_call`."""
        if call.parse_error or not call.name:
            return f"Error: the tool call could not be parsed ({call.parse_error or 'no name'})", False
        if call.name not in self._names:
            return f"Error: tool {call.name!r} is not offered", False
        if self.connection is None:
            return "Error: the MCP server is not started", False
        return await self.connection.call(self._names[call.name], call.arguments, timeout_s)

    async def close(self) -> None:
        try:
            if self.connection is not None:
                await self.connection.close()
        finally:
            self._files.close()  # the working root goes after the server that used it

    async def __aenter__(self) -> "McpToolbox":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# ---------------------------------------------------------------- one-shot use (import, checks)


async def read_server(
    command: list[str] | None = None, url: str | None = None, timeout_s: float = 30.0, cwd: Path | None = None
) -> tuple[ServerInfo, list[Any]]:
    """Start or reach a server, read its identity and all its tools, and stop it."""
    connection = McpConnection(command=command, url=url, timeout_s=timeout_s, cwd=cwd)
    async with connection:
        tools = await connection.list_tools()
        assert connection.info is not None
        return connection.info, tools
