"""Agent (multi-round) cases over the real wire: the scripted server plays the model."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest

from evalkit.dispatch import run_jobs
from evalkit.jobs import Endpoint, RunContext, plan
from evalkit.schema import Sample, Settings
from evalkit.suites import read_suite
from evalkit.testing.callsyntax_fixtures import load as load_fixtures
from evalkit.testing.scripted_server import Reply, ScriptedServer

SUITES = Path(__file__).resolve().parent.parent / "suites"


def tool_results_seen(request: dict) -> list[str]:
    """Tool results the harness sent back, in native (`tool`) or prompt formats (`user`)."""
    seen = []
    for message in request["messages"]:
        content = message.get("content") or ""
        if message["role"] == "tool" or (message["role"] == "user" and content.startswith(("Result of", "Error"))):
            seen.append(content)
    return seen


def call_reply(fmt: str, calls: list[tuple[str, dict]]) -> Reply:
    """A reply that calls tools the way a model does in the given format."""
    if fmt == "native":
        return Reply(tool_calls=[{"name": n, "arguments": a} for n, a in calls])
    if fmt == "default":
        blocks = [f'[TOOL_REQUEST]{json.dumps({"name": n, "arguments": a})}[END_TOOL_REQUEST]' for n, a in calls]
        return Reply(content="\n".join(blocks))
    rendered = ", ".join(f"{n}({', '.join(f'{k}={v!r}' for k, v in a.items())})" for n, a in calls)
    return Reply(content=f"[{rendered}]")


def run_case(loaded, case_id: str, fmt: str, responder, parallel: int = 1,
             own_family: str | None = None) -> tuple[Sample, list[dict]]:
    jobs = [j for j in plan([loaded], [fmt], 1) if j.case.id == case_id]
    assert len(jobs) == 1
    samples: list[Sample] = []
    with ScriptedServer(responder=responder) as server:
        ctx = RunContext(model="m", settings=Settings(retries=0), max_parallel_tool_calls=parallel,
                         own_family=own_family)
        asyncio.run(run_jobs(jobs, [Endpoint(server.base_url, 1)], ctx, samples.append))
        requests = server.requests
    assert len(samples) == 1
    return samples[0], requests


@pytest.mark.parametrize("fmt", ["native", "default", "pythonic"])
def test_correct_multi_round_run(fmt):
    loaded = read_suite(SUITES / "agent_math.yaml")

    def model(request):
        results = tool_results_seen(request)
        if not results:
            return call_reply(fmt, [("multiply_data", {"num1": 12345, "num2": 54321})])
        assert "670592745" in results[0]  # the harness really executed the implementation
        return Reply(content="12345 × 54321 = 670,592,745.")

    sample, requests = run_case(loaded, "agent-multiply-12345-54321-en", fmt, model)
    assert sample.error is None
    assert sample.rounds == 2 and sample.ended_by == "answer"
    assert sample.call_correct and sample.final_answer_ok
    assert [c.name for c in sample.calls] == ["multiply_data"]
    assert sample.trajectory[0].tool_results[0]["ok"] is True
    if fmt == "native":
        assert "tools" in requests[0] and requests[1]["messages"][-1]["role"] == "tool"
    else:
        assert "tools" not in requests[0]
        assert requests[1]["messages"][-1]["role"] == "user"  # tool results go back as user turns


def test_wrong_final_answer_fails():
    loaded = read_suite(SUITES / "agent_math.yaml")

    def model(request):
        if not tool_results_seen(request):
            return call_reply("native", [("multiply_data", {"num1": 12345, "num2": 54321})])
        return Reply(content="It is 670592744.")

    sample, _ = run_case(loaded, "agent-multiply-12345-54321-en", "native", model)
    assert not sample.call_correct and sample.final_answer_ok is False
    assert sample.failure_kind == "final_answer"


@pytest.mark.parametrize("own_family,kind", [("hermes", "server_parse_lost"), (None, "malformed")])
def test_a_call_the_server_lost_ends_the_case_as_server_parse_lost(own_family, kind):
    """Round 1 brings a clean Hermes call in `content` and no tool_calls: the server's parser lost it
    when Hermes is the model's own syntax, a malformed reply otherwise."""
    fixture = next(f for f in load_fixtures() if f.id == "hermes/Qwen-Qwen2.5-7B-Instruct/single")
    written = json.dumps({"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}})
    assert written in fixture.text  # the fixture's exact text, with another call in its place
    text = fixture.text.replace(written, json.dumps({"name": "multiply_data", "arguments": {"num1": 12345, "num2": 54321}}))
    loaded = read_suite(SUITES / "agent_math.yaml")
    sample, requests = run_case(loaded, "agent-multiply-12345-54321-en", "native", Reply(content=text),
                                own_family=own_family)
    assert len(requests) == sample.rounds == 1
    assert (sample.failure_kind, sample.malformed, sample.call_correct, sample.syntax) == (kind, True, False, "hermes")
    if kind == "server_parse_lost":
        assert sample.failure_detail.startswith("round 1: multiply_data written as a clean hermes call")


def test_round_limit():
    loaded = read_suite(SUITES / "agent_math.yaml")
    case = next(c for c in loaded.suite.cases if c.id == "agent-multiply-12345-54321-en")
    always_call = call_reply("native", [("multiply_data", {"num1": 12345, "num2": 54321})])
    sample, requests = run_case(loaded, case.id, "native", always_call)
    assert len(requests) == case.max_rounds == sample.rounds
    assert sample.ended_by == "round_limit"
    assert not sample.call_correct and sample.failure_kind == "round_limit"


@pytest.mark.parametrize("fmt", ["native", "default"])
def test_invalid_tool_requests_are_answered_with_errors(fmt):
    loaded = read_suite(SUITES / "agent_math.yaml")

    def model(request):
        seen = tool_results_seen(request)
        if len(seen) == 0:
            return call_reply(fmt, [("launch_rocket", {"target": "moon"})])  # unknown tool
        if len(seen) == 1:
            return call_reply(fmt, [("multiply_data", {"num1": "12345", "num2": 54321})])  # schema violation
        if len(seen) == 2:
            return call_reply(fmt, [("divide_data", {"num1": 1, "num2": 0})])  # the tool raises
        return Reply(content="670592745")

    sample, requests = run_case(loaded, "agent-multiply-12345-54321-en", fmt, model)
    results = [r for rnd in sample.trajectory for r in rnd.tool_results]
    assert [r["ok"] for r in results] == [False, False, False]
    assert "not offered" in results[0]["result"]
    assert "invalid tool request" in results[1]["result"]
    assert "divide_data failed" in results[2]["result"]
    assert sample.tool_errors == 3
    assert sample.hallucinated_tool and not sample.call_correct
    # The model was told about every error in the next request.
    assert any("not offered" in text for text in tool_results_seen(requests[1]))


def _parallel_suite(tmp_path: Path) -> Path:
    impl = tmp_path / "impl_barrier.py"
    impl.write_text(textwrap.dedent('''
        import threading
        BARRIER = threading.Barrier(3, timeout=3)

        def wait_here(label):
            # Only passes if three calls run at the same time.
            BARRIER.wait()
            return f"passed {label}"
    '''))
    suite = tmp_path / "parallel_agent.yaml"
    suite.write_text(textwrap.dedent(f'''
        name: parallel_agent
        implementations: {impl}
        tools:
          - type: function
            function:
              name: wait_here
              parameters:
                type: object
                properties: {{label: {{type: string}}}}
                required: [label]
        cases:
          - id: three-at-once
            mode: agent
            max_rounds: 2
            messages: [{{role: user, content: go}}]
            expect:
              calls: [{{name: wait_here, args: {{label: a}}}}, {{name: wait_here, args: {{label: b}}}},
                      {{name: wait_here, args: {{label: c}}}}]
              final_answer: {{contains: [done]}}
    '''))
    return suite


@pytest.mark.parametrize("parallel,expect_ok", [(3, True), (1, False)])
def test_parallel_tool_execution(tmp_path, parallel, expect_ok):
    loaded = read_suite(_parallel_suite(tmp_path))

    def model(request):
        if not tool_results_seen(request):
            return call_reply("native", [("wait_here", {"label": x}) for x in "abc"])
        return Reply(content="done")

    sample, _ = run_case(loaded, "three-at-once", "native", model, parallel=parallel)
    oks = [r["ok"] for r in sample.trajectory[0].tool_results]
    # Run one after another, the first call waits alone at the barrier and times out.
    assert all(oks) is expect_ok
    assert sample.tool_errors == (0 if expect_ok else 3)


def test_tools_never_write_outside_the_sandbox(tmp_path):
    loaded = read_suite(SUITES / "agent_files.yaml")
    outside = tmp_path / "escaped.txt"
    sandboxes: list[str] = []

    def model(request):
        seen = tool_results_seen(request)
        if not seen:
            return call_reply("native", [
                ("create_file", {"name": "../../../../../../" + str(outside), "content": "x"}),
                ("create_file", {"name": "/evalkit-escaped.txt", "content": "y"}),  # absolute: sandbox-rooted
                ("create_file", {"name": "/project/README.md", "content": "hello"}),  # exists
                ("analyze_directory", {"path": "/"}),
            ])
        sandboxes.append(seen[-1])
        return Reply(content="The file already exists, so I did not overwrite it.")

    sample, _ = run_case(loaded, "agent-files-refuse-overwrite-readme-en", "native", model)
    results = sample.trajectory[0].tool_results
    assert not outside.exists() and not Path("/evalkit-escaped.txt").exists()
    assert results[0]["ok"] is False and "outside the sandbox" in results[0]["result"]
    assert results[1]["ok"] is True  # written inside the sandbox, under the same absolute-looking path
    assert results[2]["ok"] is False and "already exists" in results[2]["result"]
    assert str(tmp_path) not in results[3]["result"]  # the real temporary path is never shown
    assert sample.final_answer_ok is True
