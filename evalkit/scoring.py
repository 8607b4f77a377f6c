"""Per-sample verdicts, exactly as CONTRACT.md section 3 defines them: single-turn replies
(`score`) and agent cases' whole trajectories (`score_agent`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Sequence

import jsonschema

from .formats.base import ParsedReply
from .matching import match_calls, names_text
from .recovery import _to_calls, find_call_syntax, loads_lenient, recover_calls
from .schema import Case, FailureKind, FinalAnswer, ToolCall, ToolDef


@dataclass
class Verdict:
    malformed: bool
    hallucinated_tool: bool
    args_valid: bool | None
    call_correct: bool
    intent_correct: bool
    failure_kind: FailureKind | None  # why call_correct is false: a key of evalkit/failures.py
    failure_detail: str | None = None  # the specifics, in words
    final_answer_ok: bool | None = None  # agent cases: does the final answer hold (None: nothing to check)


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


# ---------------------------------------------------------------- invented arguments


def _conversation_text(case: Case) -> str:
    """Everything the model was told, case-folded: where a value it passes must come from."""
    return "\n".join(m.content or "" for m in case.messages).casefold()


def _spellings(value: float | int) -> set[str]:
    """How a number may be written in the conversation: 8.0 as "8" or "8.0", 1e3 as "1000"."""
    out = {repr(value), str(value)}
    if float(value).is_integer():
        out |= {str(int(value)), f"{int(value)}.0"}
    return out


def _given(value: object, conversation: str) -> bool:
    """Does a value appear in the conversation? Strings as case-folded substrings, numbers as
    number tokens (8 does not appear in "2048"), lists and objects when every leaf does.
    Booleans, null and empty strings are nothing a user types: they count as given."""
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, str):
        text = value.strip().casefold()
        return not text or text in conversation
    if isinstance(value, (int, float)):
        return any(re.search(rf"(?<![\d.]){re.escape(s)}(?![\d]|\.\d)", conversation) for s in _spellings(value))
    if isinstance(value, list):
        return all(_given(v, conversation) for v in value)
    if isinstance(value, dict):
        return all(_given(v, conversation) for v in value.values())
    return True


def invented_arguments(case: Case, tools: dict[str, ToolDef], calls: list[ToolCall]) -> list[str]:
    """`name.argument=value` for every required argument of an offered tool whose value appears
    nowhere in the case's messages (the rule of the `invented_argument` failure kind)."""
    conversation = _conversation_text(case)
    found = []
    for call in calls:
        tool = tools.get(call.name or "")
        if tool is None or not call.arguments:
            continue
        for name in tool.function.parameters.get("required", []):
            if name in call.arguments and not _given(call.arguments[name], conversation):
                found.append(f"{call.name}.{name}={json.dumps(call.arguments[name], ensure_ascii=False)}")
    return found


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
    failure: FailureKind | None = None
    detail: str | None = None
    if not expect.calls:
        correct = not calls and not malformed
        invented = invented_arguments(case, tools, parsed) if parsed and not malformed else []
        if invented:
            # The request lacked something the tool needs, and the model made it up instead of asking.
            failure, detail = "invented_argument", f"{', '.join(invented)}: not given anywhere in the conversation"
        elif not correct:
            failure = "malformed" if malformed and not parsed else "called_when_should_not"
            detail = f"called {names_text(calls)}" if calls else f"call syntax in the text: {', '.join(leftover_syntax)}"
    elif malformed:
        correct, failure = False, "malformed"
        detail = broken[0].parse_error if broken else f"unparsed call syntax in the reply: {', '.join(leftover_syntax)}"
    elif not parsed:
        correct, failure, detail = False, "did_not_call", None
    else:
        match = match_calls(expect.calls, parsed, expect.order, extra_allowed)
        correct = match.ok and bool(args_valid)
        if hallucinated:
            # Before wrong_tool or wrong_count: a tool that does not exist is the more telling failure.
            failure = "hallucinated_tool"
            detail = f"called {names_text([c for c in parsed if c.name not in names])}, which was not offered"
        elif not match.ok:
            failure, detail = match.kind, match.detail
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

    verdict = Verdict(
        malformed=malformed,
        hallucinated_tool=hallucinated,
        args_valid=args_valid,
        call_correct=correct,
        intent_correct=intent_correct or correct,
        failure_kind=failure,
        failure_detail=detail,
    )
    if case.mode == "single" and expect.final_answer is not None:
        # A single-turn reply's text checked like an agent's final answer: e.g. that a model which
        # rightly made no call asks for the missing argument (the clarify suite).
        verdict.final_answer_ok = final_answer_holds(expect.final_answer, text)
        if verdict.call_correct and not verdict.final_answer_ok:
            verdict.call_correct = verdict.intent_correct = False
            verdict.failure_kind = "final_answer"
            verdict.failure_detail = f"{json.dumps(text[:120], ensure_ascii=False)} does not satisfy the expected answer"
        elif not verdict.final_answer_ok:
            verdict.intent_correct = False
    return verdict


