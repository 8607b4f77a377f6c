"""Issue 17, harness overhead: the run's HTTP client (aiohttp, kept-alive connections), requests
encoded once, the sample log's writer thread, and what `evalkit run` imports before its first
request.

The wire is real: a few-line socket server on 127.0.0.1 answers with exactly the bytes a test
wants (chunk extensions, trailers, 100 Continue, HTTP/1.0, a kept-alive connection the server
closes, broken framing), and the scripted server plays the OpenAI side.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

from evalkit import encoded
from evalkit.client import TransportError, complete, make_client
from evalkit.rundir import SampleLog, read_samples, sample_line
from evalkit.schema import Sample, ToolCall

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parent.parent
PARAMS = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
REPLY = {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


# ---------------------------------------------------------------- a raw socket server


class RawServer:
    """Accepts connections; `answer(conn, request_bytes, n)` writes whatever it likes for the
    n-th request (counted over all connections). Counts connections and requests."""

    def __init__(self, answer: Callable[[socket.socket, bytes, int], None]):
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                with self._lock:
                    self.requests.append(head + b"\r\n\r\n" + body)
                    n = len(self.requests)
                if self.answer(conn, body, n) == "close":
                    return

    def close(self) -> None:
        self._sock.close()


@contextmanager
def raw_server(answer: Callable[[socket.socket, bytes, int], object]) -> Iterator[RawServer]:
    server = RawServer(answer)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.close()


def whole(body: bytes, *extra: str, version: str = "HTTP/1.1") -> bytes:
    head = [f"{version} 200 OK", "Content-Type: application/json", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def requests(base_url: str, count: int, timeout_s: float = 5.0, **kwargs) -> list:
    """`count` completions one after another on one client (so connections can be reused);
    `kwargs` go to `complete` (default: not streamed, no retries)."""
    options = {"stream": False, "retries": 0, "sleep": _no_sleep, **kwargs}

    async def go():
        client = make_client(base_url, timeout_s)
        try:
            return [await complete(client, dict(PARAMS), **options) for _ in range(count)]
        finally:
            await client.close()

    return asyncio.run(go())


async def _no_sleep(_seconds: float) -> None:
    return None


# ---------------------------------------------------------------- the client against the raw server


def test_sequential_requests_share_one_kept_alive_connection():
    with raw_server(lambda conn, body, n: conn.sendall(whole(json.dumps(REPLY).encode()))) as srv:
        replies = requests(srv.base_url, 5)
    assert [r.content for r in replies] == ["ok"] * 5
    assert srv.connections == 1 and len(srv.requests) == 5
    head = srv.requests[0].split(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("post /v1/chat/completions http/1.1\r\n")
    for header in ("authorization: bearer evalkit", "content-type: application/json", "accept-encoding: identity",
                   "user-agent: evalkit/"):
        assert f"\r\n{header}" in head
    assert json.loads(srv.requests[0].split(b"\r\n\r\n", 1)[1]) == PARAMS  # the body as it is


def test_connections_are_capped_at_the_concurrency_and_kept_alive():
    def answer(conn, body, n):
        time.sleep(0.05)  # long enough for the requests to overlap
        conn.sendall(whole(json.dumps(REPLY).encode()))

    with raw_server(answer) as srv:

        async def go():
            client = make_client(srv.base_url, 5.0, connections=3)
            try:
                return await asyncio.gather(*(complete(client, dict(PARAMS), stream=False, retries=0) for _ in range(12)))
            finally:
                await client.close()

        replies = asyncio.run(go())
    assert [r.content for r in replies] == ["ok"] * 12 and len(srv.requests) == 12
    assert srv.connections == 3


def test_a_connection_the_server_closed_while_idle_is_not_reused():
    def answer(conn, body, n):
        conn.sendall(whole(json.dumps(REPLY).encode()))
        return "close"  # the server closes after each answer, without saying so

    with raw_server(answer) as srv:

        async def go():
            client = make_client(srv.base_url, 5.0)
            try:
                first = await complete(client, dict(PARAMS), stream=False, retries=0)
                await asyncio.sleep(0.2)  # the close reaches the idle connection
                second = await complete(client, dict(PARAMS), stream=False, retries=0)
                return first, second
            finally:
                await client.close()

        first, second = asyncio.run(go())
    assert first.content == second.content == "ok" and srv.connections == 2


def test_chunked_bodies_with_extensions_and_trailers_and_a_100_continue_first():
    body = json.dumps(REPLY).encode()
    framed = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))

    def answer(conn, _body, n):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(framed), 5):  # the framing cut anywhere
            conn.sendall(framed[i:i + 5])
            time.sleep(0.001)
        conn.sendall(b"0\r\nX-Trailer: yes\r\n\r\n")

    with raw_server(answer) as srv:
        replies = requests(srv.base_url, 2)
    assert [r.content for r in replies] == ["ok", "ok"] and srv.connections == 1


def test_sse_lines_cut_anywhere_with_crlf_and_comments_are_read_whole():
    events = [{"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]} for piece in ("Hé", "llo")]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"completion_tokens": 2}})
    body = b": keep-alive\r\n\r\n" + b"".join(b"data: %s\r\n\r\n" % json.dumps(e, ensure_ascii=False).encode() for e in events)
    body += b"data: [DONE]\r\n\r\n"

    def answer(conn, _body, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(body), 3):  # every line and the two bytes of "é" cut between reads
            piece = body[i:i + 3]
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.001)
        conn.sendall(b"0\r\n\r\n")

    with raw_server(answer) as srv:
        reply = requests(srv.base_url, 1, stream=True)[0]
    assert reply.content == "Héllo" and reply.finish_reason == "stop" and reply.completion_tokens == 2


def test_an_http_1_0_body_ends_with_the_connection_which_is_not_reused():
    def answer(conn, body, n):
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + json.dumps(REPLY).encode())
        return "close"

    with raw_server(answer) as srv:
        replies = requests(srv.base_url, 2)
    assert [r.content for r in replies] == ["ok", "ok"] and srv.connections == 2


def test_a_reply_that_is_not_http_is_one_error_not_retried():
    with raw_server(lambda conn, body, n: conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")) as srv:
        with pytest.raises(TransportError) as info:
            requests(srv.base_url, 1, retries=2)
    assert str(info.value).startswith("the server's answer is not HTTP/1.x: Bad status line")
    assert "\n" not in str(info.value)  # aiohttp's parser message (bytes, caret) on one line
    assert not info.value.retryable and len(srv.requests) == 1


def test_a_body_cut_short_of_its_length_is_retried():
    def answer(conn, body, n):
        if n == 1:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"choices\":")
            return "close"
        conn.sendall(whole(json.dumps(REPLY).encode()))

    with raw_server(answer) as srv:
        assert requests(srv.base_url, 1, retries=1)[0].content == "ok"
        assert len(srv.requests) == 2
    with raw_server(lambda conn, body, n: (conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"), "close")[1]) as srv:
        with pytest.raises(TransportError) as info:
            requests(srv.base_url, 1, retries=0)
    # (aiohttp's own words after the prefix; recent versions add "(received 1 of 100 bytes)")
    assert str(info.value).startswith("the connection broke mid-reply: Not enough data to satisfy content length header")
    assert info.value.retryable


def test_broken_chunk_framing_never_hangs_a_request():
    """Framing that cannot be parsed: with the headers, aiohttp raises it as an answer that is not
    HTTP (not retried); after them, aiohttp leaves the body's reader waiting (an aiohttp
    limitation), and the total deadline ends the request, as a retryable timeout."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with raw_server(lambda conn, body, n: conn.sendall(head + b"zz\r\n")) as srv:
        with pytest.raises(TransportError) as info:
            requests(srv.base_url, 1, retries=1)
    assert str(info.value).startswith("the server's answer is not HTTP/1.x: ") and "chunk size" in str(info.value)
    assert "\n" not in str(info.value)
    assert not info.value.retryable and len(srv.requests) == 1

    def later(conn, body, n):
        conn.sendall(head)
        time.sleep(0.1)
        conn.sendall(b"zz\r\n")

    with raw_server(later) as srv:
        start = time.monotonic()
        with pytest.raises(TransportError) as info:
            requests(srv.base_url, 1, timeout_s=30.0, deadline_s=0.5)
    assert str(info.value) == "timed out: no complete reply within the 0.5 s deadline" and info.value.retryable
    assert time.monotonic() - start < 5


