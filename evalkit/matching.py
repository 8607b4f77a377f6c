"""Argument matchers and one-to-one call matching, as CONTRACT.md section 1 defines them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

from .schema import ExpectedCall, ToolCall, is_matcher

_MISSING = object()
_LOOSE_IGNORED = re.compile(r"[ \,\.\/\-\_\*\^]")  # BFCL's standardize_string


def loose_key(text: str) -> str:
    """How `loose` compares strings (BFCL's rule): no spaces or `,./-_*^`, lower case, ' as "."""
    return _LOOSE_IGNORED.sub("", text).lower().replace("'", '"')


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but True is not the number 1 to a tool schema.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def match_value(expected: Any, actual: Any) -> bool:
    """Does one argument value satisfy the expected literal or matcher object?"""
    if is_matcher(expected):
        if actual is _MISSING:
            return bool(expected.get("optional"))
        if "one_of" in expected:
            return any(match_value(option, actual) for option in expected["one_of"])
        if "exact" in expected:
            return type(actual) is type(expected["exact"]) and actual == expected["exact"]
        if "loose" in expected:
            return isinstance(actual, str) and loose_key(actual) == loose_key(str(expected["loose"]))
        if "regex" in expected:
            return isinstance(actual, str) and re.fullmatch(expected["regex"], actual) is not None
        if "approx" in expected:
            tol = float(expected.get("tol", 1e-6))
            return _is_number(actual) and abs(float(actual) - float(expected["approx"])) <= tol
        return True  # {optional: true} alone accepts any value
    if actual is _MISSING:
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
            match_value(v, actual.get(k, _MISSING)) for k, v in expected.items()
        )
    return bool(expected == actual)


def args_mismatch(expected: ExpectedCall, arguments: dict[str, Any], extra_allowed: bool) -> str | None:
    """None when the arguments match; else a short reason a person can read."""
    for key, want in expected.args.items():
        got = arguments.get(key, _MISSING)
        if not match_value(want, got):
            if got is _MISSING:
                return f"{expected.name}: missing argument {key!r}"
            return f"{expected.name}: {key}={got!r}, expected {want!r}"
    if not (extra_allowed or expected.extra_args == "allow"):
        extra = sorted(set(arguments) - set(expected.args))
        if extra:
            return f"{expected.name}: unexpected argument(s) {', '.join(extra)}"
    return None


@dataclass
class CallMatch:
    ok: bool
    reason: str | None = None  # "wrong_count" | "wrong_tool" | "wrong_value"
    detail: str | None = None


def _pair_reason(expected: ExpectedCall, call: ToolCall, extra_allowed: bool) -> tuple[str, str] | None:
    if call.name != expected.name:
        return "wrong_tool", f"called {call.name!r}, expected {expected.name!r}"
    detail = args_mismatch(expected, call.arguments or {}, extra_allowed)
    return ("wrong_value", detail) if detail else None


def match_calls(
    expected: Sequence[ExpectedCall], calls: Sequence[ToolCall], order: str = "any", extra_allowed: bool = False
) -> CallMatch:
    """Expected and actual calls must pair one to one (in order when `order` is strict)."""
    if len(calls) != len(expected):
        names = [c.name for c in calls]
        return CallMatch(False, "wrong_count", f"made {len(calls)} call(s) {names}, expected {len(expected)}")
    if order == "strict":
        for want, call in zip(expected, calls):
            problem = _pair_reason(want, call, extra_allowed)
            if problem:
                return CallMatch(False, *problem)
        return CallMatch(True)
    # Order-free: a bipartite matching (Kuhn's augmenting paths; n is tiny).
    fits = [[_pair_reason(want, call, extra_allowed) is None for call in calls] for want in expected]
    owner: list[int | None] = [None] * len(calls)

    def assign(i: int, seen: set[int]) -> bool:
        for j, fit in enumerate(fits[i]):
            if fit and j not in seen:
                seen.add(j)
                if owner[j] is None or assign(owner[j], seen):  # type: ignore[arg-type]
                    owner[j] = i
                    return True
        return False

    for i in range(len(expected)):
        if not assign(i, set()):
            # Explain with the closest candidate: the same name if there is one.
            want = expected[i]
            same_name = [c for c in calls if c.name == want.name]
            if same_name:
                return CallMatch(False, *(_pair_reason(want, same_name[0], extra_allowed) or ("wrong_value", None)))
            return CallMatch(False, "wrong_tool", f"no call to {want.name!r} (called {[c.name for c in calls]})")
    return CallMatch(True)