# ---------------------------------------------------------------- agent cases


def round_malformed(reply: ParsedReply, tool_names: set[str]) -> bool:
    """An agent round held a call attempt that could not be parsed (in a call or left in the text)."""
    return any(c.parse_error for c in reply.calls) or bool(find_call_syntax(reply.text, tool_names))


def dedupe(calls: list[ToolCall]) -> list[ToolCall]:
    """Identical repeated calls (a retry after an error) count once for scoring."""
    seen: set[str] = set()
    unique = []
    for call in calls:
        key = json.dumps([call.name, call.arguments], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            unique.append(call)
    return unique


@dataclass
class Trajectory:
    """What an agent case's rounds add up to, read from the parsed reply of each round."""

    executed: list[ToolCall]  # the parsed calls of every round, in order (what was run)
    final_text: str  # the prose of the round that ended the case ("" at the round limit)
    ended_by: Literal["answer", "round_limit"]
    malformed_rounds: int


def trajectory(replies: Sequence[ParsedReply], tool_names: set[str]) -> Trajectory:
    """A reply without calls ends the case (an answer, or an attempt the format could not
    parse); the case ran out of rounds when every reply asked for tools."""
    executed: list[ToolCall] = []
    for reply in replies:
        if not reply.calls:
            break
        executed += [c for c in reply.calls if not c.parse_error]
    last = replies[-1] if replies else ParsedReply()
    ended_by: Literal["answer", "round_limit"] = "answer" if replies and not last.calls else "round_limit"
    return Trajectory(
        executed=executed,
        final_text=last.text if ended_by == "answer" else "",
        ended_by=ended_by,
        malformed_rounds=sum(round_malformed(r, tool_names) for r in replies),
    )


def score_agent(case: Case, offered: list[ToolDef], replies: Sequence[ParsedReply]) -> tuple[Verdict, Trajectory]:
    """Verdicts for an agent case from the parsed reply of each round: the executed calls (each
    distinct call once) against the expected ones, then the rounds and the final answer."""
    path = trajectory(replies, {t.function.name for t in offered})
    verdict = score(case, offered, dedupe(path.executed), "")
    if path.ended_by == "answer":
        verdict.final_answer_ok = final_answer_holds(case.expect.final_answer, path.final_text)
    else:
        verdict.final_answer_ok = False
    if path.malformed_rounds:
        verdict.malformed = True
        verdict.call_correct = False
        if verdict.failure_kind in (None, "did_not_call", "wrong_count"):
            verdict.failure_kind = "malformed"
            verdict.failure_detail = f"{path.malformed_rounds} round(s) held a tool call that could not be parsed"
    if verdict.call_correct and path.ended_by != "answer":
        verdict.call_correct = verdict.intent_correct = False
        verdict.failure_kind, verdict.failure_detail = "round_limit", f"no answer after {case.max_rounds} rounds"
    elif verdict.call_correct and verdict.final_answer_ok is False:
        verdict.call_correct = verdict.intent_correct = False
        verdict.failure_kind = "final_answer"
        verdict.failure_detail = f"{json.dumps(path.final_text[:120], ensure_ascii=False)} does not satisfy the expected answer"
    return verdict, path
