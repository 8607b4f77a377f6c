"""A run records what served it (issue 14 phase 2, issue 12 §4): header.json's serving stack,
model and machine, the `--model` check against /v1/models, `run --probe`, and the Runs table.

Every server here is the scripted one on loopback, playing llama.cpp or Ollama with the bodies
test_probe.py quotes from their documentation and from the embedded engine.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import tiny_responder
from evalkit.cli import main
from evalkit.probe.checks import CHECKS, SYSTEM
from evalkit.report.build import build_report
from evalkit.report.markdown import render_markdown
from evalkit.report.model import load_run
from evalkit.report.serving import identity, serving_of
from evalkit.rundir import read_header, read_probe
from evalkit.testing.scripted_server import ContractResponder, ScriptedServer
from test_probe import LLAMACPP_MODELS, LLAMACPP_PROPS, LLAMACPP_SLOTS, OLLAMA_MODELS, OLLAMA_PS, OLLAMA_SHOW, TEMPLATE

MEASURED = Path(__file__).resolve().parent.parent / "reports" / "measured"


@pytest.fixture(autouse=True)
def no_env_servers(monkeypatch):
    for name in ("EVALKIT_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def responder(contract: ContractResponder | None = None):
    """The tiny suite's answers, and the probe's requests (told apart by the probe's system
    prompt) answered by a server that keeps the contract, or breaks the part it is told to."""
    contract = contract or ContractResponder()

    def answer(request):
        if any(m.get("content") == SYSTEM["content"] for m in request["messages"]):
            return contract(request)
        return tiny_responder(request)

    return answer


def llamacpp_endpoints(server_ref: list) -> dict:
    """llama.cpp: /slots shows the detected format only once a chat request has run, and a
    request without tools shows "Content-only" (the engine's /props default, seen 2026-11-30)."""
    before = [{"id": 0, "n_ctx": 2048}]
    no_tools = [{"id": 1, "n_ctx": 2048, "params": {"chat_format": "Content-only"}}]
    return {"GET /props": LLAMACPP_PROPS, "GET /v1/models": LLAMACPP_MODELS,
            "GET /slots": lambda _: no_tools + LLAMACPP_SLOTS if server_ref[0].hits else before + no_tools}


def run(base_url: str, suite: Path, out: Path, model: str, *extra: str) -> int:
    return main(["run", "--base-url", base_url, "--model", model, "--suite", str(suite), "--out", str(out),
                 "--no-cache", "--quiet", "--format", "native", *extra])


def only_run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def probe_requests(srv: ScriptedServer) -> int:
    return sum(any(m.get("content") == SYSTEM["content"] for m in r["messages"]) for r in srv.requests)


# ---------------------------------------------------------------- header.json


def test_header_records_a_llamacpp_like_server(tiny_suite, tmp_path, capsys):
    ref: list = []
    with ScriptedServer(model_id="qwen2.5-coder-0.5b", responder=responder(), endpoints=llamacpp_endpoints(ref)) as srv:
        ref.append(srv)
        assert run(srv.base_url, tiny_suite, tmp_path / "runs", "qwen2.5-coder-0.5b", "--no-report") == 0
    assert "warning" not in capsys.readouterr().err  # the name is among /v1/models: no warning
    header = read_header(only_run_dir(tmp_path / "runs"))
    s = header.serving
    assert (s.kind, s.build, s.slots) == ("llama.cpp", "b0-unknown", 1)
    assert s.template_sha256 == hashlib.sha256(TEMPLATE.encode()).hexdigest()
    # Unknown when the run started (no request had run); asked again after the samples.
    assert s.tool_call_format == "peg-native"
    m = s.model
    assert (m.quantization, m.parameter_count, m.context_length, m.context_length_train) == (
        "Q4_K - Medium", 630167424, 2048, 32768)
    assert header.model_served_ids == ["qwen2.5-coder-0.5b"]
    # The server's one slot sets the concurrency when --concurrency is not given.
    assert header.settings.concurrency == 1
    mc = header.machine
    assert mc.local and mc.cpu_cores >= 1 and mc.engine_threads is None
    assert mc.gpu is None and mc.gpu_detail is None  # llama.cpp does not say


def test_header_records_an_ollama_like_server(tiny_suite, tmp_path):
    endpoints = {"GET /api/version": {"version": "0.5.1"}, "POST /api/show": OLLAMA_SHOW, "GET /v1/models": OLLAMA_MODELS,
                 "GET /api/ps": OLLAMA_PS}
    with ScriptedServer(model_id="llama3.1:8b", responder=responder(), endpoints=endpoints) as srv:
        assert run(srv.base_url, tiny_suite, tmp_path / "runs", "llama3.1:8b", "--no-report") == 0
    header = read_header(only_run_dir(tmp_path / "runs"))
    s = header.serving
    assert (s.kind, s.build, s.tool_call_format) == ("ollama", "0.5.1", "qwen3-coder")
    assert (s.model.quantization, s.model.parameter_label, s.model.parameter_count) == ("Q4_0", "8.0B", 8030261248)
    assert (s.model.context_length, s.model.architecture) == (4096, "llama")
    # Ollama tells where the model sits: /api/ps size_vram of size.
    assert header.machine.gpu is True and "81% of the model in GPU memory" in header.machine.gpu_detail
    assert header.model_served_ids == ["llama3.1:8b"]


# ---------------------------------------------------------------- the --model check


def test_a_model_the_server_does_not_serve_is_named_in_one_line(tiny_server, tiny_suite, tmp_path, capsys):
    # --allow-unlisted: without it the name is refused (tests/test_own_server.py)
    assert run(tiny_server.base_url, tiny_suite, tmp_path / "runs", "llama-70b", "--no-report", "--allow-unlisted") == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    warnings = [line for line in err if "warning" in line]
    assert len(warnings) == 1, err
    assert "'llama-70b'" in warnings[0] and "[scripted-model]" in warnings[0] and tiny_server.base_url in warnings[0]
    # The run went on under the name given, and the header keeps what the server listed.
    run_dir = only_run_dir(tmp_path / "runs")
    header = read_header(run_dir)
    assert header.model == "llama-70b" and header.model_served_ids == ["scripted-model"]
    assert {json.loads(line)["model"] for line in (run_dir / "samples.jsonl").read_text().splitlines()} == {"llama-70b"}


def test_a_close_name_is_suggested(tiny_server, tiny_suite, tmp_path, capsys):
    assert run(tiny_server.base_url, tiny_suite, tmp_path / "runs", "Scripted-Model", "--no-report",
               "--allow-unlisted") == 0
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert "did you mean 'scripted-model'?" in warning


def test_no_warning_without_model_or_when_it_matches(tiny_server, tiny_suite, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", "--base-url", tiny_server.base_url, "--suite", str(tiny_suite), "--out", str(out),
                 "--no-cache", "--quiet", "--no-report", "--format", "native"]) == 0
    assert run(tiny_server.base_url, tiny_suite, out, "scripted-model", "--no-report") == 0
    assert "warning" not in capsys.readouterr().err


