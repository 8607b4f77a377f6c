"""Issue 26, reliability round three: the attacks that got through the previous rounds, each
against a real server on 127.0.0.1 (the scripted server, a few-line stdlib server, or real MCP
server processes), each checked to fail on the code before the fix."""

from __future__ import annotations

import json
import re

import pytest

from evalkit.client import CALL_CHARS
from test_reliability_client import LIMIT_LINE, _Handler, failure, run, stdlib_server

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------- 1: id-only stream fragments


def _fragments(count: int, fragment) -> bytes:
    head = b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
    body = b"".join(b'data: {"choices":[{"index":0,"delta":{"tool_calls":[%s]}}]}\n\n' % fragment(i)
                    for i in range(count))
    return head + body + b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n'


def _sse_server(body: bytes):
    def answer(handler: _Handler) -> None:
        handler.sse_head()
        handler.wfile.write(body)

    return stdlib_server(answer)


@pytest.mark.parametrize("fragment", [
    lambda i: b'{"id":"c%d"}' % i,  # the attack: each fragment a new id, nothing else
    lambda i: b'{"index":%d}' % i,  # each a new index, not even an id
], ids=["new-id", "new-index"])
def test_fragments_that_only_open_calls_count_against_the_reply_limit(fragment):
    # 100,000 fragments opening a call each: 3.2 M characters at CALL_CHARS apiece, over 1 M.
    with _sse_server(_fragments(100_000, fragment)) as srv:
        error, _ = failure(srv.base_url, retries=0)
    assert str(error) == LIMIT_LINE.format(1_000_000) and not error.retryable


def test_call_ids_and_a_per_call_cost_count_in_a_whole_reply_too():
    calls = [{"id": "c%d" % i, "type": "function", "function": {}} for i in range(40_000)]
    body = json.dumps({"choices": [{"message": {"role": "assistant", "tool_calls": calls}, "finish_reason": "tool_calls"}]})

    def answer(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        handler.wfile.write(body.encode())

    with stdlib_server(answer) as srv:
        error, _ = failure(srv.base_url, stream=False, retries=0)
    assert str(error) == LIMIT_LINE.format(1_000_000)


def test_a_few_calls_stay_well_under_the_limit():
    with _sse_server(_fragments(3, lambda i: b'{"index":%d,"id":"c%d","function":{"name":"f","arguments":"{}"}}' % (i, i))) as srv:
        calls = run(srv.base_url, max_reply_chars=3 * (CALL_CHARS + 2 + 1 + 2)).tool_calls
    assert [c["id"] for c in calls] == ["c0", "c1", "c2"]


# ---------------------------------------------------------------- 4: a lone surrogate inside arguments

from conftest import TINY_CASES, tiny_responder  # noqa: E402
from evalkit.cache import ResponseCache  # noqa: E402
from evalkit.testing.scripted_server import Reply  # noqa: E402
from test_reliability_run import KEYS, latest, only_run_dir, resume  # noqa: E402
from test_reliability_run import run as run_cli  # noqa: E402


@pytest.mark.parametrize("fmt", ["native", "default", "pythonic"])
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_a_lone_surrogate_inside_arguments_is_a_parse_error_scored_and_cached(server, tiny_suite, tmp_path,
                                                                             monkeypatch, fmt, stream):
    # The arguments string `{"name": "\ud800"}` decodes to a lone surrogate: the sample once failed
    # as "evalkit failed on this sample: PydanticSerializationError" after the reply was cached,
    # so every --resume replayed the failure. It is the model's malformed call now.
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    poison = {"native": Reply(tool_calls=[{"name": "say_hello", "arguments": '{"name": "\\ud800"}'}]),
              "default": Reply(content='[TOOL_REQUEST]{"name": "say_hello", "arguments": {"name": "\\ud800"}}[END_TOOL_REQUEST]'),
              "pythonic": Reply(content="[say_hello(name='\\ud800')]")}[fmt]
    server.set_responder(lambda request: poison if "Bob" in request["messages"][-1]["content"] else tiny_responder(request))
    out = tmp_path / "runs"
    assert run_cli(server.base_url, tiny_suite, out, *([] if stream else ["--no-stream"]), formats=(fmt,), cache=True) == 0
    run_dir = only_run_dir(out)
    hello = latest(run_dir)[("hello", fmt)]
    assert hello["error"] is None, hello["error"]
    assert hello["call_correct"] is False and hello["failure_kind"] == "malformed", hello["failure_kind"]
    (call,) = hello["calls"]
    assert call["parse_error"].endswith("invalid unicode escape (a lone surrogate)"), call
    cache = ResponseCache.open_default()
    assert cache.count() == len(TINY_CASES)  # cached: a --resume replays a scored reply, not a failure
    cache.close()


def test_a_sample_that_cannot_be_written_leaves_its_reply_out_of_the_cache(server, tiny_suite, tmp_path, monkeypatch):
    # The cache is written once the sample's line is: a reply that breaks writing (the next bug,
    # as the lone surrogate in arguments was) is asked for again on --resume, not replayed.
    from evalkit import rundir

    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    real_line = rundir.sample_line

    def fragile(sample):
        if sample.error is None and sample.case_id == "chat":
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real_line(sample)

    server.set_responder(tiny_responder)
    out = tmp_path / "runs"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rundir, "sample_line", fragile)
        assert run_cli(server.base_url, tiny_suite, out, formats=("native",), cache=True) == 0
    run_dir = only_run_dir(out)
    assert latest(run_dir)[("chat", "native")]["error"].startswith("evalkit failed on this sample: UnicodeEncodeError")
    cache = ResponseCache.open_default()
    assert cache.count() == len(TINY_CASES) - 1
    cache.close()
    server.reset()
    assert resume(run_dir) == 0
    assert server.hits == 1  # asked again, not replayed
    assert latest(run_dir)[("chat", "native")]["error"] is None


