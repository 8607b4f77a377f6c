"""Reports over real run directories: fake models answer over the wire from the scripted server.

Four fake "models" (their replies are scripted per case from the suites' own expectations):

* alpha-7b: good in native (two wrong values); in default it wraps some calls in a ```json fence
  (malformed, intent right) and breaks the JSON of others (malformed, intent lost);
* beta-3b: writes `<tool_call>` text in native that the server does not parse (malformed), and is
  perfect in default: native vs default is clearly different;
* gamma-1b: slow (0.4 s per reply), and makes the very same mistakes in both formats: native vs
  default is clearly equal;
* delta-2b: fast and right, but its server fails (HTTP 500) on more than half the cases.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import shutil
import zlib
from pathlib import Path

import pytest

from evalkit import __version__
from evalkit.cli import main
from evalkit.report.recommend import recommend
from evalkit.report.write import write_comparison, write_run_report
from evalkit.report.build import build_report
from evalkit.report.model import load_run
from evalkit.report.compare import mcnemar_exact, two_proportion_z
from evalkit.report.markdown import display_width, render_failures
from evalkit.rundir import HEADER, SampleLog, finalize, new_run_id, now_iso, read_results, write_model
from evalkit.dispatch import run_jobs
from evalkit.jobs import Endpoint, RunContext, plan
from evalkit.schema import Header, Settings, SuiteRef
from evalkit.suites import find_suite
from evalkit.testing.scripted_server import Reply, ScriptedServer

SUITES = ("arithmetic", "no_tool", "agent_math")

# ---------------------------------------------------------------- fake models


def _first_user(request: dict) -> str:
    return next((m.get("content") or "" for m in request.get("messages", []) if m.get("role") == "user"), "")


def _value(matcher, used=()):
    if isinstance(matcher, dict) and "one_of" in matcher:
        return next((v for v in matcher["one_of"] if v not in used), matcher["one_of"][0])
    if isinstance(matcher, dict) and "approx" in matcher:
        return matcher["approx"]
    if isinstance(matcher, dict) and "exact" in matcher:
        return matcher["exact"]
    return matcher


def _last_result(request: dict):
    text = re.sub(r"^Result of \w+: ", "", request["messages"][-1].get("content") or "")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _answer(result) -> str:
    if isinstance(result, dict) and "is_prime" in result:
        if result["is_prime"]:
            return f"{result['n']} is prime."
        return f"{result['n']} is not prime; it is divisible by {result['smallest_factor']}."
    return f"The answer is {result}."


class Oracle:
    """Knows each case's expected calls, so a fake model can be right on purpose, or wrong on purpose."""

    def __init__(self, suites):
        self.cases = {}
        for loaded in suites:
            for case in loaded.suite.cases:
                self.cases[next(m.content for m in case.messages if m.role == "user")] = case

    def plan(self, request: dict):
        """(case, format, the right calls for this round, the right text when no call is due)."""
        case = self.cases[_first_user(request)]
        fmt = "native" if "tools" in request else "default"
        rounds_done = sum(1 for m in request["messages"] if m["role"] == "assistant")
        calls = []
        for expected in case.expect.calls:
            args: dict = {}
            for key, matcher in expected.args.items():
                args[key] = _value(matcher, list(args.values()))
            calls.append({"name": expected.name, "arguments": args})
        if case.mode == "agent":
            if rounds_done < len(calls):
                return case, fmt, [calls[rounds_done]], None
            return case, fmt, [], _answer(_last_result(request))
        if not calls:
            return case, fmt, [], "Sure! Here is a friendly reply without any tool."
        return case, fmt, calls, None


def render(fmt: str, calls: list[dict], text: str | None, style: str = "ok", **extra) -> Reply:
    if not calls:
        return Reply(content=text, **extra)
    if style == "qwen_text":  # call syntax in the content that the server did not parse
        return Reply(content="\n".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in calls), **extra)
    if fmt == "native":
        return Reply(tool_calls=calls, split_arguments=2, **extra)
    blocks = [json.dumps(c, ensure_ascii=False) for c in calls]
    if style == "broken_json":
        blocks = [b[:-1] for b in blocks]
    elif style == "fenced_json":
        return Reply(content="I will call the tool.\n```json\n" + "\n".join(blocks) + "\n```", **extra)
    return Reply(content="\n".join(f"[TOOL_REQUEST]{b}[END_TOOL_REQUEST]" for b in blocks), **extra)


