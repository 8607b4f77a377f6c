"""Every verdict of docs/format.md section 3, over the wire.

Each spec below is one suite case plus the reply the scripted server gives it in each format.
All specs run through the real runner (`plan` + `run_jobs` + the openai client) against a
ScriptedServer, streamed and not streamed, and every verdict field is asserted exactly.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    COMPARE_EXPECT,
    case,
    default_reply,
    native_reply,
    pythonic_reply,
    request_format,
    run_one,
    run_samples,
    write_suite,
)
from evalkit.aggregate import aggregate
from evalkit.suites import read_suite
from evalkit.testing.scripted_server import Reply, ScriptedServer

FORMATS = ["native", "default", "pythonic"]
ANY = object()  # a verdict field the spec does not pin down


@dataclass(frozen=True)
class V:
    """The expected verdicts of one sample."""

    malformed: bool
    hallucinated_tool: bool
    args_valid: bool | None
    call_correct: bool
    intent_correct: bool
    failure: Any = ANY  # Sample.failure_kind, None when correct


CORRECT = V(False, False, True, True, True, None)


@dataclass
class Spec:
    id: str
    replies: dict[str, Reply]  # per format; a format without a reply is not tested for this spec
    want: V
    expect: dict[str, Any] = field(default_factory=lambda: COMPARE_EXPECT)
    extra: dict[str, Any] = field(default_factory=dict)  # more case fields (tools, tags)


def calls_in_all(calls: list[tuple[str, Any]], split: int = 1) -> dict[str, Reply]:
    """The same well-formed calls written in each format's own syntax."""
    return {"native": native_reply(calls, split=split), "default": default_reply(calls), "pythonic": pythonic_reply(calls)}


def text_in_all(text: str, formats: list[str] = FORMATS) -> dict[str, Reply]:
    return {fmt: Reply(content=text) for fmt in formats}


CMP = [("compare_data", {"num1": 8.9, "num2": 8.11})]
CALL_JSON = '{"name": "compare_data", "arguments": {"num1": 8.9, "num2": 8.11}}'
MALFORMED_UNRECOVERABLE = V(True, False, None, False, False, "malformed")
MALFORMED_RECOVERABLE = V(True, False, None, False, True, "malformed")

# A marker file that must never be created: pythonic parsing is literals only, never eval.
PWNED = Path(tempfile.gettempdir()) / f"evalkit-pwned-{uuid.uuid4().hex}"

WEATHER2 = [("get_weather", {"location": "Paris"}), ("get_weather", {"location": "Hangzhou"})]
WEATHER2_EXPECT = {"calls": [{"name": "get_weather", "args": {"location": "Paris"}},
                             {"name": "get_weather", "args": {"location": "Hangzhou"}}]}


def hello_expect(matcher: Any) -> dict[str, Any]:
    return {"calls": [{"name": "say_hello", "args": {"name": matcher}}]}


def weather_expect(**args: Any) -> dict[str, Any]:
    return {"calls": [{"name": "get_weather", "args": args}]}


NO_CALL = {"calls": []}

