"""Finding the server and model id for `--model NAME`: real HTTP servers on ephemeral loopback ports."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evalkit.engine import discover
from evalkit.engine.discover import (
    Resolved,
    best_match,
    list_server_models,
    match_rank,
    normalise_base_url,
    resolve,
)
from evalkit.engine.registry import BUNDLED
from evalkit.errors import EvalkitError
from evalkit.testing.scripted_server import ScriptedServer

DEFAULT_PROBES = list(discover.PROBES)  # read before any test replaces the list


class ModelsServer:
    """A minimal server whose GET /v1/models lists `ids` (LM Studio and Ollama serve several)."""

    def __init__(self, ids: list[str], status: int = 200):
        self.ids, self.status, self.hits = ids, status, 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                owner.hits += 1
                body = json.dumps({"object": "list", "data": [{"id": i, "object": "model"} for i in owner.ids]})
                code = owner.status if self.path == "/v1/models" else 404
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture(autouse=True)
def no_env_servers(monkeypatch):
    """The developer's own EVALKIT_BASE_URL / OPENAI_BASE_URL must not leak into these tests,
    and no test may probe the real default ports."""
    for var in discover.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(discover, "PROBES", [("lmstudio", closed_port_url())])


# --- matching rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "served",
    [
        "qwen2.5-7b-instruct",
        "lmstudio-community/Qwen2.5-7B-Instruct-GGUF",
        "Qwen/Qwen2.5-7B-Instruct",
        "qwen2.5:7b",
        "qwen2.5:7b-instruct-q4_K_M",
        "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
        "qwen2.5-7b-instruct-awq",
    ],
)
def test_loose_names_match(served):
    assert match_rank("qwen2.5-7b", served) is not None


@pytest.mark.parametrize(
    "wanted, served",
    [
        ("qwen2.5-7b", "qwen2.5-72b-instruct"),
        ("qwen2.5-1.5b", "qwen2.5-15b"),
        ("phi-3", "phi-3.5-mini-instruct"),
        ("qwen2.5-7b", "qwen2.5-coder-7b-instruct"),
        ("llama3-8b", "qwen2.5-7b"),
    ],
)
def test_different_models_do_not_match(wanted, served):
    assert match_rank(wanted, served) is None


def test_containment_works_both_ways_and_ranks():
    assert match_rank("Qwen2.5-7B-Instruct-GGUF", "qwen2.5-7b") is not None  # the typed name is longer
    assert match_rank("m", "m") == (0, "exact")
    assert match_rank("Qwen2.5-7B", "qwen2.5-7b") == (1, "case")
    assert match_rank("qwen2.5-7b", "Qwen/Qwen2.5-7B-Instruct")[1] == "normalised"
    served = ["qwen2.5-7b-instruct-1m", "qwen2.5:latest", "qwen2.5-7b"]
    assert best_match("qwen2.5", served) == ("qwen2.5:latest", "normalised")
    # Among loose matches the one with the fewest extra tokens wins.
    assert best_match("qwen2.5-7b", ["qwen2.5-7b-instruct-1m-special", "qwen2.5-7b-chat"])[0] == "qwen2.5-7b-chat"


# --- resolve against real servers -----------------------------------------------------------


def test_loose_match_on_a_local_server():
    with ModelsServer(["llama3:8b", "lmstudio-community/Qwen2.5-7B-Instruct-GGUF"]) as lm:
        probes = [("lmstudio", lm.base_url), ("ollama", closed_port_url())]
        got = resolve("qwen2.5-7b", None, probes=probes)
    assert got == Resolved(
        base_url=lm.base_url, model_id="lmstudio-community/Qwen2.5-7B-Instruct-GGUF", requested="qwen2.5-7b",
        backend="lmstudio", bundled=False, match="normalised", served=lm.ids,
    )


def test_best_match_anywhere_wins_then_probe_order():
    with ModelsServer(["qwen2.5-7b-instruct"]) as lm, ModelsServer(["qwen2.5-7b"]) as ollama, \
            ModelsServer(["qwen2.5-7b"]) as llamacpp:
        probes = [("lmstudio", lm.base_url), ("ollama", ollama.base_url), ("llamacpp", llamacpp.base_url)]
        got = resolve("qwen2.5-7b", None, probes=probes)
        assert (got.backend, got.model_id, got.match) == ("ollama", "qwen2.5-7b", "exact")
        # Same quality on two servers: the earlier probe wins.
        got = resolve("QWEN2.5-7B", None, probes=probes[1:])
        assert (got.backend, got.match) == ("ollama", "case")


def test_env_base_url_is_probed_first(monkeypatch):
    with ModelsServer(["my-model-v2"]) as env_srv, ModelsServer(["my-model-v2"]) as lm:
        monkeypatch.setenv("OPENAI_BASE_URL", env_srv.base_url + "/")
        got = resolve("my-model-v2", None, probes=[("lmstudio", lm.base_url)])
    assert (got.backend, got.base_url) == ("env", env_srv.base_url)


def test_default_probe_list_is_loopback_and_overridable():
    assert [b for b, _ in DEFAULT_PROBES] == ["lmstudio", "ollama", "llamacpp", "vllm"]
    assert [u for _, u in DEFAULT_PROBES] == [
        "http://127.0.0.1:1234/v1", "http://127.0.0.1:11434/v1", "http://127.0.0.1:8080/v1", "http://127.0.0.1:8000/v1",
    ]
    # The module-level list is what resolve() uses when no probes= is given.
    with ModelsServer(["only-here"]) as srv:
        discover.PROBES[:] = [("llamacpp", srv.base_url)]
        assert resolve("only-here", None).base_url == srv.base_url


def test_no_match_lists_servers_models_and_bundled():
    down = closed_port_url()
    with ModelsServer(["llama3:8b", "mistral:7b"]) as ollama, ModelsServer([], status=401) as locked:
        probes = [("lmstudio", down), ("ollama", ollama.base_url), ("vllm", locked.base_url)]
        with pytest.raises(EvalkitError) as err:
            resolve("qwen2.5-7b", None, probes=probes)
    message = str(err.value)
    assert "\n" not in message
    assert f"lmstudio {down}: down" in message
    assert f"ollama {ollama.base_url}: [llama3:8b, mistral:7b]" in message
    assert f"vllm {locked.base_url}: HTTP 401" in message
    for name in BUNDLED:
        assert name in message


# --- bundled and --base-url -----------------------------------------------------------------


def test_bundled_names_use_the_embedded_engine():
    got = resolve("Qwen2.5-Coder-0.5B", None, probes=[])
    assert got == Resolved(None, "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b", "embedded", True)
    assert resolve(None, None, probes=[]).model_id == "qwen2.5-coder-0.5b"


def test_base_url_passes_the_name_through_without_asking():
    with ModelsServer(["other"]) as srv:
        got = resolve("whatever-I-typed", srv.base_url)
        assert srv.hits == 0
    assert (got.base_url, got.model_id, got.requested) == (srv.base_url, "whatever-I-typed", "whatever-I-typed")
    assert not got.bundled and got.match == "passthrough"
    # A bundled name with --base-url is still passed through: the user chose the server.
    assert resolve("qwen2.5-coder-0.5b", "http://127.0.0.1:1234").backend == "lmstudio"
    assert resolve("m", "http://127.0.0.1:11434/v1/").base_url == "http://127.0.0.1:11434/v1"
    assert resolve("m", "http://127.0.0.1:9999/v1").backend == "openai-compatible"


def test_base_url_without_a_name_takes_the_first_model():
    with ScriptedServer(model_id="served-model-x") as srv:
        got = resolve(None, srv.base_url)
        assert list_server_models(srv.base_url) == ["served-model-x"]
    assert (got.model_id, got.requested, got.match) == ("served-model-x", None, "first")


def test_base_url_down_without_a_name_is_one_line():
    with pytest.raises(EvalkitError, match="cannot list the models of .*is the server running"):
        resolve(None, closed_port_url())


def test_normalise_base_url():
    assert normalise_base_url("http://127.0.0.1:1234") == "http://127.0.0.1:1234/v1"
    assert normalise_base_url("127.0.0.1:8080/") == "http://127.0.0.1:8080/v1"
    assert normalise_base_url("https://host/api/v1/") == "https://host/api/v1"


def test_models_command_lists_bundled_and_served(monkeypatch, tmp_path, capsys):
    import argparse

    from evalkit.engine.cli import add_commands

    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path))
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    with ModelsServer(["served-a", "served-b"]) as srv:
        args = parser.parse_args(["models", "--base-url", srv.base_url])
        assert args.func(args) == 0
    out = capsys.readouterr().out
    for name in BUNDLED:
        assert name in out
    assert "qwen2.5-coder-0.5b *" in out and " no " in out and "native" in out
    assert f"served by {srv.base_url}:\n  served-a\n  served-b" in out
    args = parser.parse_args(["models", "--base-url", closed_port_url()])
    with pytest.raises(EvalkitError, match="cannot list the models"):
        args.func(args)
