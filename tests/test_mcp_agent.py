"""Agent cases on REAL MCP servers, --distractors and tool cost, through the real runner.

The model is the scripted OpenAI-compatible server on loopback; the tools are real MCP server
processes (the pinned mcp-server-time and mcp-server-git, the npm filesystem server when it is
installed, and tests/mcp_servers/paged_server.py, which crashes on purpose). Every test is
bounded in time, and the ones that start servers check that none is left running.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from evalkit import cli
from evalkit.dispatch import run_jobs
from evalkit.jobs import Endpoint, RunContext, offered_tools, plan
from evalkit.rundir import latest_samples, read_results, read_samples
from evalkit.schema import Sample, Settings
from evalkit.scoring import argument_errors
from evalkit.suites import read_suite
from evalkit.testing.scripted_server import Reply, ScriptedServer

from conftest import TINY_CASES, TOOLS, reply_for_format, request_format, tiny_responder, write_suite

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
TIME_SUITE = read_suite(ROOT / "suites" / "mcp" / "mcp_time.yaml").suite
TIME_TOOLS = [t.model_dump(exclude_none=True) for t in TIME_SUITE.tools]
COUNTED_TIME = ["python", str(HERE / "mcp_servers" / "counted_time.py")]
PAGED = ["python", str(HERE / "mcp_servers" / "paged_server.py")]


# ---------------------------------------------------------------- helpers


def mcp_suite(directory: Path, cases: list[dict[str, Any]], server: dict[str, Any], tools: list[dict[str, Any]],
              name: str = "mcp_e2e") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    data = {"name": name, "description": "an MCP suite written by a test", "implementations": {"mcp": server},
            "tools": tools, "cases": cases}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def agent_case(case_id: str, user: str, calls: list[dict[str, Any]], final: dict[str, Any] | None = None) -> dict:
    expect: dict[str, Any] = {"calls": calls}
    if final is not None:
        expect["final_answer"] = final
    return {"id": case_id, "mode": "agent", "max_rounds": 3, "messages": [{"role": "user", "content": user}],
            "expect": expect}


def first_user(request: dict[str, Any]) -> str:
    return next(m["content"] for m in request["messages"] if m["role"] == "user")


def agent_responder(first_round: Callable[[dict[str, Any]], list[tuple[str, Any]]],
                    answer: Callable[[list[str]], str] = lambda results: "The tool said: " + results[-1]):
    """Round 1: the calls `first_round` picks for the request, in the request's format. Later
    rounds: an answer built from the tool results the request carries (tool messages in native,
    the user turns after the first in the prompt formats)."""

    def respond(request: dict[str, Any]) -> Reply:
        messages = request["messages"]
        if any(m["role"] == "assistant" for m in messages):
            after = messages[[m["role"] for m in messages].index("assistant") + 1:]
            results = [m["content"] for m in after if m["role"] in ("tool", "user")]
            return Reply(content=answer(results))
        return reply_for_format(request_format(request), first_round(request))

    return respond


def run_cli(server: ScriptedServer, suite: Path, out: Path, *extra: str, formats: tuple[str, ...] = ("native",)) -> Path:
    argv = ["run", "--base-url", server.base_url, "--model", "scripted-model", "--suite", str(suite),
            "--out", str(out), "--no-cache", "--quiet", "--retries", "0", "--timeout", "30", *extra]
    for fmt in formats:
        argv += ["--format", fmt]
    assert cli.main(argv) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def run_in_process(server: ScriptedServer, suite: Path, formats: list[str], distractors: list[int] | None = None,
                   concurrency: int = 2, tool_cost: bool = False) -> list[Sample]:
    loaded = read_suite(suite)
    jobs = plan([loaded], formats, 1, distractors=distractors)
    ctx = RunContext(model="scripted-model", settings=Settings(retries=0, timeout_s=30.0), tool_cost=tool_cost)
    samples: list[Sample] = []
    asyncio.run(run_jobs(jobs, [Endpoint(server.base_url, concurrency)], ctx, samples.append))
    assert len(samples) == len(jobs)
    return samples


def started(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited child nobody reaped yet is not running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] != "Z"


def wait_gone(pids: list[int], seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if running(p)]


# ---------------------------------------------------------------- the must-show


def test_agent_tool_calls_reach_a_real_mcp_server_and_its_results_reach_the_model(tmp_path: Path):
    """A real mcp-server-time process: the scripted model's call reaches it, its result is in the
    model's next request, the trajectory in samples.jsonl records both, and one server served the
    whole run (two cases x two formats) and is gone afterwards."""
    starts = tmp_path / "starts"
    suite = mcp_suite(tmp_path / "suites", [
        agent_case("now-tokyo", "What time is it in Tokyo right now?",
                   [{"name": "get_current_time", "args": {"timezone": "Asia/Tokyo"}}],
                   {"regex": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"}),
        agent_case("convert", "It is 16:30 in Shanghai. What time is it in Tokyo?",
                   [{"name": "convert_time", "args": {"source_timezone": "Asia/Shanghai", "time": "16:30",
                                                      "target_timezone": "Asia/Tokyo"}}],
                   {"contains": ["17:30"]}),
    ], {"command": COUNTED_TIME, "env": {"EVALKIT_MCP_STARTS": str(starts)}, "timeout_s": 20}, TIME_TOOLS)

    def first_round(request: dict[str, Any]) -> list[tuple[str, Any]]:
        if "Shanghai" in first_user(request):
            return [("convert_time", {"source_timezone": "Asia/Shanghai", "time": "16:30", "target_timezone": "Asia/Tokyo"})]
        return [("get_current_time", {"timezone": "Asia/Tokyo"})]

    with ScriptedServer(responder=agent_responder(first_round)) as server:
        run_dir = run_cli(server, suite, tmp_path / "runs", formats=("native", "default"))
        requests = server.requests

    samples = list(read_samples(run_dir))
    assert len(samples) == 4
    for sample in samples:
        assert sample.error is None and sample.call_correct, (sample.case_id, sample.format, sample.failure_detail)
        assert sample.rounds == 2 and sample.ended_by == "answer" and sample.tool_errors == 0
        first = sample.trajectory[0]
        (result,) = first.tool_results
        assert result["ok"] is True and result["name"] == first.calls[0].name
        data = json.loads(result["result"])  # what the real server answered
        if sample.case_id == "now-tokyo":
            assert data["timezone"] == "Asia/Tokyo" and data["datetime"].endswith("+09:00")
            assert data["datetime"] in sample.final_answer
        else:
            assert data["target"]["datetime"].endswith("T17:30:00+09:00")
        # The result went back to the model: in the recorded second request, and in what the server received.
        def carries(messages: list[dict[str, Any]]) -> bool:
            return any(result["result"] in (m.get("content") or "") for m in messages)

        assert carries(sample.trajectory[1].request["messages"])
        assert any(carries(r["messages"]) for r in requests)
    pids = started(starts)
    assert len(pids) == 1, "one server per run and suite without isolate"
    assert not wait_gone(pids), "the MCP server is still running after the run"


@pytest.mark.parametrize("name", ["mcp_time", "mcp_git", "mcp_filesystem"])
def test_built_in_agent_cases_run_on_their_real_servers(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Every agent case of the built-in MCP suites through the runner, the model scripted to make
    the expected calls and answer from the results: all pass. With isolate: true (git on its
    fixture repository, filesystem on a copy of suites/fixtures) each sample gets its own server
    and working root, and every root is removed afterwards."""
    from test_mcp_suites import REFERENCE, concrete_args

    from evalkit import mcp_npm

    if name == "mcp_filesystem" and not mcp_npm.installed():
        pytest.skip("the npm filesystem server is not installed: run `evalkit mcp pull` (.ci/run does)")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the working roots go here
    loaded = read_suite(ROOT / "suites" / "mcp" / f"{name}.yaml")
    assert loaded.suite.mcp is not None and loaded.suite.mcp.isolate == (name != "mcp_time")
    agent = {c.messages[-1].content: c for c in loaded.suite.cases if c.mode == "agent"}

    def first_round(request: dict[str, Any]) -> list[tuple[str, Any]]:
        case = agent[request["messages"][-1]["content"]]
        return [(c.name, concrete_args(case, c)) for c in case.expect.calls]

    def respond(request: dict[str, Any]) -> Reply:
        messages = request["messages"]
        case = agent[first_user(request)]
        if any(m["role"] == "assistant" for m in messages):
            results = [m["content"] for m in messages if m["role"] == "tool"]
            return Reply(content=REFERENCE[case.id][0](results)[0])
        return reply_for_format("native", first_round(request))

    roots_seen: list[list[str]] = []
    with ScriptedServer(responder=respond) as server:
        samples = run_in_process(server, loaded.path, ["native"], concurrency=2)
        roots_seen.append(os.listdir(scratch))
    agent_samples = [s for s in samples if s.mode == "agent"]
    assert len(agent_samples) == len(agent) >= 4 and len(samples) == len(loaded.suite.cases)
    for sample in agent_samples:
        assert sample.error is None and sample.call_correct, (sample.case_id, sample.failure_detail)
        assert all(r["ok"] for r in sample.trajectory[0].tool_results)
    assert roots_seen == [[]], "a working root was left behind"


