"""One chat completion over the OpenAI wire protocol: streamed or not, timed, retried, bounded.

`ChatClient` (one per endpoint) sends the request body as it is over aiohttp (kept-alive
connections, its C HTTP parser); this module reads the reply itself (streamed events and plain
replies alike, as JSON), accumulates streamed tool-call fragments, measures latency and time to
first token, and turns every failure into a `TransportError` so the runner records an `error`
sample instead of crashing.

Why not the openai client: importing it took about a second of CPU before the first request
could leave, and it and the httpx under it took 1.2-1.9 ms of CPU per request here, more than
everything else evalkit does for a sample (issue 17, benchmarks/bench_overhead.py). aiohttp is
imported when the first request is sent. The probe, which wants the openai client's own view of
a server, still uses it (`make_openai_client`).

Limits, so that no reply can hang a run or exhaust memory:
- `deadline_s`: a total deadline per HTTP request, on top of the client's read-gap timeout (a
  stream sending one event a second, or only `: keep-alive` lines, never trips the read gap);
- `max_reply_chars`: content plus tool-call ids, names and arguments per reply, and a fixed
  `CALL_CHARS` per tool call (so a stream of fragments that each only open a new call, with
  nothing else in them, is bounded too); reading stops as soon as a reply is over it, and the raw
  bytes held at once are bounded in proportion.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Mapping

import pydantic_core

from . import __version__, encoded
from .limits import MAX_REPLY_CHARS, RETRY_AFTER_CAP_S  # the defaults, re-exported

if TYPE_CHECKING:
    import aiohttp
    import openai

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Wire bytes per reply character: JSON escapes (`\uXXXX` is 6 bytes for one character) plus the
# envelope of each event. Bounds what is buffered of a single event or a non-streamed body.
_BYTES_PER_CHAR = 8
_BYTES_SLACK = 64 * 1024

CALL_CHARS = 32
"""What each tool call of a reply counts against `max_reply_chars` besides its id, name and
arguments: about what one costs to store ({"id", "name", "arguments"}). Without it, two million
fragments that each bring only a new `id` (or a new `index`) held 6 GB and made a 296 MB line."""


class TransportError(Exception):
    """A failed request. `retryable`: worth another attempt; `retry_after`: the server's wish, in s."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status  # the HTTP status, when the server answered with an error one

    @property
    def refused_key(self) -> bool:
        """The server refused evalkit's credentials (a missing or wrong API key)."""
        return self.status in (401, 403)


def reply_too_large(limit: int) -> TransportError:
    return TransportError(f"the reply is over the limit of {limit:,} characters of content and tool-call arguments (max_reply_chars)", False)


def decode_rate(tokens: int | None, latency_s: float, ttft_s: float | None) -> float | None:
    """Tokens per second of decoding: the time after the first token (the whole time when no
    first token was timed, e.g. a reply that was not streamed)."""
    if not tokens:
        return None
    generation = latency_s - (ttft_s or 0.0)
    if generation <= 0:
        generation = latency_s
    return tokens / generation if generation > 0 else None


@dataclass
class Completion:
    content: str | None
    tool_calls: list[dict[str, Any]]  # {id, name, arguments} with arguments as the raw string sent
    finish_reason: str | None
    usage: dict[str, Any] | None
    timings: dict[str, Any] | None
    latency_s: float
    ttft_s: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_tokens(self) -> int | None:
        return (self.usage or {}).get("prompt_tokens")

    @property
    def completion_tokens(self) -> int | None:
        return (self.usage or {}).get("completion_tokens")

    @property
    def tokens_per_s(self) -> float | None:
        """The server's own decode speed when it reports one (llama.cpp `timings`), else ours."""
        if self.timings and self.timings.get("predicted_per_second"):
            return float(self.timings["predicted_per_second"])
        return decode_rate(self.completion_tokens, self.latency_s, self.ttft_s)

    def raw(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "tool_calls": self.tool_calls,
            "finish_reason": self.finish_reason,
            "usage": self.usage,
            "timings": self.timings,
            **self.extra,
        }


