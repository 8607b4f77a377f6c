"""`evalkit.client.complete` against the scripted server: timing, token speed, retries, failures.

The wire and the openai client are real; only the clock and the backoff sleep are injected.
"""

from __future__ import annotations

import asyncio
import json

import pytest

import evalkit.client as client_mod
from evalkit.client import TransportError, complete, make_client
from evalkit.testing.scripted_server import Reply

PARAMS = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class FakeClock:
    """Returns the given instants in order (each call to the clock is one reading)."""

    def __init__(self, *instants: float):
        self.instants = list(instants)
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.instants.pop(0)


class RecordingSleep:
    def __init__(self):
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def run(server, *, timeout_s: float = 5.0, **kwargs):
    async def go():
        client = make_client(server.base_url, timeout_s)
        try:
            return await complete(client, dict(PARAMS), **kwargs)
        finally:
            await client.close()

    return asyncio.run(go())


# ---------------------------------------------------------------- timing


def test_streamed_ttft_and_latency_come_from_the_clock(server):
    server.set_responder(Reply(content="Hello there, friend", completion_tokens=30))
    clock = FakeClock(100.0, 100.25, 102.25)  # start, first token, end
    completion = run(server, stream=True, clock=clock)
    assert clock.reads == 3
    assert completion.ttft_s == pytest.approx(0.25)
    assert completion.latency_s == pytest.approx(2.25)
    assert completion.content == "Hello there, friend"
    # No server timings: completion tokens over generation time (latency - ttft).
    assert completion.tokens_per_s == pytest.approx(30 / 2.0)
    assert (completion.prompt_tokens, completion.completion_tokens) == (10, 30)


def test_ttft_counts_a_tool_call_delta_as_the_first_token(server):
    server.set_responder(Reply(tool_calls=[{"name": "f", "arguments": {"a": 1}}], completion_tokens=8))
    completion = run(server, stream=True, clock=FakeClock(0.0, 0.5, 1.5))
    assert completion.ttft_s == pytest.approx(0.5)
    assert completion.tokens_per_s == pytest.approx(8 / 1.0)


def test_non_streamed_has_no_ttft_and_speed_over_whole_latency(server):
    server.set_responder(Reply(content="Hello", completion_tokens=12))
    completion = run(server, stream=False, clock=FakeClock(10.0, 13.0))
    assert completion.ttft_s is None
    assert completion.latency_s == pytest.approx(3.0)
    assert completion.tokens_per_s == pytest.approx(4.0)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
def test_tokens_per_second_from_server_timings_when_present(server, stream):
    server.set_responder(Reply(content="Hello", completion_tokens=12,
                               timings={"predicted_per_second": 42.5, "predicted_n": 12}))
    clock = FakeClock(0.0, 1.0, 4.0) if stream else FakeClock(0.0, 4.0)
    completion = run(server, stream=stream, clock=clock)
    assert completion.tokens_per_s == pytest.approx(42.5)
    assert completion.timings["predicted_per_second"] == 42.5
    assert completion.raw()["timings"]["predicted_per_second"] == 42.5


def test_no_usage_means_no_speed(server):
    server.set_responder(Reply(content="Hello", completion_tokens=0))
    completion = run(server, stream=True, clock=FakeClock(0.0, 1.0, 2.0))
    assert completion.tokens_per_s is None


def test_real_clock_streaming_pacing_is_measured(server):
    server.set_responder(Reply(content="abcdefgh", first_token_delay_s=0.15, chunk_delay_s=0.05))
    completion = run(server, stream=True)
    assert 0.15 <= completion.ttft_s < completion.latency_s
    assert completion.latency_s >= 0.15 + 3 * 0.05  # role, 2 content pieces, finish, usage...


# ---------------------------------------------------------------- streamed tool-call accumulation


def test_streamed_parallel_calls_split_mid_token_accumulate_by_index(server):
    args0 = {"location": "Hangzhou, 杭州", "note": "quote \" and \\ backslash"}
    args1 = {"num1": 8.9, "num2": 8.11}
    server.set_responder(Reply(tool_calls=[{"id": "call_a", "name": "get_weather", "arguments": args0},
                                           {"id": "call_b", "name": "compare_data", "arguments": args1}],
                               split_arguments=7))
    completion = run(server, stream=True)
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for c in completion.tool_calls] == [
        ("call_a", "get_weather", args0), ("call_b", "compare_data", args1)]
    assert completion.tool_calls[1]["arguments"] == json.dumps(args1)
    assert completion.finish_reason == "tool_calls"