def alpha(oracle: Oracle, version: int = 1):
    def respond(request):
        case, fmt, calls, text = oracle.plan(request)
        extra = {"timings": {"predicted_per_second": 80.0}}
        if case.id == "compare-9.11-9.9-en":
            calls = [{"name": "compare_data", "arguments": {"num1": 9.9, "num2": 9.11}}]
        if case.id == "divide-100-8-zh" and fmt == "native":
            calls = [{"name": "divide_data", "arguments": {"num1": "100", "num2": 8}}]
        if version == 2:  # v2: default fixed, but native breaks on the 0.1 + 0.2 case
            if case.id == "add-0.1-0.2-en" and fmt == "native":
                calls = [{"name": "minus_data", "arguments": {"num1": 0.1, "num2": 0.2}}]
            return render(fmt, calls, text, **extra)
        if fmt == "default" and case.id.startswith(("add-", "minus-")):
            return render(fmt, calls, text, "fenced_json", **extra)
        if fmt == "default" and case.id.startswith("multiply-"):
            return render(fmt, calls, text, "broken_json", **extra)
        return render(fmt, calls, text, **extra)

    return respond


def beta(oracle: Oracle):
    def respond(request):
        case, fmt, calls, text = oracle.plan(request)
        return render(fmt, calls, text, "qwen_text" if fmt == "native" else "ok",
                      timings={"predicted_per_second": 150.0})

    return respond


def gamma(oracle: Oracle):
    def respond(request):
        case, fmt, calls, text = oracle.plan(request)
        extra = {"timings": {"predicted_per_second": 20.0}, "delay_s": 0.4}
        if case.id.startswith("compare-"):
            calls = [{"name": "compare_data", "arguments": {"num1": 8.11, "num2": 8.9}}]
        elif case.id == "add-0.1-0.2-en":
            calls = [{"name": "calculator", "arguments": {"expression": "0.1+0.2"}}]
        elif case.id == "minus-1000-1-zh":
            calls = [{"name": "add_data", "arguments": {"num1": 1000, "num2": -1}}]
        elif case.id in ("no-tool-hello-en", "no-tool-two-plus-two-en"):
            calls, text = [{"name": "get_current_weather", "arguments": {"location": "Paris"}}], None
        elif case.id == "agent-prime-12x83-plus-5-en":
            calls, text = [{"name": "multiply_data", "arguments": {"num1": 12, "num2": 83}}], None
        elif case.id == "agent-subtract-from-sum-en" and text:
            text = "The answer is 8000."
        elif case.id == "divide-144-12-en":
            calls, text = [], "144 divided by 12 is 12."
        return render(fmt, calls, text, **extra)

    return respond


def delta(oracle: Oracle):
    def respond(request):
        case, fmt, calls, text = oracle.plan(request)
        if zlib.crc32(case.id.encode()) % 3 == 0 or case.id.startswith(("compare", "add", "no-tool-t")):
            return Reply(status=500, error_body="model crashed")
        return render(fmt, calls, text, timings={"predicted_per_second": 200.0})

    return respond


def make_run(out: Path, model: str, behaviour, formats=("native", "default"), suites=SUITES) -> Path:
    """A real run directory: header.json, samples.jsonl over the wire, results.json."""
    loaded = [find_suite(name) for name in suites]
    responder = behaviour(Oracle(loaded))
    settings = Settings(concurrency=8, retries=0, timeout_s=30)
    with ScriptedServer(model_id=model, responder=responder) as server:
        header = Header(
            evalkit_version=__version__, run_id=new_run_id(model), started_at=now_iso(), model=model,
            backend="openai-compatible", base_url=server.base_url, base_urls=[server.base_url],
            formats=list(formats),
            suites=[SuiteRef(name=s.suite.name, path=str(s.path), sha256=s.sha256, cases=len(s.suite.cases))
                    for s in loaded],
            settings=settings, server={"models": {"data": [{"id": model}]}},
        )
        run_dir = out / header.run_id
        run_dir.mkdir(parents=True)
        write_model(run_dir / HEADER, header)
        log = SampleLog(run_dir)
        try:
            asyncio.run(run_jobs(plan(loaded, list(formats), 1), [Endpoint(server.base_url, 8)],
                                 RunContext(model=model, settings=settings), log.append))
        finally:
            log.close()
    finalize(run_dir)
    return run_dir


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("runs")
    return {
        "alpha": make_run(out, "alpha-7b", alpha),
        "beta": make_run(out, "beta-3b", beta),
        "gamma": make_run(out, "gamma-1b", gamma),
        "delta": make_run(out, "delta-2b", delta, formats=("native",)),
    }


