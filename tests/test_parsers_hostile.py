"""Issue 16, the reply parsers: hostile replies become malformed calls, never exceptions, and the
work stays linear in the reply's length.

Each reply below raised (int conversion limit, RecursionError), or parsed into a value that JSON
cannot hold and crashed the sample later (bytes, `...`, complex, a 80,000-bit integer), or took
minutes (an 8,000-call pythonic list; a reply of `[TOOL_REQUEST]` markers in call recovery).
"""

from __future__ import annotations

import json
import time

import pytest

from conftest import run_samples, write_suite
from evalkit.callsyntax import scan
from evalkit.callsyntax.text import loads_lenient
from evalkit.formats import get_format
from evalkit.formats.base import LIMITS, parse_arguments, value_problem
from evalkit.formats.default import parse_block
from evalkit.formats.pythonic import parse_pythonic
from evalkit.testing.scripted_server import Reply

pytestmark = pytest.mark.timeout(60)

DEEP = "[" * 10_000 + "]" * 10_000
DEPTH_LINE = "nested deeper than the parser limit of 64 levels (max_depth)"
INT_5000_LINE = "not valid JSON: Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits"

# (id, format, reply content or native arguments, the call's exact parse_error)
HOSTILE = [
    ("json-400-digit-int", "native", '{"num1": %s, "num2": 1}' % ("9" * 400),
     "arguments: an integer of 1,329 bits, over the parser limit of 1024 (max_int_bits)"),
    ("json-5000-digit-int", "native", '{"num1": %s, "num2": 1}' % ("9" * 5000), f"arguments are {INT_5000_LINE}"),
    ("json-10k-deep", "native", '{"num1": %s, "num2": 1}' % DEEP, f"arguments: {DEPTH_LINE}"),
    ("json-900-deep", "native", '{"num1": %s, "num2": 1}' % ("[" * 900 + "]" * 900), f"arguments: {DEPTH_LINE}"),
    ("default-10k-deep", "default", '[TOOL_REQUEST]{"name": "add_data", "arguments": {"num1": %s}}[END_TOOL_REQUEST]' % DEEP,
     f"[TOOL_REQUEST] body: {DEPTH_LINE}"),
    ("default-5000-digit-int", "default",
     '[TOOL_REQUEST]{"name": "add_data", "arguments": {"num1": %s}}[END_TOOL_REQUEST]' % ("9" * 5000),
     f"[TOOL_REQUEST] body is {INT_5000_LINE}"),
    ("default-deep-arguments", "default",
     '[TOOL_REQUEST]{"name": "add_data", "arguments": {"num1": %s}}[END_TOOL_REQUEST]' % ("[" * 100 + "]" * 100),
     f"arguments: {DEPTH_LINE}"),
    ("pythonic-bytes", "pythonic", "[add_data(num1=b'\\xff', num2=1)]", "argument 'num1': a value of type bytes, which JSON cannot hold"),
    ("pythonic-ellipsis", "pythonic", "[add_data(num1=..., num2=1)]", "argument 'num1': a value of type ellipsis, which JSON cannot hold"),
    ("pythonic-complex", "pythonic", "[add_data(num1=1+2j, num2=1)]", "argument 'num1': a value of type complex, which JSON cannot hold"),
    ("pythonic-100k-terms", "pythonic", "[add_data(num1=" + "+".join(["1"] * 100_000) + ", num2=1)]",
     "not a Python call list: nested too deeply for Python's parser"),
    ("pythonic-minus-minus", "pythonic", "[add_data(num1=----1, num2=1)]", "argument 'num1' is not a literal: ----1"),
    ("pythonic-huge-hex", "pythonic", "[add_data(num1=0x" + "f" * 20_000 + ", num2=1)]",
     "argument 'num1': an integer of 80,000 bits, over the parser limit of 1024 (max_int_bits)"),
    ("pythonic-10k-deep", "pythonic", "[add_data(num1=" + DEEP + ", num2=1)]", "not a Python call list: too many nested parentheses"),
    ("pythonic-150-deep", "pythonic", "[add_data(num1=" + "[" * 150 + "]" * 150 + ", num2=1)]", f"argument 'num1': {DEPTH_LINE}"),
    ("pythonic-unhashable-key", "pythonic", "[add_data(num1={[1]: 2}, num2=1)]", "argument 'num1' is not a literal: {[1]: 2}"),
    ("pythonic-tuple-key", "pythonic", "[add_data(num1={(1, 2): 3}, num2=1)]",
     "argument 'num1': an object key of type tuple, which JSON cannot hold"),
]


