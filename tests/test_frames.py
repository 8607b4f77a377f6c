"""evalkit.samples_df / results_df over real run directories: typed columns, the documented
examples, paths as run dirs, sweep dirs, folders and globs; and `evalkit --help` without pandas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import evalkit
from evalkit.cli import main
from evalkit.errors import EvalkitError
from evalkit.testing.scripted_server import ScriptedServer

from conftest import TINY_CASES, reply_for_format, request_format, write_suite

ROOT = Path(__file__).resolve().parent.parent
MEASURED = ROOT / "reports" / "measured"


def flaky(request):
    """cmp is right on every other request (a model that flips between repeats); the rest right."""
    text = [m for m in request["messages"] if m["role"] == "user"][-1]["content"]
    fmt = request_format(request)
    if "8.9" in text:
        flaky.count += 1
        return reply_for_format(fmt, [("compare_data", {"num1": 8.9 if flaky.count % 2 else 9.9, "num2": 8.11})])
    if "Bob" in text:
        return reply_for_format(fmt, [("say_hello", {"name": "Bob the Builder"})])
    return reply_for_format(fmt, [])


flaky.count = 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("frames")
    suite = write_suite(out / "suites", TINY_CASES)
    with ScriptedServer(model_id="m", responder=flaky) as server:
        code = main(["run", "--base-url", server.base_url, "--model", "m", "--suite", str(suite), "--out",
                     str(out / "runs"), "--no-report", "--no-cache", "--quiet", "--format", "native",
                     "--repeats", "2", "--concurrency", "1"])
    assert code == 0
    return out / "runs"


def test_samples_df_has_one_typed_row_per_sample(runs):
    df = evalkit.samples_df(runs)
    assert len(df) == 6 and list(df.columns[:3]) == ["run_id", "suite", "case_id"]
    assert str(df["call_correct"].dtype) == "bool" and str(df["cached"].dtype) == "bool"
    assert str(df["args_valid"].dtype) == "boolean"  # unknown when no call was made
    assert str(df["latency_s"].dtype) == "float64" and str(df["prompt_tokens"].dtype) == "Int64"
    for name in ("model", "format", "suite", "failure_kind", "syntax"):
        assert str(df[name].dtype) == "category", name
    assert "request" not in df.columns and "trajectory" not in df.columns
    assert df.groupby("case_id")["call_correct"].sum().to_dict() == {"chat": 2, "cmp": 1, "hello": 2}


def test_documented_example_cases_that_flip_between_repeats(runs):
    df = evalkit.samples_df(runs)
    scored = df[df["error"].isna()]
    verdicts = scored.groupby(["model", "format", "suite", "case_id"], observed=True)["call_correct"].nunique()
    assert verdicts[verdicts > 1].index.get_level_values("case_id").tolist() == ["cmp"]


def test_results_df_rows_are_results_json(runs):
    df = evalkit.results_df(runs)
    run_dir = next(runs.iterdir())
    aggregates = json.loads((run_dir / "results.json").read_text())["aggregates"]
    assert len(df) == len(aggregates)
    overall = df[(df["suite"] == "*") & df["tag"].isna() & df["distractors"].isna()].iloc[0]
    assert overall["n"] == 6 and overall["call_accuracy"] == pytest.approx(5 / 6)
    assert overall["call_accuracy_ci95_low"] < overall["call_accuracy"] < overall["call_accuracy_ci95_high"]
    assert overall["pass_hat_2"] == pytest.approx(2 / 3)  # cmp passed once of its two repeats
    assert overall["flip_rate"] == pytest.approx(1 / 3)
    assert str(df["call_accuracy"].dtype) == "float64" and str(df["suite"].dtype) == "category"


def test_paths_run_dir_sweep_dir_folder_and_glob():
    one = evalkit.samples_df(MEASURED / "20261130-114701-qwen2.5-coder-0.5b-ce29")
    assert set(one["suite"]) == {"clarify"} and len(one) == 32
    sweep = evalkit.samples_df(MEASURED / "sweep-20261130-111830-600e")
    assert set(sweep["model"]) == {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
    everything = evalkit.samples_df(MEASURED)
    globbed = evalkit.samples_df([str(MEASURED / "2026*"), MEASURED / "sweep-20261130-111830-600e"])
    assert len(everything) == len(globbed) > len(sweep) + len(one)
    # every run directory under reports/measured, a sweep's members included
    assert everything["run_id"].nunique() == len(list(MEASURED.rglob("header.json"))) >= 12


def test_a_path_without_runs_is_one_clear_error(tmp_path):
    with pytest.raises(EvalkitError, match="no run directory"):
        evalkit.samples_df(tmp_path)
    with pytest.raises(EvalkitError, match="no such file"):
        evalkit.results_df(tmp_path / "nope-*")


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["view", "--help"], ["schema", "--help"]])
def test_the_command_line_does_not_import_pandas(argv):
    code = ("import sys\nfrom evalkit.cli import main\ncode = main(%r)\n"
            "print('PANDAS' if 'pandas' in sys.modules else 'NO-PANDAS', code)" % argv)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "NO-PANDAS 0", result.stdout[-500:] + result.stderr[-500:]
