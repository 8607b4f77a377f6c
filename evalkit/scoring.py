"""Per-sample verdicts, exactly as CONTRACT.md section 3 defines them."""

from __future__ import annotations

import re
import json
from dataclasses import dataclass
from functools import lru_cache

import jsonschema

from .matching import match_calls
from .recovery import _to_calls, find_call_syntax, loads_lenient, recover_calls
from .schema import Case, FinalAnswer, ToolCall, ToolDef


@dataclass
class Verdict:
    malformed: bool
    hallucinated_tool: bool
    args_valid: bool | None
    call_correct: bool
    intent_correct: bool
    failure: str | None  # malformed | wrong_tool | wrong_value | wrong_count | invalid_args |
    #                      called_when_should_not | did_not_call | final_answer
    detail: str | None = None


@lru_cache(maxsize=1024)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


def argument_errors(call: ToolCall, tools: dict[str, ToolDef]) -> str | None:
    """None when the call's arguments validate against the offered tool's JSON Schema."""
    tool = tools.get(call.name or "")
    if tool is None:
        return f"tool {call.name!r} was not offered"
    if call.arguments is None:
        return call.parse_error or "no arguments"
    validator = _validator(json.dumps(tool.function.parameters, sort_keys=True))
    error = jsonschema.exceptions.best_match(validator.iter_errors(call.arguments))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{call.name}: {where + ': ' if where else ''}{error.message}"


def _lenient_repair(call: ToolCall) -> ToolCall:
    """A call whose arguments failed to parse, retried with a forgiving parser."""
    if call.parse_error is None or not call.raw_arguments:
        return call
    try:
        value = loads_lenient(call.raw_arguments)
    except Exception:  # noqa: BLE001
        value = None
    if isinstance(value, dict) and call.name:
        return ToolCall(name=call.name, arguments=value, raw_arguments=call.raw_arguments, id=call.id)
    if isinstance(value, dict):
        # A whole call whose JSON was broken (e.g. a [TOOL_REQUEST] body with a trailing comma).
        whole = _to_calls(value)
        if len(whole) == 1:
            return whole[0]
    recovered = recover_calls(call.raw_arguments)
    return recovered[0] if len(recovered) == 1 else call


def final_answer_holds(spec: FinalAnswer | None, answer: str | None) -> bool | None:
    if spec is None:
        return None
    text = answer or ""
    if any(needle.casefold() not in text.casefold() for needle in spec.contains):
        # Numbers are often printed with separators ("670,592,745"); compare with those removed too.
        plain = re.sub(r"(?<=\d)[,\s_](?=\d{3})", "", text).casefold()
        if any(needle.casefold() not in plain for needle in spec.contains):
            return False
    if spec.regex and not re.search(spec.regex, text):
        return False
    if spec.number is not None:
        numbers = [float(n.replace(",", "")) for n in re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)]
        if not any(abs(n - spec.number) <= spec.tol for n in numbers):
            return False
    return True


def abstains_by_bfcl_rule(malformed: bool, calls: list[ToolCall]) -> bool:
    """BFCL's irrelevance rule: a call attempt that decoded into no call counts as abstaining.
    evalkit's own verdict counts it as wrong; both are reported (`no_call_accuracy_bfcl`)."""
    return malformed and not any(c.parse_error is None for c in calls)


def score(case: Case, offered: list[ToolDef], calls: list[ToolCall], text: str) -> Verdict:
    """Verdicts for one reply: `calls` as the format parsed them, `text` the prose left over."""
    tools = {t.function.name: t for t in offered}
    names = set(tools)
    # A tool renamed to fit OpenAI's name pattern (`math.factorial` -> `math_factorial`) keeps its
    # original name in `x-original-name`; a call by that name is a call to the tool.
    aliases = {
        original: name
        for name, t in tools.items()
        if isinstance(original := (t.model_extra or {}).get("x-original-name"), str) and original not in tools
    }

    def by_tool_name(found: list[ToolCall]) -> list[ToolCall]:
        return [c.model_copy(update={"name": aliases[c.name]}) if c.name in aliases else c for c in found]

    calls = by_tool_name(calls)
    expect = case.expect
    extra_allowed = expect.extra_args == "allow"

    leftover_syntax = find_call_syntax(text, names | set(aliases))
    broken = [c for c in calls if c.parse_error]
    malformed = bool(broken or leftover_syntax)
    parsed = [c for c in calls if not c.parse_error]

    hallucinated = any(c.name not in names for c in parsed)
    arg_problems = [argument_errors(c, tools) for c in parsed]
    args_valid = None if not parsed else all(p is None for p in arg_problems)

    # Strict verdict.
    failure, detail = None, None
    if not expect.calls:
        correct = not calls and not malformed
        if not correct:
            failure = "malformed" if malformed and not parsed else "called_when_should_not"
            detail = f"called {[c.name for c in calls]}" if calls else f"call syntax in the text: {leftover_syntax}"
    elif malformed:
        correct, failure = False, "malformed"
        detail = broken[0].parse_error if broken else f"unparsed call syntax in the reply: {', '.join(leftover_syntax)}"
    elif not parsed:
        correct, failure, detail = False, "did_not_call", None
    else:
        match = match_calls(expect.calls, parsed, expect.order, extra_allowed)
        correct = match.ok and bool(args_valid)
        if not match.ok:
            failure, detail = match.reason, match.detail
        elif not args_valid:
            failure, detail = "invalid_args", next(p for p in arg_problems if p)

    # Lenient verdict: what the model meant, recovered from whatever syntax it used.
    if malformed:
        intended = [c for c in (_lenient_repair(c) for c in calls) if not c.parse_error]
        if leftover_syntax:
            intended += recover_calls(text, names | set(aliases))
        intended = by_tool_name(intended)
    else:
        intended = parsed
    if not expect.calls:
        intent_correct = correct  # any attempt, recoverable or not, is still not an abstention
    else:
        match = match_calls(expect.calls, intended, expect.order, extra_allowed)
        intent_correct = match.ok and all(argument_errors(c, tools) is None for c in intended)

    return Verdict(
        malformed=malformed,
        hallucinated_tool=hallucinated,
        args_valid=args_valid,
        call_correct=correct,
        intent_correct=intent_correct or correct,
        failure=failure,
        detail=detail,
    )