def test_no_answer_at_all_is_a_retryable_connection_error():
    with raw_server(lambda conn, body, n: "close") as srv:
        with pytest.raises(TransportError) as info:
            requests(srv.base_url, 1, retries=1)
    assert str(info.value) == "cannot connect to the server: the server closed the connection without answering"
    assert info.value.retryable and len(srv.requests) == 2


def test_a_refused_connection_names_the_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransportError) as info:
        requests(f"http://127.0.0.1:{port}/v1", 1, retries=0)
    assert str(info.value).startswith(f"cannot connect to the server: 127.0.0.1:{port}: ") and info.value.retryable


# ---------------------------------------------------------------- requests encoded once


def sample_with(request: dict) -> Sample:
    sample = Sample(suite="s", case_id='c,"raw":1', format="native", repeat=0, model="m", tags=['t,"raw":'],
                    raw={"content": "ok"}, calls=[ToolCall(name="f", arguments={"x": 1e-7})])
    sample.request = request
    return sample


def test_a_line_with_the_sent_bytes_spliced_in_is_the_line_pydantic_writes():
    request = {"model": "m", "messages": [{"role": "user", "content": "8.9 или 8.11? \u2603 \"q\""}],
               "temperature": 0.0, "top_p": 1e-7, "tools": [{"type": "function", "function": {"name": "f"}}], "n": 2**53}
    sample = sample_with(request)
    sent = encoded.encode(request)
    assert sample_line(sample) == sample.model_dump_json().encode() + b"\n"
    assert json.loads(sent) == request
    assert encoded.take(request) is None  # taken once, by the line