SPECS: list[Spec] = [
    # ---------------------------------------------------------------- well-formed calls
    Spec("correct", calls_in_all(CMP), CORRECT),
    Spec("int-vs-float", calls_in_all([("compare_data", {"num1": 10.0, "num2": 3})]), CORRECT,
         expect={"calls": [{"name": "compare_data", "args": {"num1": 10, "num2": 3.0}}]}),
    Spec("wrong-value", calls_in_all([("compare_data", {"num1": 8.9, "num2": 8.1})]),
         V(False, False, True, False, False, "wrong_value")),
    Spec("wrong-tool", calls_in_all([("add_data", {"num1": 8.9, "num2": 8.11})]),
         V(False, False, True, False, False, "wrong_tool")),
    Spec("did-not-call", text_in_all("8.9 is larger than 8.11."), V(False, False, None, False, False, "did_not_call")),
    Spec("too-many-calls", calls_in_all(CMP + CMP), V(False, False, True, False, False, "wrong_count")),
    # ---------------------------------------------------------------- malformed
    Spec("args-not-json", {
        "native": Reply(tool_calls=[{"name": "compare_data", "arguments": "{num1: 8.9"}]),
        # [TOOL_REQUEST] with broken JSON
        "default": Reply(content='[TOOL_REQUEST]{"name": "compare_data", "arguments": {num1: 8.9}[END_TOOL_REQUEST]'),
        "pythonic": Reply(content="[compare_data(num1=8.9, num2=]"),
    }, MALFORMED_UNRECOVERABLE),
    Spec("args-json-array", {
        "native": Reply(tool_calls=[{"name": "compare_data", "arguments": "[8.9, 8.11]"}]),
        "default": Reply(content='[TOOL_REQUEST]{"name": "compare_data", "arguments": [8.9, 8.11]}[END_TOOL_REQUEST]'),
        "pythonic": Reply(content="[compare_data(8.9, 8.11)]"),  # positional: not the keyword form asked for
    }, MALFORMED_UNRECOVERABLE),
    Spec("args-python-dict", {
        # Not JSON, but what the model meant is plain: strict says malformed, lenient recovers it.
        "native": Reply(tool_calls=[{"name": "compare_data", "arguments": "{'num1': 8.9, 'num2': 8.11}"}]),
        "default": Reply(content='[TOOL_REQUEST]{"name": "compare_data", "arguments": {"num1": 8.9, "num2": 8.11,}}'
                                 "[END_TOOL_REQUEST]"),
    }, MALFORMED_RECOVERABLE),
    Spec("tool-request-unterminated", {
        # The model stopped mid-call (e.g. max_tokens): an attempt, not an answer.
        "default": Reply(content='[TOOL_REQUEST]{"name": "compare_data", "arguments": {"num1": 8.9, "num2"'),
        "native": Reply(content='[TOOL_REQUEST]{"name": "compare_data", "arguments": {"num1": 8.9, "num2"'),
    }, MALFORMED_UNRECOVERABLE),
    Spec("leaked-qwen", text_in_all(f"<tool_call>\n{CALL_JSON}\n</tool_call>"), MALFORMED_RECOVERABLE),
    Spec("leaked-qwen-wrong", text_in_all(
        '<tool_call>{"name": "compare_data", "arguments": {"num1": 8.11, "num2": 8.9}}</tool_call>'),
        MALFORMED_UNRECOVERABLE),
    Spec("leaked-fenced-json", text_in_all(f"Sure, here is the call:\n```json\n{CALL_JSON}\n```"), MALFORMED_RECOVERABLE),
    Spec("leaked-bare-json", text_in_all(CALL_JSON), MALFORMED_RECOVERABLE),
    Spec("leaked-mistral", text_in_all(f"[TOOL_CALLS][{CALL_JSON}]"), MALFORMED_RECOVERABLE),
    Spec("leaked-llama", text_in_all(
        '<|python_tag|>{"name": "compare_data", "parameters": {"num1": 8.9, "num2": 8.11}}'), MALFORMED_RECOVERABLE),
    Spec("leaked-function-tag", text_in_all('<function=compare_data>{"num1": 8.9, "num2": 8.11}</function>'),
         MALFORMED_RECOVERABLE),
    Spec("leaked-tool-request", {"native": Reply(content=f"[TOOL_REQUEST]{CALL_JSON}[END_TOOL_REQUEST]")},
         MALFORMED_RECOVERABLE),
    Spec("leaked-pythonic", text_in_all("[compare_data(num1=8.9, num2=8.11)]", ["native", "default"]),
         MALFORMED_RECOVERABLE),
    Spec("pythonic-non-literal", {"pythonic": Reply(content="[compare_data(num1=x, num2=8.11)]")},
         MALFORMED_UNRECOVERABLE),
    Spec("pythonic-injection", {"pythonic": Reply(
        content=f"[compare_data(num1=__import__('pathlib').Path({str(PWNED)!r}).touch(), num2=8.11)]")},
        MALFORMED_UNRECOVERABLE),
    # ---------------------------------------------------------------- tools that were not offered
    Spec("hallucinated-tool", calls_in_all([("delete_everything", {"path": "/"})]),
         V(False, True, False, False, False, "hallucinated_tool")),
    Spec("declared-but-not-offered", calls_in_all([("add_data", {"num1": 8.9, "num2": 8.11})]),
         V(False, True, False, False, False, "hallucinated_tool"), extra={"tools": ["compare_data"]}),
    # ---------------------------------------------------------------- parallel calls
    Spec("parallel-any-reversed", calls_in_all(WEATHER2[::-1]), CORRECT, expect=WEATHER2_EXPECT),
    Spec("parallel-strict-in-order", calls_in_all(WEATHER2), CORRECT, expect={**WEATHER2_EXPECT, "order": "strict"}),
    Spec("parallel-strict-reversed", calls_in_all(WEATHER2[::-1]), V(False, False, True, False, False),
         expect={**WEATHER2_EXPECT, "order": "strict"}),
    Spec("parallel-one-missing", calls_in_all(WEATHER2[:1]), V(False, False, True, False, False, "wrong_count"),
         expect=WEATHER2_EXPECT),
    Spec("parallel-split-by-index", {"native": native_reply(WEATHER2[::-1], split=5)}, CORRECT,
         expect=WEATHER2_EXPECT),
    # ---------------------------------------------------------------- streamed deltas split mid-token
    Spec("split-arguments", {"native": native_reply(CMP, split=7)}, CORRECT),
    # ---------------------------------------------------------------- schema validity
    Spec("number-as-string", calls_in_all([("compare_data", {"num1": "8.9", "num2": "8.11"})]),
         V(False, False, False, False, False)),
    Spec("missing-required", calls_in_all([("compare_data", {"num1": 8.9})]), V(False, False, False, False, False)),
    Spec("extra-arg-schema-forbids", calls_in_all([("compare_data", {"num1": 8.9, "num2": 8.11, "strict": True})]),
         V(False, False, False, False, False), expect={**COMPARE_EXPECT, "extra_args": "allow"}),
    Spec("extra-arg-forbidden", calls_in_all([("get_weather", {"location": "Paris", "unit": "celsius"})]),
         V(False, False, True, False, False, "wrong_value"), expect=weather_expect(location="Paris")),
    Spec("extra-arg-allowed", calls_in_all([("get_weather", {"location": "Paris", "unit": "celsius"})]), CORRECT,
         expect={**weather_expect(location="Paris"), "extra_args": "allow"}),
    Spec("extra-arg-allowed-per-call", calls_in_all([("get_weather", {"location": "Paris", "unit": "celsius"})]),
         CORRECT, expect={"calls": [{"name": "get_weather", "args": {"location": "Paris"}, "extra_args": "allow"}]}),
    # ---------------------------------------------------------------- matchers
    Spec("literal-folded", calls_in_all([("say_hello", {"name": "  bob the BUILDER "})]), CORRECT,
         expect=hello_expect("Bob the Builder")),
    Spec("literal-wrong", calls_in_all([("say_hello", {"name": "Bob"})]), V(False, False, True, False, False),
         expect=hello_expect("Bob the Builder")),
    Spec("exact-hit", calls_in_all([("say_hello", {"name": "Bob the Builder"})]), CORRECT,
         expect=hello_expect({"exact": "Bob the Builder"})),
    Spec("exact-not-folded", calls_in_all([("say_hello", {"name": "bob the builder"})]),
         V(False, False, True, False, False), expect=hello_expect({"exact": "Bob the Builder"})),
    Spec("one-of-hit", calls_in_all([("get_weather", {"location": "paris, france"})]), CORRECT,
         expect=weather_expect(location={"one_of": ["Paris", "Paris, France"]})),
    Spec("one-of-miss", calls_in_all([("get_weather", {"location": "Lyon"})]), V(False, False, True, False, False),
         expect=weather_expect(location={"one_of": ["Paris", "Paris, France"]})),
    Spec("regex-hit", calls_in_all([("get_weather", {"location": "杭州"})]), CORRECT,
         expect=weather_expect(location={"regex": "(?i)hang ?zhou|杭州(市)?"})),
    Spec("regex-miss", calls_in_all([("get_weather", {"location": "Beijing"})]), V(False, False, True, False, False),
         expect=weather_expect(location={"regex": "(?i)hang ?zhou|杭州(市)?"})),
    Spec("approx-hit", calls_in_all([("compare_data", {"num1": 8.905, "num2": 8.11})]), CORRECT,
         expect={"calls": [{"name": "compare_data", "args": {"num1": {"approx": 8.9, "tol": 0.01}, "num2": 8.11}}]}),
    Spec("approx-miss", calls_in_all([("compare_data", {"num1": 8.95, "num2": 8.11})]),
         V(False, False, True, False, False),
         expect={"calls": [{"name": "compare_data", "args": {"num1": {"approx": 8.9, "tol": 0.01}, "num2": 8.11}}]}),
    Spec("optional-omitted", calls_in_all([("get_weather", {"location": "Paris"})]), CORRECT,
         expect=weather_expect(location="Paris", unit={"one_of": ["celsius"], "optional": True})),
    Spec("optional-given-right", calls_in_all([("get_weather", {"location": "Paris", "unit": "Celsius "})]), V(
        # "Celsius " matches the folded literal, but the schema's enum says "celsius": not args_valid.
        False, False, False, False, False),
        expect=weather_expect(location="Paris", unit={"one_of": ["celsius"], "optional": True})),
    Spec("optional-given-wrong", calls_in_all([("get_weather", {"location": "Paris", "unit": "fahrenheit"})]),
         V(False, False, True, False, False),
         expect=weather_expect(location="Paris", unit={"one_of": ["celsius"], "optional": True})),
    Spec("optional-any-value", calls_in_all([("get_weather", {"location": "Paris", "unit": "fahrenheit"})]), CORRECT,
         expect=weather_expect(location="Paris", unit={"optional": True})),
    Spec("required-missing-not-optional", calls_in_all([("get_weather", {"location": "Paris"})]),
         V(False, False, True, False, False), expect=weather_expect(location="Paris", unit="celsius")),
    # ---------------------------------------------------------------- cases where no tool fits
    Spec("no-call-prose", text_in_all("Hello! How can I help you today?"), V(False, False, None, True, True, None),
         expect=NO_CALL),
    Spec("no-call-prose-with-json", text_in_all('A JSON object looks like {"a": 1, "b": [2, 3]}.'),
         V(False, False, None, True, True, None), expect=NO_CALL),
    # 8.9 and 8.11 appear nowhere in "case:no-call-but-called": the call invented its arguments.
    Spec("no-call-but-called", calls_in_all(CMP), V(False, False, True, False, False, "invented_argument"),
         expect=NO_CALL),
    # The same call when the conversation holds both numbers: a call, but nothing invented.
    Spec("no-call-values-given", calls_in_all(CMP), V(False, False, True, False, False, "called_when_should_not"),
         expect=NO_CALL, extra={"messages": [{"role": "system", "content": "The numbers are 8.9 and 8.11."},
                                             {"role": "user", "content": "case:no-call-values-given"}]}),
    # A required value the user never gave, though the other one was given: still invented.
    Spec("no-call-one-value-invented", calls_in_all(CMP), V(False, False, True, False, False, "invented_argument"),
         expect=NO_CALL, extra={"messages": [{"role": "system", "content": "One number is 8.9; order 2048.11 too."},
                                             {"role": "user", "content": "case:no-call-one-value-invented"}]}),
    # A single-turn text check (the clarify suite): no call, and the reply must ask for what is missing.
    Spec("asks-for-missing", text_in_all("Could you tell me your order number?"), V(False, False, None, True, True, None),
         expect={"calls": [], "final_answer": {"regex": "(?i)order (number|id)"}}),
    Spec("does-not-ask", text_in_all("Your order arrives tomorrow."), V(False, False, None, False, False, "final_answer"),
         expect={"calls": [], "final_answer": {"regex": "(?i)order (number|id)"}}),
    Spec("no-call-malformed-args", {
        "native": Reply(tool_calls=[{"name": "compare_data", "arguments": "{num1: 8.9"}]),
        "default": Reply(content='[TOOL_REQUEST]{"name": "compare_data", "arguments": {num1: 8.9}[END_TOOL_REQUEST]'),
        "pythonic": Reply(content="[compare_data(num1=x)]"),
    }, V(True, False, None, False, False), expect=NO_CALL),
    Spec("no-call-leaked-call", text_in_all(f"<tool_call>{CALL_JSON}</tool_call>"), V(True, False, None, False, False),
         expect=NO_CALL),
    Spec("no-call-unterminated", {"default": Reply(content='[TOOL_REQUEST]{"name": "compare_da')},
         V(True, False, None, False, False), expect=NO_CALL),
]

