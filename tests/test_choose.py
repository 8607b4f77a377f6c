"""Choosing a model (issue 12), end to end: real HTTP to the scripted server, the real CLI.

One scripted server plays several "models": it answers by the `model` field of each request, so
a sweep over `--model fast --model slow` really sends each model's requests and gets that model's
replies. Latencies are made with the server's delays, never by faking the clock of a run.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import case, write_suite
from evalkit.aggregate import aggregate, cache_note, server_lost_lines
from evalkit.cli import build_parser, main
from evalkit.progress import Progress
from evalkit.report.compare import cases_needed, detectable_difference, difference
from evalkit.rundir import read_results
from evalkit.schema import Sample
from evalkit.testing.scripted_server import Reply, ScriptedServer, last_user_text

# ---------------------------------------------------------------- the suite and the "models"

N_CALL = 10
HELLO_CASES = [case(f"hello-{i:02d}", f"Say hello to person {i}",
                    {"calls": [{"name": "say_hello", "args": {"name": f"person {i}"}}]}) for i in range(N_CALL)]
CHAT_CASES = [case(f"chat-{i}", f"Tell me joke number {i}", {"calls": []}) for i in range(2)]
CASES = HELLO_CASES + CHAT_CASES  # 12 cases: enough samples for the recommendation's default floor (10)


def models_responder(wrong: dict[str, set[int]] | None = None, delay: dict[str, float] | None = None,
                     calls: dict[str, int] | None = None):
    """Every model answers right, except the hello cases listed in `wrong[model]`; `delay[model]`
    seconds before each reply; `calls` counts requests per model."""
    wrong, delay = wrong or {}, delay or {}

    def respond(request: dict) -> Reply:
        model = request["model"]
        if calls is not None:
            calls[model] = calls.get(model, 0) + 1
        text = last_user_text(request)
        found = re.search(r"person (\d+)", text)
        if not found:
            return Reply(content="Why did the chicken cross the road?", delay_s=delay.get(model, 0.0))
        number = int(found.group(1))
        name = f"person {99 if number in wrong.get(model, set()) else number}"
        return Reply(tool_calls=[{"name": "say_hello", "arguments": {"name": name}}], delay_s=delay.get(model, 0.0))

    return respond


@pytest.fixture(autouse=True)
def private_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("EVALKIT_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def suite(tmp_path) -> Path:
    return write_suite(tmp_path / "suites", CASES, name="hello12")


def run_args(base_url: str, suite: Path, out: Path, *models: str) -> list[str]:
    argv = ["run", "--base-url", base_url, "--suite", str(suite), "--format", "native", "--out", str(out), "--quiet",
            "--allow-unlisted"]
    for model in models:
        argv += ["--model", model]
    return argv


def run_dirs_of(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if (p / "header.json").is_file())


def overall(run_dir: Path):
    (agg,) = [a for a in read_results(run_dir).aggregates if a.suite == "*" and a.tag is None]
    return agg


# ---------------------------------------------------------------- a sweep, and a tie decided by latency


def test_sweep_writes_a_run_per_model_and_a_comparison_and_breaks_the_tie_by_latency(suite, tmp_path, capsys):
    # slow is one case better than fast (12/12 vs 11/12): within the noise, so a tie; neither calls
    # an unoffered tool and both get the no-call cases right, so latency p95 decides: fast.
    responder = models_responder(wrong={"fast": {3}}, delay={"slow": 0.25})
    with ScriptedServer(responder=responder, models=["slow", "fast"]) as server:
        assert main(run_args(server.base_url, suite, tmp_path / "runs", "slow", "fast") + ["--no-cache"]) == 0
    out = capsys.readouterr().out
    (sweep_dir,) = (tmp_path / "runs").iterdir()
    assert sweep_dir.name.startswith("sweep-")
    sweep = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    assert [m["model"] for m in sweep["members"]] == ["slow", "fast"]
    members = [sweep_dir / m["run_dir"] for m in sweep["members"]]
    assert [json.loads((d / "header.json").read_text())["model"] for d in members] == ["slow", "fast"]
    assert sorted(run_dirs_of(sweep_dir)) == sorted(members)
    for run_dir in members:
        assert (run_dir / "report.md").is_file() and (run_dir / "results.json").is_file()
    assert overall(members[0]).call_accuracy == 1.0 and overall(members[1]).call_accuracy == pytest.approx(11 / 12)
    for name in ("report.md", "report.html", "failures.md", "leaderboard.csv"):
        assert (sweep_dir / name).is_file(), name
    md = (sweep_dir / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# evalkit comparison: 2 model x format options from 2 runs")
    # The terminal ends with the recommendation, then where the report is.
    lines = out.rstrip().splitlines()
    assert lines[-1] == f"report: {sweep_dir / 'report.html'}"
    # The sweep ends with the card's first line, then the path.
    assert lines[-2] == f"Recommended: fast [native] (run {members[1].name})"
    assert "Tied on call accuracy: within the noise of slow [native] 100.0%: fast [native] 91.7%" in out
    decided = re.search(r"Decided by: latency p95, lower is better: slow \[native\] ([\d.]+) s, fast \[native\] "
                        r"([\d.]+) s \(95% bootstrap interval of the p95 difference over the 12 cases", out)
    assert decided, out
    slow_p95, fast_p95 = float(decided.group(1)), float(decided.group(2))
    assert slow_p95 >= 0.25 and slow_p95 > fast_p95
    # Each model's summary fits 100 columns, in percentages, with hallucinated tools and p95.
    table = out[out.index("model slow:"):].splitlines()[1:4]
    assert table[0].split() == ["format", "n", "call", "acc", "intent", "malformed", "halluc.", "no-call", "p50",
                                "p95", "tok/s"]
    assert "100.0%" in table[1] and all(len(line) <= 100 for line in table)
    # The same card, from the sweep directory, by `evalkit recommend`.
    assert main(["recommend", str(sweep_dir)]) == 0
    assert "Recommended: fast [native]" in capsys.readouterr().out


def test_interrupted_sweep_resumes_where_it_stopped(suite, tmp_path):
    exe = shutil.which("evalkit") or str(Path(sys.executable).with_name("evalkit"))
    assert Path(exe).exists(), "the evalkit console script is not installed (pip install -e .)"
    calls: dict[str, int] = {}
    responder = models_responder(delay={"second": 0.4}, calls=calls)
    out = tmp_path / "runs"
    with ScriptedServer(responder=responder, models=["first", "second", "third"]) as server:
        argv = [exe, *run_args(server.base_url, suite, out, "first", "second", "third"), "--concurrency", "1",
                "--no-cache"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        sweep_dir = None
        while time.monotonic() < deadline:  # stop it part way through the second model
            sweeps = list(out.glob("sweep-*/sweep.json")) if out.exists() else []
            if sweeps:
                sweep_dir = sweeps[0].parent
                second = json.loads(sweeps[0].read_text())["members"][1]["run_dir"]
                if second and (sweep_dir / second / "samples.jsonl").is_file() and \
                        (sweep_dir / second / "samples.jsonl").read_text().count("\n") >= 2:
                    break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert sweep_dir is not None
        assert f"evalkit run --resume {sweep_dir}" in err  # the hint names the sweep, not the member
        state = json.loads((sweep_dir / "sweep.json").read_text())
        assert state["members"][2]["run_dir"] is None  # the third never started
        assert not (sweep_dir / "report.md").exists()
        done_first = calls["first"]
        assert done_first == len(CASES)
        second_dir = sweep_dir / state["members"][1]["run_dir"]
        logged = (second_dir / "samples.jsonl").read_text().count("\n")
        asked_before = calls["second"]

        assert main(["run", "--resume", str(sweep_dir), "--quiet"]) == 0
    state = json.loads((sweep_dir / "sweep.json").read_text())
    members = [sweep_dir / m["run_dir"] for m in state["members"]]
    assert [json.loads((d / "header.json").read_text())["model"] for d in members] == ["first", "second", "third"]
    assert calls["first"] == done_first  # the finished member asked nothing again
    assert calls["second"] - asked_before == len(CASES) - logged  # the interrupted one asked only what was missing
    assert calls["third"] == len(CASES)
    for run_dir in members:
        assert overall(run_dir).n == len(CASES)
    assert (sweep_dir / "report.md").read_text().startswith("# evalkit comparison: 3 model x format options")
    assert main(["run", "--resume", str(sweep_dir), "--model", "x"]) == 2  # the models come from sweep.json


def test_a_model_twice_is_one_line(suite, tmp_path, capsys):
    with ScriptedServer(responder=models_responder()) as server:
        assert main(run_args(server.base_url, suite, tmp_path / "runs", "a", "a")) == 2
    err = capsys.readouterr().err
    assert err.strip() == "evalkit: error: --model a is given twice; a sweep runs each model once"


# ---------------------------------------------------------------- mixed case sets, and nothing qualifying


def test_mixed_case_sets_are_restricted_to_the_shared_cases_or_refused(suite, tmp_path, capsys):
    other = write_suite(tmp_path / "other", [case("cmp", "Which is larger, 8.9 or 8.11?")], name="other")
    with ScriptedServer(responder=models_responder(wrong={"b": {7}})) as server:
        assert main(run_args(server.base_url, suite, tmp_path / "a", "a") + ["--no-report"]) == 0
        assert main(run_args(server.base_url, suite, tmp_path / "b", "b") + ["--limit", "10", "--no-report"]) == 0
        assert main(run_args(server.base_url, other, tmp_path / "c", "c") + ["--no-report"]) == 0
    (run_a,), (run_b,), (run_c,) = run_dirs_of(tmp_path / "a"), run_dirs_of(tmp_path / "b"), run_dirs_of(tmp_path / "c")
    capsys.readouterr()
    code = main(["recommend", str(run_a), str(run_b), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["compared_on"] == {"shared_cases": 10, "restricted": True,
                                   "cases_per_run": {run_a.name: 12, run_b.name: 10},
                                   "distractors": 0, "distractor_counts": [0]}
    # a's figures are over the 10 shared cases only (its two chat cases are left out)
    (a,) = [o for o in data["eligible"] + data["ruled_out"] if o["run_id"] == run_a.name]
    assert a["n"] == 10 and a["no_call_accuracy"] is None
    assert code == 0
    main(["recommend", str(run_a), str(run_b)])
    text = capsys.readouterr().out
    assert (f"Compared on only the 10 cases every option ran, as the runs ran different cases: "
            f"{run_a.name} ran 12 (2 left out), {run_b.name} ran 10.") in text
    # No case in common: one line, no card.
    assert main(["recommend", str(run_a), str(run_c)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("evalkit: error: no recommendation: the runs share no cases")
    assert f"{run_a.name} ran 12" in line and f"{run_c.name} ran 1" in line


def test_recommend_exits_1_when_no_option_is_ready(suite, tmp_path, capsys):
    with ScriptedServer(responder=models_responder(wrong={"weak": {0, 1, 2, 3}})) as server:
        assert main(run_args(server.base_url, suite, tmp_path / "runs", "weak") + ["--no-report"]) == 0
    (run_dir,) = run_dirs_of(tmp_path / "runs")
    capsys.readouterr()
    assert main(["recommend", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert "None is ready for deployment: no option meets the constraints." in out
    assert "call accuracy: >= 80.0%" in out and "--min-accuracy (default 80%)" in out
    assert "- weak [native] (the closest pick): below accuracy: call accuracy 66.7% < 80.0%" in out
    assert main(["recommend", str(run_dir), "--min-accuracy", "60%"]) == 0
    assert "Recommended: weak [native]" in capsys.readouterr().out
    # the new constraints, each with its reason
    assert main(["recommend", str(run_dir), "--min-accuracy", "0", "--min-no-call-accuracy", "1",
                 "--max-hallucination", "0"]) == 0
    assert main(["recommend", str(run_dir), "--min-accuracy", "0", "--max-latency-p95", "0.000001"]) == 1
    assert "above latency: latency p95" in capsys.readouterr().out


# ---------------------------------------------------------------- cache honesty


def test_a_cached_rerun_says_from_cache_and_reports_no_latency(suite, tmp_path, capsys):
    with ScriptedServer(responder=models_responder(delay={"m": 0.05})) as server:
        assert main(run_args(server.base_url, suite, tmp_path / "live", "m")) == 0
        live_out = capsys.readouterr().out
        hits = server.hits
        assert main(run_args(server.base_url, suite, tmp_path / "again", "m")) == 0
        out = capsys.readouterr().out
        assert server.hits == hits  # nothing was asked again
    assert "every reply came from the response cache" not in live_out and "from cache 12/12" not in live_out
    assert ("from cache 12/12: every reply came from the response cache, so this run measured no latency, TTFT "
            "or tokens/s (the verdicts stand); rerun with --no-cache to time the model") in out
    (live,), (cached,) = run_dirs_of(tmp_path / "live"), run_dirs_of(tmp_path / "again")
    first, again = overall(live), overall(cached)
    assert first.from_cache == 0 and first.latency_p50_s >= 0.05
    assert again.from_cache == 12 and again.n == 12
    assert again.call_accuracy == first.call_accuracy == 1.0  # cached samples keep their verdicts
    assert again.latency_p50_s is None and again.latency_p95_s is None
    assert again.ttft_p50_s is None and again.tokens_per_s is None
    md = (cached / "report.md").read_text(encoding="utf-8")
    rows = [line for line in md.splitlines() if line.startswith("|   1 | m")]
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[13:18] == ["12/12", "-", "-", "-", "-"]  # from cache, lat p50, lat p95, TTFT, tok/s
    runs_lines = md.split("## Runs")[1].splitlines()
    runs_head = [c.strip() for c in next(ln for ln in runs_lines if ln.startswith("| run ")).strip("|").split("|")]
    runs_row = [c.strip() for c in next(ln for ln in runs_lines if ln.startswith(f"| {cached.name}")).strip("|").split("|")]
    assert runs_row[runs_head.index("from cache")] == "12/12"  # the Runs table says it too
    assert "latency not measured (from cache 12/12)" in md
    capsys.readouterr()
    assert main(["recommend", str(live), str(cached), "--max-latency-p95", "10"]) == 0
    text = capsys.readouterr().out
    assert f"m [native] ({cached.name}): above latency: no latency measured" in text


def test_terminal_notes_count_each_sample_once_with_distractors():
    # --distractors adds a row per count beside the overall one; the notes must not add those up too.
    samples = [Sample(suite="s", case_id=f"c{i}", format="native", repeat=0, model="m", distractors=count,
                      cached=i == 0, call_correct=False, malformed=True, failure_kind="server_parse_lost")
               for i in range(2) for count in (0, 2)]
    results = aggregate(samples, "run", "m")
    assert len([a for a in results.aggregates if a.suite == "*" and a.tag is None]) == 3  # overall, +0, +2
    assert cache_note(results).startswith("from cache 2/4: latency, TTFT and tokens/s are over the 2 live samples")
    (line,) = server_lost_lines(results.aggregates, "hermes")
    assert "lost 4 of 4 calls" in line


# ---------------------------------------------------------------- noise


def test_repeats_report_the_flip_rate_beside_pass_k(suite, tmp_path):
    asked: dict[str, int] = {}
    steady = models_responder()

    def flaky(request: dict) -> Reply:
        text = last_user_text(request)
        asked[text] = asked.get(text, 0) + 1
        if "person 5" in text and asked[text] % 2 == 0:  # every second ask of one case goes wrong
            return Reply(tool_calls=[{"name": "say_hello", "arguments": {"name": "someone"}}])
        return steady(request)

    with ScriptedServer(responder=flaky) as server:
        argv = run_args(server.base_url, suite, tmp_path / "runs", "m") + ["--repeats", "3", "--no-cache",
                                                                          "--concurrency", "1"]
        assert main(argv) == 0
    (run_dir,) = run_dirs_of(tmp_path / "runs")
    agg = overall(run_dir)
    assert agg.flip_rate == pytest.approx(1 / 12)
    assert agg.pass_hat_k["3"] == pytest.approx(11 / 12)
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "m [native] 91.7% (k=3), flip rate 8.3%" in md


def test_cases_needed_and_the_smallest_detectable_difference():
    # The README's table: 5 points apart at alpha 0.05, power 0.8.
    assert cases_needed(0.05, discordant=0.10) == 312
    assert cases_needed(0.05, discordant=0.20) == 626
    assert cases_needed(0.05, accuracy=0.5) == 1570
    assert cases_needed(0.05, accuracy=0.9) == 566
    # detectable_difference inverts cases_needed
    for psi in (0.05, 0.1, 0.3):
        n = cases_needed(0.08, discordant=psi)
        assert detectable_difference(n, discordant=psi) == pytest.approx(0.08, abs=0.002)
    assert detectable_difference(cases_needed(0.1, accuracy=0.7), accuracy=0.7) == pytest.approx(0.1, abs=0.002)
    with pytest.raises(ValueError):
        cases_needed(0.5, discordant=0.1)
    a = [Sample(suite="s", case_id=f"c{i}", format="native", repeat=0, model="a", call_correct=i < 20)
         for i in range(32)]
    b = [Sample(suite="s", case_id=f"c{i}", format="native", repeat=0, model="b", call_correct=i < 18 or i == 30)
         for i in range(32)]
    diff = difference(a, b, "a", "b")
    assert diff.test == "mcnemar" and (diff.only_a, diff.only_b) == (2, 1)
    assert diff.detectable == pytest.approx(detectable_difference(32, discordant=3 / 32))
    assert ("with 32 paired cases, the smallest difference this test detects is about "
            f"{diff.detectable * 100:.0f} points (alpha 0.05, power 0.8, paired") in diff.sentence()


# ---------------------------------------------------------------- asking instead of inventing


def test_clarify_over_the_wire_scores_invented_arguments_and_asking(tmp_path, capsys):
    def model(request: dict) -> Reply:
        text = last_user_text(request)
        if text == "When will my order arrive?":
            return Reply(tool_calls=[{"name": "get_delivery_date", "arguments": {"order_id": "12345"}}])
        if "4471" in text:
            return Reply(tool_calls=[{"name": "get_delivery_date", "arguments": {"order_id": "4471"}}])
        if "东京" in text and "机票" not in text:
            return Reply(tool_calls=[{"name": "get_current_weather", "arguments": {"location": "东京"}}])
        if text == "Remind me to call the dentist.":
            return Reply(content="OK, I will remind you.")  # no call, but it does not ask
        if "Tokyo" in text:  # a call with a value the user gave: a call, not an invention
            return Reply(tool_calls=[{"name": "book_flight", "arguments": {
                "origin": "Tokyo", "destination": "Tokyo", "date": "Tokyo"}}])
        return Reply(content="Could you tell me the order number, the city, the email address, the account, "
                             "the date, what time, and the amount? 请问订单号、城市、邮箱、账号、哪天、几点、金额？")

    with ScriptedServer(responder=model) as server:
        assert main(["run", "--base-url", server.base_url, "--model", "m", "--allow-unlisted", "--suite", "clarify",
                     "--format", "native",
                     "--out", str(tmp_path / "runs"), "--quiet", "--no-cache"]) == 0
    (run_dir,) = run_dirs_of(tmp_path / "runs")
    samples = {s["case_id"]: s for s in map(json.loads, (run_dir / "samples.jsonl").read_text().splitlines())}
    assert len(samples) == 16
    invented = samples["clarify-delivery-no-order-en"]
    assert invented["failure_kind"] == "invented_argument" and not invented["call_correct"]
    assert invented["failure_detail"] == ('get_delivery_date.order_id="12345": not given anywhere in the '
                                          'conversation')
    assert samples["clarify-flight-no-date-en"]["failure_kind"] == "called_when_should_not"
    silent = samples["clarify-reminder-no-time-en"]
    assert silent["failure_kind"] == "final_answer" and silent["final_answer_ok"] is False
    asked = samples["clarify-weather-no-location-zh"]
    assert asked["call_correct"] and asked["final_answer_ok"] is True
    assert samples["clarify-control-delivery-given-en"]["call_correct"]
    assert samples["clarify-control-weather-given-zh"]["call_correct"]
    assert sum(s["call_correct"] for s in samples.values()) == 13
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    kinds = report.split("## Failure kinds")[1].split("##")[0]
    assert "invented argument" in kinds and "- invented argument: a call carries a value the user never gave" in kinds

    # `evalkit rescore` scores the stored replies the same way: the text check and invented_argument included.
    stored = (run_dir / "samples.jsonl").read_text(encoding="utf-8")
    forgotten = []
    for line in stored.splitlines():
        sample = json.loads(line)
        if sample["case_id"] in ("clarify-delivery-no-order-en", "clarify-reminder-no-time-en"):
            sample |= {"call_correct": True, "intent_correct": True, "failure_kind": None, "failure_detail": None}
        sample["final_answer_ok"] = None
        forgotten.append(json.dumps(sample, ensure_ascii=False))
    (run_dir / "samples.jsonl").write_text("\n".join(forgotten) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["rescore", str(run_dir), "--no-report"]) == 0
    assert "invented_argument: 1" in capsys.readouterr().out
    rescored = {s["case_id"]: s for s in map(json.loads, (run_dir / "samples.jsonl").read_text().splitlines())}
    assert rescored == samples


# ---------------------------------------------------------------- the terminal and the help


def test_progress_outside_a_terminal_is_a_line_every_few_seconds():
    now = [0.0]
    stream = io.StringIO()
    bar = Progress(12, "m", stream=stream, every=5.0, clock=lambda: now[0])
    for second in range(12):
        now[0] = float(second)
        bar.update(Sample(suite="s", case_id=f"c{second}", format="native", repeat=0, model="m",
                          cached=second < 3, error="boom" if second == 7 else None))
    bar.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines == [
        "m: 6/12 samples (50%), 3 from cache, 5 s",
        "m: 11/12 samples (92%), 1 errors, 3 from cache, 10 s",
        "m: 12/12 samples (100%), 1 errors, 3 from cache, 11 s",
    ]


def test_a_run_into_a_pipe_writes_lines_not_carriage_returns(suite, tmp_path, capsys):
    with ScriptedServer(responder=models_responder()) as server:
        argv = [a for a in run_args(server.base_url, suite, tmp_path / "runs", "m") if a != "--quiet"]
        assert main(argv + ["--no-report", "--no-cache"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "m: 12/12 samples (100%)" in err


def test_every_run_option_says_its_default():
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    options = [a for a in run._actions if a.dest != "help"]
    assert len(options) > 20
    missing = [a.option_strings[0] for a in options if "default" not in (a.help or "")]
    assert missing == []


def test_a_sweep_checks_its_options_before_its_directory_exists(suite, tmp_path, capsys):
    # The run's own checks used to come only with the first member's run, after the sweep
    # directory was made: an unwritable --out was a traceback, a bad --base-url an orphan sweep.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with ScriptedServer(responder=models_responder()) as server:
        assert main(run_args(server.base_url, suite, blocker / "runs", "a", "b")) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"evalkit: error: --out {blocker / 'runs'}: cannot write there") and "\n" not in err
        out = tmp_path / "runs"
        assert main(run_args("ftp://127.0.0.1/v1", suite, out, "a", "b")) == 2
        assert capsys.readouterr().err.strip().startswith("evalkit: error: --base-url 'ftp://127.0.0.1/v1'")
        assert not out.exists()
        # --shard with several models is refused in one line, not silently ignored.
        assert main([*run_args(server.base_url, suite, out, "a", "b"), "--shard", "1/2"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == ("evalkit: error: --shard splits one model's run; shard each model's run on its own "
                       "(evalkit run --model M --shard i/n)")
        assert not out.exists() and server.hits == 0
