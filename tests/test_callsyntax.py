"""Call-syntax families: every fixture, hostile input, linearity (counted, not timed), own family."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from evalkit.callsyntax import BY_NAME, FAMILIES, own_family, scan
from evalkit.callsyntax import text as text_module
from evalkit.testing.callsyntax_fixtures import FIXTURES, load, run

ALL = load()
TOOLS = json.loads((FIXTURES / "tools.json").read_text())


def test_every_family_has_sourced_fixtures_of_each_kind():
    kinds = Counter((f.family, "calls" if f.kind in ("call", "parallel", "reasoning") else f.kind) for f in ALL)
    for family in FAMILIES:
        assert kinds[(family.name, "calls")] >= 2, f"{family.name}: too few call fixtures"
        assert kinds[(family.name, "plain")] >= 1, f"{family.name}: no plain reply"
        assert kinds[(family.name, "broken")] >= 1, f"{family.name}: no broken reply"
    for f in ALL:
        assert re.match(r"https://|evalkit@[0-9a-f]{7}:", f.source), f"{f.id}: source {f.source!r} is not pinned"
        assert "/blob/main/" not in f.source and "/blob/master/" not in f.source, f.id


@pytest.mark.parametrize("fixture", ALL, ids=[f.id for f in ALL])
def test_fixture(fixture):
    outcome = run(fixture)
    if fixture.kind == "plain":
        assert outcome.recognised, f"plain reply not kept plain: {outcome.detail}"
    elif fixture.kind == "broken":
        assert outcome.recognised, f"broken call not flagged: {outcome.detail}"
        assert outcome.exact is not False, "the intact calls of a broken block were not recovered"
    else:
        assert outcome.recognised, f"call not recognised: {outcome.detail}"
        assert outcome.exact, f"calls not recovered exactly: {outcome.detail}"
        assert outcome.family_ok, f"wrong family: {outcome.detail}"


def test_models_own_family_from_fixtures():
    """Every fixture model's own family is the family its fixture is filed under."""
    for f in ALL:
        if f.model and f.syntax == f.family and not f.id.startswith("json/measured"):
            assert own_family(f.model) == f.family, (f.model, own_family(f.model))
    assert own_family("qwen2.5-coder-0.5b") == "hermes"  # the bundled model: its native syntax
    assert own_family("Qwen3-Coder-30B-A3B-Instruct-GGUF") == "qwen3_xml"
    assert own_family("something-unknown") is None and own_family(None) is None


def test_own_family_from_chat_template_beats_the_name():
    template = "{{- '<tool_call>\\n<function=' + tool_call.name + '>\\n' }}{{- '<parameter=' + k + '>' }}"
    assert own_family("qwen2.5-7b", template) == "qwen3_xml"
    assert own_family(None, "{{ '<|tool_calls_section_begin|>' }}") == "kimi_k2"
    assert own_family("qwen2.5-7b", "no tool markup at all") == "hermes"  # falls back to the name


# ------------------------------------------------------------------------------ what a Scan says
def test_scan_api_for_scoring():
    s = scan('<think>I will call it</think>\nSure.\n<tool_call>\n{"name": "get_weather", "arguments": '
             '{"location": "Paris"}}\n</tool_call>', TOOLS)
    assert s.attempted and s.syntax == "hermes" and s.clean_in("hermes") and not s.clean_in("qwen3_xml")
    assert [c.name for c in s.recovered] == ["get_weather"] and s.recovered[0].arguments == {"location": "Paris"}
    assert s.prose == "Sure." and s.reasoning == "I will call it"
    assert s.describe() == "hermes call syntax in the reply"


def test_call_only_in_reasoning_is_reported_there():
    s = scan('<think>maybe <tool_call>{"name": "get_time", "arguments": {}}</tool_call></think>No tool needed.', TOOLS)
    assert not s.attempted and s.recovered == [] and s.syntax == "hermes"
    assert [a.location for a in s.attempts] == ["reasoning"]
    assert "reasoning only" in s.describe() and s.prose == "No tool needed."


