"""Issue 16, the run: no reply, suite or signal can hang a run, lose a sample, or write the wrong
directory. Every test runs the real CLI (`evalkit.cli.main` in-process, or the console script in a
subprocess where signals are involved) against the scripted server, bounded in time, and checks
the exit code, the one line, and that the samples are intact.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from conftest import TINY_CASES, TOOLS, case, tiny_responder, write_suite
from evalkit.cache import ResponseCache
from evalkit.cli import main
from evalkit.formats import base, get_format
from evalkit.rundir import LOCK, run_lock
from evalkit.testing.scripted_server import Reply, ScriptedServer

pytestmark = pytest.mark.timeout(90)

KEYS = {(c["id"], f) for c in TINY_CASES for f in ("native", "default")}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Never touch the user's response cache, and never find a real server through the env."""
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("EVALKIT_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def run(base_url: str, suite: Path, out: Path, *extra: str, formats=("native", "default"), cache=False) -> int:
    # Error samples are what these tests measure, not a failed CI gate: --max-error-rate 100%.
    argv = ["run", "--base-url", base_url, "--model", "m", "--allow-unlisted", "--suite", str(suite), "--out", str(out),
            "--no-report", "--quiet", "--max-error-rate", "100%", *([] if cache else ["--no-cache"])]
    for fmt in formats:
        argv += ["--format", fmt]
    return main([*argv, *extra])


def resume(run_dir: Path, *extra: str) -> int:
    return main(["run", "--resume", str(run_dir), "--no-report", "--quiet", "--max-error-rate", "100%", *extra])


def only_run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def samples_of(run_dir: Path) -> list[dict]:
    """The lines of samples.jsonl, checking that none is torn."""
    text = (run_dir / "samples.jsonl").read_text(encoding="utf-8")
    assert not text or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def latest(run_dir: Path) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for s in samples_of(run_dir):
        out[(s["case_id"], s["format"])] = s
    return out


def overall(run_dir: Path, fmt: str) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    (agg,) = [a for a in results["aggregates"] if a["format"] == fmt and a["suite"] == "*" and a["tag"] is None]
    return agg


# ---------------------------------------------------------------- one boundary per sample


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_lone_surrogate_in_a_reply_is_scored_and_stored_as_a_replacement_character(server, tiny_suite, tmp_path,
                                                                                     stream):
    # `\ud800` is valid JSON, but the lone surrogate it decodes to fits in no UTF-8 file, cache or
    # terminal. It once hung the run (the write raised outside the sample's boundary), then made
    # the sample an error that every --resume asked for again; it is now U+FFFD, as any UTF-8
    # reader would show it, and the reply is scored and cached like any other.
    content = '"\\ud800 hi \\uD83D\\uDE00"'  # a lone surrogate, then a valid pair (an emoji) that stays
    if stream:
        event = '{"choices":[{"index":0,"delta":{"content":%s},"finish_reason":"stop"}]}' % content
        poison = f"data: {event}\n\ndata: [DONE]\n\n".encode()
    else:
        poison = ('{"choices":[{"message":{"role":"assistant","content":%s},"finish_reason":"stop"}]}'
                  % content).encode()

    def responder(request):
        if "joke" in request["messages"][-1]["content"]:
            return Reply(raw_body=poison, content_type="text/event-stream" if stream else "application/json")
        return tiny_responder(request)

    server.set_responder(responder)
    out = tmp_path / "runs"
    assert run(server.base_url, tiny_suite, out, *([] if stream else ["--no-stream"]), cache=True) == 0
    run_dir = only_run_dir(out)
    by_key = latest(run_dir)
    assert set(by_key) == KEYS and len(samples_of(run_dir)) == len(KEYS)
    assert all(sample["error"] is None for sample in by_key.values()), by_key
    for fmt in ("native", "default"):
        chat = by_key[("chat", fmt)]
        assert chat["raw"]["content"] == "\ufffd hi \U0001F600"
        assert chat["call_correct"] is True  # a chat case: no call was the right answer
    assert overall(run_dir, "native")["errors"] == 0
    cache = ResponseCache.open_default()
    assert cache.count() == len(KEYS)  # the poisoned replies were cached too
    cache.close()


def test_a_sample_that_cannot_be_written_is_that_samples_error_not_a_hung_run(server, tiny_suite, tmp_path,
                                                                               monkeypatch):
    # Writing a sample is inside its boundary: when its line cannot be made (this stands for the
    # next bug, as the lone surrogate once was), the sample is that error and the run goes on.
    from evalkit import rundir

    real_line = rundir.sample_line

    def fragile(sample):
        if sample.error is None and sample.case_id == "chat":
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real_line(sample)

    monkeypatch.setattr(rundir, "sample_line", fragile)
    server.set_responder(tiny_responder)
    out = tmp_path / "runs"
    assert run(server.base_url, tiny_suite, out, "--no-stream") == 0
    run_dir = only_run_dir(out)
    by_key = latest(run_dir)
    assert set(by_key) == KEYS and len(samples_of(run_dir)) == len(KEYS)
    for (case_id, _fmt), sample in by_key.items():
        if case_id == "chat":
            assert sample["error"].startswith("evalkit failed on this sample: UnicodeEncodeError:"), sample
            assert sample["call_correct"] is False
        else:
            assert sample["error"] is None and sample["call_correct"] is True
    assert overall(run_dir, "native")["errors"] == 1


def break_native_parsing_of(word: str, monkeypatch) -> None:
    """The native parser fails on replies holding `word`, as a parser bug would (parsers never
    raise on hostile input today; this stands for the next bug)."""
    native = get_format("native")
    real_parse = native.parse_reply

    def fragile(content, tool_calls):
        if content and word in content:
            raise RecursionError("maximum recursion depth exceeded")
        return real_parse(content, tool_calls)

    monkeypatch.setattr(native, "parse_reply", fragile)


def test_a_reply_that_breaks_evalkit_is_not_cached_so_resume_asks_again(server, tiny_suite, tmp_path):
    # Parse first, cache second: a reply evalkit failed on is asked for again on --resume (before,
    # it was cached and replayed, failing the same way forever until the cache was cleared).
    server.set_responder(lambda request: (
        Reply(content="a joke for you") if "joke" in request["messages"][-1]["content"] else tiny_responder(request)))
    out = tmp_path / "runs"
    with pytest.MonkeyPatch.context() as patch:
        break_native_parsing_of("joke", patch)
        assert run(server.base_url, tiny_suite, out, "--format", "native", formats=(), cache=True) == 0
    run_dir = only_run_dir(out)
    chat = latest(run_dir)[("chat", "native")]
    assert chat["error"] == "evalkit failed on this sample: RecursionError: maximum recursion depth exceeded"
    cache = ResponseCache.open_default()
    assert cache.count() == 2  # the two replies that were parsed; not the one that broke evalkit
    cache.close()

    server.reset()  # the parser works again
    assert resume(run_dir) == 0
    assert server.hits == 1  # asked again, not replayed from the cache
    by_key = latest(run_dir)
    assert {k for k in by_key} == {(c["id"], "native") for c in TINY_CASES}
    assert all(s["error"] is None for s in by_key.values())
    assert by_key[("chat", "native")]["final_answer"] == "a joke for you"


def test_a_cached_reply_that_breaks_evalkit_is_asked_for_again(server, tiny_suite, tmp_path, monkeypatch):
    # Replies an older evalkit cached before parsing them: one that breaks the parser now is not
    # replayed from the cache on every --resume; the server is asked again.
    server.set_responder(lambda request: (
        Reply(content="a joke for you") if "joke" in request["messages"][-1]["content"] else tiny_responder(request)))
    out = tmp_path / "runs"
    assert run(server.base_url, tiny_suite, out, formats=("native",), cache=True) == 0
    run_dir = only_run_dir(out)
    (run_dir / "samples.jsonl").write_text("")  # every sample to be redone, each reply in the cache

    break_native_parsing_of("joke", monkeypatch)
    server.reset()
    assert resume(run_dir) == 0
    assert server.hits == 1  # the two good replies came from the cache; the breaking one was asked again
    by_key = latest(run_dir)
    assert by_key[("chat", "native")]["error"] == "evalkit failed on this sample: RecursionError: maximum recursion depth exceeded"
    assert by_key[("cmp", "native")]["cached"] is True and by_key[("cmp", "native")]["error"] is None


AGENT_IMPL = '''
import sys

def add_data(num1, num2):
    if num1 == 1:
        sys.exit(3)  # a tool that exits must not end the run
    if num1 == 2:
        def deep(n):
            return deep(n + 1)
        return deep(0)
    return num1 + num2
'''


def test_tools_that_exit_or_recurse_are_told_to_the_model_and_the_run_goes_on(server, tmp_path):
    (tmp_path / "impl.py").write_text(AGENT_IMPL)
    cases = [case(f"a{n}", f"add {n} and 5", {"calls": [{"name": "add_data", "args": {"num1": n, "num2": 5}}]},
                  mode="agent", max_rounds=2) for n in (1, 2, 3)]
    suite = write_suite(tmp_path / "s", cases, name="agent", tools=[TOOLS[1]])
    data = yaml.safe_load(suite.read_text())
    data["implementations"] = str(tmp_path / "impl.py")
    suite.write_text(yaml.safe_dump(data))

    def model(request):
        if any(m["role"] == "tool" for m in request["messages"]):
            return Reply(content="done")
        n = int(request["messages"][-1]["content"].split()[1])
        return Reply(tool_calls=[{"name": "add_data", "arguments": {"num1": n, "num2": 5}}])

    server.set_responder(model)
    out = tmp_path / "runs"
    assert run(server.base_url, suite, out, formats=("native",)) == 0
    samples = {s["case_id"]: s for s in samples_of(only_run_dir(out))}
    assert set(samples) == {"a1", "a2", "a3"}
    assert all(s["error"] is None and s["rounds"] == 2 for s in samples.values())
    assert samples["a1"]["tool_errors"] == 1 and "SystemExit" in json.dumps(samples["a1"]["trajectory"])
    assert samples["a2"]["tool_errors"] == 1 and "RecursionError" in json.dumps(samples["a2"]["trajectory"])
    assert samples["a3"]["tool_errors"] == 0


# ---------------------------------------------------------------- suite-level mistakes: one line, exit 2


def _suite_with(tmp_path: Path, **changes) -> Path:
    cases = [case("good", "Which is larger, 8.9 or 8.11?"), case("bad", "Which is larger, 1 or 2?")]
    path = write_suite(tmp_path / "s", cases, name="broken")
    data = json.loads(json.dumps(yaml.safe_load(path.read_text())))  # no YAML aliases shared between cases
    for where, value in changes.items():
        target = data
        *parents, last = where.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("changes,case_id,field,text", [
    ({"tools.0.function.parameters": {"type": "object", "properties": {"num1": {"type": "float"}}}},
     None, "tools.0.function.parameters", "not a valid JSON Schema: properties/num1/type: 'float' is not valid"),
    ({"tools.0.function.parameters": {"type": "object", "required": "num1"}},
     None, "tools.0.function.parameters", "not a valid JSON Schema: required: 'num1' is not of type 'array'"),
    ({"cases.1.tool_defs": [{"type": "function", "function": {"name": "compare_data",
                                                                "parameters": {"type": "string", "pattern": "("}}}]},
     "bad", "tool_defs.0.function.parameters", "not a valid JSON Schema: pattern: '(' is not a 'regex'"),
    ({"cases.1.expect.final_answer": {"regex": "(unclosed"}},
     "bad", "expect.final_answer.regex", "bad regex: missing ), unterminated subpattern at position 0"),
], ids=["schema-type", "schema-required", "case-tool-pattern", "final-answer-regex"])
def test_suite_level_mistakes_are_one_line_before_anything_runs(server, tmp_path, capsys, changes, case_id, field, text):
    suite = _suite_with(tmp_path, **changes)
    out = tmp_path / "runs"
    assert run(server.base_url, suite, out) == 2
    line = one_line(capsys.readouterr().err)
    where = f"{suite}: case {case_id!r}" if case_id else f"{suite}"
    assert line.startswith(f"evalkit: error: {where}: field {field!r}: {text}"), line
    assert server.hits == 0 and not out.exists()


@pytest.mark.parametrize("source,problem", [
    ("import no_such_module_anywhere\n", "ModuleNotFoundError: No module named 'no_such_module_anywhere'"),
    ("def add_data(:\n", "SyntaxError: invalid syntax"),
    ("raise SystemExit(4)\n", "SystemExit: 4"),
], ids=["missing-import", "syntax-error", "exits"])
def test_implementations_that_fail_to_import_are_one_line(server, tmp_path, capsys, source, problem):
    impl = tmp_path / "impl_broken.py"
    impl.write_text(source)
    suite = write_suite(tmp_path / "s", [case("a", "add 1 and 2", {"calls": [{"name": "add_data", "args": {"num1": 1, "num2": 2}}]},
                                              mode="agent")], name="agentic", tools=[TOOLS[1]])
    data = yaml.safe_load(suite.read_text())
    data["implementations"] = str(impl)
    suite.write_text(yaml.safe_dump(data))
    out = tmp_path / "runs"
    assert run(server.base_url, suite, out) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"evalkit: error: {suite}: field 'implementations': {impl} fails to import: {problem}"), line
    assert server.hits == 0 and not out.exists()


