"""Issue 20, "your own server", through the CLI against real HTTP servers on 127.0.0.1: API keys,
request options (--header, --extra-body, --config), the model actually served, a response cache
tied to the served identity, the CI gates (--max-error-rate, --fail-under, --junit) and
`--shard auto` from a Kubernetes Indexed Job's or a Slurm array's variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml

from conftest import TINY_CASES, tiny_responder, write_suite
from evalkit.cli import main
from evalkit.testing.scripted_server import Reply, ScriptedServer
from test_probe import LLAMACPP_MODELS, LLAMACPP_PROPS, OLLAMA_MODELS, OLLAMA_PS, OLLAMA_SHOW

KEY = "sk-evalkit-test-0123456789abcdef"
WRONG = "sk-wrong-key-9876543210"
MODEL = "scripted-model"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def private_env(tmp_path, monkeypatch):
    """Never the user's cache, and no key or server from the user's environment."""
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("EVALKIT_BASE_URL", "OPENAI_BASE_URL", "EVALKIT_API_KEY", "OPENAI_API_KEY",
                 "JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "EVALKIT_SHARD_COUNT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def suite(tmp_path) -> Path:
    return write_suite(tmp_path / "suites", TINY_CASES[:2])


def run(base_url: str, suite: Path, out: Path, *extra: str, model: str = MODEL) -> int:
    return main(["run", "--base-url", base_url, "--model", model, "--suite", str(suite), "--out", str(out),
                 "--no-report", "--quiet", "--format", "native", *extra])


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if (p / "header.json").is_file()) if out.is_dir() else []


def chat_requests(srv: ScriptedServer) -> list[tuple[dict[str, str], dict]]:
    return [(headers, json.loads(body)) for method, path, headers, body in srv.seen
            if method == "POST" and path.endswith("/chat/completions")]


def grep(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


# ---------------------------------------------------------------- 1. keys


def test_the_key_goes_with_every_request_and_nowhere_else(tmp_path, suite, capsys):
    """--api-key reaches the server on the chat requests, --tool-cost's tools-free ones, the
    server-facts GETs and the probe; the run directory, the cache and the terminal never hold it."""
    with ScriptedServer(responder=tiny_responder, api_key=KEY) as srv:
        code = run(srv.base_url, suite, tmp_path / "out", "--api-key", KEY, "--tool-cost", "--probe", "--quiet")
        seen = srv.seen
    out = capsys.readouterr()
    assert code == 0, out.err
    unkeyed = [(method, path) for method, path, headers, _b in seen if headers.get("Authorization") != f"Bearer {KEY}"]
    assert seen and unkeyed == []
    paths = {path for _m, path, _h, _b in seen}
    assert {"/v1/models", "/v1/chat/completions"} <= paths
    bodies = [body for headers, body in chat_requests(srv)]
    assert any(b.get("max_tokens") == 1 and not b.get("tools") for b in bodies)  # --tool-cost's tools-free request
    (run_dir,) = run_dirs(tmp_path / "out")
    assert json.loads((run_dir / "header.json").read_text())["api_key_sent"] is True
    assert (run_dir / "probe.json").is_file()
    assert grep(tmp_path, KEY) == [] and KEY not in out.out + out.err


@pytest.mark.parametrize("variable", ["EVALKIT_API_KEY", "OPENAI_API_KEY"])
def test_the_key_comes_from_the_environment(tmp_path, suite, monkeypatch, variable):
    monkeypatch.setenv(variable, KEY)
    if variable == "OPENAI_API_KEY":
        monkeypatch.setenv("EVALKIT_API_KEY", "")  # empty: not a key, the next variable is asked
    with ScriptedServer(responder=tiny_responder, api_key=KEY) as srv:
        assert run(srv.base_url, suite, tmp_path / "out") == 0
        assert all(h["Authorization"] == f"Bearer {KEY}" for h, _b in chat_requests(srv))


def test_the_flag_wins_over_the_environment(tmp_path, suite, monkeypatch):
    monkeypatch.setenv("EVALKIT_API_KEY", WRONG)
    with ScriptedServer(responder=tiny_responder, api_key=KEY) as srv:
        assert run(srv.base_url, suite, tmp_path / "out", "--api-key", KEY) == 0


@pytest.mark.parametrize("given, advice", [(None, "pass --api-key KEY"), (WRONG, "check the key")])
def test_a_refused_key_stops_the_run_in_one_line(tmp_path, suite, capsys, given, advice):
    """As llama.cpp does, the model list needs no key: the first chat request is the one refused.
    The server echoes the key it was sent; the line shows it hidden. No run directory is left."""
    with ScriptedServer(responder=tiny_responder, api_key=KEY, open_paths=("/v1/models",)) as srv:
        extra = ("--api-key", given) if given else ()
        code = run(srv.base_url, suite, tmp_path / "out", *extra)
        asked = len(chat_requests(srv))
        base_url = srv.base_url
    err = capsys.readouterr().err
    assert code == 2 and asked >= 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and base_url in lines[0] and "HTTP 401" in lines[0] and advice in lines[0]
    assert WRONG not in err
    assert run_dirs(tmp_path / "out") == []
    assert grep(tmp_path, WRONG) == []


def test_a_server_that_lists_nothing_without_a_key_is_refused_before_any_chat(tmp_path, suite, capsys):
    with ScriptedServer(responder=tiny_responder, api_key=KEY) as srv:
        assert run(srv.base_url, suite, tmp_path / "out") == 2
        assert chat_requests(srv) == []
    err = capsys.readouterr().err
    assert "refused evalkit's request (GET /v1/models: HTTP 401)" in err and "--api-key" in err


def test_discovery_sends_the_key(tmp_path, suite, capsys):
    """No --model: the server's model list is asked with the key, and its first model is run."""
    with ScriptedServer(responder=tiny_responder, api_key=KEY) as srv:
        code = main(["run", "--base-url", srv.base_url, "--api-key", KEY, "--suite", str(suite), "--out",
                     str(tmp_path / "out"), "--no-report", "--quiet", "--format", "native"])
    assert code == 0, capsys.readouterr().err
    (run_dir,) = run_dirs(tmp_path / "out")
    assert json.loads((run_dir / "header.json").read_text())["model"] == MODEL


