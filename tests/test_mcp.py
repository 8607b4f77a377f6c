"""The MCP client layer, `evalkit import mcp` and the distractor pool, against REAL MCP server processes.

Servers: the reference mcp-server-time (PyPI, pinned), and tests/mcp_servers/paged_server.py, a
small server on the official SDK's own server API that pages its tools and misbehaves on purpose
(crashes mid-call, never answers, answers isError), over stdio and over streamable HTTP.
Every test is bounded in time: nothing here may hang.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from evalkit import distractors
from evalkit.mcp_tools import McpConnection, McpError, McpToolbox, read_server
from evalkit.schema import McpServer, ToolCall, ToolDef
from evalkit.suites import read_suite

pytestmark = pytest.mark.timeout(120)

PAGED = str(Path(__file__).resolve().parent / "mcp_servers" / "paged_server.py")
PAGED_TOOLS = ["echo", "crash", "sleep", "fail", "tool.with.dots", "noop_a", "noop_b"]
TIME = ["python", "-m", "mcp_server_time", "--local-timezone", "Etc/UTC"]


def run(coro):
    return asyncio.run(coro)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------- a real reference server


def test_time_server_lists_its_tools_and_answers_concurrent_calls():
    async def go():
        async with McpConnection(command=TIME) as server:
            assert server.info is not None and (server.info.name, server.info.version) == ("mcp-time", "2026.10.19")
            tools = {t.name: t for t in await server.list_tools()}
            assert set(tools) == {"get_current_time", "convert_time"}
            assert tools["convert_time"].input_schema["required"] == ["source_timezone", "time", "target_timezone"]
            # One session shared by concurrent calls; each answer belongs to its own request.
            targets = ["Asia/Tokyo", "Asia/Kolkata", "Etc/UTC", "Asia/Shanghai"]
            results = await asyncio.gather(
                *(server.call("convert_time", {"source_timezone": "Asia/Shanghai", "time": "16:30", "target_timezone": t}) for t in targets)
            )
            bad_zone = await server.call("get_current_time", {"timezone": "Mars/Olympus_Mons"})
            unknown = await server.call("no_such_tool", {})
            return results, bad_zone, unknown

    results, bad_zone, unknown = run(go())
    expected = ["17:30:00+09:00", "14:00:00+05:30", "08:30:00+00:00", "16:30:00+08:00"]
    for (text, ok), clock in zip(results, expected):
        assert ok and clock in text, text
    assert bad_zone[1] is False and "Mars/Olympus_Mons" in bad_zone[0]  # isError result, text for the model
    assert unknown[1] is False and "no_such_tool" in unknown[0]  # the server's protocol error, as a tool error


def test_servers_start_side_by_side_in_one_event_loop_after_another():
    # A sweep runs each model in its own asyncio.run. The lock that spawns one server at a time
    # was created once and stayed bound to the first loop that waited on it, so the next loop's
    # servers failed to start ("... is bound to a different event loop") when two started at once.
    async def two_at_once():
        async def one():
            async with McpConnection(command=["python", PAGED], timeout_s=30) as server:
                return [t.name for t in await server.list_tools()]

        return await asyncio.gather(one(), one())

    for _loop in range(2):
        assert run(two_at_once()) == [PAGED_TOOLS, PAGED_TOOLS]


# ---------------------------------------------------------------- pagination, names, isError


def test_list_tools_follows_the_cursor_over_every_page():
    info, tools = run(read_server(["python", PAGED]))
    assert (info.name, info.version) == ("paged-test-server", "1.2.3")
    assert [t.name for t in tools] == PAGED_TOOLS  # 3 + 3 + 1 over three pages, in order


def test_is_error_results_and_names_that_openai_refuses():
    server = McpServer(command=["python", PAGED], timeout_s=10)

    async def go():
        async with McpToolbox(server) as box:
            names = [t.function.name for t in box.tools()]
            dotted = next(t for t in box.tools() if t.function.name == "tool_with_dots")
            return (
                names,
                dotted.model_extra,
                await box.call(ToolCall(name="tool_with_dots", arguments={})),
                await box.call(ToolCall(name="fail", arguments={})),
                await box.call(ToolCall(name="echo", arguments={"text": "hi"})),
                await box.call(ToolCall(name="not_offered", arguments={})),
                await box.call(ToolCall(name=None, parse_error="arguments are not valid JSON")),
            )

    names, extra, dotted, failed, echoed, unknown, broken = run(go())
    assert "tool_with_dots" in names and "tool.with.dots" not in names
    assert extra == {"x-mcp-name": "tool.with.dots"}
    assert dotted == ("tool.with.dots: ", True)  # called on the server under its own name
    assert failed == ("it failed on purpose", False)
    assert echoed == ("echo: hi", True)
    assert unknown[1] is False and "not offered" in unknown[0]
    assert broken[1] is False and "not valid JSON" in broken[0]


# ---------------------------------------------------------------- failures never hang


def test_a_crash_mid_call_is_a_tool_error_with_the_stderr_tail():
    async def go():
        async with McpConnection(command=["python", PAGED], timeout_s=30) as server:
            started = time.monotonic()
            crashed = await server.call("crash", {})
            after = await server.call("echo", {"text": "still there?"})
            return crashed, after, time.monotonic() - started

    crashed, after, elapsed = run(go())
    assert crashed[1] is False and "exited" in crashed[0] and "crashing on purpose" in crashed[0], crashed
    assert after[1] is False and "crashing on purpose" in after[0]
    assert elapsed < 10  # not the 30 s timeout: the closed connection is noticed at once


def test_a_call_that_never_answers_times_out():
    async def go():
        async with McpConnection(command=["python", PAGED], timeout_s=30) as server:
            started = time.monotonic()
            text, ok = await server.call("sleep", {}, timeout_s=1)
            echoed = await server.call("echo", {"text": "after"})
            return text, ok, echoed, time.monotonic() - started

    text, ok, echoed, elapsed = run(go())
    assert ok is False and "timed out after 1s" in text
    assert echoed == ("echo: after", True)  # the shared session still serves the other calls
    assert elapsed < 5


@pytest.mark.parametrize(
    "command,expected",
    [
        (["evalkit-no-such-server-xyz"], "command not found: evalkit-no-such-server-xyz"),
        (["python", "-c", "import sys; sys.stderr.write('bad config: port missing\\n'); sys.exit(3)"], "it exited; stderr: bad config: port missing"),
        (["python", "-c", "import time; time.sleep(60)"], "no answer within 2s"),
    ],
    ids=["not-found", "exits", "silent"],
)
def test_a_server_that_fails_to_start_is_one_line(command, expected):
    started = time.monotonic()
    with pytest.raises(McpError) as caught:
        run(read_server(command, timeout_s=2))
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert time.monotonic() - started < 15  # a silent server: 2 s, then the SDK's bounded stop


def test_close_stops_the_server_process_group():
    async def go():
        server = McpConnection(command=["python", PAGED])
        await server.open()
        pgid = server._pgid
        assert pgid is not None and group_alive(pgid)
        await server.close()
        return pgid

    assert not group_alive(run(go()))


CTRL_C_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from evalkit.mcp_tools import McpConnection

    async def main():
        server = McpConnection(command=["python", sys.argv[1]])
        await server.open()
        print(server._pgid, flush=True)
        await asyncio.wait_for(server.call("sleep", {}, timeout_s=60), 60)

    asyncio.run(main())
    """
)


