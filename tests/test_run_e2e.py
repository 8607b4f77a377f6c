"""`evalkit run` end to end on the real embedded engine with the real bundled 0.5B model.

The model is pulled into the default cache (reused between runs on one machine). What a 0.5B
model answers can vary with the llama.cpp build, so the assertions are on the run directory's
structure and on what the harness itself guarantees, not on the model's scores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.rundir import read_header, read_results, read_samples
from evalkit.suites import find_suite

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    command = [
        sys.executable, "-m", "evalkit", "run", "--model", "qwen2.5-coder-0.5b",
        "--suite", "greetings", "--suite", "agent_math", "--limit", "2",
        "--format", "native", "--format", "default", "--max-tokens", "96", "--no-cache", "--out", str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "run directory:" in done.stdout
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


def test_header_records_the_embedded_engine(run_dir):
    header = read_header(run_dir)
    assert header.backend == "embedded" and header.model == "qwen2.5-coder-0.5b"
    assert header.base_url.startswith("http://127.0.0.1:")
    assert header.formats == ["native", "default"]
    greetings = find_suite("greetings")
    assert {s.name: s.sha256 for s in header.suites}["greetings"] == greetings.sha256
    assert header.model_served_ids == ["qwen2.5-coder-0.5b"]
    s = header.serving  # what the engine tells of itself (llama.cpp /props, /v1/models)
    assert s.kind == "llama.cpp" and len(s.template_sha256 or "") == 64 and s.slots == header.settings.concurrency
    assert (s.model.parameter_count or 0) > 100_000_000 and s.model.quantization
    # The bundled Qwen GGUF carries Qwen's template: its fingerprints in the family table say Hermes.
    assert s.template_family == "hermes"
    # The wheel here is a CPU build: llama.cpp lists the CPU alone.
    assert header.machine.local and header.machine.gpu is False and (header.machine.engine_threads or 0) >= 1


def test_every_sample_is_scored_with_timings(run_dir):
    samples = list(read_samples(run_dir))
    keys = {(s.suite, s.case_id, s.format) for s in samples}
    assert len(samples) == len(keys) == 2 * 2 * 2  # 2 suites x 2 cases x 2 formats
    for sample in samples:
        assert sample.error is None, sample.error
        assert sample.latency_s and sample.latency_s > 0
        assert sample.completion_tokens and sample.completion_tokens > 0
        assert sample.tokens_per_s and sample.tokens_per_s > 0
        if sample.format == "default":
            assert "tools" not in sample.request  # LM Studio's fallback: tools live in the prompt
            assert "[TOOL_REQUEST]" in sample.request["messages"][0]["content"]
        else:
            assert sample.request["tools"]
        if sample.mode == "agent":
            assert sample.rounds == len(sample.trajectory) >= 1
            assert sample.ended_by in ("answer", "round_limit")
        # A malformed reply is never scored correct, whatever the model did.
        assert not (sample.malformed and sample.call_correct)


def test_results_and_reports_are_written(run_dir):
    results = read_results(run_dir)
    overall = {a.format: a for a in results.aggregates if a.suite == "*" and a.tag is None}
    assert set(overall) == {"native", "default"}
    for aggregate in overall.values():
        assert aggregate.n == 4 and aggregate.call_accuracy_ci95 is not None
        assert aggregate.tokens_per_s and aggregate.latency_p50_s
    assert (run_dir / "report.md").stat().st_size > 1000
    assert (run_dir / "report.html").stat().st_size > 1000
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    assert all(json.loads(line)["model"] == "qwen2.5-coder-0.5b" for line in lines)