# ---------------------------------------------------------------- 2. request options

EXTRA = {"chat_template_kwargs": {"enable_thinking": False}, "top_k": 20}


def test_headers_and_extra_body_reach_every_chat_request(tmp_path, suite):
    with ScriptedServer(responder=tiny_responder) as srv:
        code = run(srv.base_url, suite, tmp_path / "out", "--header", "X-Team: evals-secret-value",
                   "--header", "X-Route: blue", "--extra-body", json.dumps(EXTRA))
        requests = chat_requests(srv)
    assert code == 0 and len(requests) == 2
    for headers, body in requests:
        assert headers["X-Team"] == "evals-secret-value" and headers["X-Route"] == "blue"
        assert body["chat_template_kwargs"] == {"enable_thinking": False} and body["top_k"] == 20
    (run_dir,) = run_dirs(tmp_path / "out")
    header = json.loads((run_dir / "header.json").read_text())
    assert header["settings"]["header_names"] == ["X-Route", "X-Team"]
    assert header["settings"]["extra_body"] == EXTRA
    assert grep(tmp_path, "evals-secret-value") == []  # names only, in the header and the cache


@pytest.mark.parametrize("flag, value, problem", [
    ("--header", "no colon here", "expected 'Name: value'"),
    ("--header", "Authorization: Bearer x", "--api-key"),
    ("--extra-body", "[1, 2]", "expected a JSON object"),
    ("--extra-body", '{"messages": []}', "set by evalkit"),
])
def test_bad_request_options_are_one_line(tmp_path, suite, capsys, flag, value, problem):
    assert run("http://127.0.0.1:9/v1", suite, tmp_path / "out", flag, value) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and problem in err and "Bearer x" not in err