def test_a_crashing_server_is_a_tool_error_and_the_next_sample_gets_a_fresh_one(tmp_path: Path):
    from evalkit.mcp_tools import McpConnection

    async def listed() -> list[dict[str, Any]]:
        async with McpConnection(command=PAGED) as connection:
            from evalkit.mcp_tools import tool_def

            return [tool_def(t.name, t.description, t.input_schema).model_dump(exclude_none=True)
                    for t in await connection.list_tools() if t.name in ("crash", "echo")]

    tools = asyncio.run(listed())
    suite = mcp_suite(tmp_path / "suites", [
        agent_case("a-crash", "please crash", [{"name": "crash"}], {"contains": ["sorry"]}),
        agent_case("b-echo", "please echo hi", [{"name": "echo", "args": {"text": "hi"}}], {"contains": ["echo: hi"]}),
    ], {"command": PAGED, "timeout_s": 20}, tools)

    def first_round(request: dict[str, Any]) -> list[tuple[str, Any]]:
        return [("crash", {})] if "crash" in first_user(request) else [("echo", {"text": "hi"})]

    respond = agent_responder(first_round, lambda results: "sorry: " + results[-1] if "exited" in results[-1] else results[-1])
    with ScriptedServer(responder=respond) as server:
        started_at = time.monotonic()
        samples = {s.case_id: s for s in run_in_process(server, suite, ["native"], concurrency=1)}
        assert time.monotonic() - started_at < 30  # the crash is noticed at once, not at the timeout
    crashed, echoed = samples["a-crash"], samples["b-echo"]
    assert crashed.error is None and crashed.ended_by == "answer" and crashed.tool_errors == 1
    result = crashed.trajectory[0].tool_results[0]
    assert result["ok"] is False and "exited" in result["result"] and "crashing on purpose" in result["result"]
    assert crashed.call_correct  # the model called the right tool and told the user; the crash is the server's
    assert echoed.error is None and echoed.call_correct and echoed.trajectory[0].tool_results[0]["ok"] is True


