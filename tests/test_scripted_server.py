"""The scripted server, driven by the real openai client over real HTTP (no mocking)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from evalkit.testing.scripted_server import Reply, ScriptedServer, by_last_user, last_user_text

MSGS = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {
    "name": "compare_data", "description": "Compare two numbers.",
    "parameters": {"type": "object", "properties": {"num1": {"type": "number"},
                                                    "num2": {"type": "number"}},
                   "required": ["num1", "num2"]}}}]


@pytest.fixture
def server():
    with ScriptedServer(model_id="scripted-model") as srv:
        yield srv


@pytest.fixture
def client(server):
    c = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=5)
    yield c
    c.close()


def _chat(client, **kw):
    kw.setdefault("model", "m1")
    kw.setdefault("messages", MSGS)
    return client.chat.completions.create(**kw)


def _collect_stream(stream):
    """Accumulate streamed tool calls by index, as evalkit's native format does."""
    chunks, content, calls = [], "", {}
    for chunk in stream:
        chunks.append(chunk)
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            for tc in delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
    return chunks, content, calls


def test_non_streamed_content(server, client):
    server.set_responder(Reply(content="Hello there", prompt_tokens=7, completion_tokens=3))
    resp = _chat(client, model="my-model")
    assert resp.object == "chat.completion"
    assert resp.model == "my-model"  # echoes the request's model
    msg = resp.choices[0].message
    assert msg.role == "assistant" and msg.content == "Hello there" and not msg.tool_calls
    assert resp.choices[0].finish_reason == "stop"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) \
        == (7, 3, 10)
    assert server.hits == 1


def test_non_streamed_parallel_tool_calls(server, client):
    broken = '{"num1": 8.9, "num2": '
    server.set_responder(Reply(tool_calls=[
        {"name": "compare_data", "arguments": {"num1": 8.9, "num2": 8.11}, "id": "call_a"},
        {"name": "compare_data", "arguments": broken},
    ], timings={"predicted_per_second": 42.0, "predicted_n": 20}))
    resp = _chat(client, tools=TOOLS)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert len(calls) == 2
    assert calls[0].id == "call_a" and calls[0].type == "function"
    assert calls[0].function.name == "compare_data"
    assert json.loads(calls[0].function.arguments) == {"num1": 8.9, "num2": 8.11}
    assert calls[1].function.arguments == broken  # strings are sent verbatim
    assert calls[1].id and calls[1].id != calls[0].id
    assert choice.message.content is None
    assert resp.model_extra["timings"]["predicted_per_second"] == 42.0


def test_streamed_tool_call_split_arguments_reassembles(server, client):
    args = '{"text": "a \\"quoted\\" word \\u00e9 ü\\n", "num": 8.11, "list": [1, 2]}'
    server.set_responder(Reply(content="Let me check.", tool_calls=[
        {"name": "first", "arguments": args},
        {"name": "second", "arguments": {"x": 1}},
    ], split_arguments=5))
    chunks, content, calls = _collect_stream(_chat(client, stream=True, tools=TOOLS))
    assert content == "Let me check."
    assert calls[0]["arguments"] == args  # exact string, byte for byte
    assert calls[0]["name"] == "first" and calls[1]["name"] == "second"
    assert json.loads(calls[1]["arguments"]) == {"x": 1}
    assert calls[0]["id"] and calls[1]["id"]

    assert chunks[0].choices[0].delta.role == "assistant"
    tc_deltas = [(c.choices[0].delta.tool_calls[0]) for c in chunks
                 if c.choices and c.choices[0].delta.tool_calls]
    first = [d for d in tc_deltas if d.index == 0]
    assert len(first) == 1 + 5  # header delta, then 5 fragments
    assert first[0].id and first[0].type == "function" and first[0].function.arguments == ""
    assert all(d.id is None and d.function.name is None for d in first[1:])
    assert sum(1 for d in first[1:] if _is_json(d.function.arguments)) == 0  # real fragments
    indexes = [d.index for d in tc_deltas]
    assert indexes == sorted(indexes)  # call 0 finishes before call 1 starts
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices[0].delta.content is None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_stream_include_usage_gives_usage_chunk(server, client):
    server.set_responder(Reply(content="abcdefghij", prompt_tokens=12, completion_tokens=4,
                               timings={"predicted_per_second": 55.5}))
    chunks, content, _ = _collect_stream(
        _chat(client, stream=True, stream_options={"include_usage": True}))
    assert content == "abcdefghij"
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) \
        == (12, 4, 16)
    assert last.model_extra["timings"]["predicted_per_second"] == 55.5
    assert chunks[-2].choices[0].finish_reason == "stop"
    # Without include_usage there is no usage chunk.
    chunks, _, _ = _collect_stream(_chat(client, stream=True))
    assert chunks[-1].choices and all(c.usage is None for c in chunks)


