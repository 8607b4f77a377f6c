"""One-to-one call matching (docs/format.md section 1); argument values compare by evalkit/matchers.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from .matchers import MISSING, describe_value, match_value
from .schema import ExpectedCall, FailureKind, ToolCall

__all__ = ["CallMatch", "args_mismatch", "match_calls", "match_value", "names_text"]


def names_text(calls: Sequence[ToolCall]) -> str:
    """The tools a reply called, for a detail line: "get_weather, get_time" (or "none")."""
    return ", ".join(c.name or "?" for c in calls) or "none"


def args_mismatch(expected: ExpectedCall, arguments: dict[str, Any], extra_allowed: bool) -> str | None:
    """None when the arguments match; else a short reason a person can read."""
    for key, want in expected.args.items():
        got = arguments.get(key, MISSING)
        if not match_value(want, got):
            if got is MISSING:
                return f"{expected.name}: missing argument {key!r}"
            sent = json.dumps(got, ensure_ascii=False, default=str)
            return f"{expected.name}: {key}={sent}, expected {describe_value(want)}"
    if not (extra_allowed or expected.extra_args == "allow"):
        extra = sorted(set(arguments) - set(expected.args))
        if extra:
            return f"{expected.name}: unexpected argument(s) {', '.join(extra)}"
    return None


@dataclass
class CallMatch:
    ok: bool
    kind: FailureKind | None = None  # wrong_count | wrong_tool | wrong_value
    detail: str | None = None


def _pair_reason(expected: ExpectedCall, call: ToolCall, extra_allowed: bool) -> tuple[FailureKind, str] | None:
    if call.name != expected.name:
        return "wrong_tool", f"called {call.name!r}, expected {expected.name!r}"
    detail = args_mismatch(expected, call.arguments or {}, extra_allowed)
    return ("wrong_value", detail) if detail else None


def match_calls(
    expected: Sequence[ExpectedCall], calls: Sequence[ToolCall], order: str = "any", extra_allowed: bool = False
) -> CallMatch:
    """Expected and actual calls must pair one to one (in order when `order` is strict)."""
    if len(calls) != len(expected):
        return CallMatch(False, "wrong_count", f"made {len(calls)} call(s) ({names_text(calls)}), expected {len(expected)}")
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
            return CallMatch(False, "wrong_tool", f"no call to {want.name!r} (called {names_text(calls)})")
    return CallMatch(True)