def test_a_server_that_cannot_start_fails_only_its_agent_samples_with_one_line(tmp_path: Path):
    crash = ["python", "-c", "import sys; print('no luck today', file=sys.stderr); sys.exit(3)"]
    suite = mcp_suite(tmp_path / "suites", [
        agent_case("agent-now", "What time is it in Tokyo?", [{"name": "get_current_time", "args": {"timezone": "Asia/Tokyo"}}]),
        {"id": "single-now", "messages": [{"role": "user", "content": "Time in Tokyo, please"}],
         "expect": {"calls": [{"name": "get_current_time", "args": {"timezone": "Asia/Tokyo"}}]}},
    ], {"command": crash, "timeout_s": 20}, TIME_TOOLS)
    call = agent_responder(lambda request: [("get_current_time", {"timezone": "Asia/Tokyo"})])
    with ScriptedServer(responder=call) as server:
        samples = {s.case_id: s for s in run_in_process(server, suite, ["native"])}
    failed = samples["agent-now"]
    assert failed.failure_kind == "error" and "\n" not in failed.error
    assert "did not start" in failed.error and "no luck today" in failed.error
    assert samples["single-now"].error is None and samples["single-now"].call_correct


def test_an_agent_calling_a_distractor_hears_it_has_no_implementation(tmp_path: Path):
    suite = mcp_suite(tmp_path / "suites", [
        agent_case("now-tokyo", "What time is it in Tokyo right now?",
                   [{"name": "get_current_time", "args": {"timezone": "Asia/Tokyo"}}]),
    ], {"command": ["python", "-m", "mcp_server_time"], "timeout_s": 20}, TIME_TOOLS)
    own = {t["function"]["name"] for t in TIME_TOOLS}
    chosen: list[str] = []

    def first_round(request: dict[str, Any]) -> list[tuple[str, Any]]:
        from evalkit.schema import ToolCall, ToolDef

        for tool in request["tools"]:
            function = tool["function"]
            if function["name"] in own:
                continue
            props = function["parameters"].get("properties", {})
            args = {k: {"string": "x", "integer": 1, "number": 1, "boolean": True}.get(props[k].get("type"), "x")
                    for k in function["parameters"].get("required", [])}
            call = ToolCall(name=function["name"], arguments=args)
            if argument_errors(call, {function["name"]: ToolDef.model_validate(tool)}) is None:
                chosen.append(function["name"])
                return [(function["name"], args)]
        raise AssertionError("no distractor takes simple arguments")

    with ScriptedServer(responder=agent_responder(first_round)) as server:
        (sample,) = run_in_process(server, suite, ["native"], distractors=[8])
    assert sample.distractors == 8 and sample.tools_offered == len(own) + 8
    result = sample.trajectory[0].tool_results[0]
    assert result == {"name": chosen[0], "result": f"Error: tool {chosen[0]!r} is offered but has no implementation",
                      "ok": False}
    assert sample.error is None and sample.failure_kind == "wrong_tool" and not sample.call_correct