# ---------------------------------------------------------------- strict matcher keys


@pytest.mark.parametrize("args,message", [
    ({"num1": {"aprox": 8.9}, "num2": 8.11},
     "argument 'num1': 'aprox' is not a matcher key (did you mean 'approx'?); "
     "a literal object with such keys is written {exact: {...}}"),
    ({"num1": {"approx": 8.9, "tolerance": 0.1}, "num2": 8.11},
     "argument 'num1': unknown matcher key 'tolerance' (did you mean 'tol'?); matcher keys are approx, exact, "
     "loose, one_of, optional, regex, tol; a literal object with such keys is written {exact: {...}}"),
    ({"num1": 8.9, "num2": {"one_of": [8.11, {"approx": 8.1, "optinal": True}]}},
     "argument 'num2': item 1: unknown matcher key 'optinal' (did you mean 'optional'?); matcher keys are approx, "
     "exact, loose, one_of, optional, regex, tol; a literal object with such keys is written {exact: {...}}"),
], ids=["aprox", "tolerance", "optinal-in-one_of"])
def test_typod_matcher_keys_are_one_line(server, tmp_path, capsys, args, message):
    suite = write_suite(tmp_path / "s", [case("cmp", "Which is larger, 8.9 or 8.11?",
                                              {"calls": [{"name": "compare_data", "args": args}]})])
    out = tmp_path / "runs"
    assert run(server.base_url, suite, out) == 2
    line = one_line(capsys.readouterr().err)
    assert line == f"evalkit: error: {suite}: case 'cmp': field 'expect.calls.0.args': {message}", line
    assert server.hits == 0