SPEC_BY_ID = {s.id: s for s in SPECS}
assert len(SPEC_BY_ID) == len(SPECS), "spec ids must be unique"


def _responder(request: dict[str, Any]) -> Reply:
    user = [m for m in request["messages"] if m["role"] == "user"][-1]["content"]
    spec = SPEC_BY_ID[user.removeprefix("case:")]
    fmt = request_format(request)
    # Formats a spec does not cover still get a (neutral) answer; their samples are not asserted.
    return spec.replies.get(fmt, Reply(content="n/a"))


@pytest.fixture(scope="module")
def verdict_samples(tmp_path_factory) -> dict[tuple[str, str, bool], Any]:
    """All specs x all formats, streamed and not, each a real request to the scripted server."""
    path = write_suite(
        tmp_path_factory.mktemp("verdicts"),
        [case(s.id, expect=s.expect, **s.extra) for s in SPECS],
        name="verdicts",
    )
    loaded = read_suite(path)
    out: dict[tuple[str, str, bool], Any] = {}
    with ScriptedServer(responder=_responder) as srv:
        for stream in (True, False):
            for sample in run_samples(srv.base_url, loaded, FORMATS, stream=stream, concurrency=8):
                out[(sample.case_id, sample.format, stream)] = sample
            # Streaming really was on/off on the wire.
            assert {bool(r.get("stream")) for r in srv.requests} == {stream}
            srv.reset()
    return out


