"""A small HTTP/1.1 client for the run's chat completions: kept-alive connections over asyncio
streams, each request sent in one write, bodies framed by Content-Length, chunked transfer or
the connection's close.

Why not httpx, which the openai client sits on: against the scripted server on this 2-core
machine httpx took 1.2-1.9 ms of CPU per request, this client about 0.1 ms (the request's
headers and body in one write instead of two halves the kernel's work too); with a fast server
that was most of evalkit's CPU per sample (issue 17, benchmarks/bench_overhead.py).

Left out on purpose: HTTP/2, proxies (like engine/discover.py's GETs), redirects, cookies and
compression (it asks for `identity`). https works, with the system's certificate store.
"""

from __future__ import annotations

import asyncio
import codecs
import ssl
from typing import AsyncIterator, Awaitable, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

READ_SIZE = 64 * 1024
"""Most bytes one read returns: a caller checking a size limit sees the body in pieces this big."""

MAX_HEAD_BYTES = 64 * 1024
"""Longest status line plus headers accepted (asyncio's StreamReader limit)."""


class HTTPFailure(Exception):
    """Base of what this module raises; `client.classify` turns each kind into a TransportError."""


class ConnectFailed(HTTPFailure):
    """No answer: the connection could not be made, or was closed or reset before a status line."""


class ReadTimeout(HTTPFailure):
    """No data within the read timeout (or no connection within it)."""


class BodyBroken(HTTPFailure):
    """The connection failed or closed in the middle of the body."""


class ProtocolError(HTTPFailure):
    """What came back is not HTTP/1.x."""


if hasattr(asyncio, "timeout"):

    async def _gap(work: Awaitable[T], seconds: float) -> T:
        try:
            async with asyncio.timeout(seconds):
                return await work
        except TimeoutError:
            raise ReadTimeout(f"no data within {seconds:g} s") from None

else:  # pragma: no cover - Python 3.10

    async def _gap(work: Awaitable[T], seconds: float) -> T:
        try:
            return await asyncio.wait_for(work, seconds)
        except asyncio.TimeoutError:
            raise ReadTimeout(f"no data within {seconds:g} s") from None


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    def idle_ok(self) -> bool:
        """Still open, and nothing unasked for has arrived (a server's close shows as EOF)."""
        return not self.writer.is_closing() and not self.reader.at_eof() and not self.reader._buffer  # noqa: SLF001

    def close(self) -> None:
        self.writer.close()


class Response:
    """Status and headers are read; the body is read with `aiter_bytes` or `aiter_text`, and
    `aclose` must follow (in a `finally`): it keeps the connection for the next request only
    when the body was read to its end."""

    def __init__(self, pool: "Pool", conn: _Connection, status: int, headers: dict[str, str], framing: str, length: int, keep: bool):
        self._pool, self._conn = pool, conn
        self.status_code = status
        self.headers = headers  # names in lower case; repeated headers joined with ", "
        self._framing, self._length, self._keep = framing, length, keep
        self._done = framing == "none"
        self._closed = False

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        reader, gap = self._conn.reader, self._pool.timeout
        try:
            if self._framing == "length":
                remaining = self._length
                while remaining:
                    chunk = await _gap(reader.read(min(remaining, READ_SIZE)), gap)
                    if not chunk:
                        raise BodyBroken(f"the server closed the connection {self._length - remaining:,} bytes into a body of {self._length:,}")
                    remaining -= len(chunk)
                    yield chunk
            elif self._framing == "chunked":
                # Whatever arrived is unframed at once: one read (and one timer) per network read,
                # not three per chunk (a streamed reply is a chunk per event).
                body = _Dechunker()
                while not body.finished:
                    data = await _gap(reader.read(READ_SIZE), gap)
                    if not data:
                        raise BodyBroken("the server closed the connection in the middle of a chunked body")
                    payload = body.feed(data)
                    if payload:
                        yield payload
                if body.extra:
                    self._keep = False  # bytes after the body's end: nothing to reuse the connection for
            elif self._framing == "close":
                while chunk := await _gap(reader.read(READ_SIZE), gap):
                    yield chunk
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise BodyBroken(f"{type(exc).__name__}: {exc}") from None
        self._done = True

    async def aiter_text(self) -> AsyncIterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        async for chunk in self.aiter_bytes():
            text = decoder.decode(chunk)
            if text:
                yield text
        tail = decoder.decode(b"", True)
        if tail:
            yield tail

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._done and self._keep:
            self._pool.release(self._conn)
        else:
            self._conn.close()