def test_broken_attempt_keeps_its_reason_and_what_could_be_read():
    s = scan('<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}', TOOLS)
    assert s.attempted and not s.clean_in("hermes")
    assert s.broken[0].broken == "no </tool_call> after the call"
    assert [c.name for c in s.recovered] == ["get_weather"]
    assert "no </tool_call>" in s.describe()


def test_string_parameters_keep_newlines_and_indentation_other_types_are_typed():
    code = "def f():\n    return 1\n\n\tdone  "
    s = scan(f"<tool_call>\n<function=create_event>\n<parameter=title>\n{code}\n</parameter>\n"
             "<parameter=priority>\n2\n</parameter>\n<parameter=remind>\ntrue\n</parameter>\n"
             "<parameter=when>\n{\"date\": \"2025-01-02\"}\n</parameter>\n</function>\n</tool_call>", TOOLS)
    assert s.recovered[0].arguments == {"title": code, "priority": 2, "remind": True, "when": {"date": "2025-01-02"}}
    # Without a schema a string that looks like a number stays what it decodes to; with one, a string.
    s = scan("<tool_call>\n<function=search>\n<parameter=query>\n42\n</parameter>\n</function>\n</tool_call>", TOOLS)
    assert s.recovered[0].arguments == {"query": "42"}


@pytest.mark.parametrize("text", [
    "Use `<tool_call>` tags to call a tool.",
    "The token `[TOOL_CALLS]` starts Mistral calls; `<|python_tag|>` starts Llama's.",
    'A JSON object looks like {"a": 1, "b": [2, 3]}.',
    'Config: {"name": "evalkit", "version": "1.0"}',
    "Lists like [1, 2, 3] and calls like print(x) are prose.",
    "```python\nprint(sorted([3, 1, 2]))\n```",
    "I use functools and itertools every day.",
    "",
])
def test_prose_stays_plain(text):
    s = scan(text, TOOLS)
    assert not s.attempts and s.prose == text.strip()


