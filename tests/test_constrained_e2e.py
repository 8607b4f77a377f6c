"""`--format constrained` end to end on the real embedded engine with the bundled 0.5B (issue 22):
llama.cpp's server holds every reply to the schema, so no call is malformed, single-turn and
agent cases alike. What the model decides may vary with the llama.cpp build; the assertions are
on what constraining guarantees."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from evalkit.formats.constrained import DEFAULT_ENVELOPE
from evalkit.rundir import read_header, read_samples

pytestmark = pytest.mark.e2e


def test_constrained_on_the_embedded_engine_has_no_malformed_call(tmp_path):
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "evalkit", "run", "--model", "qwen2.5-coder-0.5b", "--suite", "weather",
               "--suite", "agent_math", "--limit", "2", "--format", "constrained", "--max-tokens", "256",
               "--no-cache", "--no-report", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = list(out.iterdir())
    assert read_header(run_dir).formats == [f"constrained+{DEFAULT_ENVELOPE}"]
    samples = list(read_samples(run_dir))
    assert len(samples) == 4
    for sample in samples:
        assert sample.error is None, sample.error
        assert not sample.malformed, (sample.case_id, sample.failure_detail)
        assert sample.request["response_format"]["type"] == "json_schema"
        for reply in ([r.raw for r in sample.trajectory] or [sample.raw]):
            json.loads(reply["content"])  # every reply is the schema's JSON
    agent = [s for s in samples if s.mode == "agent"]
    assert agent and all(s.ended_by in ("answer", "round_limit") for s in agent)
