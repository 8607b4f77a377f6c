"""THE argument-matcher table (docs/format.md section 1): each matcher's validation, match and text.

A value under `args.NAME` is a literal or a matcher object such as `{loose: "New York City"}`.
Everything that knows about matcher kinds derives from `MATCHERS`: the suite schema validates
with `problem`, call matching compares with `match_value`, reports print with `describe_value`.
A new matcher is one `Matcher` entry here. This module imports nothing of evalkit's.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

MISSING: Any = object()  # an argument the call left out (so `None` stays a value)

_LOOSE_IGNORED = re.compile(r"[ \,\.\/\-\_\*\^]")  # BFCL's standardize_string


def loose_key(text: str) -> str:
    """How `loose` compares strings (BFCL's `standardize_string`): no spaces or `,./-_*^`,
    lower case, `'` as `"`."""
    return _LOOSE_IGNORED.sub("", text).lower().replace("'", '"')


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but True is not the number 1 to a tool schema.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


REGEX_TIMEOUT_S = 1.0
"""One `regex:` matcher against one value; a match that takes longer is no match."""


def _regex_problem(spec: dict[str, Any]) -> str | None:
    import regex

    try:
        regex.compile(spec["regex"])
    except regex.error as exc:
        return f"bad regex: {exc}"
    return None


def _regex_match(pattern: str, actual: Any) -> bool:
    """`actual` matches `pattern` whole, within REGEX_TIMEOUT_S; a match that takes longer is no
    match. The `regex` module, not `re`: `re` cannot be stopped, and `(a+)+$` against 26 a's and a
    `!` held scoring (on the event loop) for 5 s, past --deadline and Ctrl-C."""
    import regex

    if not isinstance(actual, str):
        return False
    try:
        return regex.fullmatch(pattern, actual, timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError:
        return False


@dataclass(frozen=True)
class Matcher:
    """One matcher kind: the operator key, the keys that may go with it, and its three jobs."""

    name: str
    match: Callable[[dict[str, Any], Any], bool]  # (matcher object, the value sent) -> does it satisfy it
    describe: Callable[[dict[str, Any]], str]  # the matcher as a person reads it
    validate: Callable[[dict[str, Any]], str | None] = lambda spec: None  # a problem with the suite, or None
    params: tuple[str, ...] = ()  # further keys only this operator takes (approx's tol)


MATCHERS: dict[str, Matcher] = {
    m.name: m
    for m in (
        Matcher(
            "one_of",
            match=lambda spec, actual: any(match_value(option, actual) for option in spec["one_of"]),
            describe=lambda spec: "one of " + " | ".join(describe_value(v) for v in spec["one_of"]),
            validate=lambda spec: None if isinstance(spec["one_of"], list) else "'one_of' must be a list",
        ),
        Matcher(
            "exact",
            match=lambda spec, actual: type(actual) is type(spec["exact"]) and actual == spec["exact"],
            describe=lambda spec: "exactly " + json.dumps(spec["exact"], ensure_ascii=False),
        ),
        Matcher(
            "loose",
            match=lambda spec, actual: isinstance(actual, str) and loose_key(actual) == loose_key(str(spec["loose"])),
            describe=lambda spec: "≈" + json.dumps(spec["loose"], ensure_ascii=False),
        ),
        Matcher(
            "regex",
            match=lambda spec, actual: _regex_match(spec["regex"], actual),
            describe=lambda spec: f"/{spec['regex']}/",
            validate=_regex_problem,
        ),
        Matcher(
            "approx",
            match=lambda spec, actual: _is_number(actual)
            and abs(float(actual) - float(spec["approx"])) <= float(spec.get("tol", 1e-6)),
            describe=lambda spec: f"~{spec['approx']}" + (f" (tol {spec['tol']})" if "tol" in spec else ""),
            params=("tol",),
        ),
    )
}

OPERATORS = frozenset(MATCHERS)
# `optional: true` goes with any operator, or alone: then any value (or none) is accepted.
KEYS = OPERATORS | {p for m in MATCHERS.values() for p in m.params} | {"optional"}


def is_matcher(value: Any) -> bool:
    """An object with a matcher key is a matcher (a literal object with such keys is written
    `{exact: {...}}`); `check_expected` makes sure a suite's matchers have no other keys."""
    return isinstance(value, dict) and not KEYS.isdisjoint(value)


def operator(spec: dict[str, Any]) -> Matcher | None:
    """The matcher kind of a matcher object; None for `{optional: true}` alone."""
    return next((MATCHERS[key] for key in spec if key in MATCHERS), None)


LITERAL_HINT = "a literal object with such keys is written {exact: {...}}"


def _near_miss(key: Any) -> str | None:
    """The matcher key a key looks like a typo of (`aprox`, `optinal`), or None."""
    close = difflib.get_close_matches(str(key), sorted(KEYS), n=1, cutoff=0.85) if isinstance(key, str) else []
    return close[0] if close else None


def problem(spec: dict[str, Any]) -> str | None:
    """What is wrong with a matcher object in a suite, in words; None when it is well formed.

    Strict: a key that is not a matcher key (`tolerance` beside `approx`) is a mistake, not a
    literal object that can never match, which would make the case fail quietly forever.
    """
    for key in spec:
        if key not in KEYS:
            guess = difflib.get_close_matches(str(key), sorted(KEYS), n=1, cutoff=0.5)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            return f"unknown matcher key {key!r}{hint}; matcher keys are {', '.join(sorted(KEYS))}; {LITERAL_HINT}"
    ops = set(spec) & OPERATORS
    if len(ops) > 1:
        return f"use one of {sorted(OPERATORS)}, not {sorted(ops)}"
    kind = operator(spec)
    for m in MATCHERS.values():
        for param in m.params:
            if param in spec and kind is not m:
                return f"'{param}' goes with '{m.name}'"
    return kind.validate(spec) if kind is not None else None


def check_expected(value: Any) -> str | None:
    """What is wrong with an expected argument value, looking inside literal lists and objects and
    `one_of` options (not inside `exact`, which is a literal); None when all is well formed."""
    if isinstance(value, list):
        return next((f"item {i}: {why}" for i, item in enumerate(value) if (why := check_expected(item))), None)
    if not isinstance(value, dict):
        return None
    if is_matcher(value):
        if why := problem(value):
            return why
        options = value.get("one_of")
        return check_expected(options) if isinstance(options, list) else None
    typos = {key: _near_miss(key) for key in value}
    if value and all(typos.values()):  # every key a near miss: a matcher with a typo, not a literal
        key, meant = next(iter(typos.items()))
        return f"{key!r} is not a matcher key (did you mean {meant!r}?); {LITERAL_HINT}"
    return next((f"key {key!r}: {why}" for key, item in value.items() if (why := check_expected(item))), None)


def match_value(expected: Any, actual: Any) -> bool:
    """Does one argument value (`MISSING` when the call left it out) satisfy the expected
    literal or matcher object?"""
    if is_matcher(expected):
        if actual is MISSING:
            return bool(expected.get("optional"))
        kind = operator(expected)
        return True if kind is None else kind.match(expected, actual)
    if actual is MISSING:
        return False
    if _is_number(expected):
        return _is_number(actual) and math.isclose(float(actual), float(expected), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(expected, str):
        return isinstance(actual, str) and actual.strip().casefold() == expected.strip().casefold()
    if isinstance(expected, bool) or expected is None:
        return actual is expected or (isinstance(actual, bool) and actual == expected)
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            match_value(e, a) for e, a in zip(expected, actual)
        )
    if isinstance(expected, dict):
        # Keys whose matcher is `optional` may be left out, as arguments at the top level may.
        return isinstance(actual, dict) and set(actual) <= set(expected) and all(
            match_value(v, actual.get(k, MISSING)) for k, v in expected.items()
        )
    return bool(expected == actual)


def describe_value(value: Any) -> str:
    """An expected value as a person reads it: 8.9, ≈"Los Angeles, CA", one of 24 | 15,
    ~3.14 (tol 0.01), /regex/; matchers inside lists, objects and `one_of` render the same way."""
    if is_matcher(value):
        kind = operator(value)
        text = kind.describe(value) if kind is not None else "anything"
        return text + (" (optional)" if value.get("optional") else "")
    if isinstance(value, list):
        return "[" + ", ".join(describe_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {describe_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False, default=str)
