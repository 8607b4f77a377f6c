"""The safety net (evalkit/callsyntax/net.py) and the borderline cases of docs/callsyntax.md.

The invented syntaxes below were written for these tests; none is a known family's. The held-out set
(benchmarks/data/callsyntax_heldout.jsonl, measured by benchmarks/bench_callsyntax.py) is kept apart.
"""

from __future__ import annotations

import json

import pytest

from evalkit.callsyntax import net, scan
from evalkit.testing.callsyntax_fixtures import FIXTURES

TOOLS = json.loads((FIXTURES / "tools.json").read_text())
PARIS = {"location": "Paris", "unit": "celsius"}


@pytest.mark.parametrize("text,name,args", [
    ('CALL get_weather WITH location="Paris", unit="celsius"', "get_weather", PARIS),
    ('<invoke tool="get_weather"><arg name="location">Paris</arg><arg name="unit">celsius</arg></invoke>',
     "get_weather", PARIS),
    ("@@get_weather{location: Paris | unit: celsius}@@", "get_weather", PARIS),
    ("ACTION: search\nquery: cheap flights\nlimit: 3", "search", {"query": "cheap flights", "limit": 3}),
    ('{"tool": "get_weather", "params": {"location": "Paris", "unit": "celsius"}}', "get_weather", PARIS),
    ("Sure.\n>> get_weather | location=Paris | unit=celsius", "get_weather", PARIS),
    ("<<get_weather>> <location>Paris</location>", "get_weather", {"location": "Paris"}),
    ("#call search(query='cheap flights', limit=3)", "search", {"query": "cheap flights", "limit": 3}),
    ("%%get_weather%% location -> Paris, unit -> celsius", "get_weather", PARIS),
    ('!get_weather --location "Paris" --unit celsius', "get_weather", PARIS),
    ('(get_weather :location "Paris" :unit "celsius")', "get_weather", PARIS),
    ("tool: get_weather\nargs:\n  location: Paris\n  unit: celsius", "get_weather", PARIS),
    ("**Tool:** get_weather\n**Arguments:** location = Paris", "get_weather", {"location": "Paris"}),
    ('Let me check: call get_weather(location="Paris")', "get_weather", {"location": "Paris"}),
])
def test_invented_syntax_is_a_malformed_attempt_recovered_for_intent(text, name, args):
    s = scan(text, TOOLS)
    assert [a.family for a in s.attempts] == ["unknown"]
    assert s.attempted and s.broken, "an unknown syntax is never clean: no parser could read it"
    assert [(c.name, c.arguments) for c in s.recovered] == [(name, args)]
    assert s.syntax == "unknown"
    assert name not in s.prose  # the attempt is not left in the answer's prose


@pytest.mark.parametrize("text", [
    "I could use get_weather if you tell me the city.",
    "I could call get_weather with location=\"Paris\" if you like.",  # an offer in a sentence
    "The tool get_weather(location: string, unit: string) gives the weather.",  # a signature
    "Try `get_weather(location=\"Paris\")` yourself.",  # inline code explains a call
    "To search, tell me the query: what are you looking for?",
    "I'll search for that. The location: Paris, as you said.",
    "get_weather needs a location and a unit.",
    "Tools available: get_weather, get_time, search. Which one should I use?",
    "Use get_weather with location=Paris and I will tell you.",  # an offer, capitalised
    "The get_weather function requires a location: please provide one.",
    "Options: get_weather (location, unit), search (query, limit)",
    "You could use a tool (get_weather) and I just need the location: which city?",
    "Please send me your @location so I can run get_weather.",
    'The tool said: Result of get_weather: {\n  "location": "Paris",\n  "temperature_c": 21\n}',  # a result echoed
    'get_weather returned {"location": "Paris", "sky": "clear"}.',
    'I called get_weather(location="Paris") and it said the sky is clear.',  # a sentence about a call
    "```python\ndef get_weather(location, unit):\n    location = location.strip()\n```",  # a definition
    '[TOOL_RESULT]{"result": {"search": false, "query": "x"}}[END_TOOL_RESULT]',  # a name as a data key
])
def test_prose_naming_tools_stays_plain(text):
    s = scan(text, TOOLS)
    assert not s.attempts, [(a.family, a.broken) for a in s.attempts]
    assert s.prose == text


