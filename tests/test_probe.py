"""`evalkit probe` and `engine.facts.server_facts` against real HTTP servers on loopback.

The scripted server's ContractResponder keeps the tool-calling contract (deterministically, from
the request) or breaks exactly one part of it; each break must be caught by the right check with
the right detail, and nothing else may fail. The e2e probe of the real engine is in
test_probe_e2e.py.
"""

from __future__ import annotations

import json
import socket

import pytest

from evalkit.cli import main
from evalkit.engine.facts import server_facts
from evalkit.probe import MAX_REQUESTS, ProbeResult, run_probe
from evalkit.probe.checks import CHECKS, planned_requests
from evalkit.testing.scripted_server import BREAKS, ContractResponder, Reply, ScriptedServer

CHECK_NAMES = [c.name for c in CHECKS]
TEMPLATE = "{%- for message in messages %}<|im_start|>{{ message.role }}...{%- endfor %}"

# What the embedded engine (llama.cpp's server in xllamacpp 2026.10.11549) answered on 2026-12-01,
# trimmed; field names as in https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md
# (GET /props, GET /v1/models). `meta.ftype` and `/slots` `params.chat_format` are as the engine
# answered them (the README's examples predate them).
LLAMACPP_PROPS = {
    "default_generation_settings": {"params": {"temperature": 0.8}, "n_ctx": 2048},
    "total_slots": 1,
    "model_path": "/home/u/.cache/evalkit/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "chat_template": TEMPLATE,
    "chat_template_caps": {"supports_parallel_tool_calls": True, "supports_tool_calls": True, "supports_tools": True,
                           "supports_system_role": True, "supports_typed_content": False},
    "build_info": "b0-unknown",
    "is_sleeping": False,
}
LLAMACPP_MODELS = {"object": "list", "data": [{
    "id": "qwen2.5-coder-0.5b", "object": "model", "created": 1796027298, "owned_by": "llamacpp",
    "meta": {"vocab_type": 2, "n_vocab": 151936, "n_ctx": 2048, "n_ctx_train": 32768, "n_embd": 896,
             "n_params": 630167424, "size": 485452288, "ftype": "Q4_K - Medium"}}]}
LLAMACPP_SLOTS = [{"id": 0, "n_ctx": 2048, "is_processing": False,
                   "params": {"seed": 7, "temperature": 0.0, "chat_format": "peg-native"}}]
LLAMACPP = {"GET /props": LLAMACPP_PROPS, "GET /v1/models": LLAMACPP_MODELS, "GET /slots": LLAMACPP_SLOTS}

# Ollama: GET /api/version and POST /api/show as in https://github.com/ollama/ollama/blob/main/docs/api.md
# (the llava example there, trimmed); `parser` is a field of api/types.go ShowResponse.
OLLAMA_SHOW = {
    "modelfile": "FROM /blobs/sha256-200765e\nPARAMETER num_ctx 4096",
    "parameters": "num_ctx                        4096\nstop                           \"<|eot_id|>\"",
    "template": "{{ if .System }}<|start_header_id|>system<|end_header_id|>{{ end }}",
    "parser": "qwen3-coder",
    "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                "parameter_size": "8.0B", "quantization_level": "Q4_0"},
    "model_info": {"general.architecture": "llama", "general.file_type": 2, "general.parameter_count": 8030261248,
                   "llama.context_length": 8192, "llama.embedding_length": 4096},
    "capabilities": ["completion", "tools"],
}
OLLAMA_MODELS = {"object": "list", "data": [{"id": "llama3.1:8b", "object": "model", "created": 0, "owned_by": "library"}]}
# GET /api/ps as in https://docs.ollama.com/api/ps (its example, with this model's name).
OLLAMA_PS = {"models": [{"name": "llama3.1:8b", "model": "llama3.1:8b", "size": 6591830464,
                         "digest": "a2af6cc3eb7fa8be8504abaf9b04e88f17a119ec3f04a3addf55f92841195f5a",
                         "details": {"format": "gguf", "family": "llama", "parameter_size": "8.0B",
                                     "quantization_level": "Q4_0"},
                         "expires_at": "2025-10-17T16:47:07.93355-07:00", "size_vram": 5333539264,
                         "context_length": 4096}]}