def test_a_literal_object_with_matcher_keys_is_written_with_exact(server, tmp_path):
    spec = {"type": "object", "properties": {"rule": {"type": "object"}}, "required": ["rule"]}
    tool = {"type": "function", "function": {"name": "set_rule", "description": "d", "parameters": spec}}
    rule = {"regex": "a+", "flags": "i"}
    suite = write_suite(tmp_path / "s", [case("rule", "set the rule", {"calls": [{"name": "set_rule",
                                                                                   "args": {"rule": {"exact": rule}}}]})],
                        tools=[tool])
    server.set_responder(Reply(tool_calls=[{"name": "set_rule", "arguments": {"rule": rule}}]))
    out = tmp_path / "runs"
    assert run(server.base_url, suite, out, formats=("native",)) == 0
    (sample,) = samples_of(only_run_dir(out))
    assert sample["call_correct"] is True, sample["failure_detail"]


# ---------------------------------------------------------------- settings: limits wired and recorded


def test_limits_are_settings_recorded_in_the_header_and_reported_when_hit(server, tmp_path):
    suite = write_suite(tmp_path / "s", [case("long", "say a lot", {"calls": []}), case("deep", "nest", {"calls": []}),
                                         case("slow", "trickle", {"calls": []})])

    def responder(request):
        text = request["messages"][-1]["content"]
        if "lot" in text:
            return Reply(content="x" * 5000)
        if "nest" in text:
            return Reply(tool_calls=[{"name": "add_data", "arguments": '{"num1": [[[[[1]]]]], "num2": 1}'}])
        return Reply(content="slowly " * 40, stream_content_chunks=40, chunk_delay_s=0.1)  # 4 s in all

    server.set_responder(responder)
    out = tmp_path / "runs"
    start = time.monotonic()
    assert run(server.base_url, suite, out, "--deadline", "1", "--timeout", "5", "--max-reply-chars", "2000",
               "--max-arg-depth", "3", "--retries", "0", "--retry-after-cap", "2", "--max-int-bits", "64",
               formats=("native",)) == 0
    assert time.monotonic() - start < 15
    run_dir = only_run_dir(out)
    settings = json.loads((run_dir / "header.json").read_text())["settings"]
    assert {k: settings[k] for k in ("deadline_s", "timeout_s", "max_reply_chars", "max_arg_depth", "max_int_bits",
                                     "retry_after_cap_s", "max_alias_nodes")} == {
        "deadline_s": 1.0, "timeout_s": 5.0, "max_reply_chars": 2000, "max_arg_depth": 3, "max_int_bits": 64,
        "retry_after_cap_s": 2.0, "max_alias_nodes": 1_000_000}
    samples = {s["case_id"]: s for s in samples_of(run_dir)}
    assert samples["long"]["error"] == (
        "the reply is over the limit of 2,000 characters of content and tool-call arguments (max_reply_chars)")
    assert samples["slow"]["error"] == "timed out: no complete reply within the 1 s deadline"
    (call,) = samples["deep"]["calls"]
    assert call["parse_error"] == "arguments: nested deeper than the parser limit of 3 levels (max_depth)"
    assert samples["deep"]["malformed"] is True
    assert (base.LIMITS.max_depth, base.LIMITS.max_chars) == (64, 1_000_000)  # the run's limits ended with it


