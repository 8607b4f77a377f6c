"""Issue 11, end to end: a server returns a model's raw call text in `content` with no `tool_calls`.

`evalkit run --format native` (the real command line, against a scripted server on 127.0.0.1)
must tell a clean call in the model's own syntax that the server's parser lost
(`server_parse_lost`) from a call the model wrote in a foreign syntax or broke (`malformed`),
recover what it meant for intent accuracy, record each reply's `syntax`, and say it in one line
in report.md, report.html and the terminal. Then `evalkit rescore` on a copy of that run.

The reply texts are fixtures of tests/fixtures/callsyntax/ (each sourced from a chat template or
an engine's tests), never typed here.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import write_suite
from evalkit.cli import main
from evalkit.rescore import VERDICT_FIELDS
from evalkit.testing.callsyntax_fixtures import FIXTURES, load
from evalkit.testing.scripted_server import Reply, ScriptedServer

MODEL = "qwen2.5-coder-0.5b"  # its own call syntax is Hermes `<tool_call>` (callsyntax.own_family)
TEXT = {f.id: f for f in load()}
OWN_CLEAN = TEXT["hermes/Qwen-Qwen2.5-7B-Instruct/single"]
FOREIGN = TEXT["mistral/Mistral-Small-3.2-24B-Instruct-2506/single"]
OWN_BROKEN = TEXT["hermes/Qwen-Qwen2.5-7B-Instruct/truncated_mid_argument"]
IN_REASONING = TEXT["hermes/Qwen-Qwen3-0.6B/call_only_in_reasoning"]
WEATHER = {"name": "get_weather", "args": {"location": "Paris", "unit": "celsius"}}
LOST_LINE = (f"{MODEL} [native]: the server's parser lost 1 of 2 calls that the model wrote correctly in hermes "
             "syntax: check the chat template, or use --format default")

# case id -> (expected calls, the server's reply, the verdicts wanted)
CASES: dict[str, tuple[list[dict[str, Any]], Reply, dict[str, Any]]] = {
    "own-clean": ([WEATHER], Reply(content=OWN_CLEAN.text), dict(
        failure_kind="server_parse_lost", malformed=True, call_correct=False, intent_correct=True, syntax="hermes")),
    "foreign": ([WEATHER], Reply(content=FOREIGN.text), dict(
        failure_kind="malformed", malformed=True, call_correct=False, intent_correct=True, syntax="mistral")),
    "own-broken": ([WEATHER], Reply(content=OWN_BROKEN.text), dict(
        failure_kind="malformed", malformed=True, call_correct=False, intent_correct=False, syntax="hermes")),
    "reasoning-only": ([WEATHER], Reply(content=IN_REASONING.text), dict(
        failure_kind="did_not_call", malformed=False, call_correct=False, intent_correct=False, syntax="hermes")),
    "no-call-but-lost": ([], Reply(content=OWN_CLEAN.text), dict(
        failure_kind="called_when_should_not", malformed=True, call_correct=False, intent_correct=False,
        syntax="hermes")),
    "parsed": ([WEATHER], Reply(tool_calls=[{"name": "get_weather", "arguments": {"location": "Paris",
                                                                               "unit": "celsius"}}]), dict(
        failure_kind=None, malformed=False, call_correct=True, intent_correct=True, syntax=None)),
}


def _responder(request: dict[str, Any]) -> Reply:
    user = [m for m in request["messages"] if m["role"] == "user"][-1]["content"]
    return CASES[user.removeprefix("case:")][1]


def _suite(directory: Path) -> Path:
    tools = json.loads((FIXTURES / "tools.json").read_text(encoding="utf-8"))
    offered = [{"type": "function", "function": {"name": name, "description": name, "parameters": params}}
               for name, params in tools.items()]
    cases = [{"id": cid, "messages": [{"role": "user", "content": f"case:{cid}"}], "expect": {"calls": calls}}
             for cid, (calls, _, _) in CASES.items()]
    return write_suite(directory, cases, name="lost", tools=offered)


def _samples(run_dir: Path) -> dict[str, dict[str, Any]]:
    lines = (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    return {d["case_id"]: d for d in map(json.loads, lines)}


def _overall(run_dir: Path) -> dict[str, Any]:
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    (agg,) = [a for a in results["aggregates"] if a["suite"] == "*" and a["tag"] is None]
    return agg


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path, str]:
    """One real `evalkit run --format native` against the scripted server: (run dir, suite, stdout)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("lost")
    suite = _suite(root / "suites")
    out = io.StringIO()
    with ScriptedServer(model_id=MODEL, responder=_responder) as srv, contextlib.redirect_stdout(out):
        code = main(["run", "--base-url", srv.base_url, "--model", MODEL, "--suite", str(suite), "--format", "native",
                     "--out", str(root / "runs"), "--no-cache", "--quiet"])
    assert code == 0
    (run_dir,) = (root / "runs").iterdir()
    return run_dir, suite, out.getvalue()