def test_the_line_holds_the_bytes_that_were_sent_not_a_second_encoding():
    request = {"model": "m", "messages": []}
    encoded.encode(request)
    request["model"] = "changed after it was sent"  # (evalkit never does this)
    assert json.loads(sample_line(sample_with(request)))["request"]["model"] == "m"


def test_only_the_very_dict_that_was_sent_is_spliced():
    request = {"model": "m", "messages": []}
    encoded.encode(request)
    assert encoded.take(dict(request)) is None  # an equal dict is not the one sent
    assert encoded.take(request) is not None and encoded.take(request) is None


def test_what_is_held_is_bounded(monkeypatch):
    monkeypatch.setattr(encoded, "MAX_HELD_BYTES", 10_000)
    kept = [{"content": "x" * 1000, "i": i} for i in range(50)]  # never taken, like agent rounds
    for request in kept:
        encoded.encode(request)
    assert encoded._held_bytes <= 10_000 and len(encoded._held) < 50
    assert encoded.take(kept[0]) is None and encoded.take(kept[-1]) is not None


def test_run_lines_are_what_pydantic_writes(server, tmp_path):
    """Through the real runner, streamed and not: every line as `model_dump_json` would write it."""
    from evalkit.dispatch import run_jobs
    from evalkit.jobs import Endpoint, RunContext, plan
    from evalkit.schema import Settings
    from evalkit.suites import read_suite
    from evalkit.testing.scripted_server import Reply

    server.set_responder(Reply(tool_calls=[{"name": "compare_data", "arguments": {"num1": 8.9, "num2": 8.11}}]))
    loaded = read_suite(ROOT / "suites" / "arithmetic.yaml")
    for stream in (False, True):
        run_dir = tmp_path / f"stream-{stream}"
        run_dir.mkdir()
        log = SampleLog(run_dir)
        seen: list[Sample] = []

        def on_sample(sample: Sample) -> None:
            seen.append(sample)
            log.append(sample)

        ctx = RunContext(model="m", settings=Settings(concurrency=4, stream=stream))
        asyncio.run(run_jobs(plan([loaded], ["native", "default"], 1, limit=3), [Endpoint(server.base_url, 4)], ctx, on_sample))
        log.close()
        lines = (run_dir / "samples.jsonl").read_bytes().splitlines(keepends=True)
        assert sorted(lines) == sorted(s.model_dump_json().encode() + b"\n" for s in seen) and len(lines) == 6
        assert all(s.request["model"] == "m" and "stream" not in s.request for s in read_samples(run_dir))


# ---------------------------------------------------------------- the sample log's writer thread


def test_a_sample_is_on_disk_without_waiting_for_close(tmp_path):
    log = SampleLog(tmp_path)
    try:
        log.append(sample_with({"model": "m"}))
        deadline = time.monotonic() + 5
        while not (tmp_path / "samples.jsonl").read_bytes().endswith(b"\n") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [s.case_id for s in read_samples(tmp_path)] == ['c,"raw":1']
    finally:
        log.close()


def test_a_torn_last_line_is_cut_before_appending(tmp_path):
    line = sample_with({"model": "m"}).model_dump_json()
    (tmp_path / "samples.jsonl").write_text(line + "\n" + line[:40])
    log = SampleLog(tmp_path)
    log.append(sample_with({"model": "m"}))
    log.close()
    assert (tmp_path / "samples.jsonl").read_text().splitlines() == [line, line]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_failed_write_is_raised_not_swallowed(tmp_path):
    (tmp_path / "samples.jsonl").symlink_to("/dev/full")  # every write: ENOSPC, as on a full disk
    log = SampleLog(tmp_path)
    log.append(sample_with({"model": "m"}))
    with pytest.raises(OSError):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            log.append(sample_with({"model": "m"}))
            time.sleep(0.01)
        log.close()


# ---------------------------------------------------------------- start-up