class _Dechunker:
    """Chunked transfer coding, undone incrementally: `feed` the bytes as they come, get the payload."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.state = "size"  # size line -> data -> line end -> size line ... -> trailer -> done
        self.remaining = 0
        self.extra = False  # bytes after the end of the body

    @property
    def finished(self) -> bool:
        return self.state == "done"

    def feed(self, data: bytes) -> bytes:
        buffer = self.buffer
        buffer += data
        out: list[bytes] = []
        while buffer:
            if self.state == "data":
                take = min(self.remaining, len(buffer))
                out.append(bytes(buffer[:take]))
                del buffer[:take]
                self.remaining -= take
                if not self.remaining:
                    self.state = "end"
                continue
            if self.state == "done":
                self.extra = True
                buffer.clear()
                break
            newline = buffer.find(b"\n")
            if newline < 0:
                if len(buffer) > 8192:
                    raise BodyBroken(f"a line of the chunked framing is over 8,192 bytes: {bytes(buffer[:40])!r}")
                break
            line = bytes(buffer[: newline + 1])
            del buffer[: newline + 1]
            if self.state == "size":
                self.remaining = _chunk_size(line)
                self.state = "data" if self.remaining else "trailer"
            elif self.state == "end":
                if line not in (b"\r\n", b"\n"):
                    raise BodyBroken(f"a chunk of the body is not followed by a line end: {line[:40]!r}")
                self.state = "size"
            elif line in (b"\r\n", b"\n"):  # the blank line after the trailer's fields
                self.state = "done"
        return b"".join(out)


def _chunk_size(line: bytes) -> int:
    try:
        size = int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        raise BodyBroken(f"a chunk size is not hexadecimal: {line[:40]!r}") from None
    if size < 0:
        raise BodyBroken(f"a negative chunk size: {line[:40]!r}")
    return size


class Pool:
    """Connections to one origin (scheme, host, port), kept alive between requests."""

    def __init__(self, base_url: str, timeout: float, max_idle: int = 100):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        default_port = self.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if default_port else f"{host}:{self.port}"
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: list[_Connection] = []
        self._ssl: ssl.SSLContext | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await _gap(
                asyncio.open_connection(
                    self.host, self.port, limit=MAX_HEAD_BYTES,
                    ssl=self._ssl_context() if self.tls else None, server_hostname=self.host if self.tls else None,
                ),
                self.timeout,
            )
        except ReadTimeout:
            raise ReadTimeout(f"no connection to {self.authority} within {self.timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"{self.authority}: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)) from None
        return _Connection(reader, writer)

    def release(self, conn: _Connection) -> None:
        if len(self._idle) < self.max_idle and conn.idle_ok():
            self._idle.append(conn)
        else:
            conn.close()

    def head_prefix(self, target: str, headers: dict[str, str]) -> bytes:
        """The request line and headers of a POST to `target`, up to the Content-Length value:
        made once per client, so a request only adds its length."""
        lines = [f"POST {target} HTTP/1.1", f"host: {self.authority}", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\ncontent-length: ").encode("latin-1")

    async def post(self, prefix: bytes, body: bytes) -> Response:
        """POST `body` (with the head from `head_prefix`) in one write; return once the status
        and headers are in."""
        head = b"%s%d\r\n\r\n" % (prefix, len(body))
        conn = None
        while self._idle:
            candidate = self._idle.pop()
            if candidate.idle_ok():
                conn = candidate
                break
            candidate.close()
        if conn is None:
            conn = await self._connect()
        try:
            conn.writer.write(head + body)
            if conn.writer.transport.get_write_buffer_size():
                await _gap(conn.writer.drain(), self.timeout)
            status, headers = await self._read_head(conn.reader)
            return _response(self, conn, status, headers)
        except BaseException:
            conn.close()
            raise

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            try:
                await conn.writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
        while True:  # 1xx answers (100 Continue, 103 Early Hints) come before the real one
            try:
                raw = await _gap(reader.readuntil(b"\r\n\r\n"), self.timeout)
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise ConnectFailed("the server closed the connection without answering") from None
                raise ProtocolError(f"the answer ended inside its headers: {exc.partial[:80]!r}") from None
            except asyncio.LimitOverrunError:
                raise ProtocolError(f"the status line and headers are over {MAX_HEAD_BYTES:,} bytes") from None
            except (ConnectionError, OSError) as exc:
                raise ConnectFailed(f"the connection failed before an answer: {type(exc).__name__}: {exc}") from None
            status, headers = _parse_head(raw)
            if not 100 <= status < 200 or status == 101:
                return status, headers


def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    lines = raw[:-4].split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {"": parts[0].decode("ascii", "replace")}  # "" holds the version
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise ProtocolError(f"not a header line: {line[:80]!r}")
        key = name.strip().lower().decode("latin-1")
        text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return int(parts[1]), headers


def _response(pool: Pool, conn: _Connection, status: int, headers: dict[str, str]) -> Response:
    version = headers.pop("")
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    if status in (204, 304):
        return Response(pool, conn, status, headers, "none", 0, keep)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Response(pool, conn, status, headers, "chunked", 0, keep)
    declared = headers.get("content-length")
    if declared is not None:
        values = {v.strip() for v in declared.split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise ProtocolError(f"an invalid Content-Length: {declared[:40]!r}")
        length = int(values.pop())
        return Response(pool, conn, status, headers, "length" if length else "none", length, keep)
    return Response(pool, conn, status, headers, "close", 0, False)  # the body ends when the connection does