@pytest.fixture(scope="module")
def reports(runs) -> dict[str, str]:
    """Each run's own report.md (written into its run directory)."""
    texts = {}
    for name, run_dir in runs.items():
        md, html = write_run_report(run_dir)
        assert md == run_dir / "report.md" and html == run_dir / "report.html"
        texts[name] = md.read_text(encoding="utf-8")
    return texts


@pytest.fixture(scope="module")
def failing(runs, reports) -> dict[str, str]:
    """Each run's failures.md: the failing cases, moved out of report.md."""
    return {name: (run_dir / "failures.md").read_text(encoding="utf-8") for name, run_dir in runs.items()}


def overall(run_dir: Path) -> dict[tuple[str, str], object]:
    return {(a.model, a.format): a for a in read_results(run_dir).aggregates if a.suite == "*" and a.tag is None}


def section(md: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", md, re.S | re.M)
    assert match, f"no section {title!r}"
    return match.group(1)


def table_rows(block: str) -> list[list[str]]:
    rows = [line for line in block.splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows[2:]]


def without_code(md: str) -> str:
    return re.sub(r"^(`{3,}).*?^\1\s*$", "", md, flags=re.S | re.M)


# ---------------------------------------------------------------- files and leaderboard


def test_run_report_writes_every_file(runs, reports):
    run_dir = runs["alpha"]
    for name in ("report.md", "report.html", "leaderboard.csv", "fig_accuracy_by_suite.png",
                 "fig_accuracy_vs_latency.png", "fig_malformed_rate.png", "fig_tokens_per_s.png"):
        assert (run_dir / name).is_file(), name
    for png in run_dir.glob("fig_*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 4
    # the only outside links are to `evalkit view` on the loopback interface (a link loads nothing)
    outside = html.replace('href="http://127.0.0.1:8765/#', "")
    assert "<style>" in html and "<script" not in html and 'href="http' not in outside and "src=\"http" not in html
    md = reports["alpha"]
    assert md.startswith("# evalkit report: alpha-7b")
    # The strict vs lenient sentence comes first, so "intent" is explained before any number.
    assert md.index("intent accuracy is lenient") < md.index("## Leaderboard")
    for png in ("fig_accuracy_by_suite.png", "fig_accuracy_vs_latency.png"):
        assert f"]({png})" in md


def test_markdown_has_no_html_and_aligned_tables(reports):
    for md in reports.values():
        prose = without_code(md)
        assert not re.search(r"</?[a-zA-Z][a-zA-Z0-9]*(\s[^>]*)?>", prose), "HTML outside code blocks"
        block: list[str] = []
        for line in md.splitlines() + [""]:
            if line.startswith("|"):
                block.append(line)
                continue
            if block:
                assert len({display_width(row) for row in block}) == 1, "\n".join(block)
                block = []


def test_leaderboard_numbers_equal_results_json(runs, reports):
    for name, run_dir in runs.items():
        aggs = overall(run_dir)
        rows = table_rows(section(reports[name], "Leaderboard"))
        assert len(rows) == len(aggs)
        for row in rows:
            agg = aggs[(row[1], row[2])]
            assert row[3] == str(agg.n)
            assert row[4] == str(agg.errors)
            assert row[5] == f"{agg.call_accuracy * 100:.1f}%"
            assert row[6] == f"{agg.call_accuracy_ci95.low * 100:.1f}-{agg.call_accuracy_ci95.high * 100:.1f}%"
            assert row[7] == f"{agg.intent_accuracy * 100:.1f}%"
            assert row[9] == f"{agg.malformed_rate * 100:.1f}%"
            assert row[11] == f"{agg.no_call_accuracy * 100:.1f}%"
            assert row[12] == f"{agg.no_call_accuracy_bfcl * 100:.1f}%"
            assert row[13] == f"{agg.from_cache}/{agg.n}"
            assert row[14] == f"{agg.latency_p50_s:.3f} s"
            assert row[17] == f"{agg.tokens_per_s:.1f}"
        # leaderboard.csv carries the same numbers at full precision
        with open(run_dir / "leaderboard.csv", newline="", encoding="utf-8") as handle:
            for rec in csv.DictReader(handle):
                agg = aggs[(rec["model"], rec["format"])]
                assert rec["run_id"] == run_dir.name
                assert int(rec["n"]) == agg.n and int(rec["errors"]) == agg.errors
                for key in ("call_accuracy", "intent_accuracy", "malformed_rate", "no_call_accuracy_bfcl",
                            "latency_p50_s", "latency_p95_s", "ttft_p50_s", "tokens_per_s"):
                    assert float(rec[key]) == getattr(agg, key), key
                assert float(rec["call_accuracy_ci95_low"]) == agg.call_accuracy_ci95.low


def test_csv_columns(runs, reports):
    with open(runs["gamma"] / "leaderboard.csv", newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    assert header == [
        "run_id", "model", "format", "n", "errors", "call_accuracy", "call_accuracy_ci95_low",
        "call_accuracy_ci95_high", "intent_accuracy", "args_validity", "malformed_rate", "server_parse_lost",
        "clean_calls", "hallucination_rate",
        "no_call_accuracy", "no_call_accuracy_bfcl", "from_cache", "latency_p50_s", "latency_p95_s", "ttft_p50_s",
        "tokens_per_s", "pass_hat_k", "pass_hat_k_k", "flip_rate", "tools_offered", "prompt_tokens", "tool_tokens",
    ]
    assert sorted(r[2] for r in rows) == ["default", "native"]
    assert all(len(r) == len(header) for r in rows)


def test_breakdowns_per_suite_and_tag(runs, reports):
    md = reports["beta"]
    suites = {row[0]: row[1:] for row in table_rows(section(md, "By suite"))}
    assert set(suites) == set(SUITES)
    # columns are ranked: beta default (100%) first, then beta native
    assert suites["arithmetic"] == ["100.0% (17)", "0.0% (17)"]
    assert suites["no_tool"][1].startswith("100.0%")
    tags = {row[0]: row[1:] for row in table_rows(section(md, "By tag"))}
    assert {"compare", "trap", "zh", "agent"} <= set(tags)


# ---------------------------------------------------------------- failing cases


def test_failing_cases_listed_with_prompt_reply_and_reason(reports, failing):
    pointer = section(reports["alpha"], "Failing cases")
    assert "[failures.md](failures.md)" in pointer and "####" not in reports["alpha"]
    md = section(failing["alpha"], "Failing cases")
    case = md[md.index("compare-9.11-9.9-en: wrong value"):]
    case = case[:case.index("####", 5)]
    assert "compare_data: num1=9.9, expected 9.11" in case
    assert "> Is 9.11 bigger than 9.9?" in case
    assert "Expected: compare_data(num1=9.11, num2=9.9)" in case
    assert '[tool call] compare_data({"num1": 9.9, "num2": 9.11})' in case
    # a malformed call recovered leniently says so; the raw reply with its fence is shown intact
    fenced = md[md.index("add-1234-5678-en: malformed call"):]
    fenced = fenced[:fenced.index("####", 5)]
    assert "could not be parsed" in fenced and "Read leniently, the intended call was right" in fenced
    assert "````text\nI will call the tool.\n```json" in fenced


def test_failure_kinds_in_words(reports, failing):
    md = reports["gamma"]
    listed = failing
    failing = section(listed["gamma"], "Failing cases")
    # gamma calls get_current_weather(location="Paris") on no-tool cases that never name Paris
    for words in ("wrong tool", "wrong value", "invented argument", "did not call", "wrong final answer",
                  "wrong number of calls"):
        assert f": {words}\n" in failing, words
    # a call to a tool that was not offered is its own kind, explained with the tool's name
    assert ": hallucinated tool\n" in failing
    assert "It called a tool that was not offered (called " in failing and ", which was not offered)." in failing
    kinds = {row[0]: row for row in table_rows(section(md, "Failure kinds"))}
    assert kinds["gamma-1b [native]"][2] == "11"
    beta = section(listed["beta"], "Failing cases")
    assert "<tool_call>" in beta and ": malformed call\n" in beta


def test_agent_cases_show_their_trajectory(failing):
    md = section(failing["gamma"], "Failing cases")
    case = md[md.index("agent-subtract-from-sum-en: wrong final answer"):]
    case = case[:case.index("####", 5)]
    assert "Trajectory (3 round(s), ended by answer)" in case
    assert "Round 1" in case and "Round 3" in case
    assert "tool add_data returned: 9134" in case and "tool minus_data returned: 8134" in case
    assert "Final answer: The answer is 8000." in case


def test_failing_cases_are_bounded(runs):
    report = build_report([load_run(runs["beta"])], max_failures=5)
    md = render_failures(report)
    assert "### beta-3b [native]: 24 failing of 36 scored" in md
    assert "Showing the first 5 failing cases; 19 more are in samples.jsonl" in md
    block = section(md, "Failing cases")
    assert len(re.findall(r"^#### ", block, re.M)) == 5


def test_server_errors_listed_apart(runs, reports):
    md = reports["delta"]
    errors = section(md, "Server errors")
    agg = overall(runs["delta"])[("delta-2b", "native")]
    assert f"| delta-2b [native] | {agg.errors:>6} | HTTP 500: model crashed |" in errors
    assert "arithmetic/compare-8.9-8.11-zh" in errors


# ---------------------------------------------------------------- native vs default


def test_mcnemar_and_z_test_values():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 7) == pytest.approx(2 * (1 + 8) / 256)
    assert mcnemar_exact(0, 24) == pytest.approx(2 / 2**24)
    assert mcnemar_exact(5, 5) == 1.0
    assert two_proportion_z(50, 100, 30, 100) == pytest.approx(0.00389, abs=1e-4)
    assert two_proportion_z(10, 10, 10, 10) == 1.0


def test_native_vs_default_verdicts(reports):
    beta = section(reports["beta"], "Native vs default")
    assert ("- beta-3b: default beats native by 66.7 points (native 33.3%, default 100.0%): larger than the noise"
            in beta)
    assert ("McNemar's exact test on cases, p < 0.001: of the 36 cases run both ways, 0 pass only in native and 24 "
            "only in default" in beta)
    gamma = section(reports["gamma"], "Native vs default")
    assert "- gamma-1b: native and default tie at 69.4%: within the noise" in gamma
    assert "p = 1.00" in gamma
    assert "McNemar's exact test" in gamma and "two-proportion z-test" in gamma  # the note says which when


# ---------------------------------------------------------------- recommend


def _latency_cut(runs) -> float:
    """A latency p95 limit between the slow model and all the others."""
    slow = min(a.latency_p95_s for a in overall(runs["gamma"]).values())
    fast = max(a.latency_p95_s for k in ("alpha", "beta", "delta") for a in overall(runs[k]).values())
    assert fast < slow, (fast, slow)
    return (fast + slow) / 2


def test_recommend_picks_best_and_says_why_others_are_out(runs):
    cut = _latency_cut(runs)
    rec = recommend(list(runs.values()), min_accuracy=0.9, max_latency_p95=cut)
    # beta default 36/36 against alpha native 34/36 on the same cases: McNemar p = 0.5, a tie. Both
    # answer in milliseconds: latency decides only if its bootstrap interval clears the 50 ms
    # margin (machine jitter rarely makes it so), else the card says it is a tie, listing the more
    # accurate first.
    assert ("Tied on call accuracy: within the noise of beta-3b [default] 100.0%: alpha-7b [native] 94.4% "
            "(McNemar's exact test on 36 shared cases, p = 0.50: 2 pass only in beta-3b [default], 0 only in "
            "alpha-7b [native])") in rec.reason
    assert rec.decision.decided_by in ("latency p95", "tie")
    latency = rec.decision.decision.steps[-1].comparisons[0]
    assert latency.criterion.name == "latency p95" and latency.test == "bootstrap"
    assert latency.beyond_noise == (rec.decision.decided_by == "latency p95")
    tied = {("beta-3b", "default"): overall(runs["beta"])[("beta-3b", "default")],
            ("alpha-7b", "native"): overall(runs["alpha"])[("alpha-7b", "native")]}
    if rec.decision.decided_by == "latency p95":
        assert (rec.best.model, rec.best.format) == min(tied, key=lambda k: tied[k].latency_p95_s)
    else:
        assert (rec.best.model, rec.best.format) == ("beta-3b", "default")
    assert {(e.model, e.format) for e in rec.eligible} == set(tied) and rec.eligible[0] is rec.best
    out = {(r.entry.model, r.entry.format): r.kinds for r in rec.ruled_out}
    assert out == {
        ("alpha-7b", "default"): ["below accuracy"],
        ("beta-3b", "native"): ["below accuracy"],
        ("gamma-1b", "native"): ["below accuracy", "above latency"],
        ("gamma-1b", "default"): ["below accuracy", "above latency"],
        ("delta-2b", "native"): ["too many errors"],
    }


def test_recommend_cli(runs, capsys):
    cut = _latency_cut(runs)
    code = main(["recommend", *map(str, runs.values()), "--min-accuracy", "90%", "--max-latency-p95", f"{cut:.3f}"])
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"(Recommended|A tie): (beta-3b \[default\]|alpha-7b \[native\])", out)  # tied within the noise
    assert "- gamma-1b [native]: below accuracy: call accuracy 69.4% < 90.0%; above latency: latency p95" in out
    assert "- delta-2b [native]: too many errors:" in out
    code = main(["recommend", *map(str, runs.values()), "--min-accuracy", "0.9", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["decided_by"] in ("latency p95", "tie") and data["ready"]
    assert data["tied"] == ["beta-3b [default]", "alpha-7b [native]"]
    assert [s["criterion"] for s in data["decision"]["steps"]] == [
        "call accuracy", "hallucinated tools", "no-call accuracy", "latency p95"]
    assert data["compared_on"] == {"shared_cases": 36, "restricted": False, "cases_per_run": {
        p.name: 36 for p in runs.values()}, "distractors": 0, "distractor_counts": [0]}


def test_recommend_nothing_meets_constraints(runs, capsys):
    # agent_math has 7 cases: too few samples for any option
    code = main(["recommend", *map(str, runs.values()), "--suite", "agent_math"])
    out = capsys.readouterr().out
    assert code == 1
    assert "None is ready for deployment: no option meets the constraints." in out
    assert "not enough samples: 7 scored, fewer than 10" in out
    rec = recommend(list(runs.values()), min_accuracy=0.999, suites=["arithmetic"])
    assert rec.best is not None and (rec.best.model, rec.best.format) == ("beta-3b", "default")
    rec = recommend([runs["gamma"]], min_accuracy=0.99)
    assert rec.best is None and all(r.kinds == ["below accuracy"] for r in rec.ruled_out)


def test_recommend_breaks_ties_by_latency_only_beyond_the_noise(runs):
    rec = recommend([runs["gamma"]], min_accuracy=None)  # native and default are equally accurate
    aggs = overall(runs["gamma"])
    latency = rec.decision.decision.steps[-1].comparisons[0]
    assert latency.criterion.name == "latency p95"
    if latency.beyond_noise:
        assert (rec.best.model, rec.best.format) == min(aggs, key=lambda k: aggs[k].latency_p95_s)
        assert rec.decision.decided_by == "latency p95" and "Decided by: latency p95, lower is better" in rec.reason
    else:
        # The scripted server's timings vary: the interval either includes 0, or excludes it but
        # not the margin; neither may decide.
        assert rec.decision.decided_by == "tie"
        assert "includes 0" in rec.reason or "excludes 0 but not the" in rec.reason, rec.reason
    assert "Tied on call accuracy: within the noise" in rec.reason


def test_report_names_a_recommendation(reports):
    block = section(reports["beta"], "Which to deploy")
    assert block.strip().startswith("**Recommended: beta-3b [default] (run ")
    assert "| call accuracy: >= 80.0%      | --min-accuracy (default 80%)" in block  # constraints with defaults
    block = section(reports["delta"], "Which to deploy")
    assert "**None is ready for deployment: no option meets the constraints.**" in block
    assert "too many errors" in block


# ---------------------------------------------------------------- comparisons


def test_comparison_of_two_runs_shows_flipped_cases(runs, tmp_path):
    later = make_run(tmp_path / "runs", "alpha-7b", lambda o: alpha(o, version=2))
    md_path, html_path = write_comparison([runs["alpha"], later], tmp_path / "cmp")
    md = md_path.read_text(encoding="utf-8")
    flipped = section(md, "Flipped cases")
    first, second = runs["alpha"].name, later.name  # options are told apart by run id, never by a position
    native = flipped[flipped.index(f"### alpha-7b [native] ({first}) -> alpha-7b [native] ({second})"):]
    native = native[:native.index("###", 5)] if "###" in native[5:] else native
    assert "0 fixed, 1 broken, of 36 cases in common." in native
    assert "| arithmetic | add-0.1-0.2-en | wrong tool: no call to 'add_data'" in native
    default = flipped[flipped.index(f"### alpha-7b [default] ({first}) -> alpha-7b [default] ({second})"):]
    assert "7 fixed, 0 broken, of 36 cases in common." in default
    fixed = table_rows(default[:default.index("###", 5)] if "###" in default[5:] else default)
    assert {r[1] for r in fixed} == {"add-1234-5678-en", "add-256-128-zh", "add-0.1-0.2-en",
                                     "minus-subtract-58-from-100-en", "minus-1000-1-zh", "minus-negative-15-27-en",
                                     "multiply-word-problem-water-zh"}
    assert all(r[2].startswith("malformed call") for r in fixed)
    assert html_path.is_file() and (tmp_path / "cmp" / "leaderboard.csv").is_file()


def test_report_cli_one_and_several_runs(runs, tmp_path, monkeypatch, capsys):
    copy = tmp_path / runs["beta"].name
    shutil.copytree(runs["beta"], copy)
    for name in ("report.md", "report.html", "leaderboard.csv"):
        (copy / name).unlink()
    assert main(["report", str(copy)]) == 0
    assert (copy / "report.md").is_file() and (copy / "report.html").is_file()
    assert (copy / "leaderboard.csv").is_file()
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(runs["alpha"]), str(runs["beta"]), str(runs["gamma"])]) == 0
    out = capsys.readouterr().out
    made = list((tmp_path / "reports").glob("compare-*/report.md"))
    assert len(made) == 1 and str(made[0].relative_to(tmp_path)) in out
    md = made[0].read_text(encoding="utf-8")
    assert md.startswith("# evalkit comparison: 6 model x format options from 3 runs")
    diffs = section(md, "Native vs default")
    assert diffs.count("\n- ") == 3
    with open(made[0].parent / "leaderboard.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    # In the card's order: its pick first (beta default and alpha native are tied within the noise;
    # the bootstrap on this run's latencies decides, or the more accurate is listed first).
    pick = recommend([runs["alpha"], runs["beta"], runs["gamma"]]).pick
    assert len(rows) == 6 and (rows[0]["model"], rows[0]["format"]) == (pick.model, pick.format)
    assert (pick.model, pick.format) in {("beta-3b", "default"), ("alpha-7b", "native")}
    assert main(["report", str(tmp_path / "nowhere")]) == 2


def test_report_of_an_interrupted_run(runs, tmp_path):
    copy = tmp_path / "partial"
    shutil.copytree(runs["gamma"], copy)
    (copy / "results.json").unlink()
    lines = (copy / "samples.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (copy / "samples.jsonl").write_text("".join(lines[:30]) + lines[30][:40], encoding="utf-8")  # torn tail
    md, _ = write_run_report(copy)
    rows = table_rows(section(md.read_text(encoding="utf-8"), "Leaderboard"))
    assert sum(int(r[3]) for r in rows) == 30