# LM Studio: GET /api/v0/models as in https://lmstudio.ai/docs/developer/rest/endpoints (trimmed).
LMSTUDIO_V0 = {"object": "list", "data": [
    {"id": "qwen2-vl-7b-instruct", "object": "model", "type": "vlm", "publisher": "mlx-community", "arch": "qwen2_vl",
     "compatibility_type": "mlx", "quantization": "4bit", "state": "not-loaded", "max_context_length": 32768},
    {"id": "meta-llama-3.1-8b-instruct", "object": "model", "type": "llm", "publisher": "lmstudio-community",
     "arch": "llama", "compatibility_type": "gguf", "quantization": "Q4_K_M", "state": "loaded",
     "max_context_length": 131072}]}
LMSTUDIO_MODELS = {"object": "list", "data": [
    {"id": "meta-llama-3.1-8b-instruct", "object": "model", "owned_by": "organization_owner"}]}

# vLLM: ModelCard in vllm/entrypoints/openai/protocol.py (owned_by "vllm", root, max_model_len);
# GET /version -> {"version"} (vllm tests/entrypoints/openai/test_basic.py::test_show_version).
VLLM_MODELS = {"object": "list", "data": [{"id": "Qwen/Qwen2.5-7B-Instruct", "object": "model", "created": 0,
                                           "owned_by": "vllm", "root": "Qwen/Qwen2.5-7B-Instruct",
                                           "parent": None, "max_model_len": 32768, "permission": []}]}


def probe(responder, endpoints=None, model="scripted-model") -> tuple[ProbeResult, ScriptedServer]:
    with ScriptedServer(model_id=model, responder=responder, endpoints=endpoints) as srv:
        result = run_probe(srv.base_url, model, timeout_s=10)
    return result, srv


def by_name(result: ProbeResult) -> dict:
    return {c.name: c for c in result.checks}


# ---------------------------------------------------------------- the good server


def test_a_server_that_keeps_the_contract_passes_every_check():
    result, srv = probe(ContractResponder(), LLAMACPP, model="qwen2.5-coder-0.5b")
    assert [c.name for c in result.checks] == CHECK_NAMES
    assert {c.name: c.status for c in result.checks} == {name: "pass" for name in CHECK_NAMES}
    checks = by_name(result)
    assert "indexes [0, 1] and distinct ids" in checks["parallel_calls"].detail
    assert "template sha256" in checks["template"].detail and "peg-native" in checks["template"].detail
    # The follow-up answered the server's own call id, not a stand-in.
    turn = checks["tool_result_turn"].evidence[-1]
    call_ids = [c["id"] for c in checks["stream_parity"].evidence[1].calls]
    assert turn.request["messages"][-1]["tool_call_id"] == call_ids[0]
    assert "21" in turn.content


def test_the_probe_keeps_within_its_request_budget():
    result, srv = probe(ContractResponder(), LLAMACPP)
    assert srv.hits == result.chat_requests == len(planned_requests()) == 8
    assert result.requests == result.chat_requests + len(result.server.asked) <= MAX_REQUESTS
    assert srv.endpoint_hits == len(result.server.asked)


# ---------------------------------------------------------------- each break is caught