# ---------------------------------------------------------------- 2: the scanner's quadratic cases

from evalkit.callsyntax import scan  # noqa: E402
from evalkit.callsyntax.scanner import MAX_READS, TOO_MANY_READS  # noqa: E402


@pytest.mark.timeout(20)  # a hang guard, not a speed target (that is benchmarks/bench_scanner_worst.py)
def test_a_gemma_4_key_followed_by_blanks_is_read_once():
    # The lazy key pattern retried the rest of the text at every character: 40 s for 200,000
    # spaces, about 160 s for these 400,000. Read once, it is a broken call at once.
    found = scan("<|tool_call>call:f{a" + " " * 400_000)
    (attempt,) = found.attempts
    assert attempt.family == "gemma4" and attempt.broken == "a key without a value"


def test_keys_are_still_read_with_blanks_around_them():
    (attempt,) = scan("<|tool_call>call:f{ city : <|\"|>Paris<|\"|> , n :2}<tool_call|>").attempts
    assert attempt.broken is None and attempt.calls[0].arguments == {"city": "Paris", "n": 2}


@pytest.mark.parametrize("unit", ["[TOOL_CALLS]", ">>>a\n", "`<tool_call>` "])
def test_past_the_read_limit_the_rest_of_a_reply_is_one_attempt_or_prose(unit):
    # 200,000 markers were 200,000 reads (1-2 s per MB on the event loop); past MAX_READS the
    # rest is not read block by block.
    text = unit * 200_000
    found = scan(text)
    assert len(found.attempts) <= MAX_READS + 1
    if unit.startswith("`"):
        assert not found.attempts and len(found.prose) == len(text.strip())
    else:
        assert found.attempts[-1].broken == TOO_MANY_READS and found.attempts[-1].span[1] == len(text)


def test_a_real_reply_with_many_calls_is_under_the_read_limit():
    text = "".join(f'<tool_call>{{"name": "f", "arguments": {{"n": {i}}}}}</tool_call>\n' for i in range(300))
    found = scan(text, {"f": None})
    assert len(found.attempts) == 300 and all(a.broken is None for a in found.attempts)


@pytest.mark.timeout(20)
def test_brackets_that_never_close_are_walked_a_bounded_number_of_times():
    found = scan('<tool_call>' + '[{' * 500_000)
    assert found.attempts and found.attempts[0].broken.startswith("cut off")


# ---------------------------------------------------------------- 3 and 7: the probe

import time  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
import threading  # noqa: E402

from evalkit.cli import main  # noqa: E402
from evalkit.probe import run_probe  # noqa: E402
from evalkit.probe.wire import MAX_REPLY_BYTES  # noqa: E402
from evalkit.testing.scripted_server import ContractResponder, ScriptedServer  # noqa: E402

MODELS = {"GET /v1/models": {"object": "list", "data": [{"id": "m", "object": "model"}]}}


