"""The built-in MCP suites (suites/mcp/): they load, say what they mean, and fit their real servers.

Each suite's declared tools must be exactly what its pinned server lists; each agent case's
expected calls are run on the real server in the suite's working root (the git repository built
by impl/git_fixture.py, the copy of suites/fixtures), and reference answers built from the
results must pass the case's final_answer while wrong ones fail. Single-turn cases run through
the real runner against the scripted model server: they need no MCP server at all.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, Callable

import pytest
from jsonschema import Draft202012Validator

from evalkit import mcp_npm, scoring
from evalkit.mcp_tools import McpToolbox
from evalkit.schema import Case, ExpectedCall, ToolCall, is_matcher
from evalkit.suites import LoadedSuite, read_suite, suite_paths
from evalkit.testing.scripted_server import ScriptedServer

from conftest import native_reply, run_samples

pytestmark = pytest.mark.timeout(180)

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"
MCP_FILES = sorted((SUITES_DIR / "mcp").glob("*.yaml"))
LOADED = {p.stem: read_suite(p) for p in MCP_FILES}
ALL_CASES = [(s, c) for s in LOADED.values() for c in s.suite.cases]

needs_npm_server = pytest.mark.skipif(
    not mcp_npm.installed(), reason="the npm filesystem server is not installed: run `evalkit mcp pull` (.ci/run does)"
)

# Values each regex matcher must accept (the first is used to run tools) and values it must refuse.
FS_PATH_REFUSED = ["/project/docs", "docs", "project/doc", "../project/docs"]
REGEX_EXAMPLES: dict[tuple[str, str], tuple[list[str], list[str]]] = {
    ("mcp-fs-list-docs-en", "path"): (["project/docs", "./project/docs/", "/tmp/evalkit-sandbox-x/project/docs"], FS_PATH_REFUSED),
    ("mcp-fs-read-notes-zh", "path"): (["project/notes.txt", "/tmp/x/project/notes.txt"], ["notes.txt", "/project/notes.txt", "project/notes.md"]),
    ("mcp-fs-search-python-en", "path"): (["project", "./project/", "/tmp/x/project"], ["/project", "project/src", "."]),
    ("mcp-fs-tree-zh", "path"): (["project", "project/"], ["/project", "projects"]),
    ("mcp-fs-file-info-en", "path"): (["project/README.md", "/tmp/x/project/README.md"], ["README.md", "project/README.txt"]),
    ("agent-mcp-fs-count-python-en", "path"): (["project", "./project", "/tmp/x/project/"], ["/project", "project/src"]),
    ("agent-mcp-fs-count-markdown-zh", "path"): (["project", "/tmp/x/project"], ["/project", "project/docs"]),
    ("agent-mcp-fs-read-todo-en", "path"): (["project/data/todo.txt", "./project/data/todo.txt"], ["project/todo.txt", "/project/data/todo.txt"]),
    ("agent-mcp-fs-list-src-zh", "path"): (["project/src", "project/src/"], ["project", "/project/src", "project/src/app.py"]),
    ("agent-mcp-git-readme-at-tag-en", "revision"): (["v0.1.0:README.md", "v0.1.0:./README.md"], ["v0.1.0", "README.md", "HEAD:README.md"]),
}

KNOWN_TAGS = {
    "en", "zh", "mcp", "time", "git", "files", "agent", "no_call", "system_prompt", "parallel",
    "convert", "log", "status", "diff", "show", "list", "read", "search", "analyze",
}  # fmt: skip


def _concrete(case: Case, arg: str, value: Any) -> Any:
    if not is_matcher(value):
        return value
    if "one_of" in value:
        return value["one_of"][0]
    if "regex" in value:
        assert (case.id, arg) in REGEX_EXAMPLES, f"{case.id}: add REGEX_EXAMPLES[({case.id!r}, {arg!r})]"
        return REGEX_EXAMPLES[(case.id, arg)][0][0]
    raise AssertionError(f"{case.id}: no concrete value for {arg}={value!r}")


def concrete_args(case: Case, call: ExpectedCall) -> dict[str, Any]:
    """Arguments a right call sends: optional matchers left out, the rest made concrete."""
    return {k: _concrete(case, k, v) for k, v in call.args.items() if not (is_matcher(v) and v.get("optional"))}


# ---------------------------------------------------------------- the files


def test_the_three_suites_exist_and_are_found():
    assert set(LOADED) == {"mcp_time", "mcp_git", "mcp_filesystem"}
    found = {p.resolve() for p in suite_paths(SUITES_DIR)}
    assert {p.resolve() for p in MCP_FILES} <= found
    for name, loaded in LOADED.items():
        suite = loaded.suite
        assert suite.name == name and suite.mcp is not None and suite.mcp.command
        assert sum(c.mode == "agent" for c in suite.cases) >= 4 and sum(c.mode == "single" for c in suite.cases) >= 6
        assert {"en", "zh"} <= {t for c in suite.cases for t in c.tags}
        assert {"en", "zh"} <= {t for c in suite.cases if c.mode == "agent" for t in c.tags}
    assert LOADED["mcp_git"].suite.mcp.isolate and LOADED["mcp_filesystem"].suite.mcp.isolate


def test_case_ids_unique_across_all_built_in_suites():
    seen: dict[str, str] = {}
    for path in suite_paths(SUITES_DIR):
        if "bfcl" in path.parts or "imported" in path.parts:
            continue
        for case in read_suite(path).suite.cases:
            assert case.id not in seen, f"{case.id} in {seen[case.id]} and {path}"
            seen[case.id] = str(path)


@pytest.mark.parametrize("loaded,case", [pytest.param(s, c, id=c.id) for s, c in ALL_CASES])
def test_tags_and_messages(loaded: LoadedSuite, case: Case):
    tags = set(case.tags)
    assert tags <= KNOWN_TAGS, sorted(tags - KNOWN_TAGS)
    assert len(tags & {"en", "zh"}) == 1 and "mcp" in tags
    assert ("agent" in tags) == (case.mode == "agent")
    assert ("no_call" in tags) == (case.expect.calls == [])
    assert ("system_prompt" in tags) == any(m.role == "system" for m in case.messages)
    assert ("parallel" in tags) == (len(case.expect.calls) > 1)
    assert case.messages[-1].role == "user"
    user = " ".join(m.content or "" for m in case.messages if m.role == "user")
    assert bool(re.search(r"[\u4e00-\u9fff]", user)) == ("zh" in tags)
    if case.mode == "agent":
        assert case.expect.calls and case.expect.final_answer is not None


@pytest.mark.parametrize("loaded,case", [pytest.param(s, c, id=c.id) for s, c in ALL_CASES])
def test_expected_arguments_fit_the_real_schemas(loaded: LoadedSuite, case: Case):
    offered = {t.function.name: t for t in loaded.suite.tools_for(case)}
    for call in case.expect.calls:
        params = offered[call.name].function.parameters
        props = params.get("properties", {})
        assert set(call.args) <= set(props), f"{case.id}: {sorted(set(call.args) - set(props))} not in {call.name}"
        if call.extra_args != "allow":
            assert set(params.get("required", [])) <= set(call.args), f"{case.id}: required argument missing"
        args = concrete_args(case, call)
        errors = list(Draft202012Validator({**params, "additionalProperties": False}).iter_errors(args))
        assert not errors, f"{case.id}: {args} does not fit {call.name}: {errors[0].message}"


@pytest.mark.parametrize("key", sorted(REGEX_EXAMPLES), ids=lambda k: f"{k[0]}:{k[1]}")
def test_regex_matchers_accept_the_right_values(key: tuple[str, str]):
    case_id, arg = key
    case = next(c for _, c in ALL_CASES if c.id == case_id)
    (pattern,) = [c.args[arg]["regex"] for c in case.expect.calls if arg in c.args]
    assert pattern.startswith(("^", "(?i)^")) and pattern.endswith("$")
    good, bad = REGEX_EXAMPLES[key]
    assert all(re.fullmatch(pattern, v) for v in good), pattern
    assert not any(re.fullmatch(pattern, v) for v in bad), pattern


# ---------------------------------------------------------------- against the real servers


def _servers() -> list[Any]:
    return [pytest.param(n, id=n, marks=[needs_npm_server] if n == "mcp_filesystem" else []) for n in sorted(LOADED)]


@pytest.mark.parametrize("name", _servers())
def test_declared_tools_are_exactly_what_the_pinned_server_lists(name: str):
    loaded = LOADED[name]

    async def go():
        async with McpToolbox(loaded.suite.mcp, loaded.path) as box:  # no `declared`: the server's own list
            return box.tools()

    served = asyncio.run(go())
    declared = [t.model_dump(exclude_none=True) for t in loaded.suite.tools]
    assert [t.model_dump(exclude_none=True) for t in served] == declared


def _clock(text: str, zone: str) -> str:
    """HH:MM of `zone` in mcp-server-time's JSON answer."""
    return re.search(rf'"timezone": "{re.escape(zone)}",\s*"datetime": "\d{{4}}-\d\d-\d\dT(\d\d:\d\d)', text).group(1)


