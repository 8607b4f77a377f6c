"""Tool-call formats (docs/format.md section 2): requests they build, replies they parse, the registry."""

from __future__ import annotations

import json
import sys

import pytest

import evalkit.formats
from conftest import TOOLS, run_samples, write_suite, case
from evalkit.errors import EvalkitError
from evalkit.formats import available, get_format
from evalkit.formats.base import call_from_wire, parse_arguments
from evalkit.formats.default import render_system_prompt
from evalkit.suites import read_suite
from pathlib import Path

ROOT_SUITES = Path(__file__).resolve().parent.parent / "suites"
from evalkit.formats.pythonic import parse_pythonic
from evalkit.schema import ToolCall
from evalkit.testing.scripted_server import Reply

WEATHER_TOOL = next(t for t in TOOLS if t["function"]["name"] == "get_weather")

HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}],
    },
    {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": '{"temp": 21}'},
]


# ---------------------------------------------------------------- registry


def test_registry_lists_the_three_formats():
    assert {"native", "default", "pythonic"} <= set(available())
    assert "base" not in available()
    for name in ("native", "default", "pythonic"):
        assert get_format(name).name == name


def test_unknown_format_names_the_available_ones():
    with pytest.raises(EvalkitError) as info:
        get_format("nope")
    message = str(info.value)
    assert "nope" in message
    for name in ("native", "default", "pythonic"):
        assert name in message


NEW_FORMAT = '''
"""A test-only format: the model answers {"calls": [{"name": ..., "arguments": {...}}]}."""
import json
from evalkit.formats.base import ParsedReply, call_from_wire


class JsonCalls:
    name = "jsoncalls_test"

    def build_request(self, messages, tools):
        prompt = "Answer with JSON {\\"calls\\": [...]} using these tools: " + json.dumps(tools)
        return {"messages": [{"role": "system", "content": prompt}, *messages]}

    def parse_reply(self, content, tool_calls):
        try:
            payload = json.loads(content or "")
        except ValueError:
            return ParsedReply(calls=[], text=content or "")
        calls = [call_from_wire(c.get("name"), c.get("arguments")) for c in payload.get("calls", [])]
        return ParsedReply(calls=calls, text="")

    def assistant_message(self, content, calls):
        return {"role": "assistant", "content": content or ""}

    def tool_messages(self, calls, results):
        return [{"role": "user", "content": r} for r in results]


FORMAT = JsonCalls()
'''


def test_a_new_format_is_one_new_file(tmp_path, monkeypatch, server):
    """Dropping one module onto the formats package path makes it available to `run`."""
    extra = tmp_path / "more_formats"
    extra.mkdir()
    (extra / "jsoncalls_test.py").write_text(NEW_FORMAT)
    monkeypatch.setattr(evalkit.formats, "__path__", [*evalkit.formats.__path__, str(extra)])
    monkeypatch.delitem(sys.modules, "evalkit.formats.jsoncalls_test", raising=False)
    try:
        assert "jsoncalls_test" in available()
        assert get_format("jsoncalls_test").name == "jsoncalls_test"

        def responder(request):
            assert "tools" not in request and "using these tools" in request["messages"][0]["content"]
            if "8.9" in request["messages"][-1]["content"]:
                return Reply(content=json.dumps({"calls": [{"name": "compare_data", "arguments": {"num1": 8.9, "num2": 8.11}}]}))
            return Reply(content=json.dumps({"calls": [{"name": "compare_data", "arguments": "{oops"}]}))

        server.set_responder(responder)
        suite = write_suite(tmp_path / "s", [case("good", "8.9 vs 8.11"), case("bad", "other")])
        samples = {s.case_id: s for s in run_samples(server.base_url, suite, ["jsoncalls_test"])}
        # The same verdicts apply to the new format.
        assert samples["good"].call_correct and not samples["good"].malformed
        assert samples["bad"].malformed and not samples["bad"].call_correct
    finally:
        sys.modules.pop("evalkit.formats.jsoncalls_test", None)