def parse(fmt: str, text: str):
    if fmt == "native":
        return get_format(fmt).parse_reply(None, [{"id": "c1", "name": "add_data", "arguments": text}])
    return get_format(fmt).parse_reply(text, [])


@pytest.mark.parametrize("fmt,text,error", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_reply_is_one_malformed_call(fmt, text, error):
    start = time.process_time()
    parsed = parse(fmt, text)
    assert time.process_time() - start < 2.0
    (call,) = parsed.calls
    assert call.parse_error == error
    assert call.arguments is None
    json.loads(call.model_dump_json())  # storable: the sample line can be written


@pytest.mark.parametrize("fmt,text,error", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_call_recovery_never_raises_on_a_hostile_reply(fmt, text, error):
    start = time.process_time()
    for call in scan(text, {"add_data": None}).recovered:  # recognition and recovery, one scan
        json.loads(call.model_dump_json())
    assert time.process_time() - start < 3.0


def test_hostile_replies_through_the_runner_become_malformed_samples(server, tmp_path):
    """The real runner, client and scoring: every hostile reply is a malformed sample, none an error."""
    cases = [{"id": h[0], "messages": [{"role": "user", "content": f"case:{h[0]}"}],
              "expect": {"calls": [{"name": "add_data", "args": {"num1": 1, "num2": 1}}]}} for h in HOSTILE]
    suite = write_suite(tmp_path, cases, name="hostile")
    replies = {h[0]: h for h in HOSTILE}

    def respond(request):
        _, fmt, text, _ = replies[request["messages"][-1]["content"].removeprefix("case:")]
        if fmt == "native":
            return Reply(tool_calls=[{"name": "add_data", "arguments": text}])
        return Reply(content=text)

    server.set_responder(respond)
    samples = {s.case_id: s for f in ("native", "default", "pythonic")
               for s in run_samples(server.base_url, suite, [f], case_ids=[h[0] for h in HOSTILE if h[1] == f])}
    assert set(samples) == set(replies)
    for case_id, (_, fmt, _, error) in replies.items():
        sample = samples[case_id]
        assert sample.error is None, (case_id, sample.error)
        assert sample.malformed and not sample.call_correct, case_id
        assert [c.parse_error for c in sample.calls] == [error], case_id
        json.loads(sample.model_dump_json())


# ---------------------------------------------------------------- values that stay accepted


@pytest.mark.parametrize("text,arguments", [
    ("[f(a=(1, 2), b={3}, c={1: 'x'})]", {"a": [1, 2], "b": [3], "c": {"1": "x"}}),
    ("[f(a=-1, b=-2.5, c=1e400, d=None, e=True)]", {"a": -1, "b": -2.5, "c": float("inf"), "d": None, "e": True}),
    ("[f(a=" + "[" * 60 + "]" * 60 + ")]", {"a": json.loads("[" * 60 + "]" * 60)}),
    ("[f(a=%d)]" % (2**1000), {"a": 2**1000}),
])
def test_ordinary_literals_still_parse(text, arguments):
    (call,), error = parse_pythonic(text)
    assert error is None and call.parse_error is None and call.arguments == arguments


def test_json_arguments_within_the_limits_still_parse():
    arguments = {"deep": json.loads("[" * 60 + "]" * 60), "big": 2**1000, "f": 1.5, "s": "x"}
    assert parse_arguments(json.dumps(arguments)) == (arguments, None)
    assert parse_arguments(arguments) == (arguments, None)
    assert parse_block(json.dumps({"name": "f", "arguments": arguments})).arguments == arguments


def test_value_problem_walks_without_recursion():
    value: list = []
    for _ in range(100_000):  # deeper than Python's recursion limit
        value = [value]
    assert value_problem(value) == DEPTH_LINE
    assert value_problem({"a": [1, {"b": (2, 3)}]}) is None


# ---------------------------------------------------------------- linear, with a bound


def _pythonic_list(n: int) -> str:
    return "[" + ", ".join(f"add_data(num1={i}, num2=1)" for i in range(n)) + "]"


def test_a_pythonic_list_of_8000_calls_parses_in_linear_time():
    text = _pythonic_list(8000)
    start = time.process_time()
    parsed = get_format("pythonic").parse_reply(text, [])
    took = time.process_time() - start
    assert len(parsed.calls) == 8000 and parsed.calls[-1].arguments == {"num1": 7999, "num2": 1}
    assert parsed.calls[-1].raw_arguments == "add_data(num1=7999, num2=1)"
    assert took < 3.0  # 29.5 s before: ast.get_source_segment re-split the source for every call


def test_source_segments_count_utf8_columns_and_lines():
    (first, second), error = parse_pythonic('[f(city="Zürich 杭州"),\n  g(x=1,\n    y="é")]')
    assert error is None
    assert (first.raw_arguments, second.raw_arguments) == ('f(city="Zürich 杭州")', 'g(x=1,\n    y="é")')
    (bad,), _ = parse_pythonic('[f(a="杭州", b=x)]')
    assert bad.parse_error == "argument 'b' is not a literal: x"


@pytest.mark.parametrize("text", [
    "[TOOL_REQUEST]" * 70_000,
    "[TOOL_REQUEST][END_TOOL_REQUES" * 30_000,
    ("[" + "1," * 200) * 2000,
    "[" * 500_000,
    '{"a": ' * 100_000,
], ids=["markers", "near-end-markers", "nested-prefixes", "openers", "open-objects"])
def test_recovery_stays_linear_on_a_megabyte_of_openers(text):
    # Each took 40 s to a minute: every failed JSON try built an error that counts the lines
    # before it.
    start = time.process_time()
    scan(text, {"f": None})
    get_format("default").parse_reply(text, [])
    assert time.process_time() - start < 8.0


def test_the_parser_limit_is_reported_when_hit(monkeypatch):
    monkeypatch.setattr(LIMITS, "max_chars", 1000)
    line = "{what}: {n:,} characters, over the parser limit of 1,000 (max_chars)"
    text = _pythonic_list(100)
    assert parse_pythonic(text) == ([], line.format(what="the reply", n=len(text)))
    (call,) = get_format("pythonic").parse_reply(text, []).calls
    assert call.parse_error == line.format(what="the reply", n=len(text))
    blocks = "[TOOL_REQUEST]" + json.dumps({"name": "f", "arguments": {"s": "x" * 2000}}) + "[END_TOOL_REQUEST]"
    (call,) = get_format("default").parse_reply(blocks, []).calls
    assert call.parse_error == line.format(what="the reply", n=len(blocks))
    body = json.dumps({"s": "x" * 2000})
    assert parse_arguments(body) == (None, line.format(what="arguments", n=len(body)))
    assert parse_block(body).parse_error == line.format(what="[TOOL_REQUEST] body", n=len(body))


def test_loads_lenient_returns_only_json_values():
    assert loads_lenient("{'a': (1, 2)}") == ({"a": [1, 2]}, "invalid JSON: Expecting property name enclosed in "
                                                             "double quotes at char 1")
    for text in ("{'a': b'x'}", "{'a': ...}", "{'a': 1j}", "[" * 5000, "9" * 5000):
        value, reason = loads_lenient(text)
        assert value is None and reason, text