EXPECTED = {  # break -> {failing check: a phrase its detail must hold}; every other check passes
    "ignore_tool_choice": {"tool_choice_none": '"none" ignored: the reply called get_weather (server)',
                           "tool_choice_required": "accepted but not enforced",
                           "tool_choice_named": "the reply called get_weather (server)"},
    "drop_stream_arguments": {"stream_parity": "streamed calls lost their arguments",
                              "arguments_json": "arguments are not a JSON object: '' (server)"},
    # evalkit's reader tells the two calls apart by id, so their arguments stay JSON objects.
    "stream_index_zero": {"parallel_calls": "indexes [0, 0]: a client that joins fragments by index alone merges them into 1"},
    "repeat_ids": {"parallel_calls": "ids are not distinct", "call_ids": "call ids repeat within the reply"},
    "empty_ids": {"parallel_calls": "ids are not distinct", "call_ids": "a call came without an id"},
    "null_finish_reason": {"finish_reason": "finish_reason None, not 'tool_calls' (server)"},
    "reject_tool_turns": {"tool_result_turn": "the server rejected a tool message"},
    "arguments_object": {"arguments_json": "a streamed arguments fragment is a dict, not a string (server)"},
    "stream_disagrees": {"stream_parity": "differ from non-streamed"},
    "calls_in_content": {"tool_choice_required": "in hermes call syntax in content, which the server did not parse (server)",
                         "tool_choice_named": "which the server did not parse (server)",
                         "parallel_calls": "which the server did not parse (server)"},
    "ignore_response_format": {"json_schema": 'the schema admits only {"probe": "evalkit", "n": 7}, the reply is '
                                              "'I cannot look anything up right now.' (server)"},
    "refuse_response_format": {},  # refused outright: unsupported, not failed (UNSUPPORTED below)
}
UNSUPPORTED = {"refuse_response_format": {"json_schema": "the server rejects response_format json_schema: HTTP 400"}}


def test_every_break_mode_has_an_expectation():
    assert set(EXPECTED) == set(BREAKS)


@pytest.mark.parametrize("mode", sorted(BREAKS))
def test_each_break_is_caught_by_its_check_and_only_there(mode):
    result, _ = probe(ContractResponder(breaks={mode}), LLAMACPP)
    failing = {c.name: c.detail for c in result.checks if c.status == "fail"}
    assert set(failing) == set(EXPECTED[mode]), failing
    for name, phrase in EXPECTED[mode].items():
        assert phrase in failing[name]
    unsupported = {c.name: c.detail for c in result.checks if c.status == "unsupported"}
    for name, phrase in UNSUPPORTED.get(mode, {}).items():
        assert phrase in unsupported.pop(name)
    others = {c.status for c in result.checks if c.name not in failing and c.name not in UNSUPPORTED.get(mode, {})}
    assert others <= {"pass", "unsupported"}
    if mode != "calls_in_content":  # with no parsed call, the per-call checks have nothing to judge
        assert others == {"pass"}


def test_parallel_calls_reads_the_raw_streamed_indexes_not_the_joined_result():
    result, _ = probe(ContractResponder(breaks={"stream_index_zero"}), LLAMACPP)
    (evidence,) = by_name(result)["parallel_calls"].evidence
    opening = [f for f in evidence.fragments if f.get("id")]
    assert [f["index"] for f in opening] == [0, 0]
    # A client joining by index alone would glue both names together; evalkit's reader tells the
    # calls apart by their ids.
    assert [c["name"] for c in evidence.calls] == ["get_weather", "get_weather"]
    assert evidence.raw and all(isinstance(event, dict) for event in evidence.raw)


# ---------------------------------------------------------------- placing the fault

FENCED = Reply(content='```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```')


def fenced_model(request):
    """What qwen2.5-coder-0.5b did on the embedded engine: calls as fenced JSON in content."""
    if request["messages"][-1]["role"] == "tool":
        return Reply(content="It is 21 degrees and sunny in Paris.")
    return FENCED


def test_a_model_writing_calls_as_plain_json_is_the_models_fault_but_required_is_the_servers():
    result, _ = probe(fenced_model, LLAMACPP)
    checks = by_name(result)
    assert checks["parallel_calls"].status == "fail"
    assert checks["parallel_calls"].detail.endswith("(model)")
    assert "plain JSON in content" in checks["parallel_calls"].detail
    required = checks["tool_choice_required"].detail
    assert required.startswith('tool_choice "required" accepted but not enforced') and "(server)" in required
    assert checks["tool_choice_none"].status == "pass" and "rightly left unparsed" in checks["tool_choice_none"].detail
    for name in ("call_ids", "finish_reason", "arguments_json"):
        assert checks[name].status == "unsupported"
    assert checks["tool_result_turn"].status == "pass"