def test_retry_after_is_honoured_up_to_the_cap(server, tiny_suite, tmp_path):
    answered: list[int] = []

    def responder(request):
        answered.append(1)
        if len(answered) == 1:
            return Reply(status=429, headers={"retry-after": "3600"})
        return tiny_responder(request)

    server.set_responder(responder)
    out = tmp_path / "runs"
    start = time.monotonic()
    assert run(server.base_url, tiny_suite, out, "--retry-after-cap", "0.5", "--concurrency", "1",
               formats=("native",)) == 0
    assert 0.5 <= time.monotonic() - start < 20
    assert all(s["error"] is None and s["call_correct"] for s in samples_of(only_run_dir(out)))


def test_alias_budget_is_a_setting(server, tmp_path, capsys):
    path = tmp_path / "aliases.yaml"
    path.write_text(
        "name: aliased\nextra: &big [" + ", ".join(["1"] * 50) + "]\n"
        "tools: []\ncases:\n"
        "  - id: c\n    messages: [{role: user, content: hi}]\n    expect: {calls: []}\n    tags: [*big, *big, *big]\n")
    assert run(server.base_url, path, tmp_path / "runs", "--max-alias-nodes", "100") == 2
    assert "over the limit of 100 (an alias bomb?)" in one_line(capsys.readouterr().err)