def test_request_options_are_part_of_the_cache_key(tmp_path, suite):
    with ScriptedServer(responder=tiny_responder) as srv:
        assert run(srv.base_url, suite, tmp_path / "a", "--cache") == 0
        first = srv.hits
        assert run(srv.base_url, suite, tmp_path / "b", "--cache") == 0
        assert srv.hits == first  # the same request: answered from the cache
        assert run(srv.base_url, suite, tmp_path / "c", "--cache", "--extra-body", '{"top_k": 5}') == 0
        assert srv.hits == 2 * first
        assert run(srv.base_url, suite, tmp_path / "d", "--cache", "--header", "X-Team: a") == 0
        assert srv.hits == 3 * first


def config_file(tmp_path: Path, options: list[dict] | dict) -> Path:
    path = tmp_path / "models.yaml"
    document = options if isinstance(options, dict) else {"options": options}
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_a_config_sweep_sends_each_option_its_own_key_headers_and_body(tmp_path, suite, monkeypatch, capsys):
    monkeypatch.setenv("KEY_A", KEY)
    monkeypatch.setenv("KEY_B", WRONG)
    with ScriptedServer(model_id="model-a", responder=tiny_responder, api_key=KEY) as a, \
            ScriptedServer(model_id="model-b", responder=tiny_responder, api_key=WRONG) as b:
        config = config_file(tmp_path, [
            {"model": "model-a", "base_url": a.base_url, "api_key_env": "KEY_A", "extra_body": {"top_k": 1},
             "headers": {"X-Gateway": "gw-secret-a"}},
            {"model": "model-b", "base_url": b.base_url, "api_key_env": "KEY_B",
             "extra_body": {"reasoning_effort": "low"}, "formats": ["default"]},
        ])
        code = main(["run", "--config", str(config), "--suite", str(suite), "--out", str(tmp_path / "out"),
                     "--no-report", "--quiet"])
        seen_a, seen_b = chat_requests(a), chat_requests(b)
    out = capsys.readouterr()
    assert code == 0, out.err
    assert seen_a and all(h["Authorization"] == f"Bearer {KEY}" and h["X-Gateway"] == "gw-secret-a"
                          and body["top_k"] == 1 and body["model"] == "model-a" for h, body in seen_a)
    assert seen_b and all(h["Authorization"] == f"Bearer {WRONG}" and "X-Gateway" not in h
                          and body["reasoning_effort"] == "low" and "tools" not in body for h, body in seen_b)
    (sweep_dir,) = list((tmp_path / "out").iterdir())
    assert json.loads((sweep_dir / "sweep.json").read_text())["members"][0]["api_key_env"] == "KEY_A"
    for secret in (KEY, WRONG, "gw-secret-a"):
        assert grep(tmp_path / "out", secret) == [] and grep(tmp_path / "cache", secret) == []
        assert secret not in out.out + out.err