def test_the_probe_stops_reading_a_reply_past_its_limit():
    # 5 MB replies, streamed and not: the probe held them whole (50 MB ones took 7.66 GB RSS).
    with ScriptedServer(responder=Reply(content="x" * 5_000_000, stream_content_chunks=50), endpoints=MODELS) as srv:
        result = run_probe(srv.base_url, "m", timeout_s=20)
    sent = [e for c in result.checks for e in c.evidence if e.method == "POST"]
    assert sent and all(e.error and f"over the probe's limit of {MAX_REPLY_BYTES:,} bytes" in e.error for e in sent)
    assert len(result.model_dump_json()) < 40 * MAX_REPLY_BYTES  # the --json output is bounded too
    assert by_check(result)["tool_choice_none"].status == "fail"


def test_a_trickling_server_ends_each_probe_request_at_the_timeout():
    # One event every 0.3 s never trips a 1.5 s read gap; a 200-event reply took 60 s a request.
    trickle = Reply(content="y" * 200, stream_content_chunks=200, chunk_delay_s=0.3, delay_s=0.0)
    good = ContractResponder()
    with ScriptedServer(responder=lambda r: trickle if r.get("stream") else good(r), endpoints=MODELS) as srv:
        start = time.monotonic()
        result = run_probe(srv.base_url, "m", timeout_s=1.5)
        took = time.monotonic() - start
    streamed = [e for c in result.checks for e in c.evidence if e.stream]
    assert streamed and all(e.error == "timed out: no complete reply within the 1.5 s deadline" for e in streamed)
    assert took < 25


def by_check(result):
    return {c.name: c for c in result.checks}


@pytest.mark.parametrize("body, content_type", [(b"<html><body>Welcome</body></html>", "text/html"), (b"", "application/json")],
                         ids=["html", "empty"])
def test_a_server_that_sends_no_readable_reply_fails_the_probe(body, content_type):
    with ScriptedServer(responder=Reply(raw_body=body, content_type=content_type), endpoints=MODELS) as srv:
        result = run_probe(srv.base_url, "m", timeout_s=10)
    checks = by_check(result)
    for name in ("tool_choice_none", "stream_parity"):
        assert checks[name].status == "fail" and "the reply could not be read" in checks[name].detail, checks[name]


class _HtmlEverywhere(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        page = b"<!doctype html><html><body>router login</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args) -> None:
        pass


def test_a_models_list_in_html_is_reached_not_unreachable(capsys):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlEverywhere)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        assert main(["probe", "--base-url", base_url, "--model", "m"]) == 2
    finally:
        httpd.shutdown()
        httpd.server_close()
    err = capsys.readouterr().err
    assert "cannot reach" not in err and f"{base_url}/models answered, but not with an OpenAI model list" in err