def _first(pattern: str, text: str) -> str:
    found = re.search(pattern, text, re.S)
    assert found, f"{pattern!r} not in the tool result {text[:300]!r}"
    return found.group(1)


def _files(text: str) -> str:
    return "、".join(line.split()[-1] for line in text.splitlines() if line.startswith("[FILE]"))


AUTHOR, MESSAGE = r"Author: ([^\n]+)", r"Message: ([^\n]+)"

# case id -> (good answers built from the tool results, answers that must fail)
REFERENCE: dict[str, tuple[Callable[[list[str]], list[str]], list[str]]] = {
    "agent-mcp-time-shanghai-tokyo-en": (
        lambda r: [f"It is {_clock(r[0], 'Asia/Tokyo')} in Tokyo.", "That's 5:30 PM in Tokyo."],
        ["It is 15:30 in Tokyo.", "16:30"],
    ),
    "agent-mcp-time-utc-kolkata-zh": (lambda r: [f"加尔各答是 {_clock(r[0], 'Asia/Kolkata')}。", "下午1点半"], ["加尔各答是 13:00。", "08:00"]),
    "agent-mcp-time-now-tokyo-en": (lambda r: [f"It is {_clock(r[0], 'Asia/Tokyo')} in Tokyo now."], ["I cannot tell the time."]),
    "agent-mcp-time-now-shanghai-zh": (lambda r: [f"上海现在是 {_clock(r[0], 'Asia/Shanghai')}。", "现在是下午4点"], ["我不知道。"]),
    "agent-mcp-git-latest-author-en": (
        lambda r: [_first(AUTHOR, r[0]) + ' made it: "' + _first(MESSAGE, r[0]) + '".'],
        ["Grace Hopper: Fix sign bug in sub()", "Ada Lovelace made it."],
    ),
    "agent-mcp-git-who-fixed-sub-zh": (
        lambda r: ["是 " + _first(AUTHOR + r"\nDate: [^\n]+\nMessage: Fix sign bug", r[0]) + " 修复的。"],
        ["是 Ada Lovelace 修复的。"],
    ),
    "agent-mcp-git-unstaged-function-en": (
        lambda r: ["You added " + _first(r"[+]def (\w+)", r[0]) + "() but have not staged it."],
        ["You added div()."],
    ),
    "agent-mcp-git-untracked-zh": (
        lambda r: ["未跟踪的文件是 " + _first(r"Untracked files:\n(?:[ \t]+\(.*\)\n)*[ \t]+(\S+)", r[0]) + "。"],
        ["未跟踪的文件是 TODO.md。"],
    ),
    "agent-mcp-git-readme-at-tag-en": (lambda r: [f"The title is \"{r[0].splitlines()[0].lstrip('# ')}\"."], ["The title is Demo project."]),
    "agent-mcp-fs-count-python-en": (
        lambda r: [f"There are {r[0].count('.py' + chr(34))} Python files.", "four"],
        ["There are 3 Python files.", "There are 9 files."],
    ),
    "agent-mcp-fs-count-markdown-zh": (lambda r: [f"一共有{len(r[0].splitlines())}个 Markdown 文件。", "两个"], ["一共有3个。"]),
    "agent-mcp-fs-read-todo-en": (lambda r: [f"The list says: {r[0].strip()}"], ["The list is empty."]),
    "agent-mcp-fs-list-src-zh": (lambda r: ["里面有 " + _files(r[0]) + "。"], ["里面有 app.py。"]),
}