PARAMS = [
    pytest.param(spec, fmt, stream, id=f"{spec.id}-{fmt}-{'stream' if stream else 'nostream'}")
    for spec in SPECS
    for fmt in spec.replies
    for stream in (True, False)
]


@pytest.mark.parametrize("spec,fmt,stream", PARAMS)
def test_verdict(verdict_samples, spec: Spec, fmt: str, stream: bool):
    sample = verdict_samples[(spec.id, fmt, stream)]
    got = {
        "malformed": sample.malformed,
        "hallucinated_tool": sample.hallucinated_tool,
        "args_valid": sample.args_valid,
        "call_correct": sample.call_correct,
        "intent_correct": sample.intent_correct,
    }
    want = {k: getattr(spec.want, k) for k in got}
    assert got == want, (f"{spec.id}/{fmt}: failure={sample.failure_kind!r} ({sample.failure_detail}) "
                         f"calls={sample.calls!r} raw={sample.raw!r}")
    assert sample.error is None
    if spec.want.failure is not ANY:
        assert sample.failure_kind == spec.want.failure, sample.failure_detail


def test_malformed_calls_keep_their_raw_arguments(verdict_samples):
    for stream in (True, False):
        sample = verdict_samples[("args-not-json", "native", stream)]
        (call,) = sample.calls
        assert call.name == "compare_data"
        assert call.raw_arguments == "{num1: 8.9"
        assert call.arguments is None and call.parse_error


