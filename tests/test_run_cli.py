"""`evalkit run` / `evalkit suites` end to end against the scripted server (docs/format.md sections 4-5).

Most runs call `evalkit.cli.main([...])` in-process; one drives the installed `evalkit` console
script in a subprocess and interrupts it with SIGINT part way, then resumes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

import evalkit
from conftest import TINY_CASES, case, reply_for_format, request_format, tiny_responder, write_suite
from evalkit.cli import main
from evalkit.schema import Case
from evalkit.suites import read_suite, sample_cases, suite_paths
from evalkit.testing.scripted_server import Reply, ScriptedServer

SAMPLE_FIELDS = {
    "suite", "case_id", "format", "repeat", "model", "tags", "request", "raw", "calls",
    "malformed", "hallucinated_tool", "args_valid", "call_correct", "intent_correct", "error",
    "final_answer", "rounds", "latency_s", "ttft_s", "prompt_tokens", "completion_tokens", "tokens_per_s",
}
CALL_FIELDS = {"name", "arguments", "raw_arguments", "parse_error"}
AGGREGATE_FIELDS = {
    "model", "format", "suite", "tag", "n", "errors", "call_accuracy", "call_accuracy_ci95", "intent_accuracy",
    "pass_hat_k", "args_validity", "malformed_rate", "hallucination_rate", "no_call_accuracy",
    "latency_p50_s", "latency_p95_s", "ttft_p50_s", "tokens_per_s",
}
HEADER_FIELDS = {"evalkit_version", "run_id", "started_at", "model", "backend", "base_url", "formats", "suites",
                 "settings", "server"}
SETTINGS_FIELDS = {"temperature", "repeats", "concurrency", "seed", "max_tokens"}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Never touch the user's response cache, and never find a real server through the env."""
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("EVALKIT_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def evalkit_run(base_url: str, suite: Path, out: Path, *extra: str, formats=("native", "default")) -> int:
    argv = ["run", "--base-url", base_url, "--model", "m", "--allow-unlisted", "--suite", str(suite), "--out", str(out),
            "--no-report", "--no-cache", "--quiet"]
    for fmt in formats:
        argv += ["--format", fmt]
    return main([*argv, *extra])


def only_run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def overall(results: dict, fmt: str) -> dict:
    (agg,) = [a for a in results["aggregates"] if a["format"] == fmt and a["suite"] == "*" and a["tag"] is None]
    return agg


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


# ---------------------------------------------------------------- a complete run


def test_run_writes_the_run_directory_of_the_contract(tiny_server, tiny_suite, tmp_path, capsys):
    out = tmp_path / "runs"
    assert evalkit_run(tiny_server.base_url, tiny_suite, out) == 0
    run_dir = only_run_dir(out)
    assert {p.name for p in run_dir.iterdir()} >= {"header.json", "samples.jsonl", "results.json"}

    header = json.loads((run_dir / "header.json").read_text())
    assert HEADER_FIELDS <= set(header)
    assert header["evalkit_version"] == evalkit.__version__
    assert header["run_id"] == run_dir.name
    datetime.fromisoformat(header["started_at"])
    assert header["model"] == "m"
    assert header["base_url"] == tiny_server.base_url
    assert header["backend"]
    assert header["formats"] == ["native", "default"]
    (suite_ref,) = header["suites"]
    assert suite_ref["name"] == "tiny" and suite_ref["cases"] == 3
    assert suite_ref["sha256"] == hashlib.sha256(tiny_suite.read_bytes()).hexdigest()
    assert Path(suite_ref["path"]).resolve() == tiny_suite.resolve()
    assert SETTINGS_FIELDS <= set(header["settings"])
    assert (header["settings"]["temperature"], header["settings"]["repeats"], header["settings"]["seed"],
            header["settings"]["max_tokens"]) == (0.0, 1, 0, 512)
    assert header["model_served_ids"] == ["scripted-model"]  # what /v1/models said

    samples = read_lines(run_dir / "samples.jsonl")
    assert len(samples) == 3 * 2  # cases x formats x repeats
    assert {(s["case_id"], s["format"], s["repeat"]) for s in samples} == {
        (c, f, 0) for c in ("cmp", "hello", "chat") for f in ("native", "default")}
    for s in samples:
        assert SAMPLE_FIELDS <= set(s), SAMPLE_FIELDS - set(s)
        assert s["suite"] == "tiny" and s["model"] == "m" and s["error"] is None
        assert s["call_correct"] is True, s["failure"]
        assert s["request"]["model"] == "m" and s["raw"]
        assert s["latency_s"] > 0 and s["ttft_s"] is not None and s["tokens_per_s"] > 0
        for call in s["calls"]:
            assert CALL_FIELDS <= set(call)
    hello = next(s for s in samples if s["case_id"] == "hello" and s["format"] == "native")
    assert hello["tags"] == ["greet"]
    assert hello["calls"][0]["name"] == "say_hello" and hello["calls"][0]["arguments"] == {"name": "Bob the Builder"}
    assert tiny_server.hits == 6

    results = json.loads((run_dir / "results.json").read_text())
    assert results["run_id"] == run_dir.name
    for agg in results["aggregates"]:
        assert AGGREGATE_FIELDS <= set(agg), AGGREGATE_FIELDS - set(agg)
    for fmt in ("native", "default"):
        agg = overall(results, fmt)
        assert (agg["n"], agg["errors"], agg["call_accuracy"], agg["intent_accuracy"]) == (3, 0, 1.0, 1.0)
        assert agg["no_call_accuracy"] == 1.0 and agg["malformed_rate"] == 0.0 and agg["args_validity"] == 1.0
        low, high = agg["call_accuracy_ci95"]["low"], agg["call_accuracy_ci95"]["high"]
        assert 0.4 < low < 0.5 and high == 1.0  # Wilson at 3/3
        assert agg["pass_hat_k"] is None  # one repeat
    per_suite = [a for a in results["aggregates"] if a["suite"] == "tiny" and a["tag"] is None]
    assert {a["format"] for a in per_suite} == {"native", "default"}
    per_tag = [a for a in results["aggregates"] if a["tag"] == "greet"]
    assert {(a["format"], a["n"]) for a in per_tag} == {("native", 1), ("default", 1)}

    out_text = capsys.readouterr().out
    assert f"run directory: {run_dir}" in out_text
    assert "native" in out_text and "default" in out_text and "call acc" in out_text


def test_repeats_give_pass_hat_k(server, tiny_suite, tmp_path):
    seen = {"cmp": 0}

    def responder(request):
        text = request["messages"][-1]["content"]
        if "8.9" in text:
            seen["cmp"] += 1
            if seen["cmp"] == 1:  # the first of three tries at this case is wrong
                return reply_for_format(request_format(request), [("compare_data", {"num1": 8.11, "num2": 8.9})])
        return tiny_responder(request)

    server.set_responder(responder)
    out = tmp_path / "runs"
    assert evalkit_run(server.base_url, tiny_suite, out, "--repeats", "3", "--concurrency", "1",
                       formats=("native",)) == 0
    run_dir = only_run_dir(out)
    samples = read_lines(run_dir / "samples.jsonl")
    assert sorted((s["case_id"], s["repeat"]) for s in samples) == sorted(
        (c, r) for c in ("cmp", "hello", "chat") for r in range(3))
    agg = overall(json.loads((run_dir / "results.json").read_text()), "native")
    assert agg["n"] == 9 and agg["call_accuracy"] == pytest.approx(8 / 9)
    # pass^k averaged over cases: cmp 2 of 3, the others 3 of 3.
    assert agg["pass_hat_k"] == pytest.approx({"1": 8 / 9, "2": (1 / 3 + 2) / 3, "3": 2 / 3})
    assert json.loads((run_dir / "header.json").read_text())["settings"]["repeats"] == 3


def test_exit_code_is_zero_when_accuracy_is_zero(server, tiny_suite, tmp_path):
    server.set_responder(Reply(content='<tool_call>{"name": "compare_data", "arguments": {'))
    out = tmp_path / "runs"
    assert evalkit_run(server.base_url, tiny_suite, out) == 0
    results = json.loads((only_run_dir(out) / "results.json").read_text())
    for fmt in ("native", "default"):
        agg = overall(results, fmt)
        assert (agg["n"], agg["call_accuracy"], agg["malformed_rate"], agg["no_call_accuracy"]) == (3, 0.0, 1.0, 0.0)


# ---------------------------------------------------------------- bad input: one line, exit 2


def test_server_down_is_one_line(tiny_suite, tmp_path, capsys, closed_port):
    out = tmp_path / "runs"
    assert evalkit_run(f"http://127.0.0.1:{closed_port}/v1", tiny_suite, out) == 2
    line = one_line(capsys.readouterr().err)
    assert str(closed_port) in line and line.startswith("evalkit: error:")
    assert not out.exists() or not any(out.iterdir())  # no empty run directory left behind


def test_unknown_format_is_one_line(tiny_server, tiny_suite, tmp_path, capsys):
    assert evalkit_run(tiny_server.base_url, tiny_suite, tmp_path / "runs", formats=("native", "xml")) == 2
    line = one_line(capsys.readouterr().err)
    assert "'xml'" in line and "native" in line and "pythonic" in line
    assert tiny_server.hits == 0


def test_missing_suite_file_is_one_line(tiny_server, tmp_path, capsys):
    assert evalkit_run(tiny_server.base_url, tmp_path / "missing.yaml", tmp_path / "runs") == 2
    line = one_line(capsys.readouterr().err)
    assert "missing.yaml" in line
    assert tiny_server.hits == 0


# ---------------------------------------------------------------- a bad server: error samples, exit 0


def test_slow_server_gives_error_samples(server, tiny_suite, tmp_path):
    server.set_responder(Reply(content="late", delay_s=2.0))
    out = tmp_path / "runs"
    assert evalkit_run(server.base_url, tiny_suite, out, "--timeout", "0.3", "--retries", "0",
                       formats=("native",)) == 1  # errors: exit 1
    run_dir = only_run_dir(out)
    samples = read_lines(run_dir / "samples.jsonl")
    assert len(samples) == 3
    assert all(s["error"] and "timed out" in s["error"] and s["call_correct"] is False for s in samples)
    agg = overall(json.loads((run_dir / "results.json").read_text()), "native")
    assert (agg["n"], agg["errors"], agg["call_accuracy"]) == (0, 3, None)
    assert server.hits == 3  # --retries 0


@pytest.mark.parametrize("body", [b"this is not json", b'{"object": "chat.completion"}'], ids=["garbage", "no-choices"])
def test_garbage_body_gives_error_samples(server, tiny_suite, tmp_path, body):
    server.set_responder(Reply(raw_body=body, content_type="application/json"))
    out = tmp_path / "runs"
    # error samples over --max-error-rate: exit 1
    assert evalkit_run(server.base_url, tiny_suite, out, "--no-stream", "--retries", "0", formats=("native",)) == 1
    run_dir = only_run_dir(out)
    samples = read_lines(run_dir / "samples.jsonl")
    assert len(samples) == 3 and all(s["error"] for s in samples)
    assert overall(json.loads((run_dir / "results.json").read_text()), "native")["errors"] == 3


def test_some_errors_some_answers(server, tiny_suite, tmp_path):
    def responder(request):
        if "joke" in request["messages"][-1]["content"]:
            return Reply(status=503)
        return tiny_responder(request)

    server.set_responder(responder)
    out = tmp_path / "runs"
    assert evalkit_run(server.base_url, tiny_suite, out, "--retries", "0", formats=("native",)) == 1  # errors: exit 1
    agg = overall(json.loads((only_run_dir(out) / "results.json").read_text()), "native")
    assert (agg["n"], agg["errors"], agg["call_accuracy"], agg["no_call_accuracy"]) == (2, 1, 1.0, None)


# ---------------------------------------------------------------- Ctrl-C and --resume, via the console script


def test_interrupted_run_is_valid_and_resume_finishes_it(tmp_path, capsys):
    exe = shutil.which("evalkit")
    assert exe, "the evalkit console script is not installed (pip install -e .)"
    total = 12
    suite = write_suite(tmp_path / "s", [case(f"c{i:02d}", f"greeting number {i}", {"calls": []}) for i in range(total)],
                        name="slow")
    out = tmp_path / "runs"
    answered = []

    def responder(request):
        # The first three answers come at once, later ones slowly: Ctrl-C lands mid-run for sure.
        answered.append(1)
        return Reply(content="Hello!", delay_s=0.0 if len(answered) <= 3 else 1.0)

    with ScriptedServer(model_id="scripted-model", responder=responder) as srv:
        env = {**os.environ, "EVALKIT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [exe, "run", "--base-url", srv.base_url, "--model", "m", "--allow-unlisted", "--suite", str(suite),
             "--format", "native",
             "--concurrency", "1", "--out", str(out), "--no-report", "--no-cache"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        try:
            deadline = time.monotonic() + 45
            samples_path = None
            while time.monotonic() < deadline:
                found = list(out.glob("*/samples.jsonl")) if out.exists() else []
                if found and len(found[0].read_text().splitlines()) >= 3:
                    samples_path = found[0]
                    break
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.02)
            assert samples_path is not None, "no samples written in time"
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 130
        assert "Traceback" not in err
        assert "--resume" in err
        run_dir = samples_path.parent

        # A valid partial run: header, parseable samples (no torn line), results of what is there.
        header = json.loads((run_dir / "header.json").read_text())
        assert header["run_id"] == run_dir.name
        text = samples_path.read_text()
        assert text.endswith("\n")
        done = read_lines(samples_path)
        assert 3 <= len(done) < total
        assert all(s["error"] is None and s["call_correct"] for s in done)
        results = json.loads((run_dir / "results.json").read_text())
        assert overall(results, "native")["n"] == len(done)

        # Resume in-process against the same server: only the missing samples are asked for.
        srv.set_responder(Reply(content="Hello!"))
        srv.reset()
        assert main(["run", "--resume", str(run_dir), "--no-report", "--no-cache", "--quiet"]) == 0
        assert srv.hits == total - len(done)
    samples = read_lines(samples_path)
    assert len(samples) == total
    assert sorted(s["case_id"] for s in samples) == [f"c{i:02d}" for i in range(total)]
    assert samples[: len(done)] == done  # the finished samples were kept, not redone
    results = json.loads((run_dir / "results.json").read_text())
    agg = overall(results, "native")
    assert (agg["n"], agg["errors"], agg["call_accuracy"]) == (total, 0, 1.0)
    assert only_run_dir(out) == run_dir  # resumed in place, no second run directory
    assert f"run directory: {run_dir}" in capsys.readouterr().out


def test_cancelled_run_jobs_stops_promptly_and_takes_no_more_jobs(tmp_path):
    """What Ctrl-C does to the runner: cancelling `run_jobs` ends it at once; no worker keeps going."""
    import asyncio

    from evalkit.dispatch import run_jobs
    from evalkit.jobs import Endpoint, RunContext, plan
    from evalkit.schema import Settings

    loaded = read_suite(write_suite(tmp_path, [case(f"c{i}", f"hi {i}", {"calls": []}) for i in range(60)]))
    with ScriptedServer(responder=Reply(content="hello")) as srv:
        for _ in range(3):  # the race this guards against is timing-dependent: try a few times
            samples: list = []

            async def go():
                task = asyncio.ensure_future(run_jobs(plan([loaded], ["native"], 1), [Endpoint(srv.base_url, 4)],
                                                      RunContext(model="m", settings=Settings(retries=0)),
                                                      samples.append))
                while len(samples) < 5:
                    await asyncio.sleep(0.001)
                task.cancel()
                at_cancel = len(samples)
                finished, _ = await asyncio.wait([task], timeout=5)
                if not finished:  # do not leave a hung runner behind
                    for t in asyncio.all_tasks() - {asyncio.current_task()}:
                        t.cancel()
                return bool(finished), at_cancel

            finished, at_cancel = asyncio.run(go())
            assert finished, "run_jobs did not stop after cancellation"
            assert len(samples) == at_cancel, "workers kept running jobs after cancellation"


def test_resume_refuses_a_changed_suite(tiny_server, tiny_suite, tmp_path, capsys):
    out = tmp_path / "runs"
    assert evalkit_run(tiny_server.base_url, tiny_suite, out, formats=("native",)) == 0
    run_dir = only_run_dir(out)
    tiny_suite.write_text(tiny_suite.read_text() + "\n# edited\n")
    capsys.readouterr()
    assert main(["run", "--resume", str(run_dir), "--quiet", "--no-report"]) == 2
    assert "SHA-256" in one_line(capsys.readouterr().err)


def test_resume_of_a_finished_run_asks_nothing(tiny_server, tiny_suite, tmp_path):
    out = tmp_path / "runs"
    assert evalkit_run(tiny_server.base_url, tiny_suite, out, formats=("native",)) == 0
    run_dir = only_run_dir(out)
    before = (run_dir / "samples.jsonl").read_text()
    tiny_server.reset()
    assert main(["run", "--resume", str(run_dir), "--quiet", "--no-report", "--no-cache"]) == 0
    assert tiny_server.hits == 0
    assert (run_dir / "samples.jsonl").read_text() == before


def test_resume_redoes_error_samples(server, tiny_suite, tmp_path):
    server.set_responder(Reply(status=500))
    out = tmp_path / "runs"
    assert evalkit_run(server.base_url, tiny_suite, out, "--retries", "0", formats=("native",)) == 1  # errors: exit 1
    run_dir = only_run_dir(out)
    server.set_responder(tiny_responder)
    server.reset()
    assert main(["run", "--resume", str(run_dir), "--quiet", "--no-report", "--no-cache"]) == 0
    assert server.hits == 3
    agg = overall(json.loads((run_dir / "results.json").read_text()), "native")
    assert (agg["n"], agg["errors"], agg["call_accuracy"]) == (3, 0, 1.0)  # the later sample of a key wins


# ---------------------------------------------------------------- evalkit suites


def test_suites_lists_builtin_suites_with_case_counts(capsys):
    assert main(["suites"]) == 0
    out = capsys.readouterr().out
    rows = {tuple(line.split()[:2]) for line in out.splitlines()[1:] if len(line.split()) > 1}
    paths = suite_paths()
    assert paths
    total = 0
    for path in paths:
        loaded = read_suite(path)
        assert (loaded.suite.name, str(len(loaded.suite.cases))) in rows, (loaded.suite.name, out)
        total += len(loaded.suite.cases)
    assert total >= 60
    assert f"{len(paths)} suites, {total} cases" in out


def test_suites_lists_a_directory(tmp_path, capsys):
    write_suite(tmp_path, TINY_CASES, name="tiny")
    assert main(["suites", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("tiny ")]
    assert row.split()[:2] == ["tiny", "3"]
    assert "1 suites, 3 cases" in out


# ---------------------------------------------------------------- --sample


def test_sample_draws_the_same_cases_for_every_format_and_resume_keeps_them(tiny_server, tiny_suite, tmp_path):
    out = tmp_path / "runs"
    assert evalkit_run(tiny_server.base_url, tiny_suite, out, "--sample", "2", "--seed", "7") == 0
    run_dir = only_run_dir(out)
    assert json.loads((run_dir / "header.json").read_text())["sample"] == 2
    samples = read_lines(run_dir / "samples.jsonl")
    drawn = [c.id for c in sample_cases(read_suite(tiny_suite).suite.cases, 2, 7)]
    assert len(drawn) == 2
    for fmt in ("native", "default"):
        assert sorted(s["case_id"] for s in samples if s["format"] == fmt) == sorted(drawn)

    # An interrupted run resumes with the same draw, not the whole suite.
    lines = (run_dir / "samples.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "samples.jsonl").write_text(lines[0])
    (run_dir / "results.json").unlink()
    tiny_server.reset()
    assert main(["run", "--resume", str(run_dir), "--quiet", "--no-report", "--no-cache"]) == 0
    assert tiny_server.hits == 3
    assert sorted((s["case_id"], s["format"]) for s in read_lines(run_dir / "samples.jsonl")) == sorted(
        (c, f) for c in drawn for f in ("native", "default"))


def test_sample_is_a_fixed_draw_by_case_id():
    cases = [Case.model_validate(case(f"c{i}")) for i in range(60)]
    ten = sample_cases(cases, 10, seed=0)
    assert len(ten) == 10 and len({c.id for c in ten}) == 10
    assert [c.id for c in ten] == [c.id for c in cases if c in ten]  # suite order kept
    assert [c.id for c in sample_cases(list(reversed(cases)), 10, seed=0)] == [c.id for c in reversed(ten)]
    assert {c.id for c in sample_cases(cases, 5, seed=0)} < {c.id for c in ten}  # a smaller draw is nested
    assert {c.id for c in sample_cases(cases, 10, seed=1)} != {c.id for c in ten}
    # Dropping a case that was not drawn does not reshuffle the draw.
    others = [c for c in cases if c not in ten]
    assert sample_cases([c for c in cases if c is not others[0]], 10, seed=0) == ten
    assert sample_cases(cases, 100, seed=0) == cases and sample_cases(cases, None) == cases


# ---------------------------------------------------------------- a sample that fails inside evalkit


@pytest.mark.timeout(60)
def test_a_reply_that_breaks_scoring_is_that_samples_error_not_a_hung_run(server, tiny_suite, tmp_path):
    # 100k-deep JSON: today's recognition of call syntax in the text hits Python's recursion limit.
    # Whatever evalkit fails on while scoring one sample must end that sample, not its worker.
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    server.set_responder(Reply(content=deep))
    out = tmp_path / "runs"
    assert evalkit_run(server.base_url, tiny_suite, out, "--no-stream") == 0
    lines = [json.loads(line) for line in (only_run_dir(out) / "samples.jsonl").read_text().splitlines()]
    keys = [(s["case_id"], s["format"]) for s in lines]
    assert len(keys) == len(set(keys)) == 2 * len(TINY_CASES)
    for sample in lines:  # each sample is either scored or carries the failure as its error
        assert sample["error"] is None or sample["error"].startswith("evalkit failed on this sample:")