# ---------------------------------------------------------------- native


def test_native_sends_tools_and_history_unchanged():
    request = get_format("native").build_request(HISTORY, [WEATHER_TOOL])
    assert request["tools"] == [WEATHER_TOOL]
    assert request["messages"] == HISTORY


def test_native_without_tools_sends_no_tools_field():
    assert "tools" not in get_format("native").build_request(HISTORY[:2], [])


def test_native_parses_wire_calls():
    parsed = get_format("native").parse_reply("thinking...", [
        {"id": "a", "name": "get_weather", "arguments": '{"location": "Paris"}'},
        {"id": "b", "name": "get_weather", "arguments": "{broken"},
        {"id": "c", "name": "ping", "arguments": ""},
    ])
    good, bad, empty = parsed.calls
    assert (good.id, good.name, good.arguments, good.parse_error) == ("a", "get_weather", {"location": "Paris"}, None)
    assert bad.arguments is None and "not valid JSON" in bad.parse_error and bad.raw_arguments == "{broken"
    assert empty.arguments == {} and empty.parse_error is None  # "" is a call without arguments
    assert parsed.text == "thinking..."


@pytest.mark.parametrize(
    "raw,arguments,error_part",
    [
        ('{"a": 1}', {"a": 1}, None),
        ({"a": 1}, {"a": 1}, None),
        ("", {}, None),
        (None, {}, None),
        ("{num1: 8.9", None, "not valid JSON"),
        ("[8.9, 8.11]", None, "list"),
        ('"8.9"', None, "str"),
        ("null", None, "NoneType"),
        (42, None, "int"),
    ],
)
def test_parse_arguments(raw, arguments, error_part):
    value, error = parse_arguments(raw)
    assert value == arguments
    if error_part is None:
        assert error is None
    else:
        assert error and error_part in error


def test_call_without_name_is_a_parse_error():
    call = call_from_wire("", '{"a": 1}')
    assert call.name is None and call.parse_error


# ---------------------------------------------------------------- default (LM Studio)


def test_default_renders_lm_studios_prompt_with_the_tools_json():
    request = get_format("default").build_request(HISTORY[:2], [WEATHER_TOOL])
    assert "tools" not in request
    system = request["messages"][0]
    assert system["role"] == "system"
    prompt = system["content"]
    assert prompt.startswith("You are a tool-calling AI. You can request calls to available tools with this EXACT format:\n"
                             '[TOOL_REQUEST]{"name": "tool_name", "arguments": {"param1": "value1"}}[END_TOOL_REQUEST]')
    assert "AVAILABLE TOOLS:" in prompt and "Use one [TOOL_REQUEST] block per tool" in prompt
    # The tools as JSON, in LM Studio's toolArray wrapper, parse back to exactly what was offered.
    start = prompt.index("AVAILABLE TOOLS:\n") + len("AVAILABLE TOOLS:\n")
    tools_json, _ = json.JSONDecoder().raw_decode(prompt[start:])
    assert tools_json == {"type": "toolArray", "tools": [WEATHER_TOOL]}
    # The case's own system prompt is kept after LM Studio's.
    assert prompt.endswith("\n\nBe brief.")
    assert request["messages"][1] == {"role": "user", "content": "Weather in Paris?"}
    assert render_system_prompt([WEATHER_TOOL]) in prompt