# ---------------------------------------------------------------- command-line values


@pytest.mark.parametrize("argv,expected", [
    (["--base-url", "http://127.0.0.1:99999/v1"],
     "evalkit: error: --base-url 'http://127.0.0.1:99999/v1': not a valid URL (Port out of range 0-65535)"),
    (["--base-url", "http://[::1"], "evalkit: error: --base-url 'http://[::1': not a valid URL (Invalid IPv6 URL)"),
    (["--base-url", "ftp://127.0.0.1/v1"],
     "evalkit: error: --base-url 'ftp://127.0.0.1/v1': expected an http:// or https:// URL with a host"),
    (["--timeout", "0"], "evalkit run: error: argument --timeout: '0' must be a finite number of seconds above 0"),
    (["--timeout", "-1"], "evalkit run: error: argument --timeout: '-1' must be a finite number of seconds above 0"),
    (["--timeout", "nan"], "evalkit run: error: argument --timeout: 'nan' must be a finite number of seconds above 0"),
    (["--deadline", "inf"], "evalkit run: error: argument --deadline: 'inf' must be a finite number of seconds above 0"),
    (["--deadline", "soon"], "evalkit run: error: argument --deadline: 'soon' is not a number of seconds"),
    (["--out", "/proc/forbidden"], "evalkit: error: --out /proc/forbidden: cannot write there"),
], ids=["port", "ipv6-bracket", "scheme", "timeout-0", "timeout-neg", "timeout-nan", "deadline-inf", "deadline-word",
        "out-proc"])
