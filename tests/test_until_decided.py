"""`evalkit run --until-decided` end to end: the real CLI, real HTTP to the scripted server, which
plays several "models" (it answers by the request's `model`) and counts what each was asked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import case, default_reply, native_reply, request_format, write_suite
from evalkit.cli import main
from evalkit.rundir import read_results, read_samples
from evalkit.testing.scripted_server import Reply, ScriptedServer, last_user_text

N = 60
MODELS = ["good", "other"]  # what the scripted server lists (a sweep refuses names it does not serve)
CASES = [case(f"hello-{i:02d}", f"Say hello to person {i}",
              {"calls": [{"name": "say_hello", "args": {"name": f"person {i}"}}]}) for i in range(N)]


@pytest.fixture
def suite(tmp_path) -> Path:
    return write_suite(tmp_path / "suites", CASES, name="hello60")


def responder(right: dict[str, set[int] | None], calls: dict[str, int]):
    """`right[option]`: the case numbers the option gets right (None: all). The option is the
    model, or the model's format when the model is listed as `model/format`."""

    def respond(request: dict) -> Reply:
        fmt = request_format(request)
        option = f"{request['model']}/{fmt}" if f"{request['model']}/{fmt}" in right else request["model"]
        calls[option] = calls.get(option, 0) + 1
        number = int(re.search(r"person (\d+)", last_user_text(request)).group(1))
        good = right[option] is None or number in right[option]
        call = [("say_hello", {"name": f"person {number}" if good else "nobody"})]
        return native_reply(call) if fmt == "native" else default_reply(call)

    return respond


def sweep(server: ScriptedServer, suite: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--base-url", server.base_url, "--suite", str(suite), "--format", "native", "--out", str(out),
            "--quiet", "--no-cache", "--model", "good", "--model", "other", "--until-decided", *extra]


def the_sweep(out: Path) -> Path:
    (sweep_dir,) = out.iterdir()
    return sweep_dir


def members_of(sweep_dir: Path) -> list[Path]:
    return [d for d in sweep_dir.iterdir() if (d / "header.json").is_file()]


def test_a_far_better_model_is_picked_early(suite, tmp_path, capsys):
    calls: dict[str, int] = {}
    with ScriptedServer(responder=responder({"good": None, "other": set()}, calls), models=MODELS) as server:
        assert main(sweep(server, suite, tmp_path / "runs", "--min-accuracy", "0")) == 0
    out = capsys.readouterr().out
    # No floor: one test; ten one-sided cases settle it (2^10 / 11 >= 20), the first round.
    assert calls == {"good": 10, "other": 10}
    assert "--until-decided: settled after 10 of 60 cases: good [native] beats other [native] by 100 points; " \
           "anytime-valid p = 0.011" in out
    assert "Recommended: good [native]" in out
    decision = json.loads((the_sweep(tmp_path / "runs") / "decision.json").read_text())
    assert (decision["settled"], decision["pick"], decision["cases_run"], decision["rounds"]) == \
        (True, "good [native]", 10, 1)
    # --resume of a settled sweep starts no member again (its server is gone) and says the same.
    assert main(["run", "--resume", str(the_sweep(tmp_path / "runs")), "--quiet"]) == 0
    assert "--until-decided: settled after 10 of 60 cases" in capsys.readouterr().out


def test_the_floor_is_part_of_settled(suite, tmp_path, capsys):
    # With the default 80% floor the winner must also be clear above it: 100% on 35 cases is
    # (3 tests share alpha), 100% on 23 is not. The report covers the cases run, and says why;
    # --resume after a crash in the last round finishes that round only.
    calls: dict[str, int] = {}
    with ScriptedServer(responder=responder({"good": None, "other": set()}, calls), models=MODELS) as server:
        assert main(sweep(server, suite, tmp_path / "runs")) == 0
        out = capsys.readouterr().out
        # A crash in round 4: the other model's last 12 samples lost, decision.json of round 3.
        sweep_dir = the_sweep(tmp_path / "runs")
        (other,) = [d for d in members_of(sweep_dir) if json.loads((d / "header.json").read_text())["model"] == "other"]
        lines = (other / "samples.jsonl").read_text().splitlines()
        (other / "samples.jsonl").write_text("\n".join(lines[:23]) + "\n")
        decision = json.loads((sweep_dir / "decision.json").read_text())
        (sweep_dir / "decision.json").write_text(json.dumps({**decision, "settled": False, "kind": "open",
                                                             "pick": None, "cases_run": 23, "rounds": 3}))
        assert main(["run", "--resume", str(sweep_dir), "--quiet"]) == 0
        assert "settled after 35 of 60 cases" in capsys.readouterr().out
    assert calls == {"good": 35, "other": 35 + 12}
    assert "settled after 35 of 60 cases: good [native] beats other [native] by 100 points" in out
    assert "other [native] is below the 80% floor" in out and "good [native] clears the 80% floor" in out
    md = (sweep_dir / "report.md").read_text(encoding="utf-8")
    assert "**Note:** --until-decided: settled after 35 of 60 cases" in md
    for member in members_of(sweep_dir):
        (overall,) = [a for a in read_results(member).aggregates if a.suite == "*" and a.tag is None]
        assert overall.n == 35