def test_default_converts_history_tool_messages_to_user():
    request = get_format("default").build_request(HISTORY, [WEATHER_TOOL])
    roles = [m["role"] for m in request["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert "tool" not in roles
    assistant, result = request["messages"][2], request["messages"][3]
    assert assistant["content"] == '[TOOL_REQUEST]{"name": "get_weather", "arguments": {"location": "Paris"}}[END_TOOL_REQUEST]'
    assert "tool_calls" not in assistant
    assert result == {"role": "user", "content": '{"temp": 21}'}


def test_default_without_system_prompt_inserts_one():
    request = get_format("default").build_request([{"role": "user", "content": "hi"}], [WEATHER_TOOL])
    assert [m["role"] for m in request["messages"]] == ["system", "user"]


def test_default_parses_blocks():
    fmt = get_format("default")
    parsed = fmt.parse_reply(
        'Let me check.\n[TOOL_REQUEST]{"name": "get_weather", "arguments": {"location": "Paris"}}[END_TOOL_REQUEST]\n'
        '[TOOL_REQUEST]{"name": "get_weather", "arguments": {"location": "Rome"}}[END_TOOL_REQUEST]',
        [],
    )
    assert [(c.name, c.arguments) for c in parsed.calls] == [
        ("get_weather", {"location": "Paris"}), ("get_weather", {"location": "Rome"})]
    assert parsed.text == "Let me check."


@pytest.mark.parametrize(
    "content",
    [
        '[TOOL_REQUEST]{"name": "get_weather", "arguments": {location: Paris}}[END_TOOL_REQUEST]',
        '[TOOL_REQUEST]{"name": "get_weather", "arguments": {"location": "Par',
        "[TOOL_REQUEST][END_TOOL_REQUEST]",
        '[TOOL_REQUEST]["get_weather", {"location": "Paris"}][END_TOOL_REQUEST]',
    ],
)
def test_default_broken_blocks_are_parse_errors(content):
    (call,) = get_format("default").parse_reply(content, []).calls
    assert call.parse_error and call.arguments is None


def test_default_assistant_and_tool_messages_stay_in_text():
    fmt = get_format("default")
    call = ToolCall(name="get_weather", arguments={"location": "Paris"})
    assert fmt.assistant_message(None, [call]) == {
        "role": "assistant",
        "content": '[TOOL_REQUEST]{"name": "get_weather", "arguments": {"location": "Paris"}}[END_TOOL_REQUEST]',
    }
    (message,) = fmt.tool_messages([call], ["21C"])
    assert message["role"] == "user" and "21C" in message["content"]


# ---------------------------------------------------------------- pythonic (BFCL prompt mode)


def test_pythonic_prompt_lists_functions_and_converts_tool_messages():
    request = get_format("pythonic").build_request(HISTORY, [WEATHER_TOOL])
    assert "tools" not in request
    prompt = request["messages"][0]["content"]
    assert "You are an expert in composing functions." in prompt
    assert "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]" in prompt
    start = prompt.index("Here is a list of functions in JSON format that you can invoke.\n")
    functions, _ = json.JSONDecoder().raw_decode(prompt[start:].split("\n", 1)[1])
    assert functions == [WEATHER_TOOL["function"]]
    assert prompt.endswith("Be brief.")
    roles = [m["role"] for m in request["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert request["messages"][2]["content"] == "[get_weather(location='Paris')]"


@pytest.mark.parametrize(
    "text,calls",
    [
        ("[f(a=1)]", [("f", {"a": 1})]),
        ('[f(a=1), g(b="x")]', [("f", {"a": 1}), ("g", {"b": "x"})]),
        ("f(a=1.5)", [("f", {"a": 1.5})]),  # bare call, as BFCL accepts
        ("```python\n[f(a=[1, 2], b={'k': (3, 4)})]\n```", [("f", {"a": [1, 2], "b": {"k": [3, 4]}})]),
        ("[math.sqrt(x=4, flag=True, none=None)]", [("math.sqrt", {"x": 4, "flag": True, "none": None})]),
        ("[f(a=-3, b='杭州')]", [("f", {"a": -3, "b": "杭州"})]),
        ("[f()]", [("f", {})]),
    ],
)
def test_pythonic_parses_literal_calls(text, calls):
    parsed, error = parse_pythonic(text)
    assert error is None
    assert [(c.name, c.arguments) for c in parsed] == calls
    assert all(c.parse_error is None for c in parsed)


@pytest.mark.parametrize(
    "text,part",
    [
        ("[f(a=x)]", "not a literal"),
        ("[f(a=1+x)]", "not a literal"),
        ("[f(a=open('/etc/passwd').read())]", "not a literal"),
        ("[f(1, 2)]", "positional"),
        ("[f(**{'a': 1})]", "kwargs"),
        ("[(lambda: 1)(a=1)]", "plain name"),
    ],
)
def test_pythonic_non_literals_are_per_call_parse_errors(text, part):
    parsed, error = parse_pythonic(text)
    assert error is None
    (call,) = parsed
    assert call.parse_error and part in call.parse_error and call.arguments is None


@pytest.mark.parametrize("text", ["[f(a=1", "[1, 2]", "{'a': 1}", "[f(a=1) g(b=2)]"])
def test_pythonic_non_call_lists_are_errors(text):
    parsed, error = parse_pythonic(text)
    assert error and parsed == []


def test_pythonic_prose_is_an_answer_not_a_call():
    parsed = get_format("pythonic").parse_reply("Hello! I can't help with that.", [])
    assert parsed.calls == [] and parsed.text == "Hello! I can't help with that."


def test_pythonic_never_evaluates(tmp_path):
    marker = tmp_path / "pwned"
    text = f"[f(a=__import__('pathlib').Path({str(marker)!r}).touch())]"
    parsed = get_format("pythonic").parse_reply(text, [])
    assert parsed.calls[0].parse_error
    assert not marker.exists()


# ---------------------------------------------------------------- what goes on the wire


def test_requests_on_the_wire(server, tmp_path):
    server.set_responder(Reply(content="ok"))
    suite = write_suite(tmp_path / "s", [case("w", "Weather in Paris?", {"calls": []}, tools=["get_weather"])])
    run_samples(server.base_url, suite, ["native", "default", "pythonic"], stream=False, temperature=0.0,
                max_tokens=77, seed=5)
    by_format = {}
    for request in server.requests:
        system = request["messages"][0]["content"] if request["messages"][0]["role"] == "system" else ""
        key = "native" if "tools" in request else ("default" if "[TOOL_REQUEST]" in system else "pythonic")
        by_format[key] = request
    assert set(by_format) == {"native", "default", "pythonic"}
    for request in by_format.values():
        assert (request["model"], request["temperature"], request["max_tokens"], request["seed"]) == (
            "scripted-model", 0.0, 77, 5)
        assert not request.get("stream")
    assert by_format["native"]["tools"] == [WEATHER_TOOL]  # only the case's subset is offered
    assert by_format["native"]["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert '"name": "get_weather"' in by_format["default"]["messages"][0]["content"]
    assert "compare_data" not in by_format["default"]["messages"][0]["content"]
    assert '"name": "get_weather"' in by_format["pythonic"]["messages"][0]["content"]


def test_unterminated_tool_request_is_malformed_but_intent_recovers():
    from evalkit.schema import Case
    from evalkit.scoring import score

    case = Case.model_validate({
        "id": "c", "messages": [{"role": "user", "content": "8.9 vs 8.11"}],
        "expect": {"calls": [{"name": "compare_data", "args": {"num1": 8.9, "num2": 8.11}}]},
    })
    offered = read_suite(ROOT_SUITES / "arithmetic.yaml").suite.tools
    text = '[TOOL_REQUEST]{"name": "compare_data", "arguments": {"num1": 8.9, "num2": 8.11}}'
    parsed = get_format("default").parse_reply(text, [])
    verdict = score(case, offered, parsed.calls, parsed.text)
    assert verdict.malformed and not verdict.call_correct and verdict.intent_correct
    closed = get_format("default").parse_reply(text + "[END_TOOL_REQUEST]", [])
    assert score(case, offered, closed.calls, closed.text).call_correct
