"""`evalkit view`'s server over real run directories (written by real runs against the scripted
server) and over the measured runs in reports/measured: filters, sorting, search, paging, one case
across options, agent rounds. The page itself is driven in a real browser in test_view_browser.py."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.testing.scripted_server import ScriptedServer
from evalkit.view.index import PAGE_MAX, build_index
from evalkit.view.serve import serving

from conftest import TINY_CASES, reply_for_format, request_format, write_suite

MEASURED = Path(__file__).resolve().parent.parent / "reports" / "measured"
AGENT_RUN = MEASURED / "20261130-115417-qwen2.5-coder-0.5b-1017"  # the MCP suites: agent cases, native and default


def half_right(request):
    """compare_data with a wrong value; say_hello right; a call with a name the user never gave where none is wanted."""
    text = [m for m in request["messages"] if m["role"] == "user"][-1]["content"]
    fmt = request_format(request)
    if "8.9" in text:
        return reply_for_format(fmt, [("compare_data", {"num1": 9.9, "num2": 8.11})])
    if "Bob" in text:
        return reply_for_format(fmt, [("say_hello", {"name": "Bob the Builder"})])
    return reply_for_format(fmt, [("say_hello", {"name": "you"})])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two runs (models m1 and m2) of the tiny suite, two formats each, in one folder."""
    out = tmp_path_factory.mktemp("view")
    suite = write_suite(out / "suites", TINY_CASES)
    with ScriptedServer(model_id="m1", models=["m2"], responder=half_right) as server:
        for model in ("m1", "m2"):
            code = main(["run", "--base-url", server.base_url, "--model", model, "--suite", str(suite),
                         "--out", str(out / "runs"), "--no-report", "--no-cache", "--quiet",
                         "--format", "native", "--format", "default"])
            assert code == 0
    return out / "runs"


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_facets_filters_sort_search_and_paging(runs):
    with serving([runs]) as url:
        facets = get(url + "api/facets")
        assert dict(facets["model"]) == {"m1": 6, "m2": 6}
        assert dict(facets["verdict"]) == {"fail": 8, "pass": 4}
        assert dict(facets["kind"]) == {"wrong_value": 4, "invented_argument": 4}
        assert dict(facets["tag"]) == {"greet": 4, "no_tool": 4}

        wrong = get(url + "api/samples?kind=wrong_value")
        assert wrong["total"] == 4 and {r["case_id"] for r in wrong["rows"]} == {"cmp"}
        assert all(r["detail"] for r in wrong["rows"])  # the specifics travel with the row
        assert get(url + "api/samples?kind=wrong_value&model=m2&format=default")["total"] == 1
        assert get(url + "api/samples?tag=greet&verdict=pass")["total"] == 4
        assert get(url + "api/samples?q=JOKE")["total"] == 4  # the prompt, case-insensitively

        ordered = get(url + "api/samples?sort=case_id&desc=1&limit=12")["rows"]
        assert [r["case_id"] for r in ordered] == sorted((r["case_id"] for r in ordered), reverse=True)
        first, second = get(url + "api/samples?sort=case_id&limit=5"), get(url + "api/samples?sort=case_id&limit=5&offset=5")
        assert first["total"] == 12 and len(first["rows"]) == 5 and len(second["rows"]) == 5
        keys = {(r["run"], r["format"], r["case_id"]) for r in first["rows"] + second["rows"]}
        assert len(keys) == 10  # pages do not overlap


def test_one_case_across_every_option(runs):
    with serving([runs]) as url:
        case = get(url + "api/case?suite=tiny&case=cmp")
        assert case["prompt"] == "Which is larger, 8.9 or 8.11?"
        assert "compare_data" in case["expected"] and "8.11" in case["expected"]
        assert [t["name"] for t in case["tools"]] == ["compare_data", "add_data", "get_weather", "say_hello"]
        assert sorted((o["model"], o["format"]) for o in case["options"]) == [
            ("m1", "default"), ("m1", "native"), ("m2", "default"), ("m2", "native")]
        for option in case["options"]:
            assert option["verdict"] == "fail" and option["kind"] == "wrong_value"
            assert "9.9" in option["why"]
            assert option["calls"][0]["name"] == "compare_data" and option["calls"][0]["arguments"]["num1"] == 9.9
        native = next(o for o in case["options"] if o["format"] == "native")
        assert native["reply"]["tool_calls"][0]["name"] == "compare_data"  # on the wire
        assert "compare_data" in native["tools_offered"]
        default = next(o for o in case["options"] if o["format"] == "default")
        assert default["reply"]["tool_calls"] == [] and default["reply"]["recovered"][0]["name"] == "compare_data"

        with pytest.raises(urllib.error.HTTPError) as missing:
            get(url + "api/case?suite=tiny&case=nope")
        assert missing.value.code == 404