def test_bad_command_line_values_are_one_line(server, tiny_suite, tmp_path, capsys, argv, expected):
    base = ["run", "--model", "m", "--allow-unlisted", "--suite", str(tiny_suite), "--no-report", "--quiet"]
    if "--base-url" not in argv:
        base += ["--base-url", server.base_url]
    if "--out" not in argv:
        base += ["--out", str(tmp_path / "runs")]
    assert main([*base, *argv]) == 2
    assert one_line(capsys.readouterr().err).startswith(expected)
    assert server.hits == 0 and not (tmp_path / "runs").exists()


def test_a_suite_that_is_not_utf8_is_one_line(server, tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\ncases: []\n".encode("latin-1"))
    assert run(server.base_url, path, tmp_path / "runs") == 2
    assert one_line(capsys.readouterr().err) == (
        f"evalkit: error: {path}: field '(encoding)': not UTF-8 text: byte 0xe9 at offset 9 is not UTF-8")
    assert server.hits == 0


# ---------------------------------------------------------------- --resume DIR


def test_resume_writes_into_the_directory_it_is_given_whatever_its_name(tiny_server, tiny_suite, tmp_path):
    out = tmp_path / "runs"
    assert run(tiny_server.base_url, tiny_suite, out) == 0
    original = only_run_dir(out)
    before = (original / "samples.jsonl").read_text()
    copy = tmp_path / "elsewhere" / "my copy"
    shutil.copytree(original, copy)
    lines = before.splitlines(keepends=True)
    (copy / "samples.jsonl").write_text("".join(lines[:2]))
    (copy / "results.json").unlink()

    tiny_server.reset()
    assert resume(copy, "--no-cache") == 0
    assert tiny_server.hits == len(KEYS) - 2
    assert set(latest(copy)) == KEYS and len(samples_of(copy)) == len(KEYS)
    assert overall(copy, "native")["n"] == 3 and overall(copy, "default")["n"] == 3
    assert (original / "samples.jsonl").read_text() == before  # the run it was copied from is untouched
    assert not (copy / LOCK).exists() and not (original / LOCK).exists()  # a finished run leaves no lock file
    assert [p.name for p in out.iterdir()] == [original.name]  # and no sibling was made


def test_resume_of_a_directory_that_is_not_a_run_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert resume(tmp_path / "empty") == 2
    assert one_line(capsys.readouterr().err) == f"evalkit: error: {tmp_path / 'empty'}: not a run directory (no header.json)"


def test_resume_checks_the_server_first(tiny_server, tiny_suite, tmp_path, capsys, closed_port):
    out = tmp_path / "runs"
    assert run(tiny_server.base_url, tiny_suite, out) == 0
    run_dir = only_run_dir(out)
    (run_dir / "samples.jsonl").write_text("")
    capsys.readouterr()
    start = time.monotonic()
    assert resume(run_dir, "--base-url", f"http://127.0.0.1:{closed_port}/v1") == 2
    assert time.monotonic() - start < 10
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"evalkit: error: cannot reach http://127.0.0.1:{closed_port}/v1:"), line
    assert (run_dir / "samples.jsonl").read_text() == ""  # no error samples were made


@pytest.fixture
def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_second_writer_is_refused_in_one_line(tiny_server, tiny_suite, tmp_path, capsys):
    out = tmp_path / "runs"
    assert run(tiny_server.base_url, tiny_suite, out) == 0
    run_dir = only_run_dir(out)
    (run_dir / "samples.jsonl").write_text("")
    capsys.readouterr()
    tiny_server.reset()
    with run_lock(run_dir):  # another evalkit holds it (flock: another open of the file conflicts)
        assert resume(run_dir, "--no-cache") == 2
    assert one_line(capsys.readouterr().err) == (
        f"evalkit: error: {run_dir}: another evalkit (pid {os.getpid()}) is writing this run directory; "
        "wait for it to end or stop it")
    assert tiny_server.hits == 0 and (run_dir / "samples.jsonl").read_text() == ""
    with run_lock(run_dir):  # `rescore` rewrites samples.jsonl: not under a running run either
        assert main(["rescore", str(run_dir)]) == 2
    assert "another evalkit" in one_line(capsys.readouterr().err)
    assert resume(run_dir, "--no-cache") == 0  # released: the next one goes ahead
    assert set(latest(run_dir)) == KEYS