def test_stream_content_chunks_and_pacing(server, client):
    server.set_responder(Reply(content="0123456789", stream_content_chunks=3,
                               first_token_delay_s=0.15, chunk_delay_s=0.01))
    start = time.perf_counter()
    stream = _chat(client, stream=True)
    first = next(iter(stream))
    ttft = time.perf_counter() - start
    rest, content, _ = _collect_stream(stream)
    assert first.choices[0].delta.role == "assistant"
    assert ttft >= 0.14
    pieces = [c.choices[0].delta.content for c in rest if c.choices and c.choices[0].delta.content]
    assert pieces == ["0123", "456", "789"] and content == "0123456789"


def test_error_status_raises_internal_server_error(server, client):
    server.set_responder(Reply(status=500, error_body="kaboom"))
    with pytest.raises(openai.InternalServerError) as info:
        _chat(client)
    assert info.value.status_code == 500
    assert "kaboom" in str(info.value)
    assert server.hits == 1  # max_retries=0: no retry
    server.set_responder(Reply(status=400, error_body={"error": {"message": "bad", "type": "x"}}))
    with pytest.raises(openai.BadRequestError):
        _chat(client, stream=True)  # errors come back as plain JSON even for streams


def test_raw_garbage_body_raises(server, client):
    # Surprising: the openai client does not wrap this; json.JSONDecodeError (a ValueError)
    # escapes from create(). evalkit must catch ValueError as a transport error.
    server.set_responder(Reply(raw_body=b"not json"))
    with pytest.raises((ValueError, openai.APIError)):
        _chat(client)
    server.set_responder(Reply(raw_body=b"data: {not json\n\n"))
    with pytest.raises((ValueError, openai.APIError)):
        _collect_stream(_chat(client, stream=True))


def test_dropped_connections_raise_connection_error(server, client):
    server.set_responder(Reply(drop_connection=True))
    with pytest.raises(openai.APIConnectionError):
        _chat(client)
    # A stream cut before [DONE] is detected thanks to chunked transfer encoding.
    server.set_responder(Reply(content="a long answer that gets cut", drop_after_chunks=3))
    with pytest.raises(openai.APIConnectionError):
        _collect_stream(_chat(client, stream=True))
    server.set_responder(Reply(content="fine"))
    assert _chat(client).choices[0].message.content == "fine"  # the client recovers


def test_delay_triggers_client_timeout(server):
    server.set_responder(Reply(content="late", delay_s=2.0))
    c = openai.OpenAI(base_url=server.base_url, api_key="t", max_retries=0, timeout=0.2)
    start = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        _chat(c)
    assert time.perf_counter() - start < 1.5
    c.close()