class _Trickle(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            for byte in b'{"object": "list", "data": []}' * 100:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    def log_message(self, *args) -> None:
        pass


def test_a_get_that_trickles_ends_at_its_timeout():
    from evalkit.engine.discover import get_json

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            get_json(f"http://127.0.0.1:{httpd.server_address[1]}/v1/models", 1.0)
        assert time.monotonic() - start < 5
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---------------------------------------------------------------- 8 and 9: MCP results and names

import asyncio  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from evalkit.limits import MAX_TOOL_RESULT_CHARS  # noqa: E402
from evalkit.mcp_tools import McpToolbox, OPENAI_NAME, offered_name  # noqa: E402
from evalkit.errors import EvalkitError  # noqa: E402
from evalkit.schema import McpServer, ToolCall  # noqa: E402

HOSTILE = str(Path(__file__).resolve().parent / "mcp_servers" / "hostile_server.py")


def _call(tool: str, *server_args: str):
    async def go():
        async with McpToolbox(McpServer(command=[sys.executable, HOSTILE, *server_args], timeout_s=60)) as box:
            return await box.call(ToolCall(name=tool, arguments={}))

    return asyncio.run(go())


@pytest.mark.parametrize("tool, server_args, more", [
    ("big", ("", "3000000"), ""),
    ("many", ("", "", "100000"), " and "),  # 2.8 MB of JSON: under the message limit, over the cut
], ids=["one-3MB-block", "200k-blocks"])
def test_an_mcp_tool_result_is_cut_at_the_limit_and_says_so(tool, server_args, more):
    text, ok = _call(tool, *server_args)
    assert ok and len(text) < MAX_TOOL_RESULT_CHARS + 200
    assert text.endswith("(evalkit's limit on a tool result)]") and f"over {MAX_TOOL_RESULT_CHARS:,} characters" in text
    assert more in text.rsplit("[", 1)[1]


def test_a_100_mb_result_is_refused_as_it_arrives_and_never_held():
    """Counted where the bytes enter (evalkit/mcp_launcher.py): the SDK read and parsed it whole
    and the call timed out. evalkit's own peak RSS (VmHWM, in a process of its own) stays low."""
    script = ("import asyncio, json, sys, time\n"
              "from pathlib import Path\n"
              "from evalkit.mcp_tools import McpToolbox\n"
              "from evalkit.schema import McpServer, ToolCall\n"
              "async def go():\n"
              f"    async with McpToolbox(McpServer(command=[sys.executable, {HOSTILE!r}, '', '100000000'], timeout_s=40)) as box:\n"
              "        started = time.monotonic()\n"
              "        text, ok = await box.call(ToolCall(name='big', arguments={}))\n"
              "        return text, ok, time.monotonic() - started\n"
              "text, ok, took = asyncio.run(go())\n"
              "peak = next(l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM'))\n"
              "print(json.dumps({'text': text[:1000], 'ok': ok, 'took': took, 'peak_kb': int(peak.split()[1])}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    assert got["ok"] is False and re.search(r"answer was 100,000,\d{3} bytes, over evalkit's limit of [\d,]+ bytes", got["text"]), got
    assert got["peak_kb"] < 150 * 1024, got  # the SDK held the 100 MB line, and more while parsing it


def test_names_are_checked_whole_not_up_to_a_final_newline():
    assert OPENAI_NAME.fullmatch("abc") and not OPENAI_NAME.fullmatch("abc\n")
    assert offered_name("abc\n") == "abc_"


@pytest.mark.parametrize("names, problem", [
    (["a/b", "a_b"], "become the same OpenAI function name: 'a/b' and 'a_b' (both 'a_b')"),
    (["dup", "dup"], "lists the tool(s) 'dup' more than once"),
], ids=["sanitised-alike", "repeated"])
def test_tool_names_that_collide_are_one_line_in_a_run_and_in_import(tmp_path, names, problem):
    with pytest.raises(EvalkitError, match=re.escape(problem)):
        _call(names[0], json.dumps(names))
    done = subprocess.run([sys.executable, "-m", "evalkit", "import", "mcp", "--out", str(tmp_path / "out"), "--",
                           sys.executable, HOSTILE, json.dumps(names)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 2 and problem in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_import_of_a_name_with_a_newline_writes_a_suite_that_loads(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "evalkit", "import", "mcp", "--out", str(out), "--", sys.executable, HOSTILE,
                           json.dumps(["abc\n", "ok"])],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([sys.executable, "-m", "evalkit", "suites", "--dir", str(out)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert listed.returncode == 0, listed.stderr
    assert [p.name for p in out.iterdir()] == ["hostile_test_server.yaml"]


# ---------------------------------------------------------------- 6: one runner per sweep directory

from conftest import write_suite  # noqa: E402
from evalkit.rundir import run_lock  # noqa: E402


def test_a_second_runner_of_a_sweep_directory_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    suite = write_suite(tmp_path / "suites", TINY_CASES)
    out = tmp_path / "runs"
    with ScriptedServer(responder=tiny_responder, models=["a", "b"]) as srv:
        argv = ["run", "--base-url", srv.base_url, "--suite", str(suite), "--format", "native", "--out", str(out),
                "--quiet", "--no-report", "--no-cache", "--model", "a", "--model", "b"]
        assert main(argv) == 0
        (sweep_dir,) = out.iterdir()
        state = json.loads((sweep_dir / "sweep.json").read_text())
        state["members"][1]["run_dir"] = None  # b not begun yet, as when the sweep was stopped
        (sweep_dir / "sweep.json").write_text(json.dumps(state))
        before = sorted(p.name for p in sweep_dir.iterdir())
        capsys.readouterr()
        with run_lock(sweep_dir):  # another `run --resume SWEEP_DIR` is at work
            assert main(["run", "--resume", str(sweep_dir), "--quiet", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "another evalkit" in err and err.strip().count("\n") == 0, err
    assert sorted(p.name for p in sweep_dir.iterdir()) == before  # model b was not started a second time


# ---------------------------------------------------------------- 5: fixtures stay inside

import yaml  # noqa: E402

from evalkit.errors import SuiteError  # noqa: E402
from evalkit.sandbox import sandbox_dir  # noqa: E402
from evalkit.suites import read_suite  # noqa: E402


def _fixture_suite(directory: Path, fixtures: str) -> Path:
    server = {"command": [sys.executable, HOSTILE], "isolate": True, "fixtures": fixtures}
    tools = [{"type": "function", "function": {"name": "big", "description": "", "parameters": {"type": "object", "properties": {}}}}]
    path = directory / "suite" / "fx.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"name": "fx", "description": "fixtures", "implementations": {"mcp": server},
                                    "tools": tools, "cases": []}))
    return path


@pytest.mark.parametrize("make, problem", [
    (lambda fx: (fx / "host").symlink_to("/etc/hostname"), "is a symbolic link to /etc/hostname, outside the fixtures folder"),
    (lambda fx: (fx / "outside").symlink_to("/etc", target_is_directory=True), "is a symbolic link to /etc, outside"),
    (lambda fx: (fx / "loop").symlink_to(fx / "loop"), "is a symbolic link that loops or leads nowhere"),
], ids=["file-link-out", "folder-link-out", "loop"])
def test_fixture_links_that_leave_the_fixtures_are_one_line(tmp_path, make, problem):
    fixtures = tmp_path / "suite" / "fixtures"
    fixtures.mkdir(parents=True)
    (fixtures / "notes.txt").write_text("hello")
    make(fixtures)
    with pytest.raises(SuiteError, match="implementations.mcp.fixtures") as info:
        read_suite(_fixture_suite(tmp_path, "fixtures"))
    assert problem in str(info.value) and "\n" not in str(info.value)


def test_fixtures_outside_the_suites_folders_are_refused(tmp_path):
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    with pytest.raises(SuiteError, match="is outside the suite's folder and the folder above it"):
        read_suite(_fixture_suite(deep, "../../../../../../../../etc"))


def test_links_inside_the_fixtures_are_copied_as_links(tmp_path):
    fixtures = tmp_path / "suite" / "fixtures"
    (fixtures / "docs").mkdir(parents=True)
    (fixtures / "docs" / "a.txt").write_text("a")
    (fixtures / "latest").symlink_to("docs/a.txt")
    read_suite(_fixture_suite(tmp_path, "fixtures"))  # loads
    with sandbox_dir(fixtures) as root:
        assert (root / "latest").is_symlink() and (root / "latest").read_text() == "a"


# ---------------------------------------------------------------- lower items: one line, bounded, escaped

from evalkit.report.markdown import no_html  # noqa: E402


@pytest.mark.parametrize("argv, expected", [
    (["--temperature", "nan"], "argument --temperature: 'nan' must be a finite number"),
    (["--temperature", "inf"], "argument --temperature: 'inf' must be a finite number"),
    (["--base-url", "http://"], "--base-url 'http://': expected an http:// or https:// URL with a host"),
], ids=["nan", "inf", "scheme-only"])
def test_values_no_run_could_use_are_one_line(tiny_suite, tmp_path, capsys, argv, expected):
    assert main(["run", "--model", "m", "--suite", str(tiny_suite), "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.strip().count("\n") == 0 and "http://http:" not in err, err


def test_a_probe_of_a_scheme_only_url_is_one_line_naming_it(capsys):
    assert main(["probe", "--base-url", "http://", "--model", "m"]) == 2
    assert "--base-url 'http://': expected an http:// or https:// URL with a host" in capsys.readouterr().err


def test_workers_are_capped_at_the_number_of_jobs(server, tiny_suite):
    # --concurrency 100000 on one job: 100,000 idle workers polling took 8 s of CPU.
    from conftest import run_samples
    from evalkit import dispatch

    seen: list[int] = []
    real = dispatch.run_job

    async def counting(job, endpoint, ctx):
        seen.append(len(asyncio.all_tasks()))
        return await real(job, endpoint, ctx)

    server.set_responder(tiny_responder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dispatch, "run_job", counting)
        run_samples(server.base_url, tiny_suite, ["native"], case_ids=["chat"], concurrency=100_000)
    assert seen and max(seen) < 10


def test_model_written_names_and_model_ids_are_not_html_in_the_markdown_reports(server, tiny_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    server.set_responder(lambda r: Reply(tool_calls=[{"name": "<img src=x onerror=alert(1)>", "arguments": "{}"}])
                         if "Bob" in r["messages"][-1]["content"] else tiny_responder(r))
    out = tmp_path / "runs"
    assert main(["run", "--base-url", server.base_url, "--model", "<script>alert(2)</script>", "--allow-unlisted", "--suite", str(tiny_suite),
                 "--format", "native", "--out", str(out), "--quiet", "--no-cache"]) == 0
    (run_dir,) = out.iterdir()
    for name in ("report.md", "failures.md"):
        text = (run_dir / name).read_text()
        outside_fences = no_html(text)  # idempotent on safe Markdown
        assert outside_fences == text, name
        assert "&lt;script>alert(2)&lt;/script>" in text, name
    assert "&lt;img src=x onerror=alert(1)>" in (run_dir / "failures.md").read_text()


def test_no_html_keeps_code_and_comparisons():
    text = "p < 0.001 and `<tool_call>` stay; <b>bold</b> does not\n```text\n<kept>\n```\n> <quoted>"
    assert no_html(text) == "p < 0.001 and `<tool_call>` stay; &lt;b>bold&lt;/b> does not\n```text\n<kept>\n```\n> &lt;quoted>"


def test_a_catastrophic_regex_matcher_ends_at_its_time_limit():
    from evalkit.matchers import REGEX_TIMEOUT_S, match_value as matches

    start = time.monotonic()
    assert matches({"regex": "(a|aa)+$"}, "a" * 40 + "!") is False  # about 2^40 steps in `re`
    assert time.monotonic() - start < REGEX_TIMEOUT_S * 10
    assert matches({"regex": "[a-z]+-\\d+"}, "abc-12") is True


# ---------------------------------------------------------------- 11, 12: rescore, bad lines and modes


def _a_run(server, tiny_suite, tmp_path) -> Path:
    server.set_responder(tiny_responder)
    out = tmp_path / "runs"
    assert main(["run", "--base-url", server.base_url, "--model", "m", "--allow-unlisted", "--suite", str(tiny_suite), "--format", "native",
                 "--out", str(out), "--quiet", "--no-cache", "--no-report"]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


@pytest.mark.parametrize("bad, what", [("{not json\n", "not JSON"), ('{"a": 1}\n', "not a sample")], ids=["not-json", "not-a-sample"])
def test_rescore_of_a_bad_line_is_one_line_and_the_next_runs_are_rescored(server, tiny_suite, tmp_path, monkeypatch,
                                                                           capsys, bad, what):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    first, second = _a_run(server, tiny_suite, tmp_path / "a"), _a_run(server, tiny_suite, tmp_path / "b")
    with (first / "samples.jsonl").open("a") as handle:
        handle.write(bad)
    before = (first / "samples.jsonl").read_text()
    capsys.readouterr()
    assert main(["rescore", str(first), str(second), "--no-report"]) == 2
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    assert f"{first}: not rescored: {first / 'samples.jsonl'} line 4: {what}" in out.out
    assert f"{second}: 3 samples" in out.out  # the run after it was rescored
    assert (first / "samples.jsonl").read_text() == before


def test_rescore_keeps_the_file_mode(server, tiny_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    run_dir = _a_run(server, tiny_suite, tmp_path)
    samples = run_dir / "samples.jsonl"
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    for line in lines:
        line["call_correct"] = not line["call_correct"]  # so that rescoring changes every line
    samples.write_text("".join(json.dumps(line) + "\n" for line in lines))
    os.chmod(samples, 0o644)
    assert main(["rescore", str(run_dir), "--no-report"]) == 0
    assert os.stat(samples).st_mode & 0o777 == 0o644
    assert [json.loads(line)["call_correct"] for line in samples.read_text().splitlines()] == [not l["call_correct"] for l in lines]
    assert os.stat(run_dir / "results.json").st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- 13: suite paths that hold from anywhere


def test_resume_and_rescore_from_another_directory_find_the_suite(server, tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_suite(start / "suites", TINY_CASES, name="where")
    server.set_responder(tiny_responder)
    monkeypatch.chdir(start)
    assert main(["run", "--base-url", server.base_url, "--model", "m", "--allow-unlisted", "--suite", "suites/where.yaml", "--format",
                 "native", "--out", "runs", "--quiet", "--no-cache", "--no-report"]) == 0
    (run_dir,) = (start / "runs").iterdir()
    header = json.loads((run_dir / "header.json").read_text())
    assert header["suites"][0]["path"] == str(start / "suites" / "where.yaml")
    (run_dir / "samples.jsonl").write_text("")  # every sample to be redone
    monkeypatch.chdir(elsewhere)
    assert main(["run", "--resume", str(run_dir), "--quiet", "--no-report"]) == 0
    assert main(["rescore", str(run_dir), "--no-report"]) == 0
    assert len((run_dir / "samples.jsonl").read_text().splitlines()) == len(TINY_CASES)


# ---------------------------------------------------------------- 11: a server answering random bytes, a bad URL file

import socket  # noqa: E402


class _Garbage:
    """A TCP server on 127.0.0.1 that answers every request with random bytes, not HTTP."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.recv(65536)
                conn.sendall(os.urandom(300) + b"\r\n\r\n")
            except OSError:
                pass
            finally:
                conn.close()

    def __exit__(self, *exc) -> None:
        self.sock.close()


def test_a_server_answering_random_bytes_is_one_line_for_the_probe_and_error_samples_for_a_run(tiny_suite, tmp_path,
                                                                                               monkeypatch, capsys):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    with _Garbage() as garbage:
        assert main(["probe", "--base-url", garbage.base_url, "--model", "m"]) == 2
        err = capsys.readouterr().err
        assert "answered, but not with an OpenAI model list (the answer is not HTTP/1.x (BadStatusLine" in err
        assert err.strip().count("\n") == 0 and "Traceback" not in err
        # Every sample an error: over --max-error-rate, so exit 1 (the run itself ends as it should).
        assert main(["run", "--base-url", garbage.base_url, "--model", "m", "--allow-unlisted", "--suite", str(tiny_suite),
                     "--format", "native", "--out", str(tmp_path / "runs"), "--quiet", "--no-report", "--retries", "0"]) == 1
    assert "Traceback" not in capsys.readouterr().err
    (run_dir,) = (tmp_path / "runs").iterdir()
    errors = {json.loads(line)["error"] for line in (run_dir / "samples.jsonl").read_text().splitlines()}
    assert errors and all(e.startswith("the server's answer is not HTTP/1.x") for e in errors), errors


def test_a_base_url_file_that_is_not_utf8_is_one_line(tiny_suite, tmp_path, capsys):
    urls = tmp_path / "urls.txt"
    urls.write_bytes(b"http://127.0.0.1:1/v1\n\xff\xfe\n")
    assert main(["run", "--base-url-file", str(urls), "--model", "m", "--suite", str(tiny_suite)]) == 2
    err = capsys.readouterr().err
    assert f"{urls}: not UTF-8 text (byte 0xff at offset 22)" in err and err.strip().count("\n") == 0


# ---------------------------------------------------------------- 19: a setup that prints a lot

import tracemalloc  # noqa: E402


def test_a_setup_that_prints_100_mb_keeps_only_its_tail(tmp_path):
    from evalkit.mcp_tools import McpError

    loud = ("import sys\nw = sys.stdout.buffer.write\nfor _ in range(100):\n    w(b'x' * 1048575 + b'\\n')\n"
            "print('the end', flush=True)\nsys.exit(3)\n")
    server = McpServer(command=[sys.executable, HOSTILE], isolate=True, setup=[sys.executable, "-c", loud], timeout_s=120)
    tracemalloc.start()
    try:
        with pytest.raises(McpError, match=r"(?s)failed with exit code 3: .*the end"):
            asyncio.run(McpToolbox(server, tmp_path / "suite.yaml").start())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30 * 1024 * 1024  # held whole, it was over 100 MB


# ---------------------------------------------------------------- 17: a server printing garbage on stdout


def test_a_server_printing_garbage_on_stdout_is_one_line_without_the_sdks_tracebacks(tmp_path):
    garbage = "import time\nfor i in range(200):\n    print('garbage line', i, flush=True)\ntime.sleep(30)\n"
    done = subprocess.run([sys.executable, "-m", "evalkit", "import", "mcp", "--out", str(tmp_path / "out"), "--timeout", "5",
                           "--", sys.executable, "-c", garbage], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr[:2000]
    assert "did not start" in done.stderr


# ---------------------------------------------------------------- 15 (part): sandboxes a killed evalkit left


def test_sandboxes_of_a_killed_evalkit_are_removed_by_the_next(tmp_path, monkeypatch):
    import tempfile as tempfile_module

    from evalkit import sandbox

    monkeypatch.setattr(tempfile_module, "tempdir", str(tmp_path))
    monkeypatch.setattr(sandbox, "_swept", False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"evalkit-sandbox-{dead.pid}-abcd"
    mine = tmp_path / f"evalkit-sandbox-{os.getpid()}-efgh"
    for folder in (stale, mine):
        (folder / "sub").mkdir(parents=True)
    with sandbox_dir() as fresh:
        assert fresh.parent == tmp_path and fresh.name.startswith(f"evalkit-sandbox-{os.getpid()}-")
        assert not stale.exists() and mine.exists()


def test_a_servers_grandchild_in_a_session_of_its_own_is_stopped_with_it(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    escaping = str(Path(__file__).resolve().parent / "mcp_servers" / "escaping_server.py")

    async def go():
        async with McpToolbox(McpServer(command=[sys.executable, escaping, str(pid_file)], timeout_s=60)) as box:
            for _ in range(100):
                if pid_file.exists() and pid_file.read_text():
                    break
                await asyncio.sleep(0.05)
            return int(pid_file.read_text()), [t.function.name for t in box.tools()]

    grandchild, tools = asyncio.run(go())
    assert tools == ["big", "many"]
    time.sleep(0.2)
    assert not _running(grandchild)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan waits as one for an init that may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# ---------------------------------------------------------------- 15: a kill -9 of evalkit mid-sample

import contextlib  # noqa: E402

from test_mcp_agent import agent_case, mcp_suite  # noqa: E402


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_kill_9_of_evalkit_leaves_no_server_that_ignores_stdin_eof_nor_its_grandchild(tmp_path):
    """A real `evalkit run` of an MCP suite is killed with SIGKILL while its sample waits on the
    model: the server (which ignores stdin EOF) and its `setsid` grandchild were orphaned."""
    pid_file = tmp_path / "grandchild.pid"
    escaping = str(Path(__file__).resolve().parent / "mcp_servers" / "escaping_server.py")
    big = {"type": "function", "function": {"name": "big", "description": "a big result", "parameters": {"type": "object", "properties": {}}}}
    suite = mcp_suite(tmp_path / "suites", [agent_case("c", "Call big.", [{"name": "big", "args": {}}])],
                      {"command": [sys.executable, escaping, str(pid_file), "--ignore-eof"], "timeout_s": 30}, [big])
    with ScriptedServer(responder=lambda request: Reply(content="still thinking", delay_s=60)) as model:
        evalkit = subprocess.Popen(
            [sys.executable, "-m", "evalkit", "run", "--base-url", model.base_url, "--model", "scripted-model", "--suite",
             str(suite), "--format", "native", "--out", str(tmp_path / "runs"), "--no-cache", "--no-report", "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        pids: list[int] = []
        try:
            deadline = time.monotonic() + 60
            while not (model.requests and pid_file.exists() and pid_file.read_text() and Path(f"{pid_file}.server").exists()):
                assert evalkit.poll() is None, evalkit.communicate()[1][-2000:]
                assert time.monotonic() < deadline, "the sample never reached the model with its server started"
                time.sleep(0.1)
            server = int(Path(f"{pid_file}.server").read_text())
            pids = [server, int(pid_file.read_text()), _ppid(server)]  # the server, its grandchild, what started it
            assert all(_running(pid) for pid in pids)
            evalkit.kill()
            evalkit.wait()
            deadline = time.monotonic() + 5
            while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
                time.sleep(0.1)
            # Which one was left, and under whom: CI once saw two of the three left (a flake not
            # reproduced in 20 runs, loaded or not); the roles say where to look next time.
            left = {f"{role} {pid}": Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
                    for role, pid in zip(("server", "grandchild", "launcher"), pids) if _running(pid)}
            assert not left, f"a kill -9 of evalkit left MCP processes running: {left}"
        finally:
            if evalkit.poll() is None:
                evalkit.kill()
                evalkit.wait()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)


@pytest.mark.parametrize("head, ident", [
    (b'{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"rrr', 7),
    (b'{ "id" : "a\\"b", "jsonrpc": "2.0", "result": {', 'a"b'),
    (b'{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":{"messages":[', None),  # no answer: dropped
    (b'{"id":7,"jsonrpc":"2.0","method":"roots/list"', None),
    (b'{"jsonrpc":"2.0","result":{"content":[', None),  # its id is not at the start: dropped
], ids=["answer", "string-id-first", "server-request", "server-request-id-first", "id-not-at-start"])
def test_an_over_long_message_becomes_an_error_for_the_same_request_or_nothing(head, ident):
    from evalkit.mcp_launcher import refusal

    out = refusal(head, 100_000_123, 4096)
    if ident is None:
        assert out == b""
    else:
        message = json.loads(out)
        assert out.endswith(b"\n") and message["id"] == ident and message["error"]["code"] == -32603
        assert "answer was 100,000,123 bytes, over evalkit's limit of 4,096 bytes" in message["error"]["message"]