# ---------------------------------------------------------------------------------- robustness
HOSTILE = [
    "{" * 10_000 + "}" * 10_000,
    "[" * 10_000,
    '<tool_call>{"name": "x", "arguments": ' + "[" * 10_000 + "]" * 10_000 + "}</tool_call>",
    '<tool_call>{"name": "x", "arguments": {"n": ' + "9" * 400 + "}}</tool_call>",
    '<tool_call>{"name": "x", "arguments": {"n": ' + "9" * 5000 + "}}</tool_call>",
    '<tool_call>{"name": "x", "arguments": {"s": "\\ud800"}}</tool_call>',
    '<tool_call>{"name": "x", "arguments": {"s": "\\uZZZZ"}}</tool_call>',
    "<|tool_call>call:x{a:" + "{a:" * 5000 + "1" + "}" * 5000 + "}<tool_call|>",
    "[f(a=" + "[" * 5000 + "]" * 5000 + ")]",
    "[TOOL_CALLS]" * 5000,
    "<tool_call>" * 5000,
    "<think>" * 3000 + "</think>" * 3000,
    "<|channel|>analysis<|message|>" * 2000,
    "to=functions." * 3000,
    "```" * 5000,
    '"' * 10_000 + "{" * 100,
    "\x00\ud800\udfff" * 1000,
    "<function=" + "a" * 100_000,
    "<｜DSML｜function_calls>" + '<｜DSML｜invoke name="' * 2000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_never_raises(text):
    s = scan(text, TOOLS)
    assert not s.notes, s.notes  # no internal failure was papered over either
    for attempt in s.attempts:
        assert attempt.clean or attempt.broken or any(c.parse_error for c in attempt.calls)
        for call in attempt.calls:
            json.dumps(call.model_dump(), ensure_ascii=False).encode("utf-8")  # storable as is


def test_values_no_json_tool_can_take_are_broken():
    for text in ('<tool_call>{"name": "x", "arguments": {"a": 1e999}}</tool_call>',
                 '<tool_call>{"name": "x", "arguments": {"a": NaN}}</tool_call>',
                 "<tool_call>{'name': 'x', 'arguments': {'a': b'z'}}</tool_call>"):
        s = scan(text)
        assert s.attempted and not s.recovered and s.broken, text


def test_raw_arguments_are_the_arguments_as_written_or_as_json():
    s = scan('<tool_call>{"name": "x", "arguments": {"a": 1}}</tool_call>[TOOL_CALLS]y[ARGS]{"b":  2}')
    assert [c.raw_arguments for c in s.recovered] == ['{"a": 1}', '{"b":  2}']
    s = scan("<tool_call>get_time<arg_key>city</arg_key><arg_value>Paris</arg_value></tool_call>")
    assert json.loads(s.recovered[0].raw_arguments) == {"city": "Paris"}


def test_never_raises_on_non_text():
    for value in (None, 42, b"<tool_call>", ["x"]):
        assert scan(value).attempts == ()


def test_huge_numbers_and_bad_escapes_are_broken_not_fatal():
    for text in HOSTILE[4:7]:
        s = scan(text, TOOLS)
        assert s.attempted and not s.clean_in("hermes"), text[:60]
    # 400 digits (1,329 bits) pass JSON but not the parser limit every reader keeps (formats.base.LIMITS).
    (attempt,) = scan(HOSTILE[3], TOOLS).attempts
    assert attempt.broken == "an integer of 1,329 bits, over the parser limit of 1024 (max_int_bits)"
    assert scan(HOSTILE[3].replace("9" * 400, "9" * 300), TOOLS).clean_in("hermes")  # 997 bits: within it


# ----------------------------------------------------------------------------------- linearity
class CountingFinder(text_module.Finder):
    characters = 0

    def find(self, needle, start, end=None):
        before = self._next.get(needle)
        at = super().find(needle, start, end)
        if self._next.get(needle) is not before:  # a real search ran: it read up to its hit or the end
            hit = self._next[needle][1]
            CountingFinder.characters += (hit if hit >= 0 else self.limit) - start
        return at


@pytest.mark.parametrize("unit", [
    '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>\n',
    "<tool_call>\n<function=search>\n<parameter=query>\nx\n",  # cut off: no close tags anywhere after
    "[TOOL_CALLS]get_weather[ARGS]{\"location\": \"Paris\"}",
    "<tool_call>get_weather<arg_key>location</arg_key><arg_value>Paris",
    '<｜DSML｜function_calls>\n<｜DSML｜invoke name="get_weather">\n<｜DSML｜parameter name="location" string="true">P',
    "Plain prose with a { brace and a [ bracket and `<tool_call>` in backticks. ",
])
def test_work_is_linear_in_the_reply_length(monkeypatch, unit):
    """Searched characters grow like the text, not like its square (counted, not timed)."""
    from evalkit.callsyntax import scanner

    monkeypatch.setattr(scanner, "Finder", CountingFinder)
    counts = []
    for repeats in (200, 800):
        CountingFinder.characters = 0
        text = unit * repeats
        scan(text, TOOLS)
        counts.append(CountingFinder.characters / len(text))
    assert counts[1] <= counts[0] * 1.5 + 2, counts  # per-character work does not grow with length


def test_one_table():
    names = [f.name for f in FAMILIES]
    assert len(names) == len(set(names)) and set(BY_NAME) == set(names)
    for required in ("hermes", "qwen3_xml", "llama3", "mistral", "gemma4", "glm", "kimi_k2", "deepseek",
                     "harmony", "lmstudio", "pythonic", "json", "gemma3", "granite", "phi4", "functionary",
                     "command_r7b"):
        assert required in names