def test_ctrl_c_stops_the_server():
    """The run loop is interrupted mid-call, as by Ctrl-C: the server goes with it."""
    child = subprocess.Popen([sys.executable, "-c", CTRL_C_CHILD, PAGED], stdout=subprocess.PIPE, text=True)
    try:
        pgid = int(child.stdout.readline())
        assert group_alive(pgid)
        time.sleep(0.5)  # the call is in flight
        child.send_signal(signal.SIGINT)
        child.wait(timeout=30)
        deadline = time.monotonic() + 10
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(pgid)
    finally:
        child.kill()
        child.wait()


# ---------------------------------------------------------------- streamable HTTP


@pytest.fixture
def http_server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, PAGED, "--http", str(port)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "the HTTP test server did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_streamable_http_lists_and_calls(http_server: str):
    async def go():
        async with McpToolbox(McpServer(url=http_server)) as box:
            return [t.function.name for t in box.tools()], await box.call(ToolCall(name="echo", arguments={"text": "over http"}))

    names, echoed = run(go())
    assert names == [n.replace(".", "_") for n in PAGED_TOOLS]
    assert echoed == ("echo: over http", True)


def test_an_unreachable_url_is_one_line():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(McpError, match=r"did not answer"):
        run(read_server(url=f"http://127.0.0.1:{port}/mcp", timeout_s=5))


# ---------------------------------------------------------------- the toolbox's working root


def test_isolated_toolbox_gets_a_fresh_root_with_fixtures_and_setup(tmp_path: Path):
    fixtures = tmp_path / "fixtures"
    (fixtures / "project").mkdir(parents=True)
    (fixtures / "project" / "a.txt").write_text("from the fixtures\n")
    (tmp_path / "make.py").write_text("from pathlib import Path\nPath('made.txt').write_text('by setup')\n")
    suite = tmp_path / "suite.yaml"
    server = McpServer(
        command=["python", PAGED], isolate=True, fixtures="fixtures", setup=["python", "{suite}/make.py"], timeout_s=20
    )

    async def go():
        roots = []
        for _ in range(2):
            async with McpToolbox(server, suite) as box:
                root = box.root
                assert root is not None
                roots.append(root)
                assert (root / "project" / "a.txt").read_text() == "from the fixtures\n"
                assert (root / "made.txt").read_text() == "by setup"
                (root / "project" / "a.txt").write_text("changed by a sample\n")
        return roots

    first, second = run(go())
    assert first != second and not first.exists() and not second.exists()