# ---------------------------------------------------------------- run --probe


def test_run_probe_stores_the_probe_and_the_report_shows_it(tiny_suite, tmp_path, capsys):
    ref: list = []
    with ScriptedServer(model_id="qwen2.5-coder-0.5b", responder=responder(ContractResponder(breaks={"null_finish_reason"})),
                        endpoints=llamacpp_endpoints(ref)) as srv:
        ref.append(srv)
        base_url = srv.base_url
        assert run(base_url, tiny_suite, tmp_path / "runs", "qwen2.5-coder-0.5b", "--probe") == 0
        err = capsys.readouterr().err
        probed = probe_requests(srv)
        run_dir = only_run_dir(tmp_path / "runs")
        stored = (run_dir / "probe.json").read_text()
        # --resume keeps the stored probe: nothing is probed again.
        assert main(["run", "--resume", str(run_dir), "--base-url", srv.base_url, "--probe", "--quiet",
                     "--no-report"]) == 0
        assert probe_requests(srv) == probed >= 7
    assert (run_dir / "probe.json").read_text() == stored

    probe = read_probe(run_dir)
    assert probe.model == "qwen2.5-coder-0.5b" and probe.base_url == base_url
    assert [c.name for c in probe.checks] == [c.name for c in CHECKS]
    assert [c.name for c in probe.failed] == ["finish_reason"]
    assert probe.server.kind == "llama.cpp"

    # The terminal names the failed check in one line, --quiet or not.
    (line,) = [x for x in err.splitlines() if x.startswith("evalkit: probe:")]
    assert "1 fail" in line and "failed: finish_reason" in line

    report = (run_dir / "report.md").read_text()
    section = report.split("## Server probe", 1)[1].split("\n## ", 1)[0]
    for check in CHECKS:
        assert f"| {check.name} " in section
    fail_row = next(row for row in section.splitlines() if row.startswith("| finish_reason "))
    assert "| fail " in fail_row and "finish_reason None, not 'tool_calls' (server)" in fail_row
    assert "Server probe" in (run_dir / "report.html").read_text()


def test_a_run_without_probe_has_no_probe_section(tiny_server, tiny_suite, tmp_path):
    assert run(tiny_server.base_url, tiny_suite, tmp_path / "runs", "scripted-model") == 0
    run_dir = only_run_dir(tmp_path / "runs")
    assert not (run_dir / "probe.json").exists() and read_probe(run_dir) is None
    assert "Server probe" not in (run_dir / "report.md").read_text()


# ---------------------------------------------------------------- the Runs table


