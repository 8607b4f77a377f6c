"""Argument matchers and one-to-one call matching (docs/format.md section 1), at unit level."""

from __future__ import annotations

import pytest

from evalkit.matching import args_mismatch, match_calls, match_value
from evalkit.schema import ExpectedCall, ToolCall


@pytest.mark.parametrize(
    "expected,actual,ok",
    [
        # numbers compare numerically, int vs float
        (8, 8.0, True),
        (8.0, 8, True),
        (8.9, 8.9, True),
        (8.9, 8.9000001, False),
        (0.1 + 0.2, 0.3, True),  # float noise is not a different number
        (8.11, 8.1, False),
        (0, 0.0, True),
        (-3, -3.0, True),
        # a number is not its string
        (8.9, "8.9", False),
        ("8.9", 8.9, False),
        # strings: trimmed and case-folded
        ("Paris", "  paris ", True),
        ("Bob the Builder", "BOB THE BUILDER", True),
        ("Straße", "STRASSE", True),  # casefold, not lower
        ("Paris", "Pariss", False),
        ("Bob the Builder", "Bob  the Builder", False),  # inner whitespace is kept
        # bools are not 1/0
        (True, True, True),
        (False, False, True),
        (True, 1, False),
        (1, True, False),
        (False, 0, False),
        (0, False, False),
        (True, "true", False),
        # null
        (None, None, True),
        (None, 0, False),
        (None, "", False),
        # lists and objects element-wise
        ([1, "a", 2.5], [1.0, " A", 2.5], True),
        ([1, 2], [2, 1], False),
        ([1, 2], [1, 2, 3], False),
        ([1, 2], (1, 2), False),
        ({"city": "Paris", "days": 3}, {"days": 3.0, "city": "paris"}, True),
        ({"city": "Paris"}, {"city": "Paris", "days": 3}, False),
        ({"city": "Paris", "days": 3}, {"city": "Paris"}, False),
        ({"a": [1, {"b": "X"}]}, {"a": [1, {"b": "x "}]}, True),
        ([], [], True),
        ({}, {}, True),
    ],
)
def test_literals(expected, actual, ok):
    assert match_value(expected, actual) is ok


@pytest.mark.parametrize(
    "matcher,actual,ok",
    [
        ({"exact": "Bob the Builder"}, "Bob the Builder", True),
        ({"exact": "Bob the Builder"}, "bob the builder", False),  # exact is not folded
        ({"exact": "Bob the Builder"}, " Bob the Builder", False),  # nor trimmed
        ({"exact": 5}, 5, True),
        ({"exact": 5}, True, False),
        ({"one_of": ["Paris", "Paris, France"]}, "paris, FRANCE", True),  # options compare as literals
        ({"one_of": ["Paris", "Paris, France"]}, "Lyon", False),
        ({"one_of": [1, 2]}, 2.0, True),
        ({"one_of": [1, 2]}, True, False),
        ({"regex": r"\d{4}"}, "1017", True),
        ({"regex": r"\d{4}"}, 1017, False),  # regex needs a string
        ({"regex": "(?i)hang ?zhou|杭州"}, "杭州", True),
        ({"regex": "(?i)hang ?zhou|杭州"}, "Beijing", False),
        ({"approx": 8.9, "tol": 0.01}, 8.905, True),
        ({"approx": 8.9, "tol": 0.01}, 8.95, False),
        ({"approx": 8.9, "tol": 0.01}, 8.89, True),
        ({"approx": 8.9, "tol": 0.01}, "8.9", False),
        ({"approx": 1, "tol": 0.5}, True, False),  # a bool is not a number
        ({"approx": 100}, 100.0000001, True),  # default tolerance
        ({"optional": True}, "anything", True),
        ({"one_of": ["celsius"], "optional": True}, "Celsius", True),
        ({"one_of": ["celsius"], "optional": True}, "fahrenheit", False),
    ],
)
def test_matchers(matcher, actual, ok):
    assert match_value(matcher, actual) is ok


def test_a_literal_dict_with_matcher_keys_is_written_with_exact():
    # A literal object that has a matcher key is spelled {exact: {...}} (issue 16: matcher keys are
    # strict); a dict without matcher keys compares as a literal object, key by key.
    literal = {"exact": {"exact": "x", "city": "Paris"}}
    assert match_value(literal, {"exact": "x", "city": "Paris"})
    assert not match_value(literal, {"exact": "x", "city": "paris"})  # exact: no case folding
    assert not match_value(literal, "x")
    assert match_value({"city": "Paris", "zip": 75001}, {"city": "paris", "zip": 75001.0})


def test_optional_arguments_may_be_omitted_required_ones_may_not():
    want = ExpectedCall(name="get_weather", args={"location": "Paris", "unit": {"one_of": ["celsius"], "optional": True}})
    assert args_mismatch(want, {"location": "Paris"}, False) is None
    assert args_mismatch(want, {"location": "Paris", "unit": "celsius"}, False) is None
    assert "unit" in args_mismatch(want, {"location": "Paris", "unit": "kelvin"}, False)
    assert "missing" in args_mismatch(want, {"unit": "celsius"}, False)


def test_extra_arguments_are_wrong_unless_allowed():
    want = ExpectedCall(name="get_weather", args={"location": "Paris"})
    assert "unit" in args_mismatch(want, {"location": "Paris", "unit": "celsius"}, False)
    assert args_mismatch(want, {"location": "Paris", "unit": "celsius"}, True) is None
    per_call = ExpectedCall(name="get_weather", args={"location": "Paris"}, extra_args="allow")
    assert args_mismatch(per_call, {"location": "Paris", "unit": "celsius"}, False) is None


def _call(name, **args):
    return ToolCall(name=name, arguments=args)


def test_order_any_pairs_one_to_one_in_any_order():
    want = [ExpectedCall(name="w", args={"city": "Paris"}), ExpectedCall(name="w", args={"city": "Rome"})]
    assert match_calls(want, [_call("w", city="Rome"), _call("w", city="Paris")], "any").ok
    assert match_calls(want, [_call("w", city="Paris"), _call("w", city="Rome")], "strict").ok
    strict = match_calls(want, [_call("w", city="Rome"), _call("w", city="Paris")], "strict")
    assert not strict.ok and strict.kind == "wrong_value"
    # one to one: the same call twice does not satisfy two expectations
    twice = match_calls(want, [_call("w", city="Paris"), _call("w", city="Paris")], "any")
    assert not twice.ok


def test_order_any_finds_a_matching_when_greedy_pairing_would_fail():
    # The first expectation fits both calls; the second only the first call. A greedy pairing
    # that gives call 0 to expectation 0 fails; a proper one-to-one matching succeeds.
    want = [ExpectedCall(name="w", args={"city": {"one_of": ["Paris", "Rome"]}}), ExpectedCall(name="w", args={"city": "Paris"})]
    assert match_calls(want, [_call("w", city="Paris"), _call("w", city="Rome")], "any").ok


def test_count_and_tool_mismatches():
    want = [ExpectedCall(name="w", args={"city": "Paris"})]
    assert match_calls(want, [], "any").kind == "wrong_count"
    assert match_calls(want, [_call("w", city="Paris")] * 2, "any").kind == "wrong_count"
    assert match_calls(want, [_call("x", city="Paris")], "any").kind == "wrong_tool"
    assert match_calls(want, [_call("w", city="Rome")], "any").kind == "wrong_value"
    assert match_calls([], [], "any").ok
