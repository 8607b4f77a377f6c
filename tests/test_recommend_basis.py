"""The recommendation holds up (issue 21): a tie-break decides only with a basis on both sides and
a difference beyond the noise; cases, not samples, are the unit.

Real HTTP to the scripted server and the real CLI: one server plays several "models" by the
`model` field of each request. Latencies come from the server's delays, never a faked clock.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import case, write_suite
from evalkit.cli import main
from evalkit.report.compare import difference
from evalkit.report.model import load_run
from evalkit.testing.scripted_server import Reply, ScriptedServer, last_user_text

MEASURED_SWEEP = Path(__file__).resolve().parents[1] / "reports" / "measured" / "sweep-20261130-111830-600e"


def hello_cases(n: int) -> list[dict]:
    return [case(f"hello-{i:02d}", f"Say hello to person {i}",
                 {"calls": [{"name": "say_hello", "args": {"name": f"person {i}"}}]}) for i in range(n)]


def responder(answer):
    """`answer(model, number) -> Reply` for the case asking for person `number`."""
    def respond(request: dict) -> Reply:
        found = re.search(r"person (\d+)", last_user_text(request))
        assert found, last_user_text(request)
        return answer(request["model"], int(found.group(1)))

    return respond


def right(number: int, delay: float = 0.0) -> Reply:
    return Reply(tool_calls=[{"name": "say_hello", "arguments": {"name": f"person {number}"}}], delay_s=delay)


@pytest.fixture(autouse=True)
def private_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("EVALKIT_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def run(server: ScriptedServer, suite: Path, out: Path, model: str, *extra: str) -> Path:
    argv = ["run", "--base-url", server.base_url, "--suite", str(suite), "--format", "native", "--out", str(out),
            "--model", model, "--allow-unlisted", "--quiet", "--no-report", *extra]
    assert main(argv) == 0
    (run_dir,) = sorted(p for p in out.iterdir() if (p / "header.json").is_file())
    return run_dir


def recommend_json(capsys, *run_dirs: Path, extra: tuple[str, ...] = ("--min-accuracy", "0")) -> dict:
    capsys.readouterr()
    main(["recommend", *map(str, run_dirs), *extra, "--json"])
    return json.loads(capsys.readouterr().out)


def step(data: dict, criterion: str) -> dict:
    (found,) = [s for s in data["decision"]["steps"] if s["criterion"] == criterion]
    return found


# ---------------------------------------------------------------- tie-breaks need a basis


def test_a_rate_with_no_basis_does_not_decide(tmp_path, capsys):
    # "prose" never returns a parsed call (its 0% hallucinated tools rests on 0 calls); "caller" calls,
    # and calls a tool that was not offered on 10 of 12 cases. Both are poor, tied on call accuracy
    # (0/12 vs 2/12: McNemar p = 0.50). The old rule gave the tie to prose for 0% < 83%.
    suite = write_suite(tmp_path / "suites", hello_cases(12), name="hello12")

    def answer(model: str, number: int) -> Reply:
        if model == "prose":
            return Reply(content=f"I would greet person {number}.")
        return right(number) if number < 2 else Reply(tool_calls=[{"name": "greet", "arguments": {"who": "x"}}])

    with ScriptedServer(responder=responder(answer)) as server:
        prose, caller = run(server, suite, tmp_path / "a", "prose"), run(server, suite, tmp_path / "b", "caller")
    data = recommend_json(capsys, prose, caller)
    by_label = {o["label"]: o for o in data["eligible"]}
    assert by_label["caller [native]"]["hallucination_rate"] == pytest.approx(10 / 12)
    assert by_label["prose [native]"]["hallucination_rate"] == 0.0
    hallucination = step(data, "hallucinated tools")["comparisons"][0]
    assert hallucination["no_basis"] == ["prose [native]"] and hallucination["basis"]["prose [native]"] == 0
    assert hallucination["beyond_noise"] is False
    assert data["decided_by"] != "hallucinated tools"
    assert "no basis: prose [native] has 0 cases with a parsed call" in data["reason"]


def test_a_13_ms_p95_gap_does_not_decide(tmp_path, capsys):
    # Both right on all 12 cases, no hallucination, no no-call cases: only latency is left. Each
    # case's delay is spread over 0-220 ms; "b" answers the cases in another order and its slowest
    # case 30 ms later, so its p95 is about 13 ms higher: well inside the case-to-case spread.
    suite = write_suite(tmp_path / "suites", hello_cases(12), name="hello12")
    delays = {"a": {i: 0.02 * i for i in range(12)},
              "b": {i: 0.02 * ((i + 5) % 12) + (0.03 if (i + 5) % 12 == 11 else 0.0) for i in range(12)}}

    with ScriptedServer(responder=responder(lambda m, n: right(n, delays[m][n]))) as server:
        a = run(server, suite, tmp_path / "a", "a", "--no-cache", "--concurrency", "1")
        b = run(server, suite, tmp_path / "b", "b", "--no-cache", "--concurrency", "1")
    data = recommend_json(capsys, a, b)
    p95 = {o["label"]: o["latency_p95_s"] for o in data["eligible"]}
    gap = p95["b [native]"] - p95["a [native]"]
    assert -0.05 < gap < 0.08, p95  # 13 ms by the delays, give or take the machine's jitter
    latency = step(data, "latency p95")["comparisons"][0]
    assert latency["test"] == "bootstrap" and latency["beyond_noise"] is False
    low, high = latency["interval_s"]
    assert low < 0 < high
    assert data["decided_by"] == "tie" and data["decision"]["still_tied"] == ["a [native]", "b [native]"]
    capsys.readouterr()
    main(["recommend", str(a), str(b), "--min-accuracy", "0"])
    out = capsys.readouterr().out
    assert "A tie: a [native]" in out and "nothing separates them" in out
    assert "latency p95: within the noise" in out and "includes 0" in out
    assert re.search(r"What would change it: 12 shared cases detect about \d+ points", out), out


def test_latency_with_no_live_samples_does_not_decide(tmp_path, capsys):
    # "cached" is run twice: the second run's replies all come from the response cache, so it
    # measured no latency. "slow" is live and 0.2 s slower. The old rule gave the tie to the option
    # with no latency ("0.010 s vs -" read as a win); now latency has no basis and decides nothing.
    suite = write_suite(tmp_path / "suites", hello_cases(10), name="hello10")
    with ScriptedServer(responder=responder(lambda m, n: right(n, 0.2 if m == "slow" else 0.0))) as server:
        run(server, suite, tmp_path / "first", "cached")
        cached = run(server, suite, tmp_path / "again", "cached")
        slow = run(server, suite, tmp_path / "slow", "slow", "--no-cache")
    data = recommend_json(capsys, cached, slow)
    by_label = {o["label"]: o for o in data["eligible"]}
    assert by_label["cached [native]"]["latency_p95_s"] is None and by_label["cached [native]"]["from_cache"] == 10
    latency = step(data, "latency p95")["comparisons"][0]
    assert latency["no_basis"] == ["cached [native]"] and latency["basis"]["cached [native]"] == 0
    assert data["decided_by"] == "tie"
    assert "no basis: cached [native] has 0 cases timed live" in data["reason"]


# ---------------------------------------------------------------- cases are the unit


def test_6_prompts_at_3_distractor_counts_are_6_cases(tmp_path, capsys):
    suite = write_suite(tmp_path / "suites", hello_cases(6), name="hello6")
    # "b" is wrong on case 0 only, at every count: one case apart, not three.
    with ScriptedServer(responder=responder(lambda m, n: right(n + 50 if (m, n) == ("b", 0) else n))) as server:
        extra = ("--distractors", "0", "--distractors", "2", "--distractors", "4")
        a, b = run(server, suite, tmp_path / "a", "a", *extra), run(server, suite, tmp_path / "b", "b", *extra)
    samples_a, samples_b = load_run(a).samples, load_run(b).samples
    assert len(samples_a) == 18
    diff = difference(samples_a, samples_b, "a", "b")
    assert (diff.paired, diff.only_a, diff.only_b, diff.count) == (6, 1, 0, 0)
    assert "of the 6 cases run both ways at +0 distractor tools (+2, +4 compared apart)" in diff.test_text()
    data = recommend_json(capsys, a, b, extra=("--min-accuracy", "0", "--min-samples", "3"))
    assert data["compared_on"]["shared_cases"] == 6 and data["compared_on"]["distractors"] == 0
    assert data["compared_on"]["distractor_counts"] == [0, 2, 4]
    accuracy = step(data, "call accuracy")["comparisons"][0]
    assert accuracy["shared_cases"] == 6 and accuracy["discordant"] == [1, 0]
    assert all(o["n"] == 6 for o in data["eligible"])  # the +0 count's samples only
    at_four = recommend_json(capsys, a, b, extra=("--min-accuracy", "0", "--min-samples", "3", "--distractors", "4"))
    assert at_four["compared_on"]["distractors"] == 4 and at_four["compared_on"]["shared_cases"] == 6
    capsys.readouterr()
    assert main(["recommend", str(a), str(b), "--distractors", "3"]) == 2
    assert "the runs asked no case with 3 distractor tools (they hold +0, +2, +4)" in capsys.readouterr().err


def test_repeats_of_a_case_are_one_case(tmp_path, capsys):
    suite = write_suite(tmp_path / "suites", hello_cases(6), name="hello6")
    with ScriptedServer(responder=responder(lambda m, n: right(n + 50 if (m, n) == ("b", 0) else n))) as server:
        a = run(server, suite, tmp_path / "a", "a", "--repeats", "3", "--no-cache")
        b = run(server, suite, tmp_path / "b", "b", "--repeats", "3", "--no-cache")
    samples_a, samples_b = load_run(a).samples, load_run(b).samples
    assert len(samples_a) == 18
    diff = difference(samples_a, samples_b, "a", "b")
    # One case apart, counted once: McNemar's b = 1, not 3 pairs.
    assert (diff.paired, diff.only_a, diff.only_b, diff.p_value) == (6, 1, 0, 1.0)
    assert "a case's repeats as one" in diff.test_text() and "of the 6 cases run both ways" in diff.test_text()
    data = recommend_json(capsys, a, b)
    assert data["compared_on"]["shared_cases"] == 6
    accuracy = step(data, "call accuracy")["comparisons"][0]
    assert accuracy["shared_cases"] == 6 and accuracy["discordant"] == [1, 0]
    assert "18 samples of 6 cases" in data["reason"]


# ---------------------------------------------------------------- thresholds and the measured sweep


def test_rate_thresholds_take_80_percent_or_0_8_and_refuse_a_bare_80(capsys):
    args = [str(MEASURED_SWEEP), "--json", "--min-accuracy"]
    capsys.readouterr()
    main(["recommend", *args, "80%"])
    percent = json.loads(capsys.readouterr().out)["constraints"]["min_accuracy"]
    main(["recommend", *args, "0.8"])
    fraction = json.loads(capsys.readouterr().out)["constraints"]["min_accuracy"]
    assert percent == fraction == pytest.approx(0.8)
    for bare, meant in (("80", "80%"), ("1.5", "1.5%")):
        assert main(["recommend", str(MEASURED_SWEEP), "--max-hallucination", bare]) == 2
        assert f"did you mean {meant}?" in capsys.readouterr().err


def test_the_issues_example_is_no_longer_decided_by_a_rate_with_no_basis(capsys):
    # `--suite no_tool --suite clarify`: 0.5b [native] parsed no call, so its 0% hallucinated tools
    # decided the old card; on 6 cases nothing separates the two 0.5b options.
    data = recommend_json(capsys, MEASURED_SWEEP, extra=("--min-accuracy", "0", "--suite", "no_tool", "--suite",
                                                         "clarify", "--min-samples", "3"))
    assert data["decided_by"] == "tie"
    hallucination = step(data, "hallucinated tools")
    assert all(c["beyond_noise"] is False for c in hallucination["comparisons"])
    assert "qwen2.5-coder-0.5b [native]" in hallucination["comparisons"][0]["no_basis"]
    assert data["best"]["label"] == "qwen2.5-coder-0.5b [default]"


# ---------------------------------------------------------------- the terminal


def test_a_single_run_ends_with_the_format_verdict_and_the_report_path(tiny_server, tiny_suite, tmp_path, capsys):
    argv = ["run", "--base-url", tiny_server.base_url, "--model", "scripted-model", "--suite", str(tiny_suite), "--out",
            str(tmp_path / "runs"), "--format", "native", "--format", "default", "--no-cache", "--quiet"]
    assert main(argv) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert lines[-2] == "scripted-model: native and default tie at 100.0%: within the noise (McNemar, p = 1.00, 3 cases)"
    assert lines[-1] == f"report: {run_dir / 'report.html'}"
    table = lines[lines.index("model scripted-model:") + 1:lines.index("model scripted-model:") + 4]
    assert table[0].split()[:4] == ["format", "n", "call", "acc"] and "halluc." in table[0] and "p95" in table[0]
    assert all(len(line) <= 100 for line in table) and "100.0%" in table[1]