def test_run_imports_no_reporting_engine_or_openai_before_its_first_request():
    code = ("import sys, evalkit.cli, evalkit.session, evalkit.dispatch; "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'openai', 'httpx2', 'httpx', 'aiohttp', 'xllamacpp',"
            " 'jsonschema', 'numpy', 'tqdm', 'evalkit.probe.run', 'evalkit.aggregate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("seed", range(20))
def test_quantiles_are_numpys_linear_ones_to_the_last_bit(seed):
    """results.json written while pandas computed the percentiles must come out the same."""
    import random

    import numpy as np

    from evalkit.metrics import quantile

    rng = random.Random(seed)
    values = [rng.choice([None, rng.expovariate(3), rng.random() * 100, float(rng.randint(0, 9))])
              for _ in range(rng.randint(1, 300))]
    present = np.array([v for v in values if v is not None], dtype=float)
    for q in (0.0, 0.05, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0):
        expected = float(np.quantile(present, np.array([q]))[0]) if len(present) else None
        assert quantile(values, q) == expected, (q, len(present))


def test_means_leave_out_what_was_not_measured():
    from evalkit.metrics import mean

    assert mean([True, False, None, True]) == 2 / 3
    assert mean([3, None, 4, float("nan")]) == 3.5
    assert mean([None, None]) is None and mean([]) is None


@pytest.mark.parametrize("entry", ["console", "main"])
def test_only_the_evalkit_command_freezes_what_a_run_imported(entry, tmp_path):
    """The `evalkit` command moves what a run imported (aiohttp included) out of the garbage
    collector's sight; `main()` called by other code (tests) leaves the collector alone."""
    code = f"""
import gc, sys
from evalkit.testing.scripted_server import Reply, ScriptedServer
import evalkit.cli as cli
with ScriptedServer(responder=Reply(content="ok")) as srv:
    sys.argv = ["evalkit", "run", "--base-url", srv.base_url, "--model", "scripted-model", "--suite",
                {str(ROOT / "suites" / "greetings.yaml")!r}, "--limit", "1", "--format", "native", "--no-cache",
                "--no-report", "--quiet", "--out", {str(tmp_path)!r}]
    code = cli.console() if {entry!r} == "console" else cli.main(sys.argv[1:])
print(code, gc.get_freeze_count() > 0)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["0", "True" if entry == "console" else "False"]


def test_summing_up_a_run_imports_no_pandas(tmp_path):
    """results.json and the terminal summary at the end of `evalkit run` are plain Python: pandas
    alone took more CPU to import than a run of hundreds of samples."""
    run = next(p.parent for p in sorted((ROOT / "reports" / "measured").rglob("header.json")))
    copy = tmp_path / run.name
    copy.mkdir()
    for name in ("header.json", "samples.jsonl"):
        (copy / name).write_bytes((run / name).read_bytes())
    code = ("import sys; from pathlib import Path; from evalkit.rundir import finalize, print_summary; "
            f"finalize(Path({str(copy)!r})); print_summary(Path({str(copy)!r})); "
            "print(sorted(m for m in ('pandas', 'numpy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.splitlines()[-1] == "[]"
    assert "call acc" in out.splitlines()[1] and (copy / "results.json").read_text() == (run / "results.json").read_text()


def test_the_overhead_benchmark_runs(tmp_path):
    out = tmp_path / "overhead.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_overhead.py"), "--samples", "20", "--rounds", "1",
                    "--delays", "0", "--connections", "4", "--modes", "whole,streamed", "--no-inspect", "--out", str(out)],
                   check=True, capture_output=True, text=True, cwd=ROOT, timeout=300)
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["harness"], r["stream"], r["samples"]) for r in rows] == [("evalkit", False, 20), ("evalkit", True, 20)]
    assert all(r["startup_s"] > 0 and r["wall_s"] > r["startup_s"] and r["cpu_s"] > 0 for r in rows)
    assert any(c["check"].startswith("start-up") for c in result["checks"])


# ---------------------------------------------------------------- the response cache


def test_cache_keys_are_the_ones_earlier_runs_stored():
    """A key pinned from before issue 17: a cache filled by an older evalkit still answers."""
    from evalkit.cache import ResponseCache

    params = {"model": "qwen", "messages": [{"role": "user", "content": "Which is larger, 8.9 or 8.11?"}],
              "temperature": 0.0, "max_tokens": 512, "seed": 0}
    key = ResponseCache.key("http://127.0.0.1:8080/v1", "qwen", params, True, 0, "native")
    assert key == "0c98fff4e1bdc4a5252f0192ebc7025c9feed8a9bd311dd1a05f1591db5898da"


def test_a_cache_insert_does_not_wait_for_the_disk(tmp_path):
    from evalkit.cache import ResponseCache

    cache = ResponseCache(tmp_path / "responses.sqlite")
    try:  # WAL without an fsync per commit (1 = NORMAL): an insert runs on the event loop
        assert cache._db.execute("PRAGMA synchronous").fetchone()[0] == 1
    finally:
        cache.close()