def test_a_lock_left_by_a_killed_process_does_not_block(tiny_server, tiny_suite, tmp_path):
    out = tmp_path / "runs"
    assert run(tiny_server.base_url, tiny_suite, out) == 0
    run_dir = only_run_dir(out)
    (run_dir / "samples.jsonl").write_text("")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from evalkit.rundir import run_lock\n"
         "with run_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)", str(run_dir)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert resume(run_dir, "--no-cache") == 2
        holder.kill()  # kill -9: no chance to clean up
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert (run_dir / LOCK).exists()  # the file stays; the kernel dropped its lock
    assert resume(run_dir, "--no-cache") == 0
    assert set(latest(run_dir)) == KEYS


# ---------------------------------------------------------------- signals, via the console script


def _start_slow_run(tmp_path: Path, srv: ScriptedServer, total: int = 40) -> tuple[subprocess.Popen, Path]:
    exe = shutil.which("evalkit") or str(Path(sys.executable).with_name("evalkit"))
    suite = write_suite(tmp_path / "s", [case(f"c{i:02d}", f"greeting {i}", {"calls": []}) for i in range(total)],
                        name="slow")
    out = tmp_path / "runs"
    env = {**os.environ, "EVALKIT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [exe, "run", "--base-url", srv.base_url, "--model", "scripted-model", "--suite", str(suite), "--format", "native",
         "--concurrency", "4", "--out", str(out), "--no-report", "--no-cache", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = list(out.glob("*/samples.jsonl")) if out.exists() else []
        if found and len(found[0].read_text().splitlines()) >= 3:
            return proc, found[0].parent
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("no samples written in time")


@pytest.mark.parametrize("signals,code,word", [
    ([signal.SIGINT] * 3, 130, "interrupted"),
    ([signal.SIGTERM], 143, "stopped by SIGTERM"),
    ([signal.SIGTERM, signal.SIGINT, signal.SIGINT], 143, "stopped by SIGTERM"),
], ids=["ctrl-c-three-times", "sigterm", "sigterm-then-ctrl-c"])
def test_signals_stop_quietly_and_leave_a_valid_partial_run(tmp_path, signals, code, word):
    total = 40
    with ScriptedServer(responder=Reply(content="Hello!", delay_s=0.3)) as srv:
        proc, run_dir = _start_slow_run(tmp_path, srv, total)
        try:
            for sig in signals:
                proc.send_signal(sig)
                time.sleep(0.05)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == code, err
        assert one_line(err) == (f"{word}: the samples so far are in {run_dir}; "
                                 f"finish with `evalkit run --resume {run_dir}`")
        done = samples_of(run_dir)
        keys = [s["case_id"] for s in done]
        assert 3 <= len(done) < total and len(keys) == len(set(keys))
        assert all(s["error"] is None for s in done)  # stopping cut no request short into an error sample
        assert overall(run_dir, "native")["n"] == len(done)  # results.json of what is there

        srv.set_responder(Reply(content="Hello!"))
        srv.reset()
        assert main(["run", "--resume", str(run_dir), "--no-report", "--no-cache", "--quiet"]) == 0
        assert srv.hits == total - len(done)
    assert sorted(s["case_id"] for s in samples_of(run_dir)) == [f"c{i:02d}" for i in range(total)]


# ---------------------------------------------------------------- memory


def _fake_run(run_dir: Path, tiny_suite: Path, base_url: str, n: int, request_kb: int) -> None:
    """A finished run directory of n samples (repeats of the tiny suite's cases), each carrying a
    bulky request and reply like real ones do."""
    from evalkit import __version__
    from evalkit.rundir import HEADER, write_model
    from evalkit.schema import Header, Sample, Settings, SuiteRef
    from evalkit.suites import read_suite

    loaded = read_suite(tiny_suite)
    run_dir.mkdir(parents=True)
    write_model(run_dir / HEADER, Header(
        evalkit_version=__version__, run_id=run_dir.name, started_at="2026-01-01T00:00:00+00:00", model="m",
        backend="openai-compatible", base_url=base_url, formats=["native"],
        suites=[SuiteRef(name="tiny", path=str(tiny_suite), sha256=loaded.sha256, cases=3)], settings=Settings()))
    padding = "y" * (request_kb * 1024)
    with open(run_dir / "samples.jsonl", "w", encoding="utf-8") as handle:
        for i in range(n):
            sample = Sample(suite="tiny", case_id=TINY_CASES[i % 3]["id"], format="native", repeat=i // 3, model="m",
                            call_correct=i % 2 == 0,
                            request={"messages": [{"role": "user", "content": padding}]}, raw={"content": padding},
                            latency_s=0.1)
            handle.write(sample.model_dump_json() + "\n")


def test_summing_up_a_run_holds_no_samples_in_memory(tiny_server, tiny_suite, tmp_path):
    # What `run` does at the end (finalize) must not keep every sample: before, results.json was
    # computed from a list of whole samples, requests and replies included (30,000 samples: 830 MB).
    peaks = {}
    _fake_run(tmp_path / "warm-up", tiny_suite, tiny_server.base_url, 3, request_kb=1)
    assert resume(tmp_path / "warm-up") == 0  # imports (pandas...) are not what is measured
    for n in (200, 1000):
        run_dir = tmp_path / f"run{n}"
        _fake_run(run_dir, tiny_suite, tiny_server.base_url, n, request_kb=20)
        tracemalloc.start()
        try:
            assert resume(run_dir) == 0  # nothing left to do: it checks the server and sums up
            assert tiny_server.hits == 0
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert overall(run_dir, "native")["n"] == n
    # 800 more samples of 40 KB each: 32 MB if they were held; rows of the metric columns are ~1 KB.
    assert peaks[1000] - peaks[200] < 3 * 2**20, peaks
    assert peaks[1000] < 12 * 2**20, peaks  # the 40 MB samples.jsonl is never read whole either


def test_a_torn_last_line_is_cut_reading_only_the_tail(tiny_server, tiny_suite, tmp_path):
    run_dir = tmp_path / "torn"
    _fake_run(run_dir, tiny_suite, tiny_server.base_url, 6, request_kb=100)
    lines = (run_dir / "samples.jsonl").read_bytes().splitlines(keepends=True)
    (run_dir / "samples.jsonl").write_bytes(b"".join(lines[:5]) + lines[5][:150_000])  # killed mid-write
    assert resume(run_dir) == 0
    assert tiny_server.hits == 0
    assert [json.loads(line)["repeat"] for line in (run_dir / "samples.jsonl").read_bytes().splitlines()] == [0, 0, 0, 1, 1]


# ---------------------------------------------------------------- the chaos benchmark, small


@pytest.mark.timeout(400)
def test_the_chaos_benchmark_ends_with_every_sample_present_once(tmp_path):
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "chaos.json"
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench_chaos.py"), "--samples", "45", "--poison", "0.3", "--kills", "1",
         "--kill-within", "3", "--restarts", "1", "--no-mcp", "--out", str(out)],
        cwd=root, capture_output=True, text=True, timeout=380)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["samples"] == 45 and report["every_sample_present_once"] is True
    assert sum(report["poisoned_replies_served"].values()) > 0
    assert report["evalkit_kills"] <= 1 and report["exit_codes"][-1] == 0
    assert report["samples_lines"] >= 45


