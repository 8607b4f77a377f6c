"""Issue 7 over the real wire: several endpoints, a dying endpoint, shards and merge, the cache."""

from __future__ import annotations

import json
from pathlib import Path

from evalkit.cache import ResponseCache
from evalkit.cli import main
from evalkit.rundir import read_header, read_results, read_samples
from evalkit.testing.scripted_server import Reply, ScriptedServer

SUITE = Path(__file__).resolve().parent.parent / "suites" / "greetings.yaml"
HELLO = Reply(tool_calls=[{"name": "say_hello", "arguments": {"name": "Bob the Builder"}}])


def run(*args: str) -> int:
    return main(["run", "--model", "m", "--allow-unlisted", "--suite", str(SUITE), "--format", "native", "--quiet",
                 *args])


def only_run(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def test_work_is_shared_and_a_dead_endpoint_is_routed_around(tmp_path):
    with ScriptedServer(responder=HELLO) as good, ScriptedServer(responder=Reply(status=503)) as bad:
        code = run("--base-url", bad.base_url, "--base-url", good.base_url, "--retries", "0",
                   "--no-cache", "--out", str(tmp_path))
        assert code == 0
        samples = list(read_samples(only_run(tmp_path)))
        assert len(samples) == 6 and not any(s.error for s in samples)
        assert {s.endpoint for s in samples} == {good.base_url}
        assert good.hits == 6 and bad.hits >= 1  # the dead one was tried, its samples redone elsewhere
        assert read_header(only_run(tmp_path)).base_urls == [bad.base_url, good.base_url]


def test_endpoints_from_a_file_share_the_work(tmp_path):
    with ScriptedServer(responder=HELLO) as a, ScriptedServer(responder=HELLO) as b:
        listing = tmp_path / "endpoints.txt"
        listing.write_text(f"# two llama.cpp servers\n{a.base_url}\n{b.base_url}\n")
        assert run("--base-url-file", str(listing), "--concurrency", "1", "--repeats", "4", "--no-cache",
                   "--out", str(tmp_path / "runs")) == 0
        assert a.hits + b.hits == 24 and a.hits > 0 and b.hits > 0


def test_shards_merge_into_the_whole_run(tmp_path):
    with ScriptedServer(responder=HELLO) as server:
        for shard in ("1/2", "2/2"):
            out = tmp_path / shard.replace("/", "of")
            assert run("--base-url", server.base_url, "--shard", shard, "--no-cache", "--out", str(out)) == 0
        parts = [only_run(tmp_path / "1of2"), only_run(tmp_path / "2of2")]
        keys = [{s.key() for s in read_samples(p)} for p in parts]
        assert keys[0] and keys[1] and not keys[0] & keys[1]
        assert main(["merge", *map(str, parts), "--out", str(tmp_path / "merged")]) == 0
    merged = only_run(tmp_path / "merged")
    assert {s.key() for s in read_samples(merged)} == keys[0] | keys[1]
    assert len(keys[0] | keys[1]) == 6
    overall = next(a for a in read_results(merged).aggregates if a.suite == "*" and a.tag is None)
    correct = [s.call_correct for p in parts for s in read_samples(p)]
    assert overall.n == 6 and overall.call_accuracy == sum(correct) / 6


def test_merge_refuses_shards_of_different_runs(tmp_path, capsys):
    with ScriptedServer(responder=HELLO) as server:
        assert run("--base-url", server.base_url, "--shard", "1/2", "--no-cache", "--out", str(tmp_path / "a")) == 0
        assert main(["run", "--model", "other", "--allow-unlisted", "--base-url", server.base_url,
                     "--suite", str(SUITE), "--quiet", "--shard", "2/2", "--no-cache", "--out", str(tmp_path / "b")]) == 0
    code = main(["merge", str(only_run(tmp_path / "a")), str(only_run(tmp_path / "b")), "--out", str(tmp_path)])
    assert code == 2 and "model differs" in capsys.readouterr().err


def test_second_run_at_temperature_zero_comes_from_the_cache(tmp_path):
    with ScriptedServer(responder=HELLO) as server:
        assert run("--base-url", server.base_url, "--out", str(tmp_path / "first")) == 0
        assert server.hits == 6
        assert run("--base-url", server.base_url, "--out", str(tmp_path / "second")) == 0
        assert server.hits == 6  # nothing sent
        first = {s.key(): s.call_correct for s in read_samples(only_run(tmp_path / "first"))}
        second = list(read_samples(only_run(tmp_path / "second")))
        assert all(s.cached for s in second) and {s.key(): s.call_correct for s in second} == first
        assert run("--base-url", server.base_url, "--no-cache", "--out", str(tmp_path / "third")) == 0
        assert server.hits == 12
        assert run("--base-url", server.base_url, "--temperature", "0.7", "--out", str(tmp_path / "hot")) == 0
        assert server.hits == 18  # off by default when sampling is random


def test_cache_key_never_forgets_the_model_or_the_repeat():
    params = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    base = ResponseCache.key("http://127.0.0.1:1/v1", "m", params, True, 0, "native")
    assert base != ResponseCache.key("http://127.0.0.1:1/v1", "other", params, True, 0, "native")
    assert base != ResponseCache.key("http://127.0.0.1:1/v1", "m", params, True, 1, "native")
    assert base != ResponseCache.key("http://127.0.0.1:2/v1", "m", params, True, 0, "native")
    assert base != ResponseCache.key("http://127.0.0.1:1/v1", "m", params, True, 0, "default")
    assert base != ResponseCache.key("http://127.0.0.1:1/v1", "m", {**params, "temperature": 0.5}, True, 0, "native")
    assert base == ResponseCache.key("http://127.0.0.1:1/v1/", "m", json.loads(json.dumps(params)), True, 0, "native")


def test_cache_clear(tmp_path, capsys, monkeypatch):
    import evalkit.cache

    path = tmp_path / "c.sqlite"
    monkeypatch.setattr(evalkit.cache, "default_path", lambda: path)
    with ScriptedServer(responder=HELLO) as server:
        assert run("--base-url", server.base_url, "--out", str(tmp_path / "runs")) == 0
    assert ResponseCache(path).count() == 6
    assert main(["cache", "clear"]) == 0
    assert "removed 6" in capsys.readouterr().out
    assert ResponseCache(path).count() == 0