def test_split_arguments_reassemble_exactly(verdict_samples):
    sample = verdict_samples[("split-arguments", "native", True)]
    (call,) = sample.calls
    assert call.raw_arguments == json.dumps({"num1": 8.9, "num2": 8.11})
    assert call.arguments == {"num1": 8.9, "num2": 8.11}


def test_parallel_streamed_calls_accumulate_by_index(verdict_samples):
    for stream in (True, False):
        sample = verdict_samples[("parallel-split-by-index", "native", stream)]
        assert [(c.name, c.arguments) for c in sample.calls] == [
            ("get_weather", {"location": "Hangzhou"}),
            ("get_weather", {"location": "Paris"}),
        ]
        assert len({c.id for c in sample.calls}) == 2 and all(c.id for c in sample.calls)


def test_pythonic_never_executes_code(verdict_samples):
    for stream in (True, False):
        sample = verdict_samples[("pythonic-injection", "pythonic", stream)]
        assert sample.malformed and not sample.call_correct
    assert not PWNED.exists(), "a pythonic reply was executed"


def test_no_call_accuracy_counts_malformed_attempts_as_wrong(verdict_samples):
    """In the aggregates, a malformed attempt at a no-call case is not an abstention."""
    for fmt in FORMATS:
        samples = [s for (cid, f, stream), s in verdict_samples.items() if f == fmt and stream and s.expected_calls == 0
                   and fmt in SPEC_BY_ID[cid].replies]
        expected = sum(SPEC_BY_ID[s.case_id].want.call_correct for s in samples) / len(samples)
        (agg,) = [a for a in aggregate(samples, "r", "m").aggregates if a.suite == "*" and a.tag is None]
        assert agg.no_call_accuracy == pytest.approx(expected)
        assert 0 < expected < 1