def test_a_server_that_rejects_an_option_outright_is_unsupported_not_failed():
    # Older vLLM answers 400 to tool_choice "none" ('`tool_choice="none"` is not supported.', in
    # ChatCompletionRequest.check_tool_usage, vllm/entrypoints/openai/protocol.py).
    good = ContractResponder()

    def responder(request):
        if request.get("tool_choice") == "none":
            return Reply(status=400, error_body='`tool_choice` must either be a named tool or "auto". '
                                                '`tool_choice="none" is not supported.')
        return good(request)

    result, _ = probe(responder, LLAMACPP)
    check = by_name(result)["tool_choice_none"]
    assert check.status == "unsupported"
    assert 'rejects tool_choice "none": HTTP 400' in check.detail
    assert check.evidence[0].http_status == 400


def test_a_template_without_tools_fails_the_template_check():
    props = {**LLAMACPP_PROPS, "chat_template_caps": {"supports_tools": False, "supports_tool_calls": False}}
    result, _ = probe(ContractResponder(), {**LLAMACPP, "GET /props": props})
    check = by_name(result)["template"]
    assert check.status == "fail" and "cannot take tools" in check.detail
    assert [e.name for e in check.evidence][:2] == ["GET /v1/models", "GET /props"]


def test_the_template_is_unsupported_when_the_server_tells_nothing():
    result, _ = probe(ContractResponder())
    check = by_name(result)["template"]
    assert check.status == "unsupported" and "tells nothing" in check.detail


# ---------------------------------------------------------------- the command line