@pytest.mark.parametrize("case_id", list(CASES))
def test_native_run_attributes_each_reply(run, case_id):
    sample = _samples(run[0])[case_id]
    want = CASES[case_id][2]
    assert {k: sample[k] for k in want} == want, sample["failure_detail"]
    assert sample["error"] is None


def test_the_details_say_who_lost_what_and_where(run):
    samples = _samples(run[0])
    assert "clean hermes call" in samples["own-clean"]["failure_detail"]
    assert "server's parser did not return it" in samples["own-clean"]["failure_detail"]
    assert samples["reasoning-only"]["failure_detail"] == "hermes call syntax in the reasoning only (not in the answer)"
    assert samples["foreign"]["failure_detail"].startswith("mistral call syntax in the reply")


def test_results_count_the_lost_calls(run):
    agg = _overall(run[0])
    assert (agg["n"], agg["server_parse_lost"], agg["clean_calls"]) == (6, 1, 2)
    assert agg["call_accuracy"] == pytest.approx(1 / 6)
    assert agg["intent_accuracy"] == pytest.approx(3 / 6)  # parsed, own-clean, foreign


def test_report_and_terminal_say_it_in_one_line(run):
    run_dir, _, stdout = run
    assert stdout.count(LOST_LINE) == 1
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert f"**Note:** {LOST_LINE}" in md
    assert md.index(LOST_LINE) < md.index("## Runs")  # said before anything else
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "the server&#x27;s parser lost 1 of 2 calls" in html


def test_no_line_when_nothing_was_lost(tmp_path, capsys):
    suite = _suite(tmp_path / "suites")
    parsed = CASES["parsed"][1]
    with ScriptedServer(model_id=MODEL, responder=lambda _request: parsed) as srv:
        code = main(["run", "--base-url", srv.base_url, "--model", MODEL, "--suite", str(suite), "--format", "native",
                     "--out", str(tmp_path / "runs"), "--no-cache", "--quiet", "--no-report"])
    assert code == 0
    out = capsys.readouterr().out
    assert "call acc" in out and "server's parser lost" not in out
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (_overall(run_dir)["server_parse_lost"], _overall(run_dir)["clean_calls"]) == (0, 6)


# ---------------------------------------------------------------- evalkit rescore