def test_setup_failure_and_missing_tools_are_one_line(tmp_path: Path):
    suite = tmp_path / "suite.yaml"
    failing = McpServer(command=["python", PAGED], isolate=True, setup=["python", "-c", "raise SystemExit('no git here')"])
    with pytest.raises(McpError, match=r"setup .* failed with exit code 1: no git here"):
        run(McpToolbox(failing, suite).start())
    declared = [ToolDef.model_validate({"function": {"name": n}}) for n in ("echo", "git_log")]
    with pytest.raises(McpError, match=r"paged-test-server 1.2.3 does not offer the suite's tool\(s\) git_log"):
        run(McpToolbox(McpServer(command=["python", PAGED]), suite, declared).start())


# ---------------------------------------------------------------- evalkit import mcp


def evalkit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, timeout=90, cwd=cwd)


def test_import_mcp_time_writes_a_suite_that_evalkit_suites_lists(tmp_path: Path):
    done = evalkit("import", "mcp", "--out", str(tmp_path / "out"), "--", "python", "-m", "mcp_server_time")
    assert done.returncode == 0, done.stderr
    path = tmp_path / "out" / "mcp_time.yaml"
    assert str(path) in done.stdout and "2 tool(s) from mcp-time 2026.10.19" in done.stdout
    loaded = read_suite(path)
    suite = loaded.suite
    assert suite.name == "mcp_time" and "mcp-time 2026.10.19" in suite.description
    assert suite.mcp is not None and suite.mcp.command == ["python", "-m", "mcp_server_time"]
    assert [t.function.name for t in suite.tools] == ["get_current_time", "convert_time"]
    assert suite.tools[1].function.parameters["required"] == ["source_timezone", "time", "target_timezone"]
    text = path.read_text()
    assert "#   - id: get-current-time-1-en" in text and "#   - id: convert-time-1-en" in text
    # The commented templates become cases once uncommented.
    uncommented = yaml.safe_load(text.split("# cases:\n")[1].replace("# ", ""))
    assert [c["expect"]["calls"][0]["name"] for c in uncommented] == ["get_current_time", "convert_time"]

    listed = evalkit("suites", "--dir", str(tmp_path / "out"))
    assert listed.returncode == 0 and "mcp_time" in listed.stdout and "1 suites, 0 cases" in listed.stdout

    again = evalkit("import", "mcp", "--out", str(tmp_path / "out"), "--", "python", "-m", "mcp_server_time")
    assert again.returncode == 2 and "exists; pass --force" in again.stderr