def test_cli_json_shape_and_exit_codes(capsys):
    with ScriptedServer(responder=ContractResponder(), endpoints=LLAMACPP) as good:
        assert main(["probe", "--base-url", good.base_url, "--model", "qwen2.5-coder-0.5b", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"server", "checks"} <= set(out)
    assert out["server"]["kind"] == "llama.cpp"
    assert [c["name"] for c in out["checks"]] == CHECK_NAMES
    for check in out["checks"]:
        assert {"name", "status", "detail", "evidence"} <= set(check)
        assert check["status"] in ("pass", "fail", "unsupported")
    assert out["checks"][0]["evidence"][0]["request"]["tool_choice"] == "none"
    ProbeResult.model_validate(out)  # what --json prints is what probe.json stores

    with ScriptedServer(responder=ContractResponder(breaks={"null_finish_reason"})) as bad:
        assert main(["probe", "--base-url", bad.base_url, "--model", "m"]) == 1
    text = capsys.readouterr().out
    assert "finish_reason" in text and "fail" in text
    assert "── finish_reason: evidence" in text and "POST /v1/chat/completions" in text


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("argv, message", [
    (["--base-url", "ftp://example", "--model", "m"], "expected an http:// or https:// URL"),
    (["--base-url", "http://127.0.0.1:{port}/v1", "--model", "m"], "cannot reach"),
    (["--timeout", "0"], "--timeout"),
    (["--timeout", "nan"], "--timeout"),
    (["--timeout", "inf"], "--timeout"),
])
def test_cli_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    argv = [a.format(port=_closed_port()) for a in argv]
    assert main(["probe", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err


# ---------------------------------------------------------------- server facts


def test_facts_of_llamacpp():
    with ScriptedServer(endpoints=LLAMACPP) as srv:
        facts = server_facts(srv.base_url, "qwen2.5-coder-0.5b")
    assert facts["kind"] == "llama.cpp" and facts["build"] == "b0-unknown"
    assert facts["template_sha256"] == __import__("hashlib").sha256(TEMPLATE.encode()).hexdigest()
    assert facts["tool_call_format"] == "peg-native"
    assert facts["slots"] == 1 and facts["template_caps"]["supports_parallel_tool_calls"] is True
    assert facts["model"] == {
        "id": "qwen2.5-coder-0.5b", "quantization": "Q4_K - Medium", "context_length": 2048,
        "context_length_train": 32768, "parameter_count": 630167424, "parameter_label": None,
        "size_bytes": 485452288, "architecture": None, "file": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "digest": None, "vram_bytes": None}
    assert facts["asked"] == ["GET /v1/models", "GET /props", "GET /slots"] and facts["errors"] == {}


def test_facts_of_ollama():
    seen = []

    def show(request):
        seen.append(request)
        return OLLAMA_SHOW

    endpoints = {"GET /api/version": {"version": "0.5.1"}, "POST /api/show": show, "GET /v1/models": OLLAMA_MODELS,
                 "GET /api/ps": OLLAMA_PS}
    with ScriptedServer(endpoints=endpoints) as srv:
        facts = server_facts(srv.base_url, "llama3.1:8b")
    assert seen == [{"model": "llama3.1:8b"}]
    assert facts["kind"] == "ollama" and facts["build"] == "0.5.1"
    assert facts["tool_call_format"] == "qwen3-coder"
    assert facts["template_caps"]["supports_tool_calls"] is True
    m = facts["model"]
    assert (m["quantization"], m["parameter_label"], m["parameter_count"]) == ("Q4_0", "8.0B", 8030261248)
    assert (m["context_length"], m["context_length_train"], m["architecture"]) == (4096, 8192, "llama")
    assert (m["vram_bytes"], m["size_bytes"]) == (5333539264, 6591830464)  # from /api/ps


def test_facts_of_lmstudio_pick_the_requested_model():
    endpoints = {"GET /api/v0/models": LMSTUDIO_V0, "GET /v1/models": LMSTUDIO_MODELS}
    with ScriptedServer(endpoints=endpoints) as srv:
        facts = server_facts(srv.base_url, "meta-llama-3.1-8b-instruct")
    assert facts["kind"] == "lmstudio"
    m = facts["model"]
    assert (m["quantization"], m["context_length"], m["architecture"]) == ("Q4_K_M", 131072, "llama")
    assert facts["template_sha256"] is None


def test_facts_of_vllm():
    endpoints = {"GET /v1/models": VLLM_MODELS, "GET /version": {"version": "0.11.2"}}
    with ScriptedServer(endpoints=endpoints) as srv:
        facts = server_facts(srv.base_url, "Qwen/Qwen2.5-7B-Instruct")
    assert (facts["kind"], facts["build"], facts["model"]["context_length"]) == ("vllm", "0.11.2", 32768)
    assert facts["asked"] == ["GET /v1/models", "GET /version"]


def test_facts_are_never_fatal_and_stay_on_loopback():
    down = server_facts(f"http://127.0.0.1:{_closed_port()}/v1", "m")
    assert down["kind"] == "unknown" and "GET /v1/models" in down["errors"]
    remote = server_facts("http://192.0.2.1:8080/v1", "m")  # TEST-NET-1: never contacted
    assert remote["asked"] == [] and "loopback" in remote["errors"]["*"]


def test_an_unknown_break_mode_is_refused():
    with pytest.raises(ValueError, match="unknown break modes"):
        ContractResponder(breaks={"ignore_tool_choise"})


def test_a_stream_that_is_not_a_stream_is_named_as_unreadable():
    good = ContractResponder()

    def responder(request):
        if request.get("stream"):  # a whole JSON reply where server-sent events were asked for
            return Reply(raw_body=b'{"choices": [{"message": {"content": "hi"}}]}', content_type="text/event-stream")
        return good(request)

    result, _ = probe(responder, LLAMACPP)
    detail = by_name(result)["tool_choice_required"].detail
    assert "the reply could not be read" in detail and "without a single event" in detail


def test_a_connection_dropped_before_any_answer_is_sent_once_more_and_counted():
    # llama.cpp's server may close a kept-alive connection after a streamed reply (seen on the
    # embedded engine): the next request gets no answer at all. That is transport, not contract.
    good, dropped = ContractResponder(), []

    def responder(request):
        if not request.get("stream") and request.get("tool_choice") is None and not dropped:
            dropped.append(True)
            return Reply(drop_connection=True)
        return good(request)

    result, srv = probe(responder, LLAMACPP)
    assert {c.status for c in result.checks} == {"pass"}
    parity = by_name(result)["stream_parity"].evidence[1]
    assert parity.attempts == 2 and parity.retried_after.startswith("cannot connect")
    assert srv.hits == result.chat_requests == 9 <= MAX_REQUESTS