def runs_table(markdown: str) -> list[str]:
    section = markdown.split("## Runs", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_the_runs_table_shows_server_model_and_machine(tiny_suite, tmp_path):
    ref: list = []
    with ScriptedServer(model_id="qwen2.5-coder-0.5b", responder=responder(), endpoints=llamacpp_endpoints(ref)) as srv:
        ref.append(srv)
        assert run(srv.base_url, tiny_suite, tmp_path / "runs", "qwen2.5-coder-0.5b") == 0
    run_dir = only_run_dir(tmp_path / "runs")
    header_row, _rule, row = runs_table((run_dir / "report.md").read_text())
    assert "| server " in header_row and "| model as served " in header_row and "| machine " in header_row
    sha = hashlib.sha256(TEMPLATE.encode()).hexdigest()[:8]
    assert f"llama.cpp b0-unknown, format peg-native, template {sha}" in row
    assert "Q4_K - Medium, 630M params, ctx 2048 (trained 32768)" in row
    assert "GPU ?, 1 slots, concurrency 1" in row
    html = (run_dir / "report.html").read_text()
    assert "Q4_K - Medium, 630M params, ctx 2048 (trained 32768)" in html


# ---------------------------------------------------------------- a sweep (issue 12) records the same


def test_each_model_of_a_sweep_records_its_serving_and_honours_probe_and_distractors(tiny_suite, tmp_path, capsys):
    # Two llama.cpp servers, each with its own weights (one server answers every name with its one
    # model: a sweep of two names on it is refused, tests/test_own_server.py).
    ref: list = []
    other: list = []
    other_models = {"object": "list", "data": [{**LLAMACPP_MODELS["data"][0], "id": "llama-70b"}]}
    other_endpoints = {**llamacpp_endpoints(other), "GET /props": {**LLAMACPP_PROPS, "model_path": "/m/llama-70b.gguf"},
                       "GET /v1/models": other_models}
    first = ScriptedServer(model_id="qwen2.5-coder-0.5b", responder=responder(), endpoints=llamacpp_endpoints(ref))
    with first as srv, ScriptedServer(model_id="llama-70b", responder=responder(), endpoints=other_endpoints) as srv2:
        ref.append(srv)
        other.append(srv2)
        config = tmp_path / "sweep.yaml"
        config.write_text(json.dumps({"options": [{"model": "qwen2.5-coder-0.5b", "base_url": srv.base_url},
                                                  {"model": "llama-70b", "base_url": srv2.base_url}]}))
        assert main(["run", "--config", str(config),
                     "--suite", str(tiny_suite), "--out", str(tmp_path / "runs"), "--no-cache", "--quiet",
                     "--format", "native", "--probe", "--distractors", "0", "--distractors", "2"]) == 0
        probed = probe_requests(srv) + probe_requests(srv2)
    err = capsys.readouterr().err
    (sweep_dir,) = (tmp_path / "runs").iterdir()
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    assert (sweep["probe"], sweep["distractors"], sweep["tool_cost"]) == (True, [0, 2], True)
    members = [sweep_dir / m["run_dir"] for m in sweep["members"]]
    assert probed >= 2 * 7  # each model probed its server before its run
    for run_dir, model in zip(members, ["qwen2.5-coder-0.5b", "llama-70b"]):
        header = read_header(run_dir)
        assert header.model == model and header.model_served_ids == [model]
        assert header.serving.kind == "llama.cpp" and header.serving.tool_call_format == "peg-native"
        assert header.machine is not None and header.machine.local
        assert (header.distractors, header.tool_cost) == ([0, 2], True)
        assert read_probe(run_dir).model == model
        samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
        assert sorted({s["distractors"] for s in samples}) == [0, 2] and len(samples) == 2 * 3
        assert all(s["tool_tokens"] is not None for s in samples)
    assert "is not among the models" not in err  # each member is what its server serves
    report = (sweep_dir / "report.md").read_text()
    assert "## Server probe" in report and "## Accuracy by tool count" in report
    assert runs_table(report)[0].count("| from cache ") == 1 and "| model as served " in runs_table(report)[0]


# ---------------------------------------------------------------- older runs


def test_old_headers_load_and_render_with_the_facts_they_kept(tmp_path):
    # The runs measured before headers recorded the serving stack (reports/measured also holds
    # newer runs, which record it themselves).
    dirs = sorted(p for p in MEASURED.iterdir() if (p / "header.json").is_file()
                  and json.loads((p / "header.json").read_text()).get("serving") is None)
    assert len(dirs) >= 6, "reports/measured holds the runs measured before this change"
    for run_dir in dirs:
        header = read_header(run_dir)
        assert header.serving is None and header.machine is None and header.server  # written before this change
        s = serving_of(header)  # read from the raw /v1/models and /props bodies it kept
        assert s.kind == "llama.cpp" and s.build == "b0-unknown" and s.model.parameter_count > 100_000_000
        assert s.model.quantization == "Q4_K - Medium" and s.slots == header.server["props"]["total_slots"]
    smallest = min(dirs, key=lambda p: (p / "samples.jsonl").stat().st_size)
    copy = tmp_path / smallest.name
    shutil.copytree(smallest, copy)
    run = load_run(copy)
    who = identity(run)
    assert who.server == "llama.cpp b0-unknown" and "Q4_K - Medium" in who.model
    assert who.machine.startswith(f"{run.header.server['props']['total_slots']} slots, concurrency")
    markdown = render_markdown(build_report([run]), [])
    assert who.model in runs_table(markdown)[2] and "Server probe" not in markdown
