"""The held-out check's code path (evalkit/testing/callsyntax_heldout.py, used by bench_callsyntax.py
--heldout) on a tiny file of its own: the real held-out file is written apart and never read here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from evalkit.errors import EvalkitError
from evalkit.testing.callsyntax_heldout import load

ROOT = Path(__file__).resolve().parents[1]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.",
                                            "parameters": {"type": "object", "properties": {
                                                "location": {"type": "string"}}, "required": ["location"]}}}
LINES = [
    {"id": "c1", "kind": "call", "tools": [WEATHER], "reply": '%% get_weather :: location="Paris" %%',
     "expected_calls": [{"name": "get_weather", "arguments": {"location": "Paris"}}], "note": "recovered"},
    {"id": "c2", "kind": "call", "tools": [WEATHER], "reply": "%% get_weather :: location=Paris, location=Rome %%",
     "expected_calls": [{"name": "get_weather", "arguments": {"location": "Paris"}}], "note": "ambiguous: seen only"},
    {"id": "c3", "kind": "call", "tools": [WEATHER], "reply": "I will look up the weather now.",
     "expected_calls": [{"name": "get_weather", "arguments": {"location": "Paris"}}], "note": "missed"},
    {"id": "c4", "kind": "call", "tools": [WEATHER], "reply": "<<get_weather>> <location>Oslo</location>",
     "expected_calls": [], "note": "calls left open by the writer: counted as seen, not as recovered"},
    {"id": "p1", "kind": "prose", "tools": [WEATHER], "reply": "Tell me the city and I can use get_weather.",
     "expected_calls": [{"name": "get_weather", "arguments": {}}], "note": "plain; a prose line expects no call"},
]


def write(tmp_path: Path, lines: list) -> Path:
    path = tmp_path / "heldout.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def test_each_reply_is_scored_as_a_run_scores_it(tmp_path):
    got = {h.id: h for h in load(write(tmp_path, LINES))}
    assert got["c1"].seen and got["c1"].recovered and got["c1"].verdict.syntax == "unknown"
    assert got["c2"].seen and not got["c2"].recovered and got["c2"].verdict.failure_kind == "malformed"
    assert not got["c3"].seen and got["c3"].verdict.failure_kind == "did_not_call"
    assert got["c4"].seen and not got["c4"].recovered
    assert got["p1"].plain


@pytest.mark.parametrize("line,field", [
    ({"id": "x", "kind": "call", "tools": [WEATHER]}, "'reply'"),
    ({"id": "x", "kind": "maybe", "tools": [], "reply": ""}, "kind"),
    ({"id": "x", "kind": "prose", "tools": [{"type": "function"}], "reply": ""}, "field function"),
])
def test_a_bad_line_names_the_file_the_line_and_the_field(tmp_path, line, field):
    path = write(tmp_path, [LINES[0], line])
    with pytest.raises(EvalkitError, match=rf"heldout.jsonl line 2: .*{field}"):
        load(path)


def test_the_benchmark_reports_the_held_out_figures(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_callsyntax", ROOT / "benchmarks" / "bench_callsyntax.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    figures = bench.heldout(write(tmp_path, LINES))
    out = capsys.readouterr().out
    assert figures["call_seen"] == [3, 4] and figures["recovered_correct"] == [1, 3] and figures["prose_plain"] == [1, 1]
    assert "| call attempts seen (malformed or recovered) | 3/4 (75%) |" in out
    assert "| calls recovered correctly (replies with expected calls) | 1/3 (33%) |" in out
    assert "| prose kept plain | 1/1 (100%) |" in out
    assert "- missed: c3 (call): syntax None, did_not_call" in out
    assert bench.heldout(tmp_path / "absent.jsonl") is None
    assert "absent.jsonl not found, skipped" in capsys.readouterr().out
