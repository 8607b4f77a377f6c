"""Issue 23, end to end: Kimi K3 and DeepSeek V4.1 replies served unparsed, as a server whose parser
missed the call would (`evalkit run --format native` against a scripted server on 127.0.0.1).

Before their entries these calls were scored `did_not_call`. Now a clean call in the model's own syntax
is `server_parse_lost` (recovered for intent), a broken one `malformed`, a plain answer plain. The reply
texts are fixtures of tests/fixtures/callsyntax/ (each following the family's official source)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import write_suite
from evalkit.cli import main
from evalkit.testing.callsyntax_fixtures import FIXTURES, load
from evalkit.testing.scripted_server import Reply, ScriptedServer

TEXT = {f.id: f for f in load()}
WEATHER = {"name": "get_weather", "args": {"location": "Paris", "unit": "celsius"}}
MODELS = {"moonshotai/Kimi-K3": ("kimi_k3", "kimi_k3/Kimi-K3"),
          "deepseek-ai/DeepSeek-V4.1": ("deepseek", "deepseek/DeepSeek-V4.1")}


def _cases(prefix: str) -> dict[str, tuple[list[dict[str, Any]], str]]:
    return {"clean": ([WEATHER], TEXT[f"{prefix}/single"].text),
            "reasoning-then-call": ([WEATHER], TEXT[f"{prefix}/reasoning_then_call"].text),
            "cut-off": ([WEATHER], TEXT[f"{prefix}/truncated_mid_argument"].text),
            "plain": ([], TEXT[f"{prefix}/plain"].text)}


@pytest.mark.parametrize("model", list(MODELS))
def test_calls_the_server_missed_are_seen(tmp_path, model):
    family, prefix = MODELS[model]
    cases = _cases(prefix)
    tools = json.loads((FIXTURES / "tools.json").read_text(encoding="utf-8"))
    offered = [{"type": "function", "function": {"name": n, "description": n, "parameters": p}} for n, p in tools.items()]
    suite = write_suite(tmp_path / "suites", [
        {"id": cid, "messages": [{"role": "user", "content": f"case:{cid}"}], "expect": {"calls": calls}}
        for cid, (calls, _) in cases.items()], name="newest", tools=offered)

    def respond(request: dict[str, Any]) -> Reply:
        user = [m for m in request["messages"] if m["role"] == "user"][-1]["content"]
        return Reply(content=cases[user.removeprefix("case:")][1])

    with ScriptedServer(model_id=model, responder=respond) as srv:
        assert main(["run", "--base-url", srv.base_url, "--model", model, "--suite", str(suite), "--format", "native",
                     "--out", str(tmp_path / "runs"), "--no-cache", "--quiet", "--no-report"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    got = {d["case_id"]: d for d in map(json.loads, (run_dir / "samples.jsonl").read_text().splitlines())}
    pick = ("failure_kind", "malformed", "intent_correct", "syntax")
    assert {k: got["clean"][k] for k in pick} == dict(failure_kind="server_parse_lost", malformed=True,
                                                      intent_correct=True, syntax=family)
    assert {k: got["reasoning-then-call"][k] for k in pick} == {k: got["clean"][k] for k in pick}
    assert {k: got["cut-off"][k] for k in pick} == dict(failure_kind="malformed", malformed=True,
                                                        intent_correct=False, syntax=family)
    assert {k: got["plain"][k] for k in pick} == dict(failure_kind=None, malformed=False, intent_correct=True,
                                                      syntax=None)


def test_own_family_from_name_and_template():
    from evalkit.callsyntax import own_family

    # Two lines of llama.cpp's models/templates/Kimi-K3.jinja @181a4a8 (macro open_tag, render_assistant).
    k3_template = "{{- '<|open|>' + tag -}}\n    {{- open_tag('tools') -}}"
    assert own_family(None, k3_template) == "kimi_k3"
    assert own_family("Kimi-K3-Instruct-GGUF") == "kimi_k3" and own_family("kimi-k2-instruct") == "kimi_k2"
    assert own_family("DeepSeek-V4.1-Flash") == "deepseek"
