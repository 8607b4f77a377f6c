"""A sweep's `--until-decided` rounds on the real embedded engine: the bundled 0.5B is started once
for the whole sweep, not once per round (engine.pool), and its second round finds the engine (and
its prompt cache) still there. The other member is the scripted server, so the sweep needs one
bundled model only."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import case, reply_for_format, request_format, write_suite
from evalkit.cli import main
from evalkit.rundir import read_samples
from evalkit.testing.scripted_server import Reply, ScriptedServer, last_user_text

pytestmark = pytest.mark.e2e

N = 12  # two rounds: the first 10 cases of the order, then all 12 (stopping.schedule.round_sizes)
CASES = [case(f"hello-{i:02d}", f"Say hello to person {i}",
              {"calls": [{"name": "say_hello", "args": {"name": f"person {i}"}}]}) for i in range(N)]


def half_right(request: dict) -> Reply:
    """Right on even-numbered people only. Whatever the 0.5B answers, at most 6 of the first round's
    10 cases are one-sided discordant pairs, and the mixture test needs 8-10 to settle: so the
    sweep always reaches its second round."""
    number = int(last_user_text(request).rsplit(" ", 1)[1])
    name = f"person {number}" if number % 2 == 0 else "nobody"
    return reply_for_format(request_format(request), [("say_hello", {"name": name})])


def test_a_sweeps_rounds_start_each_embedded_engine_once(tmp_path, capfd):
    suite = write_suite(tmp_path / "suites", CASES, name="hello12")
    with ScriptedServer(model_id="half", responder=half_right) as server:
        config = tmp_path / "models.yaml"
        config.write_text(yaml.safe_dump({"options": [
            {"model": "qwen2.5-coder-0.5b"}, {"model": "half", "base_url": server.base_url}]}))
        code = main(["run", "--config", str(config), "--suite", str(suite), "--format", "default",
                     "--until-decided", "--min-accuracy", "0", "--max-tokens", "64", "--no-cache", "--no-report",
                     "--out", str(tmp_path / "runs")])
    err = capfd.readouterr().err
    assert code == 0, err[-2000:]
    (sweep_dir,) = list((tmp_path / "runs").iterdir())
    decision = json.loads((sweep_dir / "decision.json").read_text())
    assert (decision["rounds"], decision["cases_run"]) == (2, N), decision
    started = [line for line in err.splitlines() if line.startswith("embedded engine: qwen2.5-coder-0.5b at ")]
    assert len(started) == 2, err  # one line per round
    assert "kept from the last round" not in started[0] and "kept from the last round" in started[1], started
    assert started[0].split(" at ")[1].split()[0] == started[1].split(" at ")[1].split()[0]  # the same server
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    member = sweep_dir / sweep["members"][0]["run_dir"]
    samples = list(read_samples(member))
    assert len(samples) == N and all(s.error is None for s in samples), [s.error for s in samples]
