"""Issue 23, end to end: a model writes its calls in a syntax no family knows.

`evalkit run --format native` against a scripted server on 127.0.0.1 that returns the call text in
`content` with no `tool_calls`: the safety net must score it `malformed` with `syntax: unknown` (never
`did_not_call`), recover it for intent, keep prose that names a tool plain, and the report must count
`syntax: unknown` per option and say which family is missing when the model's own family is unknown.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import write_suite
from evalkit.cli import main
from evalkit.testing.callsyntax_fixtures import FIXTURES
from evalkit.testing.scripted_server import Reply, ScriptedServer

WEATHER = {"name": "get_weather", "args": {"location": "Paris", "unit": "celsius"}}
INVENTED = '<<get_weather>> <location>Paris</location> <unit>celsius</unit>'  # written for this test
CASES: dict[str, tuple[list[dict[str, Any]], str, dict[str, Any]]] = {
    "invented": ([WEATHER], INVENTED, dict(failure_kind="malformed", malformed=True, call_correct=False,
                                           intent_correct=True, syntax="unknown")),
    "prose": ([WEATHER], "I could use get_weather if you tell me the city.", dict(
        failure_kind="did_not_call", malformed=False, intent_correct=False, syntax=None)),
    "no-call-wanted": ([], INVENTED, dict(failure_kind="malformed", malformed=True, call_correct=False,
                                          syntax="unknown")),
}


def _run(root: Path, model: str) -> Path:
    tools = json.loads((FIXTURES / "tools.json").read_text(encoding="utf-8"))
    offered = [{"type": "function", "function": {"name": n, "description": n, "parameters": p}}
               for n, p in tools.items()]
    cases = [{"id": cid, "messages": [{"role": "user", "content": f"case:{cid}"}], "expect": {"calls": calls}}
             for cid, (calls, _, _) in CASES.items()]
    suite = write_suite(root / "suites", cases, name="net", tools=offered)

    def respond(request: dict[str, Any]) -> Reply:
        user = [m for m in request["messages"] if m["role"] == "user"][-1]["content"]
        return Reply(content=CASES[user.removeprefix("case:")][1])

    with ScriptedServer(model_id=model, responder=respond) as srv:
        code = main(["run", "--base-url", srv.base_url, "--model", model, "--suite", str(suite), "--format", "native",
                     "--out", str(root / "runs"), "--no-cache", "--quiet"])
    assert code == 0
    (run_dir,) = (root / "runs").iterdir()
    return run_dir


@pytest.fixture(scope="module")
def unknown_model(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("net"), "acme-nova-7b")  # no family's name or template


def test_each_reply_is_scored_by_the_net(unknown_model):
    samples = {d["case_id"]: d for d in map(json.loads, (unknown_model / "samples.jsonl").read_text().splitlines())}
    for cid, (_, _, want) in CASES.items():
        assert {k: samples[cid][k] for k in want} == want, samples[cid]["failure_detail"]
    assert samples["invented"]["failure_detail"] == (
        "unknown call syntax in the reply: a call of get_weather (location, unit) in a syntax no family knows")


def test_report_counts_unknown_syntax_and_names_the_missing_family(unknown_model):
    md = (unknown_model / "report.md").read_text(encoding="utf-8")
    line = ("acme-nova-7b [native]: 2 of 3 replies held a call in a syntax no family knows (syntax: unknown; "
            "scored malformed, e.g. invented, no-call-wanted: see the failing cases). No family in evalkit's table "
            "matches acme-nova-7b (its name or chat template): its call syntax is the one missing; file it with "
            "one of these replies.")
    assert f"**Note:** {line}" in md
    assert "syntax no family knows" in (unknown_model / "report.html").read_text(encoding="utf-8")
    failing = (unknown_model / "failures.md").read_text(encoding="utf-8")
    assert "a call of get_weather (location, unit) in a syntax no family knows" in failing  # the example


def test_a_known_model_outside_its_own_family(tmp_path):
    run_dir = _run(tmp_path, "qwen2.5-coder-0.5b")
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "Its own family is hermes: these replies are outside it." in md
    assert "is the one missing" not in md