def test_agent_case_has_its_rounds():
    with serving([AGENT_RUN]) as url:
        rows = get(url + "api/samples?mode=agent&sort=rounds&desc=1&limit=1")["rows"]
        assert rows and rows[0]["rounds"] >= 2, "the measured run holds agent cases of several rounds"
        case = get(url + f"api/case?suite={rows[0]['suite']}&case={rows[0]['case_id']}")
        option = next(o for o in case["options"] if (o["format"], o["repeat"]) == (rows[0]["format"], rows[0]["repeat"]))
        assert len(option["rounds"]) == rows[0]["rounds"] and option["ended_by"] in ("answer", "round_limit")
        first = option["rounds"][0]
        assert first["calls"] and first["tool_results"]  # a round: the model's call, then what the tool returned
        assert first["tool_results"][0]["name"] == first["calls"][0]["name"]


def test_a_resumed_runs_redone_sample_replaces_the_first(runs, tmp_path):
    run = next(p for p in runs.iterdir() if p.is_dir())
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    lines = (copy / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    redone = json.loads(lines[0])
    redone["call_correct"], redone["failure_kind"] = (not redone["call_correct"]), None
    (copy / "samples.jsonl").write_text("\n".join(lines + [json.dumps(redone)]) + "\n", encoding="utf-8")
    index = build_index([copy])
    assert len(index.rows) == len(lines)
    (row,) = [r for r in index.rows if (r["case_id"], r["format"]) == (redone["case_id"], redone["format"])]
    assert row["verdict"] == ("pass" if redone["call_correct"] else "fail")


def test_large_run_is_paged(runs, tmp_path):
    """30,000 samples (the size of a BFCL run): the page holds at most PAGE_MAX rows."""
    run = next(p for p in runs.iterdir() if p.is_dir())
    big = tmp_path / "big"
    big.mkdir()
    shutil.copy(run / "header.json", big / "header.json")
    template = json.loads((run / "samples.jsonl").read_text(encoding="utf-8").splitlines()[0])
    with open(big / "samples.jsonl", "w", encoding="utf-8") as handle:
        for number in range(30_000):
            template["case_id"] = f"case-{number:05d}"
            handle.write(json.dumps(template) + "\n")
    with serving([big]) as url:
        page = get(url + "api/samples?limit=100000&offset=29990")
        assert page["total"] == 30_000 and len(page["rows"]) == 10
        assert len(get(url + "api/samples?limit=100000")["rows"]) == PAGE_MAX
        assert get(url + "api/samples?q=case-12345")["total"] == 1


def test_view_of_a_folder_without_runs_is_one_line(tmp_path, capsys, monkeypatch):
    assert main(["view", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "no run directory" in err and "Traceback" not in err
    monkeypatch.chdir(tmp_path)  # no reports/runs here: the default names what to do
    assert main(["view"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "reports/runs: no runs here yet; `evalkit run` writes them" in err


def test_a_taken_port_is_one_line(runs, capsys):
    with serving([runs]) as url:
        port = url.rstrip("/").rsplit(":", 1)[1]
        assert main(["view", str(runs), "--port", port]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err and err.count("\n") == 1


def test_view_binds_loopback_only_and_answers_loopback_names_only(runs):
    with serving([runs]) as url:
        assert url.startswith("http://127.0.0.1:")
        port = url.rstrip("/").rsplit(":", 1)[1]
        assert get(f"http://localhost:{port}/api/facets")["model"]
        rebound = urllib.request.Request(url + "api/samples", headers={"Host": f"attacker.example:{port}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(rebound, timeout=30)
        assert refused.value.code == 400