def test_ambiguous_values_are_an_attempt_but_not_recovered():
    two = scan('CALL get_weather WITH location="Paris", location="Rome"', TOOLS)
    assert two.attempted and not two.recovered  # which location? no guess
    wrong_type = scan("#call search(query='x', limit=three)", TOOLS)
    assert wrong_type.attempted and not wrong_type.recovered  # `limit` is an integer
    missing = scan("#call write_file(path='a.txt')", TOOLS)
    assert missing.attempted and not missing.recovered  # `content` is required


def test_parallel_calls_in_an_unknown_syntax():
    s = scan("@@get_weather{location: Paris}@@\n@@search{query: cafés, limit: 2}@@", TOOLS)
    assert [(c.name, c.arguments) for c in s.recovered] == [
        ("get_weather", {"location": "Paris"}), ("search", {"query": "cafés", "limit": 2})]


def test_the_net_reads_the_answer_only_and_needs_the_offered_tools():
    reasoning = scan("<think>CALL get_weather WITH location=\"Paris\"</think>It is sunny.", TOOLS)
    assert not reasoning.attempts and reasoning.prose == "It is sunny."
    assert not scan('CALL get_weather WITH location="Paris"', None).attempts  # tools unknown: no evidence
    assert not scan('CALL get_time WITH city="Paris"', TOOLS).attempts  # `city` is no parameter of get_time


def test_known_families_win_over_the_net():
    s = scan('<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>', TOOLS)
    assert [a.family for a in s.attempts] == ["hermes"] and not s.broken


# ---------------------------------------------------------------------------------- borderline cases
def test_a_call_opened_and_cut_at_once_stays_malformed():
    for text in ("[TOOL_CALLS]", "Let me check.[TOOL_CALLS]", "<tool_call>", "Sure.\n<tool_call>\n"):
        s = scan(text, TOOLS)
        assert s.attempted and s.broken and not s.recovered, text


def test_harmony_final_channel_json_is_the_answer_not_a_call():
    final = ('<|channel|>analysis<|message|>Answer with the JSON.<|end|><|start|>assistant<|channel|>final'
             '<|message|>{"name": "get_weather", "arguments": {"location": "Paris"}}<|return|>')
    s = scan(final, TOOLS)
    assert not s.attempted and s.prose.startswith('{"name": "get_weather"')
    commentary = ("<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant to=functions.get_weather"
                  '<|channel|>commentary json<|message|>{"location": "Paris"}<|call|>')
    s = scan(commentary, TOOLS)
    assert [(a.family, [c.name for c in a.calls]) for a in s.attempts] == [("harmony", ["get_weather"])]
    # Outside Harmony the same JSON object is a call attempt.
    assert scan('{"name": "get_weather", "arguments": {"location": "Paris"}}', TOOLS).attempted


@pytest.mark.parametrize("unit", [
    "I could use get_weather with the location: a city you name. ",
    'CALL get_weather WITH location="Paris", unit="celsius"\n',
    "get_weather(location=",  # never closes
    "`get_weather(location=\"Paris\")` ",
])
def test_net_work_is_linear_in_the_reply_length(monkeypatch, unit):
    """Characters the net searches for parameters grow like the text (counted, not timed)."""
    seen = {"chars": 0}
    real = net._params

    def counting(text, lo, hi, schema):
        seen["chars"] += hi - lo
        return real(text, lo, hi, schema)

    monkeypatch.setattr(net, "_params", counting)
    ratios = []
    for repeats in (200, 800):
        seen["chars"] = 0
        text = unit * repeats
        scan(text, TOOLS)
        ratios.append(seen["chars"] / len(text))
    assert ratios[1] <= ratios[0] * 1.5 + 2, ratios