def test_timings_are_recorded(verdict_samples):
    for stream in (True, False):
        sample = verdict_samples[("correct", "native", stream)]
        assert sample.latency_s is not None and sample.latency_s > 0
        assert (sample.ttft_s is not None) is stream
        assert sample.prompt_tokens == 10 and sample.completion_tokens and sample.completion_tokens > 0
        assert sample.tokens_per_s and sample.tokens_per_s > 0


# ---------------------------------------------------------------- `error`: transport and server failures


ERROR_CASES = [case("cmp", "Which is larger, 8.9 or 8.11?"), case("hello", "Say hello to Bob", hello_expect("Bob"))]


def _error_suite(tmp_path: Path) -> Path:
    return write_suite(tmp_path / "s", ERROR_CASES)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
def test_http_500_after_retries_is_an_error_sample_excluded_from_accuracy(server, tmp_path, stream):
    def responder(request):
        if "8.9" in request["messages"][-1]["content"]:
            return Reply(status=500, error_body="model crashed")
        return native_reply([("say_hello", {"name": "Bob"})])

    server.set_responder(responder)
    samples = {s.case_id: s for s in run_samples(server.base_url, _error_suite(tmp_path), ["native"], stream=stream,
                                                 retries=1, concurrency=1)}
    bad, good = samples["cmp"], samples["hello"]
    assert bad.error and "500" in bad.error and "model crashed" in bad.error
    assert bad.call_correct is False and bad.intent_correct is False
    assert good.error is None and good.call_correct is True
    assert server.hits == 2 + 1  # the failing case was tried twice (one retry), the other once
    (agg,) = [a for a in aggregate(samples.values(), "r", "m").aggregates if a.suite == "*" and a.tag is None]
    assert (agg.n, agg.errors) == (1, 1)
    assert agg.call_accuracy == 1.0  # the error sample is not a wrong answer
    assert agg.malformed_rate == 0.0 and agg.intent_accuracy == 1.0