@pytest.mark.parametrize("options, where", [
    ([{"model": "m", "extra_body": [1]}], "option #1 (model 'm'): field 'extra_body'"),
    ([{"model": "m"}, {"model": "n", "headrs": {}}], "option #2 (model 'n'): field 'headrs': unknown field"),
    ([{"model": "m", "formats": ["natve"]}], "option #1 (model 'm'): field 'formats'"),
    ([{"model": "m", "base_url": "ftp://x"}], "option #1 (model 'm'): field 'base_url'"),
    ([{"base_url": "http://127.0.0.1:9/v1"}], "option #1: field 'model': Field required"),
    ([], "field 'options'"),
    ({"optons": [{"model": "m"}]}, "field 'optons': unknown field"),
])
def test_a_bad_config_is_one_line_naming_file_option_and_field(tmp_path, suite, capsys, options, where):
    config = config_file(tmp_path, options)
    assert main(["run", "--config", str(config), "--suite", str(suite), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{config}: " in err and where in err, err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 3. the model actually served


def test_an_unlisted_model_is_refused_naming_what_is_served(tmp_path, suite, capsys):
    with ScriptedServer(responder=tiny_responder, models=["qwen2.5-7b-instruct"]) as srv:
        assert run(srv.base_url, suite, tmp_path / "out", model="qwen2.5-7b") == 2
        err = capsys.readouterr().err
        assert srv.hits == 0 and run_dirs(tmp_path / "out") == []
        assert len(err.strip().splitlines()) == 1
        assert "scripted-model, qwen2.5-7b-instruct" in err and "did you mean 'qwen2.5-7b-instruct'" in err
        assert run(srv.base_url, suite, tmp_path / "out", "--allow-unlisted", model="qwen2.5-7b") == 0
    assert "is not among the models" in capsys.readouterr().err  # still said, as a warning


def test_a_sweep_of_the_same_served_weights_is_refused(tmp_path, suite, capsys):
    """llama.cpp answers every name with its one model: two names on it compare it with itself."""
    endpoints = {"GET /props": LLAMACPP_PROPS, "GET /v1/models": LLAMACPP_MODELS}
    with ScriptedServer(responder=tiny_responder, endpoints=endpoints) as srv:
        code = main(["run", "--base-url", srv.base_url, "--model", "qwen2.5-coder-0.5b", "--model", "other-13b",
                     "--allow-unlisted", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"])
        assert srv.hits == 0
    err = capsys.readouterr().err
    assert code == 2 and "resolve to the same served weights" in err
    assert "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_sweep_of_two_listed_models_runs(tmp_path, suite):
    with ScriptedServer(responder=tiny_responder, models=["other-13b"]) as srv:
        code = main(["run", "--base-url", srv.base_url, "--model", MODEL, "--model", "other-13b",
                     "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet", "--no-report"])
    assert code == 0


# ---------------------------------------------------------------- 4. the cache and the served identity


def llamacpp(template: str, port: int = 0) -> ScriptedServer:
    props = {**LLAMACPP_PROPS, "chat_template": template}
    return ScriptedServer(model_id="qwen2.5-coder-0.5b", responder=tiny_responder, port=port,
                          endpoints={"GET /props": props, "GET /v1/models": LLAMACPP_MODELS})


def test_a_restarted_server_with_another_template_gets_no_cache_hit(tmp_path, suite, capsys):
    model = "qwen2.5-coder-0.5b"
    with llamacpp("template one") as srv:
        port = srv.port
        assert run(srv.base_url, suite, tmp_path / "a", "--cache", model=model) == 0
        first = srv.hits
    with llamacpp("template one", port) as srv:  # restarted as it was: every reply from the cache
        assert run(srv.base_url, suite, tmp_path / "b", "--cache", model=model) == 0
        assert srv.hits == 0
    with llamacpp("template two, fixed", port) as srv:  # same URL and name, another template
        assert run(srv.base_url, suite, tmp_path / "c", "--cache", model=model) == 0
        assert srv.hits == first
    header = json.loads((run_dirs(tmp_path / "c")[0] / "header.json").read_text())
    assert header["cache_identity"] == "tied"
    assert header["served_identity"]["file"] == "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    assert header["served_identity"]["quantization"] == "Q4_K - Medium"
    assert "could not be tied" not in capsys.readouterr().out


def ollama(digest: str, port: int = 0, models: tuple[str, ...] = ("llama3.1:8b",)) -> ScriptedServer:
    """Ollama as test_probe.py plays it; /api/ps tells the loaded weights' digest for every tag."""
    loaded = [{**OLLAMA_PS["models"][0], "name": m, "model": m, "digest": digest} for m in models]
    listing = {"object": "list", "data": [{**OLLAMA_MODELS["data"][0], "id": m} for m in models]}
    return ScriptedServer(model_id=models[0], models=models[1:], responder=tiny_responder, port=port, endpoints={
        "GET /api/version": {"version": "0.5.1"}, "POST /api/show": OLLAMA_SHOW, "GET /v1/models": listing,
        "GET /api/ps": {"models": loaded}})


def test_ollama_re_pulled_under_the_same_tag_gets_no_cache_hit(tmp_path, suite):
    old, new = "a2af6cc3eb7f" + "0" * 52, "b3bf7dd4fc80" + "1" * 52
    with ollama(old) as srv:
        port = srv.port
        assert run(srv.base_url, suite, tmp_path / "a", "--cache", model="llama3.1:8b") == 0
        first = srv.hits
    with ollama(new, port) as srv:  # `ollama pull` brought other weights under the same tag
        assert run(srv.base_url, suite, tmp_path / "b", "--cache", model="llama3.1:8b") == 0
        assert srv.hits == first
    identity = json.loads((run_dirs(tmp_path / "b")[0] / "header.json").read_text())["served_identity"]
    assert identity["digest"] == new and identity["quantization"] == "Q4_0"


def test_a_sweep_of_two_tags_of_one_digest_is_refused(tmp_path, suite, capsys):
    with ollama("c" * 64, models=("llama3.1:8b", "llama3.1:latest")) as srv:
        code = main(["run", "--base-url", srv.base_url, "--model", "llama3.1:8b", "--model", "llama3.1:latest",
                     "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 2 and "resolve to the same served weights" in capsys.readouterr().err


def test_a_server_that_tells_nothing_says_so_in_the_summary(tmp_path, suite, capsys):
    with ScriptedServer(responder=tiny_responder) as srv:
        assert run(srv.base_url, suite, tmp_path / "a", "--cache") == 0
    out = capsys.readouterr().out
    assert "the cache could not be tied to a server identity" in out
    assert json.loads((run_dirs(tmp_path / "a")[0] / "header.json").read_text())["cache_identity"] == "untied"


def test_cached_replies_from_before_the_identity_key_are_not_served(tmp_path, suite):
    """A reply cached under the old key (base URL + model + request, no served identity) is never
    an answer for a server that tells its identity: its keys hold the identity."""
    from evalkit.cache import ResponseCache

    with llamacpp("template one") as srv:
        assert run(srv.base_url, suite, tmp_path / "a", "--cache", model="qwen2.5-coder-0.5b") == 0
        cache = ResponseCache.open_default()
        rows = cache._db.execute("SELECT key FROM responses").fetchall()
        sample = json.loads((run_dirs(tmp_path / "a")[0] / "samples.jsonl").read_text().splitlines()[0])
        old = _v1_key(srv.base_url, "qwen2.5-coder-0.5b", sample["request"], True, 0, "native")
        cache.close()
    assert rows and old not in {r[0] for r in rows}


def _v1_key(base_url, model, params, stream, repeat, fmt) -> str:
    """The cache key before issue 20, as cache.py made it."""
    import hashlib

    material = {"base_url": base_url.rstrip("/"), "model": model, "request": params, "format": fmt,
                "stream": stream, "repeat": repeat}
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- 5. CI


def half_broken(request: dict) -> Reply:
    """Answers the `hello` case, fails `cmp` with a server error."""
    if "Bob" in json.dumps(request["messages"]):
        return tiny_responder(request)
    return Reply(status=500)


def test_too_many_errors_exit_1(tmp_path, suite, capsys):
    with ScriptedServer(responder=half_broken) as srv:
        assert run(srv.base_url, suite, tmp_path / "a", "--retries", "0") == 1
        assert "1 of 2 samples are errors (50%), over --max-error-rate 10%" in capsys.readouterr().err
        assert run(srv.base_url, suite, tmp_path / "b", "--retries", "0", "--max-error-rate", "50%") == 0


def test_fail_under_and_junit(tmp_path, suite, capsys):
    def wrong_hello(request: dict) -> Reply:
        if "Bob" in json.dumps(request["messages"]):
            return Reply(tool_calls=[{"name": "say_hello", "arguments": {"name": "Alice"}}])
        return tiny_responder(request)

    junit = tmp_path / "ci" / "junit.xml"
    with ScriptedServer(responder=wrong_hello) as srv:
        assert run(srv.base_url, suite, tmp_path / "a", "--fail-under", "0.5") == 0
        assert run(srv.base_url, suite, tmp_path / "b", "--fail-under", "0.9", "--junit", str(junit)) == 1
    assert f"{MODEL} [native]: call accuracy 0.500, under --fail-under 0.9" in capsys.readouterr().err
    cases = ET.parse(junit).getroot().findall("testsuite/testcase")
    assert sorted(c.get("name") for c in cases) == ["cmp", "hello"]
    (failed,) = [c for c in cases if c.find("failure") is not None]
    assert failed.get("name") == "hello" and failed.find("failure").get("message").startswith("wrong_value: say_hello")


# ---------------------------------------------------------------- 6. --shard auto


SCHEDULERS = [
    ("kubernetes", lambda i, n: {"JOB_COMPLETION_INDEX": str(i)}, "auto/{n}"),
    ("kubernetes-env-count", lambda i, n: {"JOB_COMPLETION_INDEX": str(i), "EVALKIT_SHARD_COUNT": str(n)}, "auto"),
    ("slurm", lambda i, n: {"SLURM_ARRAY_TASK_ID": str(i + 1), "SLURM_ARRAY_TASK_MIN": "1",
                            "SLURM_ARRAY_TASK_COUNT": str(n)}, "auto"),
]


@pytest.mark.parametrize("name, variables, shard", SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
def test_shard_auto_in_separate_processes_then_merge(tmp_path, name, variables, shard):
    cases = write_suite(tmp_path / "suites", TINY_CASES)
    workers = 2
    with ScriptedServer(responder=tiny_responder) as srv:
        procs = []
        for index in range(workers):
            env = {k: v for k, v in os.environ.items() if k not in ("JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID")}
            env.update(variables(index, workers), PYTHONPATH=str(ROOT), EVALKIT_CACHE_DIR=str(tmp_path / "cache"))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "evalkit", "run", "--base-url", srv.base_url, "--model", MODEL, "--suite",
                 str(cases), "--format", "native", "--shard", shard.format(n=workers), "--out",
                 str(tmp_path / f"w{index}"), "--no-report", "--quiet", "--no-cache"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for proc in procs:
            _out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    shards = [run_dirs(tmp_path / f"w{i}")[0] for i in range(workers)]
    assert [json.loads((d / "header.json").read_text())["shard"] for d in shards] == ["1/2", "2/2"]
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "merged")]) == 0
    (merged,) = run_dirs(tmp_path / "merged")
    ids = sorted(json.loads(line)["case_id"] for line in (merged / "samples.jsonl").read_text().splitlines())
    assert ids == sorted(c["id"] for c in TINY_CASES)


@pytest.mark.parametrize("variables, shard, problem", [
    ({}, "auto", "neither $JOB_COMPLETION_INDEX"),
    ({"JOB_COMPLETION_INDEX": "0"}, "auto", "--shard auto/N or $EVALKIT_SHARD_COUNT"),
    ({"JOB_COMPLETION_INDEX": "4"}, "auto/4", "i must be between 1 and n"),
])
def test_shard_auto_without_its_variables_is_one_line(tmp_path, suite, monkeypatch, capsys, variables, shard,
                                                      problem):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert run("http://127.0.0.1:9/v1", suite, tmp_path / "out", "--shard", shard) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and problem in err


# ---------------------------------------------------------------- more of the same, at the edges


def test_a_401_after_answers_is_that_samples_error(tmp_path, suite):
    """Only a refusal before any answer stops the run: a key revoked mid-run is a sample's error."""
    def revoked_later(request: dict) -> Reply:
        if "Bob" in json.dumps(request["messages"]):
            return Reply(status=401, error_body=f"Invalid API Key {KEY}")
        return tiny_responder(request)

    with ScriptedServer(responder=revoked_later) as srv:
        code = run(srv.base_url, suite, tmp_path / "out", "--api-key", KEY, "--concurrency", "1", "--retries", "0")
    assert code == 1  # done; one error sample of two is over --max-error-rate
    (run_dir,) = run_dirs(tmp_path / "out")
    errors = [json.loads(line)["error"] for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert [e for e in errors if e] == ["HTTP 401: Invalid API Key [hidden]"]


def test_resume_asks_for_the_same_headers_and_the_same_server(tmp_path, suite, capsys):
    with llamacpp("template one") as srv:
        port = srv.port
        assert run(srv.base_url, suite, tmp_path / "a", "--header", "X-Team: a", model="qwen2.5-coder-0.5b") == 0
    (run_dir,) = run_dirs(tmp_path / "a")
    with llamacpp("template one", port):
        assert main(["run", "--resume", str(run_dir), "--quiet", "--no-report"]) == 2
        assert "pass the same --header options" in capsys.readouterr().err
        assert main(["run", "--resume", str(run_dir), "--quiet", "--no-report", "--header", "X-Team: a"]) == 0
    with llamacpp("template two", port):
        assert main(["run", "--resume", str(run_dir), "--quiet", "--no-report", "--header", "X-Team: a"]) == 2
    err = capsys.readouterr().err
    assert "not what the run started with" in err and "start a new run" in err


def test_probe_sends_the_key(capsys):
    from evalkit.testing.scripted_server import ContractResponder

    with ScriptedServer(responder=ContractResponder(), api_key=KEY) as srv:
        main(["probe", "--base-url", srv.base_url, "--model", MODEL, "--api-key", KEY])
        seen = srv.seen
    assert len(seen) >= 7 and all(h.get("Authorization") == f"Bearer {KEY}" for _m, _p, h, _b in seen)
    assert KEY not in capsys.readouterr().out
    # A wrong key: the server echoes it in every refusal; the probe's output shows it hidden.
    with ScriptedServer(responder=ContractResponder(), api_key=KEY, open_paths=("/v1/models",)) as srv:
        assert main(["probe", "--base-url", srv.base_url, "--model", MODEL, "--api-key", WRONG, "--json"]) == 1
    out = capsys.readouterr().out
    assert "[hidden]" in out and WRONG not in out


def test_the_documented_config_file_is_valid(tmp_path):
    from evalkit.runconfig import read_config

    text = (ROOT / "docs" / "own-server.md").read_text()
    block = text.split("```yaml\n# models.yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "models.yaml"
    path.write_text(block)
    config = read_config(path)
    assert [o.model for o in config.options] == ["qwen3-8b", "gpt-oss-20b", "qwen2.5-7b-instruct"]
    assert config.options[0].extra_body == {"chat_template_kwargs": {"enable_thinking": False}, "top_k": 20}


def test_shards_with_other_request_options_do_not_merge(tmp_path, suite, capsys):
    """The extra body is part of the run's settings: samples asked with other options never join."""
    with ScriptedServer(responder=tiny_responder) as srv:
        assert run(srv.base_url, suite, tmp_path / "a", "--shard", "1/2", "--extra-body", '{"top_k": 1}') == 0
        assert run(srv.base_url, suite, tmp_path / "b", "--shard", "2/2", "--extra-body", '{"top_k": 2}') == 0
    (a,), (b,) = run_dirs(tmp_path / "a"), run_dirs(tmp_path / "b")
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "m")]) == 2
    assert "settings differ" in capsys.readouterr().err