def test_by_last_user_routing(server, client):
    server.set_responder(by_last_user({
        "8.9": Reply(tool_calls=[{"name": "compare_data",
                                  "arguments": {"num1": 8.9, "num2": 8.11}}]),
        "weather": Reply(content="sunny"),
    }, default=Reply(content="default")))
    history = [{"role": "user", "content": "what is the weather"},
               {"role": "assistant", "content": "sunny"}]
    last = {"role": "user", "content": "8.9和8.11相比较谁更大"}
    resp = _chat(client, messages=history + [last])  # an earlier user turn said "weather"
    assert resp.choices[0].message.tool_calls[0].function.name == "compare_data"
    parts = [{"type": "text", "text": "Tell me the"}, {"type": "text", "text": "weather please"}]
    resp = _chat(client, messages=[{"role": "user", "content": parts}])
    assert resp.choices[0].message.content == "sunny"
    assert _chat(client, messages=[{"role": "user", "content": "?"}]).choices[0].message.content \
        == "default"
    # Without a default, an unmatched message is a loud 500.
    server.set_responder(by_last_user({"x-only": Reply(content="x")}))
    with pytest.raises(openai.InternalServerError, match="no scripted reply"):
        _chat(client)
    assert last_user_text({"messages": [{"role": "system", "content": "s"}]}) == ""


def test_reply_list_consumed_in_order_last_repeats(server, client):
    server.set_responder([Reply(content="one"), Reply(content="two")])
    got = [_chat(client).choices[0].message.content for _ in range(4)]
    assert got == ["one", "two", "two", "two"]
    server.set_responder([])
    with pytest.raises(openai.InternalServerError, match="no replies"):
        _chat(client)


def test_models_list_health_and_404(server, client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["scripted-model"]
    with urllib.request.urlopen(server.url + "/health", timeout=5) as resp:
        assert resp.status == 200 and json.loads(resp.read()) == {"status": "ok"}
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.base_url + "/nope", timeout=5)
    assert info.value.code == 404 and "error" in json.loads(info.value.read())


def test_requests_are_recorded(server, client):
    _chat(client, tools=TOOLS, temperature=0.0, messages=[{"role": "user", "content": "q1"}])
    _chat(client, stream=True, messages=[{"role": "user", "content": "q2"}]).close()
    reqs = server.requests
    assert len(reqs) == 2 == server.hits
    assert reqs[0]["tools"] == TOOLS and reqs[0]["temperature"] == 0.0
    assert reqs[0]["messages"][-1]["content"] == "q1"
    assert reqs[1]["stream"] is True and "tools" not in reqs[1]
    server.reset()
    assert server.requests == [] and server.hits == 0


def test_async_clients_are_served_concurrently(server):
    server.set_responder(Reply(content="slow", delay_s=0.25))

    async def run() -> float:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="t", max_retries=0,
                                      timeout=5) as ac:
            start = time.perf_counter()
            resps = await asyncio.gather(*[
                ac.chat.completions.create(model="m", messages=MSGS) for _ in range(8)])
            assert all(r.choices[0].message.content == "slow" for r in resps)
            return time.perf_counter() - start

    elapsed = asyncio.run(run())
    assert elapsed < 1.0  # serial handling would take >= 2.0 s
    assert server.hits == 8


def test_stop_is_prompt_with_idle_keepalive_and_sleeping_handlers():
    srv = ScriptedServer(responder=Reply(content="x")).start()
    prefix = f"scripted-server:{srv.port}:"

    def handler_threads() -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith(prefix))

    idle = openai.OpenAI(base_url=srv.base_url, api_key="t", max_retries=0, timeout=5)
    _chat(idle)  # leaves an idle keep-alive connection in that client's pool
    c = openai.OpenAI(base_url=srv.base_url, api_key="t", max_retries=0, timeout=0.2)
    srv.set_responder(Reply(content="never", delay_s=30))
    with pytest.raises(openai.APITimeoutError):
        _chat(c)
    assert handler_threads() >= 1
    start = time.perf_counter()
    srv.stop()
    assert time.perf_counter() - start < 1.0
    assert not srv.running
    deadline = time.perf_counter() + 1.0  # handler threads (even the sleeping one) end
    while handler_threads() and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert handler_threads() == 0
    c.close()
    idle.close()


def test_cli_prints_base_url_and_serves():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalkit.testing.scripted_server", "--port", "0",
         "--content", "hello from cli"], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        c = openai.OpenAI(base_url=base_url, api_key="t", max_retries=0, timeout=5)
        assert _chat(c).choices[0].message.content == "hello from cli"
        c.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
