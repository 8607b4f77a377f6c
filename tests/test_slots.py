"""Prompt-cache-aware scheduling (evalkit/slots.py) through the real CLI and real HTTP: requests
that share a prefix go one after another, and on a llama.cpp server each worker keeps to its own
slot with llama.cpp's `id_slot` and `cache_prompt` fields; other servers get neither field."""

from __future__ import annotations

from collections import Counter

from conftest import TINY_CASES, case, request_format, tiny_responder, write_suite
from evalkit.cli import main
from evalkit.testing.scripted_server import ScriptedServer

# llama.cpp's GET /props and GET /v1/models as the embedded engine answered them (fields as in
# tests/test_probe.py, from https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md),
# with two slots.
LLAMACPP = {
    "GET /props": {"total_slots": 2, "build_info": "b0-unknown", "chat_template": "{{ messages }}",
                   "default_generation_settings": {"params": {"temperature": 0.8}, "n_ctx": 2048}},
    "GET /v1/models": {"object": "list", "data": [{"id": "scripted-model", "object": "model", "owned_by": "llamacpp",
                                                   "meta": {"n_params": 1, "ftype": "Q4_K - Medium"}}]},
}
CASES = TINY_CASES + [case(f"more-{i}", f"Which is larger, 8.9 or 8.11? ({i})") for i in range(5)]


def run(server: ScriptedServer, tmp_path, *extra: str) -> None:
    suite = write_suite(tmp_path / "suites", CASES)
    assert main(["run", "--base-url", server.base_url, "--model", "scripted-model", "--suite", str(suite),
                 "--format", "native", "--format", "default", "--out", str(tmp_path / "runs"), "--quiet",
                 "--no-cache", "--no-report", *extra]) == 0


def chat_requests(server: ScriptedServer) -> list[dict]:
    return [r for r in server.requests if "messages" in r]


def test_one_worker_asks_one_prefix_group_after_another(tmp_path):
    # One worker: the order it asks in is the queue's. The plan interleaves the formats case by
    # case (native, default, native, ...); the queue has every native request first, then default.
    with ScriptedServer(responder=tiny_responder) as server:
        run(server, tmp_path, "--concurrency", "1")
    formats = [request_format(r) for r in chat_requests(server)]
    assert formats == ["native"] * len(CASES) + ["default"] * len(CASES)


def test_llamacpp_workers_keep_to_their_own_slots_one_prefix_group_each(tmp_path):
    with ScriptedServer(responder=tiny_responder, endpoints=LLAMACPP) as server:
        run(server, tmp_path)  # concurrency: the server's 2 slots
    requests = chat_requests(server)
    assert len(requests) == 2 * len(CASES)
    assert all(r.get("cache_prompt") is True for r in requests)
    slots = Counter(r["id_slot"] for r in requests)
    assert set(slots) == {0, 1} and sum(slots.values()) == len(requests)
    # Each format (prefix group) is one worker's lane: its cases go to that worker's slot in
    # order, and a worker done with its own lane takes cases from the end of the other's. So in
    # case order, a group's slots change at most once.
    order = [c["messages"][0]["content"] for c in CASES]
    for fmt in ("native", "default"):
        mine = sorted((r for r in requests if request_format(r) == fmt),
                      key=lambda r: order.index(next(m["content"] for m in r["messages"] if m["role"] == "user")))
        sequence = [r["id_slot"] for r in mine]
        changes = sum(1 for a, b in zip(sequence, sequence[1:]) if a != b)
        assert changes <= 1, (fmt, sequence)


def test_workers_beyond_the_servers_slots_are_not_pinned(tmp_path):
    with ScriptedServer(responder=tiny_responder, endpoints=LLAMACPP) as server:
        run(server, tmp_path, "--concurrency", "3")
    slots = Counter(r.get("id_slot") for r in chat_requests(server))
    assert set(slots) <= {0, 1, None} and slots[None] > 0  # worker 2 has no slot of its own


def test_other_servers_get_no_llamacpp_fields(tmp_path):
    with ScriptedServer(responder=tiny_responder) as server:
        run(server, tmp_path)
    assert not any("id_slot" in r or "cache_prompt" in r for r in chat_requests(server))


def test_lanes_hold_whole_groups_and_end_about_together(tmp_path):
    from evalkit.jobs import plan
    from evalkit.slots import prefix_group, split_lanes
    from evalkit.suites import read_suite

    sizes = {"big": 6, "mid": 4, "small": 2}
    suites = [read_suite(write_suite(tmp_path, CASES[:n], name=name)) for name, n in sizes.items()]
    jobs = plan(suites, ["native", "default"], 1)
    lanes = split_lanes(jobs, 3)
    assert sorted(len(lane) for lane in lanes) == [8, 8, 8]  # 6+2, 6+2, 4+4
    groups = [{prefix_group(j) for j in lane} for lane in lanes]
    assert sum(len(g) for g in groups) == 6 and len(set().union(*groups)) == 6  # no group split
    assert sorted(j.key() for lane in lanes for j in lane) == sorted(j.key() for j in jobs)


def test_cache_order_runs_a_format_across_suites_before_the_next(tmp_path):
    from evalkit.jobs import plan
    from evalkit.slots import cache_order
    from evalkit.suites import read_suite

    suites = [read_suite(write_suite(tmp_path, CASES[:2], name=name)) for name in ("s1", "s2")]
    jobs = plan(suites, ["native", "default"], 2, distractors=[0, 4])
    ordered = [(j.format, j.loaded.suite.name, j.distractors) for j in cache_order(jobs)]
    groups = list(dict.fromkeys(ordered))
    assert groups == [("native", "s1", 0), ("native", "s1", 4), ("native", "s2", 0), ("native", "s2", 4),
                      ("default", "s1", 0), ("default", "s1", 4), ("default", "s2", 0), ("default", "s2", 4)]
    assert sorted(ordered) == sorted((j.format, j.loaded.suite.name, j.distractors) for j in jobs)
    # inside a group, cases (and repeats) keep the plan's order
    assert [(j.case.id, j.repeat) for j in cache_order(jobs) if (j.format, j.loaded.suite.name, j.distractors)
            == ("default", "s2", 4)] == [("cmp", 0), ("cmp", 1), ("hello", 0), ("hello", 1)]
