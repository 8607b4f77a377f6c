"""Issue 16, the wire client: no reply can hang a request, exhaust memory, or be scored wrongly.

Faults come from the scripted server, or from a few-line stdlib HTTP server on 127.0.0.1 where the
scripted one cannot produce them (SSE comment lines, a body that ends cleanly mid-stream). The
client and the wire are real; only the backoff sleep is injected, so waits are observed, not slept.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

import pytest

from evalkit.client import MAX_REPLY_CHARS, TransportError, complete, make_client, retry_after_s
from evalkit.testing.scripted_server import Reply

PARAMS = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
LIMIT_LINE = "the reply is over the limit of {:,} characters of content and tool-call arguments (max_reply_chars)"

pytestmark = pytest.mark.timeout(30)


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def run(base_url: str, *, timeout_s: float = 5.0, **kwargs):
    async def go():
        client = make_client(base_url, timeout_s)
        try:
            return await complete(client, dict(PARAMS), **kwargs)
        finally:
            await client.close()

    return asyncio.run(go())


def failure(base_url: str, **kwargs) -> tuple[TransportError, float]:
    """The TransportError a request ends in, and how long it took (wall clock)."""
    start = time.monotonic()
    with pytest.raises(TransportError) as info:
        run(base_url, **kwargs)
    return info.value, time.monotonic() - start


# ---------------------------------------------------------------- a few-line stdlib server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.hits += 1  # type: ignore[attr-defined]
        try:
            self.server.answer(self)  # type: ignore[attr-defined]
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def log_message(self, *args) -> None:
        pass

    def sse_head(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()


@contextmanager
def stdlib_server(answer: Callable[[_Handler], None]) -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.answer, httpd.hits = answer, 0  # type: ignore[attr-defined]
    httpd.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def event(delta: dict | None = None, finish: str | None = None, **extra) -> bytes:
    chunk = {"id": "c", "object": "chat.completion.chunk", "model": "m", **extra}
    if delta is not None or finish is not None:
        chunk["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    chunk.setdefault("choices", [])
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def sse(*events: bytes, done: bool = True) -> bytes:
    return b"".join(events) + (b"data: [DONE]\n\n" if done else b"")


# ---------------------------------------------------------------- a total deadline per request


def test_a_trickling_stream_ends_at_the_deadline_not_the_read_gap(server):
    # One event every 0.3 s: never a 5 s gap between reads, but 50 events take 15 s.
    server.set_responder(Reply(content="x" * 200, chunk_delay_s=0.3))
    error, took = failure(server.base_url, timeout_s=5.0, deadline_s=1.0, retries=0)
    assert str(error) == "timed out: no complete reply within the 1 s deadline"
    assert error.retryable is True
    assert took < 3.0


def test_the_deadline_defaults_to_the_client_timeout(server):
    server.set_responder(Reply(content="x" * 200, chunk_delay_s=0.3))
    error, took = failure(server.base_url, timeout_s=1.0, retries=0)
    assert str(error) == "timed out: no complete reply within the 1 s deadline"
    assert took < 3.0


def test_only_keep_alive_lines_end_at_the_deadline():
    def keep_alive(handler: _Handler) -> None:
        handler.sse_head()
        for _ in range(200):  # 20 s of `: keep-alive`, never a data event
            handler.wfile.write(b": keep-alive\n\n")
            handler.wfile.flush()
            time.sleep(0.1)

    with stdlib_server(keep_alive) as srv:
        error, took = failure(srv.base_url, timeout_s=5.0, deadline_s=1.0, retries=0)
    assert str(error) == "timed out: no complete reply within the 1 s deadline" and error.retryable
    assert took < 3.0


def test_a_deadline_overrun_is_retried_then_succeeds(server):
    server.set_responder([Reply(content="x" * 200, chunk_delay_s=0.3), Reply(content="fast")])
    sleep = RecordingSleep()
    completion = run(server.base_url, deadline_s=1.0, retries=1, sleep=sleep)
    assert completion.content == "fast"
    assert server.hits == 2 and len(sleep.delays) == 1


def test_a_read_gap_mid_stream_is_retried(server):
    server.set_responder([Reply(content="abcdefgh" * 4, chunk_delay_s=1.0), Reply(content="whole")])
    sleep = RecordingSleep()
    completion = run(server.base_url, timeout_s=0.3, retries=1, sleep=sleep)
    assert completion.content == "whole" and server.hits == 2 and len(sleep.delays) == 1


# ---------------------------------------------------------------- cut streams are retried


def test_a_stream_cut_mid_way_is_retried_then_succeeds(server):
    server.set_responder([Reply(content="a long answer " * 5, drop_after_chunks=3), Reply(content="whole")])
    sleep = RecordingSleep()
    completion = run(server.base_url, retries=1, sleep=sleep)
    assert completion.content == "whole"
    assert server.hits == 2 and len(sleep.delays) == 1


def test_a_cut_stream_without_retries_left_is_a_retryable_error(server):
    server.set_responder(Reply(content="a long answer " * 5, drop_after_chunks=3))
    error, _ = failure(server.base_url, retries=0)
    assert error.retryable is True and str(error).startswith("the connection broke mid-reply")


def test_a_stream_that_ends_cleanly_before_finishing_is_cut():
    # Connection closed at a clean event boundary: no HTTP error, but no finish_reason, no [DONE].
    def half(handler: _Handler) -> None:
        handler.sse_head()
        handler.wfile.write(sse(event({"role": "assistant"}), event({"content": "the answer is"}), done=False))

    with stdlib_server(half) as srv:
        error, _ = failure(srv.base_url, retries=0)
        assert str(error) == "the stream was cut off: it ended without a finish reason or [DONE]"
        assert error.retryable is True
        sleep = RecordingSleep()
        with pytest.raises(TransportError):
            run(srv.base_url, retries=2, sleep=sleep)
        assert srv.hits == 1 + 3 and len(sleep.delays) == 2


# ---------------------------------------------------------------- Retry-After


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
def test_retry_after_seconds_on_429_is_honoured(server, stream):
    server.set_responder([Reply(status=429, headers={"Retry-After": "1"}), Reply(content="ok")])
    sleep = RecordingSleep()
    assert run(server.base_url, stream=stream, retries=2, sleep=sleep, backoff_s=0.01).content == "ok"
    assert sleep.delays == [1.0]


def test_retry_after_http_date_on_503_counts_from_the_replys_date(server):
    later = formatdate(time.time() + 5, usegmt=True)
    server.set_responder([Reply(status=503, headers={"Retry-After": later}), Reply(content="ok")])
    sleep = RecordingSleep()
    assert run(server.base_url, retries=1, sleep=sleep).content == "ok"
    assert len(sleep.delays) == 1 and 3.5 <= sleep.delays[0] <= 6.0  # whole seconds on both dates


def test_retry_after_is_capped(server):
    server.set_responder([Reply(status=429, headers={"Retry-After": "3600"})] * 2 + [Reply(content="ok")])
    sleep = RecordingSleep()
    assert run(server.base_url, retries=2, sleep=sleep).content == "ok"
    assert sleep.delays == [30.0, 30.0]
    server.set_responder([Reply(status=429, headers={"Retry-After": "3600"}), Reply(content="ok")])
    sleep = RecordingSleep()
    run(server.base_url, retries=1, sleep=sleep, retry_after_cap_s=2.5)
    assert sleep.delays == [2.5]


def test_retry_after_does_not_make_a_4xx_retryable(server):
    server.set_responder(Reply(status=400, headers={"Retry-After": "1"}, error_body="bad request"))
    sleep = RecordingSleep()
    error, _ = failure(server.base_url, retries=3, sleep=sleep)
    assert str(error) == "HTTP 400: bad request" and not error.retryable and sleep.delays == []


@pytest.mark.parametrize("headers,seconds", [
    ({"retry-after": "2.5"}, 2.5),
    ({"retry-after": "-3"}, 0.0),
    ({"retry-after": "soon"}, None),
    ({"retry-after": "nan"}, None),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT", "date": "Wed, 21 Oct 2015 07:28:00 GMT"}, 10.0),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT", "date": "Wed, 21 Oct 2015 07:28:10 GMT"}, 0.0),
    ({}, None),
])
def test_retry_after_forms(headers, seconds):
    assert retry_after_s(headers) == seconds


# ---------------------------------------------------------------- empty choices, ids without index


@pytest.mark.parametrize("usage", [False, True], ids=["bare", "with-usage"])
def test_a_stream_of_empty_choices_is_an_error(server, usage):
    extra = {"usage": {"prompt_tokens": 3, "completion_tokens": 0}} if usage else {}
    server.set_responder(Reply(raw_body=sse(event(**extra), event(**extra))))
    error, _ = failure(server.base_url, retries=2)
    assert str(error) == "the server answered with no choices" and error.retryable is False
    assert server.hits == 1


def test_a_usage_only_last_chunk_after_real_chunks_is_normal(server):
    body = sse(event({"role": "assistant"}), event({"content": "hello"}), event({}, "stop"),
               event(usage={"prompt_tokens": 3, "completion_tokens": 1}))
    server.set_responder(Reply(raw_body=body))
    completion = run(server.base_url)
    assert (completion.content, completion.finish_reason, completion.completion_tokens) == ("hello", "stop", 1)


def call_delta(**fragment) -> dict:
    return {"tool_calls": [fragment]}


def test_two_calls_with_ids_but_no_index_stay_two_calls(server):
    body = sse(
        event({"role": "assistant"}),
        event(call_delta(id="call_1", function={"name": "add_data", "arguments": ""})),
        event(call_delta(function={"arguments": '{"num1": 1, '})),
        event(call_delta(function={"arguments": '"num2": 2}'})),
        event(call_delta(id="call_2", function={"name": "add_data", "arguments": '{"num1": 3, "num2": 4}'})),
        event({}, "tool_calls"),
    )
    server.set_responder(Reply(raw_body=body))
    completion = run(server.base_url)
    assert completion.tool_calls == [
        {"id": "call_1", "name": "add_data", "arguments": '{"num1": 1, "num2": 2}'},
        {"id": "call_2", "name": "add_data", "arguments": '{"num1": 3, "num2": 4}'},
    ]


def test_a_new_id_at_a_used_index_is_a_new_call_and_a_repeated_id_is_the_same(server):
    body = sse(
        event(call_delta(index=0, id="a", function={"name": "add_data", "arguments": '{"num1": 1'})),
        event(call_delta(index=0, id="a", function={"arguments": ', "num2": 2}'})),  # id repeated
        event(call_delta(index=0, id="b", function={"name": "compare_data", "arguments": "{}"})),  # every call 0
        event({}, "tool_calls"),
    )
    server.set_responder(Reply(raw_body=body))
    calls = run(server.base_url).tool_calls
    assert [(c["id"], c["name"], c["arguments"]) for c in calls] == [
        ("a", "add_data", '{"num1": 1, "num2": 2}'), ("b", "compare_data", "{}")]


def test_fragments_are_still_joined_by_index_when_interleaved(server):
    body = sse(
        event(call_delta(index=1, id="b", function={"name": "g", "arguments": '{"y":'})),
        event(call_delta(index=0, id="a", function={"name": "f", "arguments": '{"x":'})),
        event(call_delta(index=1, function={"arguments": " 2}"})),
        event(call_delta(index=0, function={"arguments": " 1}"})),
        event({}, "tool_calls"),
    )
    server.set_responder(Reply(raw_body=body))
    calls = run(server.base_url).tool_calls
    assert [(c["id"], c["name"], c["arguments"]) for c in calls] == [("a", "f", '{"x": 1}'), ("b", "g", '{"y": 2}')]


# ---------------------------------------------------------------- reply size limit


def test_the_default_limit_is_one_million_characters():
    assert MAX_REPLY_CHARS == 1_000_000


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
def test_a_5_mb_reply_is_over_the_limit_and_not_retried(server, stream):
    server.set_responder(Reply(content="x" * 5_000_000, stream_content_chunks=50))
    error, took = failure(server.base_url, stream=stream, retries=2)
    assert str(error) == LIMIT_LINE.format(1_000_000)
    assert error.retryable is False and server.hits == 1
    assert took < 10


def test_tool_call_arguments_count_toward_the_limit(server):
    server.set_responder(Reply(tool_calls=[{"name": "f", "arguments": "[" + "1," * 600 + "1]"}], split_arguments=20))
    for stream in (True, False):
        error, _ = failure(server.base_url, stream=stream, max_reply_chars=1000)
        assert str(error) == LIMIT_LINE.format(1000)
    assert run(server.base_url, max_reply_chars=2000).tool_calls[0]["name"] == "f"


def test_reading_stops_as_soon_as_the_limit_is_passed(server):
    # 100 events of 100 characters, 0.05 s apart (5 s in all); the limit is passed at the 11th.
    server.set_responder(Reply(content="y" * 10_000, stream_content_chunks=100, chunk_delay_s=0.05))
    error, took = failure(server.base_url, max_reply_chars=1000, retries=0)
    assert str(error) == LIMIT_LINE.format(1000)
    assert took < 2.5


def test_one_huge_event_is_refused_before_it_is_buffered_whole(server):
    # A single 5 MB line: refused once more than the bounded line buffer has arrived.
    server.set_responder(Reply(content="z" * 5_000_000, stream_content_chunks=1))
    error, _ = failure(server.base_url, max_reply_chars=1000, retries=0)
    assert str(error) == LIMIT_LINE.format(1000)


def test_a_declared_content_length_over_the_limit_is_refused_unread():
    def huge(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(50_000_000))
        handler.end_headers()
        handler.wfile.write(b'{"choices": [')  # and nothing more: the client must not wait for 50 MB

    with stdlib_server(huge) as srv:
        error, took = failure(srv.base_url, stream=False, timeout_s=5.0)
    assert str(error) == LIMIT_LINE.format(1_000_000) and took < 3


def test_a_reply_under_the_limit_is_whole(server):
    server.set_responder(Reply(content="w" * 900_000, stream_content_chunks=30))
    for stream in (True, False):
        assert len(run(server.base_url, stream=stream).content) == 900_000


def test_a_body_without_content_length_is_bounded_while_read():
    def endless(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()  # HTTP/1.0, no Content-Length: the body runs until the socket closes
        handler.wfile.write(b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "')
        for _ in range(200):  # 13 MB, well past the 8 MB bound on a 1 MB reply's wire bytes
            handler.wfile.write(b"v" * 65536)

    with stdlib_server(endless) as srv:
        error, _ = failure(srv.base_url, stream=False)
    assert str(error) == LIMIT_LINE.format(1_000_000) and not error.retryable