def test_import_mcp_default_folder_and_url(tmp_path: Path, http_server: str):
    done = evalkit("import", "mcp", "--name", "paged", "--url", http_server, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    suite = read_suite(tmp_path / "suites" / "imported" / "paged.yaml").suite
    assert suite.mcp is not None and suite.mcp.url == http_server and suite.mcp.command is None
    assert [t.function.name for t in suite.tools] == [n.replace(".", "_") for n in PAGED_TOOLS]
    assert suite.tools[4].model_extra == {"x-mcp-name": "tool.with.dots"}


def test_import_mcp_failures_exit_2_with_one_line(tmp_path: Path):
    failing = evalkit("import", "mcp", "--out", str(tmp_path), "--", "python", "-c", "import sys; sys.exit('cannot open the database')")
    assert failing.returncode == 2
    assert failing.stderr.strip().count("\n") == 0 and "cannot open the database" in failing.stderr
    neither = evalkit("import", "mcp", "--out", str(tmp_path))
    assert neither.returncode == 2 and "give the server's command after `--`" in neither.stderr
    for bad in ("0", "nan"):  # the run's own check of a duration (a 0 s wait failed every start)
        timeout = evalkit("import", "mcp", "--out", str(tmp_path), "--timeout", bad, "--", *TIME)
        assert timeout.returncode == 2 and timeout.stderr.strip().count("\n") == 0, timeout.stderr
        assert "--timeout" in timeout.stderr and "Traceback" not in timeout.stderr
    assert not list(tmp_path.glob("*.yaml")) and not list(tmp_path.iterdir())  # no temporary file left either


# ---------------------------------------------------------------- distractors


def test_distractor_draw_is_deterministic_and_keeps_clear_of_the_case():
    own = ["get_current_time", "convert_time"]
    first = [t.function.name for t in distractors.draw("mcp-time-now-new-york-en", 0, 32, own)]
    assert first == [t.function.name for t in distractors.draw("mcp-time-now-new-york-en", 0, 32, own)]
    assert len(first) == len(set(first)) == 32
    assert [t.function.name for t in distractors.draw("mcp-time-now-new-york-en", 0, 8, own)] == first[:8]
    assert first != [t.function.name for t in distractors.draw("mcp-time-now-new-york-en", 1, 32, own)]
    assert first != [t.function.name for t in distractors.draw("mcp-time-convert-tokyo-london-en", 0, 32, own)]
    # Not the case's tools, nor any tool about the same thing (the pool holds getCurrentTime, get_local_time...).
    everything = [t.function.name for t in distractors.draw("x", 0, 10_000, own)]
    pool_names = {t.function.name for t in distractors.pool()}
    assert {"getCurrentTime", "get_local_time", "convert_time"} <= pool_names
    assert not {n for n in everything if {"time", "convert"} & distractors.topic_words(n)}
    assert len(everything) < len(pool_names)
    assert distractors.draw("x", 0, 0, own) == []


def test_distractors_are_valid_tool_schemas_and_mixed_in_deterministically():
    from jsonschema import Draft202012Validator

    for tool in distractors.pool():
        Draft202012Validator.check_schema(tool.function.parameters)
    own = read_suite(Path(__file__).resolve().parent.parent / "suites" / "mcp" / "mcp_git.yaml").suite.tools
    mixed = distractors.with_distractors("mcp-git-status-zh", 0, own, 16)
    assert len(mixed) == len(own) + 16
    assert mixed == distractors.with_distractors("mcp-git-status-zh", 0, own, 16)
    assert {t.function.name for t in own} <= {t.function.name for t in mixed}
    assert mixed[: len(own)] != own  # the case's tools are spread through the list
    assert distractors.with_distractors("mcp-git-status-zh", 0, own, 0) == own


# ---------------------------------------------------------------- the suite schema's MCP form


@pytest.mark.parametrize(
    "implementations,field,problem",
    [
        ({"mcp": {"comand": ["python"]}}, "implementations.mcp.comand", "unknown field"),
        ({"mcp": {"command": ["python"], "url": "http://127.0.0.1:1/mcp"}}, "implementations.mcp", "either 'command'"),
        ({"mcp": {"command": []}}, "implementations.mcp.command", "at least 1 item"),
        ({"mcp": {"url": "http://127.0.0.1:1/mcp", "isolate": True}}, "implementations.mcp", "not started by evalkit"),
        ({"mcp": {"command": ["python"], "fixtures": "no_such_folder"}}, "implementations.mcp.fixtures", "is not a directory"),
        ({"mcp": {"command": ["python"], "cwd": ".", "isolate": True}}, "implementations.mcp", "evalkit makes the working root"),
    ],
    ids=["typo", "command-and-url", "empty-command", "url-isolate", "missing-fixtures", "cwd-isolate"],
)
def test_bad_mcp_implementations_are_one_line_naming_the_field(tmp_path: Path, implementations, field, problem):
    from evalkit.errors import SuiteError

    path = tmp_path / "bad.yaml"
    tools = [{"type": "function", "function": {"name": "echo", "parameters": {"type": "object", "properties": {}}}}]
    cases = [{"id": "c1", "messages": [{"role": "user", "content": "hi"}], "expect": {"calls": []}}]
    path.write_text(yaml.safe_dump({"name": "bad", "implementations": implementations, "tools": tools, "cases": cases}))
    with pytest.raises(SuiteError) as caught:
        read_suite(path)
    assert caught.value.field == field and problem in caught.value.problem, str(caught.value)


def test_an_mcp_suite_with_cases_declares_its_tools_and_may_hold_agent_cases(tmp_path: Path):
    from evalkit.errors import SuiteError

    path = tmp_path / "s.yaml"
    case = {"id": "a1", "mode": "agent", "messages": [{"role": "user", "content": "hi"}],
            "expect": {"calls": [{"name": "echo"}], "final_answer": {"contains": ["x"]}}}  # fmt: skip
    data = {"name": "s", "implementations": {"mcp": {"command": ["python", PAGED]}}, "cases": [case]}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SuiteError, match=r"field 'tools': an MCP suite declares its tools"):
        read_suite(path)
    data["tools"] = [{"type": "function", "function": {"name": "echo", "parameters": {"type": "object", "properties": {}}}}]
    path.write_text(yaml.safe_dump(data))
    assert read_suite(path).suite.mcp.command == ["python", PAGED]