def test_identical_models_run_every_case_and_tie(suite, tmp_path, capsys):
    calls: dict[str, int] = {}
    right = {i for i in range(N) if i % 10}  # 90% each, wrong on the same cases
    with ScriptedServer(responder=responder({"good": right, "other": right}, calls), models=MODELS) as server:
        assert main(sweep(server, suite, tmp_path / "runs")) == 0
    out = capsys.readouterr().out
    assert calls == {"good": N, "other": N}
    assert f"--until-decided: not settled after all {N} cases" in out and "the answer is the fixed run's" in out
    assert "Tied on call accuracy: within the noise of good [native] 90.0%: other [native] 90.0%" in out
    assert "\nA tie: good [native]" in out
    decision = json.loads((the_sweep(tmp_path / "runs") / "decision.json").read_text())
    assert (decision["settled"], decision["kind"], decision["cases_run"]) == (False, "open", N)


def test_one_model_several_formats_stops_early_and_resume_finishes_an_unfinished_round(suite, tmp_path, capsys):
    calls: dict[str, int] = {}
    options = {"m/native": set(range(0, N, 3)), "m/default": None}  # 33% vs 100%
    argv_tail = ["--format", "native", "--format", "default", "--out", str(tmp_path / "runs"), "--quiet",
                 "--no-cache", "--model", "m", "--until-decided", "--min-accuracy", "0.5"]
    with ScriptedServer(responder=responder(options, calls), models=["m"]) as server:
        assert main(["run", "--base-url", server.base_url, "--suite", str(suite)] + argv_tail) == 0
        out = capsys.readouterr().out
        (run_dir,) = (tmp_path / "runs").iterdir()
        decision = json.loads((run_dir / "decision.json").read_text())
        assert decision["settled"] and decision["pick"] == "default"
        assert decision["cases_run"] < N and calls["m/native"] == calls["m/default"] == decision["cases_run"]
        assert f"--until-decided: settled after {decision['cases_run']} of {N} cases: default beats native by" in out
        assert "Recommended: m [default]" in out

        # A crash in the last round: its samples of one format lost, decision.json not yet written.
        samples = list(read_samples(run_dir))
        asked = {s.case_id for s in samples if s.format == "default"}
        kept = [line for line, s in zip((run_dir / "samples.jsonl").read_text().splitlines(), samples)
                if not (s.format == "native" and s.case_id in sorted(asked)[:5])]
        (run_dir / "samples.jsonl").write_text("\n".join(kept) + "\n")
        (run_dir / "decision.json").unlink()
        before = dict(calls)
        assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    assert calls["m/native"] - before["m/native"] == 5 and calls["m/default"] == before["m/default"]
    again = json.loads((run_dir / "decision.json").read_text())
    assert (again["settled"], again["pick"], again["cases_run"]) == (True, "default", decision["cases_run"])


@pytest.mark.parametrize("argv,message", [
    (["--model", "m", "--format", "native"], "--until-decided chooses between options"),
    (["--model", "a", "--model", "b", "--shard", "1/2"], "cannot run one shard"),
])
def test_bad_uses_are_one_line(suite, tmp_path, capsys, argv, message):
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path), "--until-decided", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_min_accuracy_without_until_decided_is_one_line(suite, tmp_path, capsys):
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path), "--min-accuracy", "0.9"]) == 2
    assert "add --until-decided" in capsys.readouterr().err


def test_agent_cases_on_an_mcp_server_run_in_every_round(tmp_path, capsys):
    # The run's MCP servers are stopped at the end of each round's work: the next round starts
    # them again rather than failing its agent samples. Native gets every case right, default
    # every other one: round 1 (10 cases, 5 discordant) cannot settle, round 3 (23) can.
    from test_mcp_agent import TIME_TOOLS, agent_case, agent_responder, mcp_suite

    cases = [agent_case(f"utc-{i:02d}", f"What time is it in UTC? (ask {i})",
                        [{"name": "get_current_time", "args": {"timezone": "Etc/UTC"}}]) for i in range(30)]
    suite = mcp_suite(tmp_path / "suites", cases, {"command": ["python", "-m", "mcp_server_time", "--local-timezone",
                                                               "Etc/UTC"], "isolate": False, "timeout_s": 30},
                      TIME_TOOLS)

    def first_round(request: dict) -> list:
        number = int(re.search(r"ask (\d+)", last_user_text(request)).group(1))
        wrong = request_format(request) == "default" and number % 2
        return [("get_current_time", {"timezone": "Mars/Base" if wrong else "Etc/UTC"})]

    with ScriptedServer(responder=agent_responder(first_round), models=["m"]) as server:
        assert main(["run", "--base-url", server.base_url, "--model", "m", "--suite", str(suite), "--format", "native",
                     "--format", "default", "--out", str(tmp_path / "runs"), "--quiet", "--no-cache",
                     "--until-decided", "--min-accuracy", "0"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    samples = list(read_samples(run_dir))
    decision = json.loads((run_dir / "decision.json").read_text())
    assert decision["rounds"] >= 2 and decision["pick"] == "native"
    assert [s.error for s in samples if s.error] == []
    assert len(samples) == 2 * decision["cases_run"]