def classify(exc: BaseException) -> TransportError:
    """Which failures are worth a retry: connection errors, timeouts, cut replies, 429 and 5xx only.

    Failures while a body is read are turned into TransportErrors where they happen (`_chunks`);
    what reaches here from aiohttp came before the status line was in."""
    if isinstance(exc, TransportError):
        return exc
    # Each HTTP library's errors exist only once it is imported: aiohttp at the first request,
    # the openai client for the probe's requests.
    aiohttp = sys.modules.get("aiohttp")
    found = _classify_aiohttp(exc, aiohttp) if aiohttp is not None else None
    openai = sys.modules.get("openai")
    if found is None and openai is not None:
        found = _classify_openai(exc, openai)
    return found or TransportError(f"bad reply from the server: {type(exc).__name__}: {exc}", False)


def _classify_aiohttp(exc: BaseException, aiohttp: Any) -> TransportError | None:
    if isinstance(exc, aiohttp.ServerTimeoutError):  # no connection, or no data, within the read gap
        return TransportError("timed out waiting for the server (no data within the read timeout)", True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        return TransportError(f"cannot connect to the server: {exc.host}:{exc.port}: {error.strerror or error}", True)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransportError("cannot connect to the server: the server closed the connection without answering", True)
    if isinstance(exc, aiohttp.ClientConnectionError):  # reset, or failed otherwise, before an answer
        return TransportError(f"cannot connect to the server: the connection failed before an answer: {exc}", True)
    if isinstance(exc, aiohttp.ClientResponseError):  # the parser's: what came is not HTTP
        return TransportError(f"the server's answer is not HTTP/1.x: {_one_line(exc.message)}", False)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _cut(exc)
    return None


def _cut(exc: BaseException) -> TransportError:
    """A body that stopped in the middle: the parser's own words when it has them ("Not enough
    data to satisfy content length header (received 5 of 100 bytes)")."""
    cause = exc.__cause__
    text = getattr(cause, "message", None) if cause is not None else None
    return TransportError(f"the connection broke mid-reply: {_one_line(str(text or exc))}", True)


def _one_line(text: str) -> str:
    """aiohttp's parser errors span lines (the bytes, a caret under the fault): one line of them."""
    return " ".join(part for line in text.splitlines() if (part := line.strip()) and part != "^")


def _classify_openai(exc: BaseException, openai: Any) -> TransportError | None:
    try:  # the openai client's HTTP library (httpx2 in openai >= 3, httpx before)
        import httpx2 as http
    except ImportError:  # pragma: no cover - older openai
        import httpx as http  # type: ignore[no-redef]

    if isinstance(exc, (openai.APITimeoutError, http.TimeoutException)):
        return TransportError("timed out waiting for the server (no data within the read timeout)", True)
    if isinstance(exc, openai.APIConnectionError):
        return TransportError(f"cannot connect to the server: {exc.__cause__ or exc}", True)
    if isinstance(exc, http.TransportError):  # raised while reading a body: the reply was cut off
        return TransportError(f"the connection broke mid-reply: {type(exc).__name__}: {exc}", True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        return _http_status_error(status, _error_message(exc), exc.response.headers)
    if isinstance(exc, openai.APIResponseValidationError):
        return TransportError(f"the server's reply does not follow the OpenAI protocol: {exc}", False)
    return None


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date (against the reply's own `Date`)."""
    try:
        millis = headers.get("retry-after-ms")  # OpenAI's finer-grained variant
        if millis and math.isfinite(float(millis)):
            return max(0.0, float(millis) / 1000)
    except ValueError:
        pass
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        pass
    when, now = _http_date(value), _http_date(headers.get("date") or "")
    if when is None:
        return None
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _http_date(value: str) -> datetime | None:
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _error_message(exc: "openai.APIStatusError") -> str:
    message = _body_message(exc.body)
    return (message if message is not None else str(exc.message))[:300]


def _body_message(body: Any) -> str | None:
    """The server's own message in an error body: `{"error": {"message"}}`, `{"error": "..."}` or
    `{"message"}`; None when it has none."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return None


def _http_status_error(status: int, message: str, headers: Mapping[str, str]) -> TransportError:
    """An HTTP error status: retryable on 429 and 5xx, after the server's Retry-After on 429 and 503."""
    retry_after = retry_after_s(headers) if status in (429, 503) else None
    return TransportError(f"HTTP {status}: {message}", status == 429 or status >= 500, retry_after, status)


async def _complete_once(
    client: "ChatClient", params: dict[str, Any], stream: bool, clock: Clock, max_reply_chars: int = MAX_REPLY_CHARS
) -> Completion:
    start = clock()
    # The request body goes as it is; replies are read as plain JSON from the raw response (no
    # typed objects: they cost CPU per sample, and reading ourselves bounds memory).
    max_bytes = max_reply_chars * _BYTES_PER_CHAR + _BYTES_SLACK
    response = await client.send(_body(params, stream))
    try:
        if not 200 <= response.status < 300:
            raise await _status_error(response, max_bytes)
        if not stream:
            data = await _read_body(response, max_bytes, max_reply_chars)
            return _plain_completion(data, clock() - start, max_reply_chars)
        stream_state = _StreamState(start, clock, max_reply_chars)
        # Read to the very end (not just to [DONE]) so the connection goes back to the pool.
        async for line in _lines(response, max_bytes, max_reply_chars):
            if line.startswith(b"data:"):  # SSE comments (`: keep-alive`) and other fields are skipped
                stream_state.feed_line(line[5:].strip().decode("utf-8", "replace"))
    finally:
        # Back to the pool when the body was read to its end; closed otherwise.
        response.release()
    if stream_state.events and not stream_state.done and stream_state.finish_reason is None:
        raise TransportError("the stream was cut off: it ended without a finish reason or [DONE]", True)
    return stream_state.completion(clock() - start)


_STREAM_FIELDS = b',"stream":true,"stream_options":{"include_usage":true}}'


def _body(params: dict[str, Any], stream: bool) -> bytes:
    """The request's JSON: encoded once (the sample line reuses the bytes, see encoded.py); a
    streamed request is the same object with the stream fields added at its end."""
    if stream and ("stream" in params or "stream_options" in params or not params):
        return pydantic_core.to_json({**params, "stream": True, "stream_options": {"include_usage": True}})
    data = encoded.encode(params)
    return data[:-1] + _STREAM_FIELDS if stream else data


async def _chunks(response: "aiohttp.ClientResponse") -> AsyncIterator[bytes]:
    """The body as it arrives (whatever each read brought; aiohttp pauses the socket once a
    buffer of 128 KiB waits, so a caller checking a size limit sees it in bounded pieces). A
    failure in the middle is a cut reply, or a read-gap timeout."""
    aiohttp = sys.modules["aiohttp"]
    content = response.content
    try:
        while chunk := await content.readany():
            yield chunk
    except aiohttp.ServerTimeoutError as exc:
        raise classify(exc) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise _cut(exc) from None


async def _status_error(response: "aiohttp.ClientResponse", max_bytes: int) -> TransportError:
    """An HTTP error status as a TransportError: the server's own message when its body has one
    (`{"error": {"message"}}`, `{"error": "..."}` or `{"message"}`), retryable on 429 and 5xx."""
    status = response.status
    text = ""
    try:
        raw = await _read_capped(response, max_bytes)  # an oversized error body is not read on
        text = raw.decode("utf-8", "replace").strip() if raw is not None else ""
    except TransportError:
        pass  # the status says enough
    message: str | None = ""
    try:
        body = _loads(text) if text else None
    except (ValueError, RecursionError):
        body = None
        message = text
    if isinstance(body, dict):
        message = _body_message(body)
    return _http_status_error(status, (message or f"Error code: {status}")[:300], response.headers)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _loads(raw: str | bytes) -> Any:
    """JSON from the server, with every lone surrogate (a `\\ud800` escape no UTF-8 file, cache
    or terminal can hold) replaced by U+FFFD, so the reply is scored and stored like any other
    instead of failing the sample when it is written. Only an escape can produce one, so
    replies without `\\ud`/`\\uD` skip the walk."""
    data = json.loads(raw)
    marker = (b"\\ud", b"\\uD") if isinstance(raw, bytes) else ("\\ud", "\\uD")
    if marker[0] in raw or marker[1] in raw:
        data = _well_formed(data)
    return data


def _well_formed(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_well_formed(v) for v in value]
    if isinstance(value, dict):
        return {_well_formed(k): _well_formed(v) for k, v in value.items()}
    return value


async def _read_capped(response: "aiohttp.ClientResponse", max_bytes: int) -> bytes | None:
    """The whole body, or None as soon as it grows past `max_bytes` (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in _chunks(response):
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _read_body(response: "aiohttp.ClientResponse", max_bytes: int, max_reply_chars: int) -> Any:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise reply_too_large(max_reply_chars)
    raw = await _read_capped(response, max_bytes)
    if raw is None:
        raise reply_too_large(max_reply_chars)
    try:
        return _loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond reason
        raise TransportError(f"the server's reply is not JSON: {raw[:80]!r}", False) from None


def _plain_completion(data: Any, latency: float, max_reply_chars: int) -> Completion:
    if not isinstance(data, dict):
        raise TransportError("the server's reply is not a JSON object", False)
    choices = data.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise TransportError("the server answered with no choices", False)
    choice = choices[0]
    message = choice.get("message") or {}
    calls = []
    for tc in message.get("tool_calls") or []:
        function = tc.get("function") if isinstance(tc, dict) else None
        if isinstance(function, dict):
            calls.append({"id": tc.get("id"), "name": function.get("name"), "arguments": function.get("arguments")})
    content = message.get("content")
    size = len(content) if isinstance(content, str) else 0
    size += CALL_CHARS * len(calls)
    size += sum(len(c[key]) for c in calls for key in ("id", "name", "arguments") if isinstance(c[key], str))
    if size > max_reply_chars:
        raise reply_too_large(max_reply_chars)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    return Completion(content, calls, choice.get("finish_reason"), usage, data.get("timings"), latency, None)


async def _lines(response: "aiohttp.ClientResponse", max_bytes: int, max_reply_chars: int) -> AsyncIterator[bytes]:
    """The body's lines as bytes (without the line end), never holding more than `max_bytes` of
    one unfinished line. (aiohttp's own `readline` refuses a line over 128 KiB, and an event of a
    long reply can be longer; buffering any length would let one 50 MB event take 50 MB.)"""
    pending = b""
    async for chunk in _chunks(response):
        if pending:
            chunk = pending + chunk
        *lines, pending = chunk.split(b"\n")
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
        if len(pending) > max_bytes:
            raise reply_too_large(max_reply_chars)
    if pending:
        yield pending


class _StreamState:
    """Accumulates `chat.completion.chunk` events.

    Tool-call fragments are joined by `index`; a fragment without one is told apart by `id` (a
    new id is a new call, no id continues the latest call). A fragment bringing a different id
    to an index already in use starts a new call too: some servers number every call 0.
    """

    def __init__(self, start: float, clock: Clock, max_reply_chars: int = MAX_REPLY_CHARS):
        self.start, self.clock = start, clock
        self.max_reply_chars = max_reply_chars
        self.size = 0  # characters of content, names and arguments so far
        self.content: list[str] = []
        self.calls: list[tuple[Any, dict[str, Any]]] = []  # (index or None, {id, name, arguments})
        self.by_index: dict[Any, dict[str, Any]] = {}
        self.by_id: dict[str, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.timings: dict[str, Any] | None = None
        self.ttft: float | None = None
        self.events = 0
        self.saw_choice = False  # an event with a choice; `choices: []` alone is no answer
        self.done = False  # `data: [DONE]` arrived

    def _first_token(self) -> None:
        if self.ttft is None:
            self.ttft = self.clock() - self.start

    def _grow(self, text: str, extra: int = 0) -> None:
        self.size += len(text) + extra
        if self.size > self.max_reply_chars:
            raise reply_too_large(self.max_reply_chars)

    def feed_line(self, data: str) -> None:
        """One `data:` payload: an event, or the `[DONE]` marker."""
        if data == "[DONE]":
            self.done = True
        else:
            self.feed(data)

    def feed(self, data: str) -> None:
        try:
            chunk = _loads(data)
        except (ValueError, RecursionError):
            raise TransportError(f"a stream event is not JSON: {data[:80]!r}", False) from None
        if not isinstance(chunk, dict):
            raise TransportError(f"a stream event is not a JSON object: {data[:80]!r}", False)
        self.events += 1
        choices = chunk.get("choices")
        if chunk.get("error") and not choices:
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise TransportError(f"the server reported an error mid-stream: {message}", False)
        self.timings = chunk.get("timings") or self.timings
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if not choices:
            return
        self.saw_choice = True
        for choice in choices:
            delta = choice.get("delta") or {}
            piece = delta.get("content")
            if piece:
                self._first_token()
                self._grow(piece)
                self.content.append(piece)
            for fragment in delta.get("tool_calls") or []:
                self._first_token()
                slot = self._slot(fragment)
                function = fragment.get("function") or {}
                name, arguments = function.get("name"), function.get("arguments")
                if name:
                    self._grow(name)
                    slot["name"] += name
                if arguments:
                    self._grow(arguments)
                    slot["arguments"] += arguments
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def _slot(self, fragment: dict[str, Any]) -> dict[str, Any]:
        index, call_id = fragment.get("index"), fragment.get("id")
        if index is not None:
            slot = self.by_index.get(index)
            if slot is None or (call_id and slot["id"] and call_id != slot["id"]):
                slot = self.by_index[index] = self._new_slot(index, call_id)
        elif call_id:
            slot = self.by_id.get(call_id) or self._new_slot(None, call_id)
        else:
            slot = self.calls[-1][1] if self.calls else self._new_slot(None, None)
        if call_id and not slot["id"]:
            self._grow(call_id if isinstance(call_id, str) else "")
            slot["id"] = call_id
            self.by_id[call_id] = slot
        return slot

    def _new_slot(self, index: Any, call_id: str | None) -> dict[str, Any]:
        self._grow(call_id if isinstance(call_id, str) else "", CALL_CHARS)  # a fragment that only opens a call counts
        slot: dict[str, Any] = {"id": call_id, "name": "", "arguments": ""}
        self.calls.append((index, slot))
        if call_id:
            self.by_id[call_id] = slot
        return slot

    def completion(self, latency: float) -> Completion:
        if self.events == 0:
            raise TransportError("the server's stream ended without a single event", False)
        if not self.saw_choice:
            raise TransportError("the server answered with no choices", False)
        indexed = all(isinstance(index, int) for index, _ in self.calls)
        ordered = sorted(self.calls, key=lambda pair: pair[0]) if indexed else self.calls  # stable
        content = "".join(self.content) if self.content else None
        return Completion(content, [slot for _, slot in ordered], self.finish_reason, self.usage, self.timings, latency, self.ttft)


async def _within(deadline_s: float, work: Awaitable[Completion]) -> Completion:
    """`work` bounded by a total deadline; overrunning it is a retryable TransportError."""
    if not hasattr(asyncio, "timeout"):  # Python 3.10
        try:
            return await asyncio.wait_for(_shield_timeouts(work), deadline_s)
        except asyncio.TimeoutError:
            raise _deadline_error(deadline_s) from None
    scope = asyncio.timeout(deadline_s)
    try:
        async with scope:
            return await work
    except TimeoutError:
        if scope.expired():
            raise _deadline_error(deadline_s) from None
        raise


async def _shield_timeouts(work: Awaitable[Completion]) -> Completion:
    # So that only wait_for's own expiry reaches _within as asyncio.TimeoutError.
    try:
        return await work
    except asyncio.TimeoutError as exc:
        raise classify(exc) from None


def _deadline_error(deadline_s: float) -> TransportError:
    return TransportError(f"timed out: no complete reply within the {deadline_s:g} s deadline", True)


async def complete(
    client: "ChatClient",
    params: dict[str, Any],
    *,
    stream: bool = True,
    retries: int = 2,
    clock: Clock = time.perf_counter,
    sleep: Sleep = asyncio.sleep,
    backoff_s: float = 0.5,
    backoff_cap_s: float = 8.0,
    deadline_s: float | None = None,
    max_reply_chars: int = MAX_REPLY_CHARS,
    retry_after_cap_s: float = RETRY_AFTER_CAP_S,
) -> Completion:
    """One completion with capped exponential backoff on retryable failures.

    `deadline_s` bounds each attempt from request to last byte (default: the client's timeout);
    a `Retry-After` on 429/503 replaces the backoff, capped at `retry_after_cap_s`.
    """
    deadline = client.timeout if deadline_s is None else deadline_s  # a ChatClient's timeout is always set
    attempt = 0
    while True:
        try:
            return await _within(deadline, _complete_once(client, params, stream, clock, max_reply_chars))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a TransportError
            error = classify(exc)
            if not error.retryable or attempt >= retries:
                raise error from None
            if error.retry_after is not None:
                delay = min(retry_after_cap_s, error.retry_after)
            else:
                delay = min(backoff_cap_s, backoff_s * 2**attempt) * (0.5 + random.random() / 2)
            attempt += 1
            await sleep(delay)


class ChatClient:
    """One endpoint's chat completions over HTTP: an aiohttp session whose connector keeps up to
    `connections` connections alive between requests (the run's concurrency on this endpoint).

    `timeout` (seconds) bounds connecting and the longest gap between reads (`sock_read`: a
    stream still sending never trips it); `complete` adds the total deadline per request. No
    retries here: `complete` retries only what is worth it. Local servers accept any API key.
    The session is made at the first request, inside the run's event loop (and aiohttp is
    imported then, not when evalkit starts).
    """

    def __init__(self, base_url: str, timeout_s: float, api_key: str | None = None, connections: int = 100,
                 headers: Mapping[str, str] | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout_s)
        self.connections = max(1, connections)
        self.url = f"{self.base_url}/chat/completions"
        self.headers = {
            "Authorization": f"Bearer {api_key or 'evalkit'}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": f"evalkit/{__version__}",
            **(headers or {}),  # --header: a gateway's own (Authorization is the key's alone)
        }
        self._session: "aiohttp.ClientSession | None" = None

    def _open(self) -> "aiohttp.ClientSession":
        import aiohttp

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connections, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=self.timeout),
            headers=self.headers,
            cookie_jar=aiohttp.DummyCookieJar(),  # a chat endpoint sets none worth keeping
            auto_decompress=False,  # identity was asked for
        )
        return self._session

    async def send(self, body: bytes) -> "aiohttp.ClientResponse":
        """POST one JSON body; the response's status and headers are in, its body is not read
        yet (the caller reads it and releases the response)."""
        session = self._session or self._open()
        return await session.post(self.url, data=body, allow_redirects=False)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def load_http() -> None:
    """Import the HTTP library (else imported at the first request): for a caller that wants it
    in memory before the run starts."""
    import aiohttp  # noqa: F401


def make_client(base_url: str, timeout_s: float, api_key: str | None = None, connections: int = 100,
                headers: Mapping[str, str] | None = None) -> ChatClient:
    return ChatClient(base_url, timeout_s, api_key, connections, headers)


def make_openai_client(base_url: str, timeout_s: float, api_key: str | None = None,
                       headers: Mapping[str, str] | None = None) -> "openai.AsyncOpenAI":
    """The openai client, for the probe (imported here: it takes about a second to import)."""
    import openai

    # Retries are ours (only for retryable failures); local servers accept any key. The timeout
    # is the longest gap between reads; `complete` adds the total deadline per request.
    return openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "evalkit", timeout=timeout_s, max_retries=0,
                              default_headers=dict(headers or {}))
