"""Issue 20 on the real embedded engine (llama.cpp in xllamacpp, the bundled 0.5B model): started
with an API key (`CommonParams.api_keys`, `evalkit serve --api-key`), a run with the key works and
one without it stops in one line; restarted with another chat template, nothing is answered from
the cache. Two cases, one format: what matters is what the harness sends and keeps, not scores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_suite
from evalkit.cli import main
from evalkit.engine.discover import get_json
from evalkit.rundir import read_header, read_samples

pytestmark = pytest.mark.e2e

MODEL = "qwen2.5-coder-0.5b"
KEY = "sk-e2e-0f1e2d3c4b5a69788796a5b4"
ROOT = Path(__file__).resolve().parent.parent
CASES = [
    {"id": "hello", "messages": [{"role": "user", "content": "Say hello to Bob."}],
     "expect": {"calls": [{"name": "say_hello", "args": {"name": "Bob"}}]}},
    {"id": "add", "messages": [{"role": "user", "content": "Add 2 and 3."}],
     "expect": {"calls": [{"name": "add_data", "args": {"num1": 2, "num2": 3}}]}},
]


@pytest.fixture(autouse=True)
def private_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("EVALKIT_API_KEY", "OPENAI_API_KEY", "EVALKIT_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def run(base_url: str, suite: Path, out: Path, *extra: str) -> int:
    return main(["run", "--base-url", base_url, "--model", MODEL, "--suite", str(suite), "--out", str(out),
                 "--format", "native", "--max-tokens", "64", "--no-report", "--quiet", "--concurrency", "1",
                 "--max-error-rate", "0", *extra])


def only(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def test_evalkit_serve_with_a_key(tmp_path, capsys):
    suite = write_suite(tmp_path / "suites", CASES)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    serve = subprocess.Popen([sys.executable, "-m", "evalkit", "serve", MODEL, "--api-key", KEY, "--parallel", "1",
                              "--ctx", "2048", "--threads", "2"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        line = serve.stdout.readline()  # "serving <model> at <url> (...)": the engine is ready
        assert line.startswith("serving "), line
        base_url = line.split(" at ", 1)[1].split(" ", 1)[0]

        assert run(base_url, suite, tmp_path / "without") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and base_url in err[0] and "HTTP 401" in err[0] and "--api-key" in err[0]
        assert not (tmp_path / "without").exists() or list((tmp_path / "without").iterdir()) == []

        assert run(base_url, suite, tmp_path / "with", "--api-key", KEY) == 0, capsys.readouterr().err
        run_dir = only(tmp_path / "with")
        samples = list(read_samples(run_dir))
        assert len(samples) == 2 and all(s.error is None for s in samples)
        header = read_header(run_dir)
        assert header.api_key_sent and header.serving.kind == "llama.cpp"  # /props answered with the key
        assert header.cache_identity == "tied" and header.served_identity["template_sha256"]
        for root in (tmp_path / "with", tmp_path / "cache"):
            assert [p for p in root.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()] == []
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)


def test_a_restarted_engine_with_another_template_answers_nothing_from_the_cache(tmp_path):
    from evalkit.engine.pull import ensure_model
    from evalkit.engine.server import EmbeddedEngine

    suite = write_suite(tmp_path / "suites", CASES)
    path = ensure_model(MODEL, progress=False)
    settings = {"n_ctx": 2048, "n_parallel": 1, "n_threads": 2, "api_key": KEY}
    with EmbeddedEngine(path, **settings) as engine:
        port, base_url = int(engine.address.rsplit(":", 1)[1]), engine.base_url
        template = get_json(engine.address + "/props", api_key=KEY)["chat_template"]
        assert run(base_url, suite, tmp_path / "a", "--api-key", KEY, "--cache") == 0
        assert run(base_url, suite, tmp_path / "b", "--api-key", KEY, "--cache") == 0
    assert all(s.cached for s in read_samples(only(tmp_path / "b")))  # the same engine: from the cache
    # The same GGUF, URL and name; the template with one Jinja comment more renders the same
    # prompts, but it is another template, and nothing may be answered for it from old replies.
    with EmbeddedEngine(path, port=port, chat_template=template + "{# evalkit: another template #}", **settings):
        assert run(base_url, suite, tmp_path / "c", "--api-key", KEY, "--cache") == 0
    samples = list(read_samples(only(tmp_path / "c")))
    assert len(samples) == 2 and not any(s.cached for s in samples)
    before, after = (json.loads((only(tmp_path / d) / "header.json").read_text())["served_identity"] for d in "ac")
    assert before["template_sha256"] != after["template_sha256"] and before["file"] == after["file"]