def test_a_disk_that_takes_no_more_stops_the_run_in_one_line(tmp_path):
    # samples.jsonl cannot grow (a full disk, played by a file-size limit): the run stops with one
    # line and keeps what was written, instead of losing workers one by one and hanging.
    import resource

    suite = write_suite(tmp_path / "s", [case(f"c{i:02d}", f"greeting {i}", {"calls": []}) for i in range(40)], name="big")
    out = tmp_path / "runs"

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, 12_000))

    with ScriptedServer(responder=Reply(content="Hello!")) as srv:
        proc = subprocess.run(
            [sys.executable, "-m", "evalkit", "run", "--base-url", srv.base_url, "--model", "scripted-model", "--suite",
             str(suite), "--format", "native", "--concurrency", "1", "--out", str(out), "--no-report", "--no-cache",
             "--quiet"],
            capture_output=True, text=True, timeout=60, preexec_fn=small_files,
            env={**os.environ, "EVALKIT_CACHE_DIR": str(tmp_path / "cache")})
    run_dir = only_run_dir(out)
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc.stderr).startswith(f"evalkit: error: {run_dir}: cannot write samples ([Errno 27] File too large")
    kept = samples_of(run_dir)
    assert 0 < len(kept) < 40 and len({s["case_id"] for s in kept}) == len(kept)
