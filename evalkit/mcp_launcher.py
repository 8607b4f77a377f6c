"""Start a stdio MCP server behind a small relay that bounds what reaches evalkit and takes the
server, and everything it started, down with it.

    python -I -S mcp_launcher.py --max-bytes N --parent PID -- COMMAND [ARGS...]

evalkit starts this in place of the server's command; the MCP SDK's `stdio_client` talks to it as
it would to the server. It is a process of its own for two reasons:

- Size. The SDK reads a whole JSON-RPC line and parses it before evalkit sees any of it: a 100 MB
  tool result went through it whole and timed out. Here the server's stdout is read in chunks and
  a line is never held past N bytes: a longer one is replaced by a JSON-RPC error with the same
  `id` (read from the start of the line) saying how big it was. evalkit's cut of a result at
  MAX_TOOL_RESULT_CHARS characters stays the inner limit.
- Lifetime. After a kill -9 of evalkit, a server that ignores stdin EOF kept running, and so did
  its `setsid` grandchildren. On Linux this process asks for SIGTERM when evalkit dies
  (PR_SET_PDEATHSIG) and adopts the orphans below it (PR_SET_CHILD_SUBREAPER); on SIGTERM, or
  when the server exits, it stops the server and every descendant, then exits.

The server's stdin and stderr are this process's own (inherited, not relayed): requests are
small, and the SDK's stop (closing stdin, then signalling the process group, which the server
shares with this process) reaches the server as before. Standard library only, and run by path
with `-I -S`: it starts once per sample and must start fast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

CHUNK = 65536
HEAD_BYTES = 4096  # kept from the start of an over-long line, to read its id
GRACE_S = 1.0  # SIGTERM to SIGKILL; under the SDK's own 2 s before it kills this process's group
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# The id of a JSON-RPC message, first key or after "jsonrpc" (as the SDKs write them), and the key
# after it (or after "jsonrpc"): "method" makes the line a request from the server, not an answer.
_VERSION = rb'(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?'
ID_PATTERN = rb'\s*\{\s*' + _VERSION + rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")\s*,\s*' + _VERSION + rb'"(\w+)"'


class _Stop(Exception):
    """A signal to stop (SIGTERM from the SDK or from PR_SET_PDEATHSIG, SIGINT, SIGHUP)."""


# ---------------------------------------------------------------- processes (also used by mcp_tools)


def parents() -> dict[int, int]:
    """pid -> parent pid of every live process (Linux /proc; elsewhere none). Zombies are left
    out: an exited process that waits to be reaped is not running."""
    found: dict[int, int] = {}
    for name in os.listdir("/proc") if os.path.exists("/proc/self/stat") else []:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                text = handle.read()
        except OSError:
            continue
        fields = text[text.rfind(b")") + 2 :].split()  # after "pid (comm) "
        if len(fields) > 1 and fields[1].isdigit() and fields[0] != b"Z":
            found[int(name)] = int(fields[1])
    return found


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, whatever its session or group: a server's `setsid` grandchildren
    left its process group and outlived evalkit when only the group was killed."""
    children: dict[int, list[int]] = {}
    for child, parent in parents().items():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _reap() -> None:
    """Collect exited children, the server's adopted orphans among them."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def stop_all() -> None:
    """SIGTERM every descendant (once: a server may handle it), then SIGKILL what is left after
    GRACE_S, again for as long as any is left (up to 1 s). Orphans of the killed ones come to this
    process (the subreaper) and are found on the next look."""
    me = os.getpid()
    _signal_all(descendants(me), signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while descendants(me) and time.monotonic() < deadline:
        time.sleep(0.02)
        _reap()
    deadline = time.monotonic() + 1.0
    while (below := descendants(me)) and time.monotonic() < deadline:
        _signal_all(below, signal.SIGKILL)
        time.sleep(0.02)
        _reap()
    _reap()


def _signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _prctl(option: int, value: int) -> bool:
    import ctypes  # only on Linux: a few ms of start-up elsewhere for nothing

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


# ---------------------------------------------------------------- the relay


def refusal(head: bytes, size: int, limit: int) -> bytes:
    """What evalkit gets instead of a line of `size` bytes: an error answer to the same request,
    or nothing (and a line on stderr) when the line is no answer or its id cannot be read."""
    import json  # here, not at start-up: most runs never need it
    import re

    found = re.match(ID_PATTERN, head)
    ident = None
    if found is not None and found.group(2) != b"method":
        with contextlib.suppress(ValueError):
            ident = json.loads(found.group(1))
    if ident is None:
        sys.stderr.write(f"evalkit: dropped a {size:,}-byte message from the MCP server (over the limit of {limit:,} bytes)\n")
        sys.stderr.flush()
        return b""
    message = f"the MCP server's answer was {size:,} bytes, over evalkit's limit of {limit:,} bytes on one message; it was not read"
    # JSON-RPC's "internal error": -32000 is what the MCP SDK uses for a closed connection.
    error = {"jsonrpc": "2.0", "id": ident, "error": {"code": -32603, "message": message}}
    return json.dumps(error).encode() + b"\n"


def relay(source: int, sink: int, limit: int) -> None:
    """Copy lines from `source` to `sink`; a line over `limit` bytes is counted, not kept (only
    its first HEAD_BYTES), and becomes its `refusal`. Ends at EOF or when evalkit stops reading."""
    line = bytearray()  # the line so far while it is within the limit
    head, size = b"", -1  # size >= 0: the line is over the limit and this many bytes long so far
    try:
        while chunk := os.read(source, CHUNK):
            start = 0
            while start <= len(chunk):
                end = chunk.find(b"\n", start)
                piece = chunk[start : end if end >= 0 else len(chunk)]
                if size >= 0:
                    size += len(piece)
                elif len(line) + len(piece) > limit:
                    head, size = (bytes(line[:HEAD_BYTES]) + piece[:HEAD_BYTES])[:HEAD_BYTES], len(line) + len(piece)
                    line.clear()
                else:
                    line += piece
                if end < 0:
                    break
                out = refusal(head, size, limit) if size >= 0 else bytes(line) + b"\n"
                line.clear()
                head, size = b"", -1
                _write_all(sink, out)
                start = end + 1
    except OSError:  # evalkit closed its end (BrokenPipeError): nothing more to relay
        pass
    finally:
        with contextlib.suppress(OSError):
            os.close(sink)  # the SDK sees the server's stdout end, as it would without this process


def _write_all(sink: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(sink, view) :]


# ---------------------------------------------------------------- main


def _on_signal(signum: int, frame: object) -> None:
    raise _Stop(signum)


def main(argv: list[str]) -> int:
    try:
        split = argv.index("--")
        options = dict(zip(argv[:split:2], argv[1:split:2]))
        limit, parent, command = int(options["--max-bytes"]), int(options["--parent"]), argv[split + 1 :]
        if not command:
            raise ValueError
    except (ValueError, KeyError):
        sys.stderr.write("usage: mcp_launcher.py --max-bytes N --parent PID -- COMMAND [ARGS...]\n")
        return 2
    if sys.platform.startswith("linux"):
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # evalkit died before the death signal was asked for
            return 143
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    code = 143
    try:
        read_end, write_end = os.pipe()
        try:
            server = subprocess.Popen(command, stdout=write_end)  # stdin and stderr: this process's
        except OSError as exc:
            reason = "command not found" if isinstance(exc, FileNotFoundError) else f"cannot start ({exc.strerror})"
            sys.stderr.write(f"{reason}: {command[0]}\n")
            return 127
        os.close(write_end)
        # Only the server reads stdin now: the SDK's closing it is the server's EOF, not held open here.
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        relaying = threading.Thread(target=relay, args=(read_end, 1, limit), daemon=True)
        relaying.start()
        returned = server.wait()
        code = returned if returned >= 0 else 128 - returned
        relaying.join(GRACE_S)  # its last lines (a grandchild holding the pipe must not keep us)
    except _Stop:
        pass
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # the stop below is not to be cut short
        stop_all()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