def test_non_streamed_calls_keep_raw_argument_strings(server):
    server.set_responder(Reply(tool_calls=[{"name": "f", "arguments": "{num1: 8.9"}]))
    completion = run(server, stream=False)
    assert completion.tool_calls[0]["arguments"] == "{num1: 8.9"
    assert completion.tool_calls[0]["name"] == "f"


# ---------------------------------------------------------------- retries and failures


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
def test_retry_with_capped_exponential_backoff_then_success(server, monkeypatch, stream):
    monkeypatch.setattr(client_mod.random, "random", lambda: 1.0)  # no jitter: the full delay
    server.set_responder([Reply(status=500)] * 4 + [Reply(content="finally")])
    sleep = RecordingSleep()
    completion = run(server, stream=stream, retries=5, sleep=sleep, backoff_s=0.5, backoff_cap_s=1.5)
    assert completion.content == "finally"
    assert sleep.delays == [0.5, 1.0, 1.5, 1.5]  # doubling, capped
    assert server.hits == 5


def test_backoff_jitter_stays_within_half_to_full_delay(server):
    server.set_responder([Reply(status=503)] * 3 + [Reply(content="ok")])
    sleep = RecordingSleep()
    run(server, stream=False, retries=3, sleep=sleep, backoff_s=1.0, backoff_cap_s=8.0)
    for delay, full in zip(sleep.delays, [1.0, 2.0, 4.0], strict=True):
        assert full / 2 <= delay <= full


def test_retries_exhausted_raise_a_retryable_transport_error(server):
    server.set_responder(Reply(status=500, error_body="out of memory"))
    sleep = RecordingSleep()
    with pytest.raises(TransportError) as info:
        run(server, stream=True, retries=2, sleep=sleep)
    assert info.value.retryable is True
    assert "HTTP 500" in str(info.value) and "out of memory" in str(info.value)
    assert server.hits == 3 and len(sleep.delays) == 2


@pytest.mark.parametrize("status", [400, 404, 422])
def test_no_retry_on_4xx(server, status):
    server.set_responder(Reply(status=status, error_body="model does not support tools"))
    sleep = RecordingSleep()
    with pytest.raises(TransportError) as info:
        run(server, stream=True, retries=3, sleep=sleep)
    assert info.value.retryable is False
    assert f"HTTP {status}" in str(info.value) and "does not support tools" in str(info.value)
    assert server.hits == 1 and sleep.delays == []


def test_429_is_retried(server):
    server.set_responder([Reply(status=429)] + [Reply(content="ok")])
    sleep = RecordingSleep()
    assert run(server, stream=False, retries=1, sleep=sleep).content == "ok"
    assert server.hits == 2 and len(sleep.delays) == 1


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
def test_timeout_is_a_retryable_transport_error(server, stream):
    server.set_responder(Reply(content="too late", delay_s=2.0))
    with pytest.raises(TransportError) as info:
        run(server, stream=stream, retries=0, timeout_s=0.2)
    assert info.value.retryable is True
    assert "timed out" in str(info.value)
    assert server.hits == 1


def test_timeout_then_success_on_retry(server):
    server.set_responder([Reply(content="too late", delay_s=2.0), Reply(content="fast")])
    sleep = RecordingSleep()
    completion = run(server, stream=True, retries=1, timeout_s=0.3, sleep=sleep)
    assert completion.content == "fast" and server.hits == 2 and len(sleep.delays) == 1


def test_connection_refused_is_retryable(unused_port):
    class Down:
        base_url = f"http://127.0.0.1:{unused_port}/v1"

    with pytest.raises(TransportError) as info:
        run(Down, stream=True, retries=0)
    assert info.value.retryable is True
    assert "connect" in str(info.value)


def test_dropped_stream_is_an_error(server):
    server.set_responder(Reply(content="a long answer " * 5, drop_after_chunks=2, chunk_delay_s=0.01))
    with pytest.raises(TransportError):
        run(server, stream=True, retries=0)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
def test_garbage_body_is_a_transport_error(server, stream):
    server.set_responder(Reply(raw_body=b"this is not JSON at all", content_type="application/json"))
    with pytest.raises(TransportError):
        run(server, stream=stream, retries=0)


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