# ---------------------------------------------------------------- Ctrl-C


def test_ctrl_c_during_evalkit_run_leaves_no_mcp_server_running(tmp_path: Path):
    """SIGINT to a real `evalkit run` while its agent samples wait on the model: the shared MCP
    server it started is stopped, and the run directory is valid for --resume."""
    exe = shutil.which("evalkit") or str(Path(sys.executable).parent / "evalkit")
    starts = tmp_path / "starts"
    suite = mcp_suite(tmp_path / "suites", [
        agent_case(f"now-{i}", f"What time is it in Tokyo? ({i})", [{"name": "get_current_time", "args": {"timezone": "Asia/Tokyo"}}])
        for i in range(3)
    ], {"command": COUNTED_TIME, "env": {"EVALKIT_MCP_STARTS": str(starts)}, "timeout_s": 20}, TIME_TOOLS)

    def respond(request: dict[str, Any]) -> Reply:
        if any(m["role"] == "tool" for m in request["messages"]):
            return Reply(content="it is late", delay_s=60)  # the run is mid-flight when Ctrl-C comes
        return reply_for_format("native", [("get_current_time", {"timezone": "Asia/Tokyo"})])

    with ScriptedServer(responder=respond) as server:
        out = tmp_path / "runs"
        process = subprocess.Popen(
            [exe, "run", "--base-url", server.base_url, "--model", "scripted-model", "--suite", str(suite),
             "--format", "native", "--out", str(out), "--no-cache", "--no-report", "--quiet", "--concurrency", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not any(any(m["role"] == "tool" for m in r["messages"]) for r in server.requests):
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the run never reached its second round"
                time.sleep(0.1)
            pids = started(starts)
            assert len(pids) == 1 and running(pids[0])
            process.send_signal(signal.SIGINT)
            _out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not wait_gone(pids), "Ctrl-C left the MCP server running"
    (run_dir,) = list(out.iterdir())
    assert (run_dir / "results.json").is_file()


# ---------------------------------------------------------------- --distractors and tool cost


def counting_tiny_responder(request: dict[str, Any]) -> Reply:
    """Right answers to TINY_CASES, except that in native with more tools than the suite's own it
    calls the first pool tool instead; prompt tokens a fixed function of what was sent."""
    tools = request.get("tools") or []
    own = {t["function"]["name"] for t in TOOLS}
    stranger = next((t["function"]["name"] for t in tools if t["function"]["name"] not in own), None)
    if stranger is not None and "joke" not in request["messages"][-1]["content"]:
        reply = reply_for_format("native", [(stranger, {})])
    else:
        reply = tiny_responder(request)
    reply.prompt_tokens = prompt_size(request)
    return reply


def prompt_size(request: dict[str, Any]) -> int:
    return len(json.dumps(request["messages"]) + json.dumps(request.get("tools", []))) // 4


def test_distractors_group_results_draw_the_curve_and_measure_tool_cost(tmp_path: Path):
    suite = write_suite(tmp_path / "suites", TINY_CASES)
    loaded = read_suite(suite)
    with ScriptedServer(responder=counting_tiny_responder) as server:
        run_dir = run_cli(server, suite, tmp_path / "runs", "--distractors", "0", "--distractors", "4",
                          "--seed", "7", formats=("native", "default"))
        requests = server.requests
        samples = latest_samples(run_dir)
        hits = server.hits
        assert cli.main(["run", "--resume", str(run_dir), "--base-url", server.base_url, "--quiet", "--no-cache"]) == 0
        assert server.hits == hits, "resume redid samples that were done"

    # One sample per case x format x count, keyed apart.
    assert len(samples) == len(TINY_CASES) * 2 * 2 == len({s.key() for s in samples})
    assert {s.key()[4] for s in samples} == {0, 4}
    own = {t["function"]["name"] for t in TOOLS}
    for sample in samples:
        assert sample.tools_offered == len(TOOLS) + sample.distractors
        drawn = [t.function.name for t in offered_tools(loaded.suite, next(c for c in loaded.suite.cases
                                                                           if c.id == sample.case_id), 7, sample.distractors)]
        sent = json.dumps(sample.request, ensure_ascii=False)
        assert own <= set(drawn) and len(drawn) == len(set(drawn)) == sample.tools_offered
        assert all(f'"{name}"' in sent or f"\\\"{name}\\\"" in sent for name in drawn), "the drawn tools were offered"
        if sample.format == "native":
            assert [t["function"]["name"] for t in sample.request["tools"]] == drawn
        # Tool cost: the sample's prompt tokens minus the tools-free request's, as the server counted.
        case = next(c for c in loaded.suite.cases if c.id == sample.case_id)
        tools_free = prompt_size({"messages": [m.model_dump(exclude_none=True) for m in case.messages]})
        assert sample.prompt_tokens == prompt_size(sample.request)
        assert sample.tool_tokens == sample.prompt_tokens - tools_free > 0
    native4 = [s for s in samples if s.format == "native" and s.distractors == 4 and s.case_id != "chat"]
    assert native4 and all(s.failure_kind == "wrong_tool" for s in native4)
    # The same draw for every format and for every run with the same seed, another with another seed.
    hello = next(c for c in loaded.suite.cases if c.id == "hello")
    assert offered_tools(loaded.suite, hello, 7, 4) == offered_tools(loaded.suite, hello, 7, 4)
    assert offered_tools(loaded.suite, hello, 7, 4) != offered_tools(loaded.suite, hello, 8, 4)
    # One tools-free request per distinct prompt, shared by formats and counts.
    assert sum(1 for r in requests if r.get("max_tokens") == 1 and "tools" not in r) == len(TINY_CASES)

    results = read_results(run_dir)
    rows = {(a.format, a.distractors): a for a in results.aggregates if a.suite == "*" and a.tag is None}
    assert set(rows) == {("native", None), ("native", 0), ("native", 4), ("default", None), ("default", 0), ("default", 4)}
    assert rows[("native", 0)].n == 3 and rows[("native", 0)].call_accuracy == 1.0
    assert rows[("native", 4)].call_accuracy == pytest.approx(1 / 3) and rows[("default", 4)].call_accuracy == 1.0
    assert rows[("native", 4)].tools_offered == len(TOOLS) + 4 and rows[("native", None)].n == 6
    assert rows[("native", 4)].prompt_tokens > rows[("native", 0)].prompt_tokens
    assert rows[("native", 0)].tool_tokens > 0 and rows[("native", None)].pass_hat_k is None

    report = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "## Accuracy by tool count" in report and "## Tool cost" in report
    native_line = next(line for line in report.splitlines() if line.startswith("- scripted-model [native]: strict"))
    assert "strict accuracy (100.0% with no distractors) falls below 90% of it at 4 distractors" in native_line
    default_line = next(line for line in report.splitlines() if line.startswith("- scripted-model [default]: strict"))
    assert "stays at or above 90% of it up to 4 distractors" in default_line
    assert (run_dir / "fig_tool_count.png").stat().st_size > 10_000
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'id="tool-count"' in html and 'id="tool-cost"' in html
    # The leaderboard and summary still have one row per model x format.
    assert report.count("| scripted-model | native") == 1

    # A distractor run re-scores to what it stored (as tests/test_measured.py checks reports/measured).
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import check_measured

    check = check_measured.check_run(run_dir, [])
    assert check.ok and check.rescored == len(samples), (check.verdict_diffs, check.aggregate_diffs)


def test_without_distractors_keys_and_results_are_as_before(tmp_path: Path):
    suite = write_suite(tmp_path / "suites", TINY_CASES)
    with ScriptedServer(responder=tiny_responder) as server:
        samples = run_in_process(server, suite, ["native"])
        requests = server.requests
    assert all(len(s.key()) == 4 and s.distractors is None and s.tool_tokens is None for s in samples)
    assert all(s.tools_offered == len(TOOLS) for s in samples)
    assert not any(r.get("max_tokens") == 1 for r in requests), "no tools-free requests without --tool-cost"


# ---------------------------------------------------------------- packaging


def test_the_wheel_ships_the_mcp_suites_their_files_and_evalkit_data():
    """Every file under suites/ that git tracks, and evalkit/data/, matches a package-data pattern."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    tracked = subprocess.run(["git", "ls-files", "suites", "evalkit/data"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert any(p.startswith("suites/mcp/impl/") for p in tracked) and "evalkit/data/tool_pool.json" in tracked
    shipped = {str(p.relative_to(ROOT)) for pattern in config["evalkit.builtin_suites"] for p in (ROOT / "suites").glob(pattern)}
    shipped |= {str(p.relative_to(ROOT)) for pattern in config["evalkit"] for p in (ROOT / "evalkit").glob(pattern)}
    assert sorted(set(tracked) - shipped) == []