def _as_an_older_evalkit_wrote_it(run_dir: Path) -> None:
    """Stored verdicts from before issue 11: the lost call filed as malformed in the legacy
    `failure` string, no `syntax` recorded; results.json without the new counts."""
    lines = (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    old = []
    for line in lines:
        d = json.loads(line)
        d.pop("syntax")
        kind, detail = d.pop("failure_kind"), d.pop("failure_detail")
        if d["case_id"] == "own-clean":
            kind, detail = "malformed", "unparsed call syntax in the reply: qwen"
        d["failure"] = f"{kind}: {detail}" if kind and detail else kind
        old.append(json.dumps(d, ensure_ascii=False, separators=(",", ":")))
    (run_dir / "samples.jsonl").write_text("\n".join(old) + "\n", encoding="utf-8")
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    for agg in results["aggregates"]:
        agg.pop("server_parse_lost"), agg.pop("clean_calls")
    (run_dir / "results.json").write_text(json.dumps(results), encoding="utf-8")
    (run_dir / "report.md").write_text("# an old report\n", encoding="utf-8")


def _copy(run, tmp_path: Path) -> Path:
    copy = tmp_path / run[0].name
    shutil.copytree(run[0], copy)
    return copy


def test_rescore_brings_an_old_run_up_to_date_and_keeps_every_other_field(run, tmp_path, capsys):
    copy = _copy(run, tmp_path)
    _as_an_older_evalkit_wrote_it(copy)
    before = {d["case_id"]: d for d in map(json.loads, (copy / "samples.jsonl").read_text().splitlines())}
    # A line torn by a crash at the end stays as it was.
    with open(copy / "samples.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"suite":"lost","case_id":"tor')

    assert main(["rescore", str(copy)]) == 0
    line = capsys.readouterr().out.strip()
    # The correct `parsed` sample had no syntax to record and no verdict to change.
    assert line == (f"{copy}: 5 of 6 samples changed: malformed → server_parse_lost: 1; call_correct unchanged; "
                    "intent_correct unchanged; malformed unchanged; syntax recorded on 5")

    text = (copy / "samples.jsonl").read_text(encoding="utf-8")
    assert text.endswith('\n{"suite":"lost","case_id":"tor')
    after = {d["case_id"]: d for d in map(json.loads, text.splitlines()[:-1])}
    fresh = _samples(run[0])
    for cid, sample in after.items():
        assert "failure" not in sample
        for key in ("failure_kind", "failure_detail", "syntax", "malformed", "intent_correct", "call_correct"):
            assert sample[key] == fresh[cid][key], (cid, key)
        kept = set(before[cid]) - set(VERDICT_FIELDS) - {"failure"}
        assert kept >= {"raw", "request", "calls", "latency_s", "endpoint", "final_answer"}
        assert {k: sample[k] for k in kept} == {k: before[cid][k] for k in kept}, cid
    assert (_overall(copy)["server_parse_lost"], _overall(copy)["clean_calls"]) == (1, 2)
    assert LOST_LINE in (copy / "report.md").read_text(encoding="utf-8")

    # Rescoring again moves nothing and leaves samples.jsonl byte for byte.
    assert main(["rescore", str(copy), "--no-report"]) == 0
    assert "6 samples, nothing moved" in capsys.readouterr().out
    assert (copy / "samples.jsonl").read_text(encoding="utf-8") == text


def test_rescore_refuses_a_run_whose_suite_changed_and_touches_nothing(run, tmp_path, capsys):
    copy = _copy(run, tmp_path)
    _as_an_older_evalkit_wrote_it(copy)
    header = json.loads((copy / "header.json").read_text(encoding="utf-8"))
    changed = tmp_path / "changed.yaml"
    data = yaml.safe_load(Path(run[1]).read_text(encoding="utf-8"))
    data["description"] += " (edited)"
    changed.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    header["suites"][0]["path"] = str(changed)  # the suite file the run used, edited since
    (copy / "header.json").write_text(json.dumps(header), encoding="utf-8")
    files = {p.name: p.read_bytes() for p in copy.iterdir()}

    assert main(["rescore", str(copy)]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{copy}: not rescored: suite lost ({changed}, sha256 {header['suites'][0]['sha256'][:12]}) changed "
                   "since the run or is gone; the run is left as it was"]
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == files

    os.remove(changed)  # gone altogether: the same refusal
    assert main(["rescore", str(copy), "--dry-run"]) == 2
    assert "not rescored: suite lost" in capsys.readouterr().out


def test_an_interrupted_rescore_leaves_the_old_samples_whole(run, tmp_path, monkeypatch):
    copy = _copy(run, tmp_path)
    _as_an_older_evalkit_wrote_it(copy)
    old = (copy / "samples.jsonl").read_bytes()

    def crash(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr("evalkit.rundir.os.replace", crash)
    assert main(["rescore", str(copy)]) == 130  # Ctrl-C while samples.jsonl is being replaced
    assert (copy / "samples.jsonl").read_bytes() == old
    assert sorted(p.name for p in copy.iterdir() if p.name.startswith(".")) == []  # no temporary file left
