"""Behaviour kept: today's scoring and aggregation, applied to the measured runs committed in
reports/measured/, give the verdicts and results.json stored there (benchmarks/check_measured.py,
which scores exactly as `evalkit rescore` does).

Runs on imported BFCL suites are checked too when suites/bfcl/ holds the same files
(`evalkit import bfcl`); otherwise they are left out here."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import check_measured  # noqa: E402

# Run directories, and those of sweeps (reports/measured/sweep-*/RUN_ID/).
MEASURED = sorted(p.parent for p in (ROOT / "reports" / "measured").rglob("header.json"))
SUITE_DIRS = [ROOT / "suites" / "bfcl"]


@pytest.mark.parametrize("run_dir", MEASURED, ids=[p.name for p in MEASURED])
def test_measured_run_unchanged(run_dir):
    result = check_measured.check_run(run_dir, SUITE_DIRS)
    assert not result.aggregate_diffs, result.aggregate_diffs[:5]
    assert result.aggregates > 0
    if result.skipped:
        assert "bfcl" in result.skipped, result.skipped  # only imported suites may be missing
        pytest.skip(result.skipped)
    assert result.rescored > 0
    # Stored == today's scoring, every verdict field (kind, detail, syntax included): when scoring
    # changes on purpose, `evalkit rescore` updates the stored runs and says what moved.
    assert not result.verdict_diffs, result.verdict_diffs[:5]


def test_the_check_sees_a_changed_verdict_and_aggregate(tmp_path):
    run = next(p for p in MEASURED if check_measured.check_run(p, []).skipped is None)
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    lines = (copy / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["call_correct"] = not first["call_correct"]
    (copy / "samples.jsonl").write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n", encoding="utf-8")
    result = check_measured.check_run(copy, [])
    assert not result.ok
    assert any("call_correct" in d for d in result.verdict_diffs)
    assert any("call_accuracy" in d for d in result.aggregate_diffs)


def test_the_constrained_table_comes_again_from_the_committed_runs(tmp_path, monkeypatch):
    """README's and docs/constrained.md's table (issue 22) and their McNemar pairs are
    `bench_constrained.py --tabulate` over runs committed here: tabulating them again gives the
    recorded figures, row for row."""
    import bench_constrained

    recorded = json.loads((ROOT / "benchmarks" / "results" / "constrained.json").read_text(encoding="utf-8"))
    runs = [ROOT / run for run in recorded["runs"]]
    assert all((run / "header.json").is_file() for run in runs), recorded["runs"]  # committed, not a local path
    monkeypatch.setattr(bench_constrained, "RESULTS", tmp_path / "constrained.json")
    assert bench_constrained.main(["--tabulate", *map(str, runs)]) == 0
    again = json.loads((tmp_path / "constrained.json").read_text(encoding="utf-8"))
    assert again["rows"] == recorded["rows"]
    assert again["versus"] == recorded["versus"]
    assert {row["format"] for row in again["rows"]} >= {"native", "default", "constrained+choice"}