def test_http_400_is_an_error_without_retry(server, tmp_path):
    server.set_responder(Reply(status=400, error_body="bad request: tools not supported"))
    sample = run_one(server.base_url, _error_suite(tmp_path), "cmp", "native", retries=3)
    assert sample.error and "400" in sample.error and "tools not supported" in sample.error
    assert server.hits == 1
    (agg,) = [a for a in aggregate([sample], "r", "m").aggregates if a.suite == "*" and a.tag is None]
    assert (agg.n, agg.errors, agg.call_accuracy) == (0, 1, None)


def test_timeout_is_an_error_sample(server, tmp_path):
    server.set_responder(Reply(content="late", delay_s=2.0))
    sample = run_one(server.base_url, _error_suite(tmp_path), "cmp", "native", timeout_s=0.3, retries=0)
    assert sample.error and "timed out" in sample.error
    assert server.hits == 1


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
def test_garbage_body_is_an_error_sample(server, tmp_path, stream):
    server.set_responder(Reply(raw_body=b"<html>502 bad gateway</html>", content_type="text/html"))
    sample = run_one(server.base_url, _error_suite(tmp_path), "cmp", "native", stream=stream)
    assert sample.error, sample
    assert sample.call_correct is False


def test_dropped_connection_is_an_error_sample(server, tmp_path):
    server.set_responder(Reply(drop_connection=True))
    sample = run_one(server.base_url, _error_suite(tmp_path), "cmp", "native", retries=0)
    assert sample.error and "connect" in sample.error.lower()


@pytest.mark.parametrize("spec_id, evalkit_rule, bfcl_rule", [
    ("no-call-prose", 1.0, 1.0),
    ("no-call-but-called", 0.0, 0.0),  # a clean call is a call under both rules
    ("no-call-leaked-call", 0.0, 1.0),  # call syntax that did not decode: BFCL calls it an abstention
    ("no-call-malformed-args", 0.0, 1.0),
    ("no-call-unterminated", 0.0, 1.0),
])
def test_no_call_accuracy_by_bfcls_rule_is_reported_beside_evalkits(verdict_samples, spec_id, evalkit_rule, bfcl_rule):
    """results.json carries both: evalkit's no-call accuracy and the leaderboard-comparable one."""
    for fmt in SPEC_BY_ID[spec_id].replies:
        if spec_id == "no-call-malformed-args" and fmt == "pythonic":
            continue  # `x` is an expression: BFCL's decoder reads it as the string "x", a call
        sample = verdict_samples[(spec_id, fmt, True)]
        (agg,) = [a for a in aggregate([sample], "r", "m").aggregates if a.suite == "*" and a.tag is None]
        assert (agg.no_call_accuracy, agg.no_call_accuracy_bfcl) == (evalkit_rule, bfcl_rule), fmt


def test_broken_call_on_a_no_call_case_names_its_fault(verdict_samples):
    """A call that did not parse, where none was wanted, is malformed; its detail says what broke,
    as on a case that wants a call (the parse error, or the syntax seen), never "called ?" (found
    on the clarify suite, where the 0.5B's [TOOL_REQUEST] body was cut off by max_tokens)."""
    for stream in (True, False):
        for spec_id, fmt in (("no-call-malformed-args", "default"), ("no-call-unterminated", "default"),
                             ("no-call-malformed-args", "native"), ("no-call-malformed-args", "pythonic")):
            sample = verdict_samples[(spec_id, fmt, stream)]
            errors = [c.parse_error for c in sample.calls if c.parse_error]
            assert sample.failure_kind == "malformed" and errors, (spec_id, fmt, sample.calls)
            assert sample.failure_detail == errors[0], (spec_id, fmt, sample.failure_detail)
        leaked = verdict_samples[("no-call-leaked-call", "native", stream)]
        assert (leaked.failure_kind, leaked.failure_detail) == ("malformed", "hermes call syntax in the reply")