@pytest.mark.parametrize("name", _servers())
def test_agent_cases_expected_calls_on_the_real_server_support_their_answers(name: str):
    loaded = LOADED[name]
    agent_cases = [c for c in loaded.suite.cases if c.mode == "agent"]
    assert {c.id for c in agent_cases} <= set(REFERENCE), "add REFERENCE answers"

    async def go():
        # One server for the suite: the expected calls only read, so they need no fresh root each.
        async with McpToolbox(loaded.suite.mcp, loaded.path, loaded.suite.tools) as box:
            out = {}
            for case in agent_cases:
                results = []
                for call in case.expect.calls:
                    text, ok = await box.call(ToolCall(name=call.name, arguments=concrete_args(case, call)))
                    assert ok, f"{case.id}: {call.name} failed: {text}"
                    results.append(text)
                out[case.id] = results
            return out

    results = asyncio.run(go())
    for case in agent_cases:
        good, bad = REFERENCE[case.id]
        for answer in good(results[case.id]):
            assert scoring.final_answer_holds(case.expect.final_answer, answer), f"{case.id}: {answer!r} should pass"
        for answer in bad:
            assert not scoring.final_answer_holds(case.expect.final_answer, answer), f"{case.id}: {answer!r} should fail"


def test_git_fixture_is_the_same_repository_every_time():
    loaded = LOADED["mcp_git"]

    async def head_and_status():
        async with McpToolbox(loaded.suite.mcp, loaded.path, loaded.suite.tools) as box:
            log, _ = await box.call(ToolCall(name="git_log", arguments={"repo_path": ".", "max_count": 10}))
            status, _ = await box.call(ToolCall(name="git_status", arguments={"repo_path": "."}))
            outside, ok = await box.call(ToolCall(name="git_status", arguments={"repo_path": "/"}))
            return log, status, (outside, ok)

    first, second = asyncio.run(head_and_status()), asyncio.run(head_and_status())
    assert first[:2] == second[:2]
    assert "Commit: 16dd1d44861e4fc123d7932bd5041c111a56ec15" in first[0] and first[0].count("Commit: ") == 4
    assert "new file:   TODO.md" in first[1] and "modified:   calc.py" in first[1] and "notes.txt" in first[1]
    assert first[2][1] is False and "outside the allowed repository" in first[2][0]  # confined by --repository .


# ---------------------------------------------------------------- single-turn cases run today


def test_single_turn_cases_of_the_mcp_suites_run_through_the_runner():
    """Single-turn cases never execute tools: they run now, whatever their implementations are."""
    answers: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for _, case in ALL_CASES:
        if case.mode == "single":
            user = case.messages[-1].content or ""
            answers[user] = [(c.name, concrete_args(case, c)) for c in case.expect.calls]

    def responder(request: dict[str, Any]):
        calls = answers[request["messages"][-1]["content"]]
        return native_reply(calls) if calls else native_reply([], content="A short answer.")

    with ScriptedServer(model_id="scripted-model", responder=responder) as server:
        for loaded in LOADED.values():
            ids = [c.id for c in loaded.suite.cases if c.mode == "single"]
            samples = run_samples(server.base_url, loaded, ["native"], case_ids=ids)
            wrong = [(s.case_id, s.failure) for s in samples if not s.call_correct]
            assert not wrong and len(samples) == len(ids)
