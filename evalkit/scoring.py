"""Per-sample verdicts, exactly as docs/format.md section 3 defines them: single-turn replies
(`score`, `score_reply`) and agent cases' whole trajectories (`score_agent`).

Call syntax left in a reply's text is recognised and recovered by the one family table
(evalkit/callsyntax): each reply's text is scanned once, and that scan decides `malformed`
(an attempt in the answer), `intent_correct` (the calls it recovers), `syntax` (its family) and
`server_parse_lost` (a clean call in the model's own family that the server did not return).
A call written only inside the reasoning is no attempt: no server would run it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, Sequence

from .callsyntax import Scan, scan
from .callsyntax.readers import calls_from_value
from .callsyntax.text import loads_lenient
from .formats.base import ParsedReply
from .matching import match_calls, names_text
from .schema import Case, FailureKind, FinalAnswer, ToolCall, ToolDef

if TYPE_CHECKING:
    import jsonschema


@dataclass
class Verdict:
    malformed: bool
    hallucinated_tool: bool
    args_valid: bool | None
    call_correct: bool
    intent_correct: bool
    failure_kind: FailureKind | None  # why call_correct is false: a key of evalkit/failures.py
    failure_detail: str | None = None  # the specifics, in words
    final_answer_ok: bool | None = None  # the final answer (or a single reply's text) holds (None: nothing to check)
    syntax: str | None = None  # the call-syntax family the reply's calls were written in (None: none seen)


# The Sample fields a verdict sets, each of the same name: jobs.apply_verdict and rescore loop over them.
VERDICT_FIELDS = tuple(f.name for f in fields(Verdict))


@lru_cache(maxsize=1024)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    import jsonschema  # here: its import would delay a run's first request by ~50 ms

    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


# A suite's tool schemas are the same objects for every sample: found by identity first, the
# validator skips encoding the schema per call. Entries hold the schema, so an id is never reused.
_by_identity: dict[int, tuple[dict, jsonschema.protocols.Validator]] = {}


def _validator_for(schema: dict) -> jsonschema.protocols.Validator:
    known = _by_identity.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    validator = _validator(json.dumps(schema, sort_keys=True))
    if len(_by_identity) < 4096:
        _by_identity[id(schema)] = (schema, validator)
    return validator


def argument_errors(call: ToolCall, tools: dict[str, ToolDef]) -> str | None:
    """None when the call's arguments validate against the offered tool's JSON Schema."""
    from jsonschema.exceptions import best_match  # loaded by _validator on first use

    tool = tools.get(call.name or "")
    if tool is None:
        return f"tool {call.name!r} was not offered"
    if call.arguments is None:
        return call.parse_error or "no arguments"
    validator = _validator_for(tool.function.parameters)
    error = best_match(validator.iter_errors(call.arguments))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{call.name}: {where + ': ' if where else ''}{error.message}"


def _lenient_repair(call: ToolCall, schemas: dict[str, Any]) -> ToolCall:
    """A call whose arguments failed to parse, retried with callsyntax's forgiving reader."""
    if call.parse_error is None or not call.raw_arguments:
        return call
    value, _ = loads_lenient(call.raw_arguments)
    if isinstance(value, dict) and call.name:
        return ToolCall(name=call.name, arguments=value, raw_arguments=call.raw_arguments, id=call.id)
    # A whole call whose JSON was broken (e.g. a [TOOL_REQUEST] body with a trailing comma)...
    whole = calls_from_value(value, call.raw_arguments) if value is not None else None
    if whole is None:  # ...or any family's call syntax in what the format could not read.
        whole = scan(call.raw_arguments, schemas).recovered
    good = [c for c in whole if c.parse_error is None]
    return good[0] if len(good) == 1 else call


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


def tool_schemas(offered: list[ToolDef]) -> tuple[dict[str, ToolDef], dict[str, str], dict[str, Any]]:
    """(tools by name, aliases, the scanner's name -> JSON Schema map, aliases included).

    A tool renamed to fit OpenAI's name pattern (`math.factorial` -> `math_factorial`) keeps its
    original name in `x-original-name`; a call by that name is a call to the tool."""
    tools = {t.function.name: t for t in offered}
    aliases = {
        original: name
        for name, t in tools.items()
        if isinstance(original := (t.model_extra or {}).get("x-original-name"), str) and original not in tools
    }
    schemas: dict[str, Any] = {name: t.function.parameters for name, t in tools.items()}
    schemas.update({original: tools[name].function.parameters for original, name in aliases.items()})
    return tools, aliases, schemas


def lost_call_detail(scanned: Scan, family: str | None) -> str:
    """The detail of `server_parse_lost`: what the model wrote correctly, and that the server dropped it."""
    return (f"{names_text(scanned.recovered)} written as a clean {family} call in the content; "
            "the server's parser did not return it as tool_calls")


def score_reply(case: Case, offered: list[ToolDef], reply: ParsedReply, own_family: str | None = None) -> Verdict:
    """Verdicts for one reply as a format parsed it. `own_family`: the call-syntax family the model
    writes natively (callsyntax.own_family); it matters only where the server parses calls (native)."""
    return score(case, offered, reply.calls, reply.text, own_family=own_family if reply.server_parses else None,
                 syntax=reply.syntax)


def score(case: Case, offered: list[ToolDef], calls: list[ToolCall], text: str, *,
          own_family: str | None = None, syntax: str | None = None) -> Verdict:
    """Verdicts for one reply: `calls` as the format parsed them, `text` the prose left over.

    `own_family`: when the server was to parse the calls (native), the model's own call syntax; a reply
    with no parsed calls whose text holds only clean calls in it is `server_parse_lost`.
    `syntax`: the family the format itself read the calls in (`lmstudio` for `default`...), if any."""
    tools, aliases, schemas = tool_schemas(offered)
    names = set(tools)

    def by_tool_name(found: list[ToolCall]) -> list[ToolCall]:
        return [c.model_copy(update={"name": aliases[c.name]}) if c.name in aliases else c for c in found]

    calls = by_tool_name(calls)
    expect = case.expect
    extra_allowed = expect.extra_args == "allow"

    s = scan(text, schemas)
    broken = [c for c in calls if c.parse_error]
    malformed = bool(broken or s.attempted)
    parsed = [c for c in calls if not c.parse_error]
    # The server returned nothing, and the text holds only clean calls in the model's own syntax.
    lost = own_family is not None and not calls and s.clean_in(own_family)
    lost_detail = lost_call_detail(s, own_family) if lost else ""

    def what_broke() -> str:
        """The detail of a malformed reply: the first call's parse error, else the syntax seen."""
        return broken[0].parse_error if broken else s.describe()

    hallucinated = any(c.name not in names for c in parsed)
    arg_problems = [argument_errors(c, tools) for c in parsed]
    args_valid = None if not parsed else all(p is None for p in arg_problems)

    # Strict verdict.
    failure: FailureKind | None = None
    detail: str | None = None
    strict_match = None
    if not expect.calls:
        correct = not calls and not malformed
        invented = invented_arguments(case, tools, parsed) if parsed and not malformed else []
        if invented:
            # The request lacked something the tool needs, and the model made it up instead of asking.
            failure, detail = "invented_argument", f"{', '.join(invented)}: not given anywhere in the conversation"
        elif malformed and not parsed and not lost:
            # What broke, as on a case that wants a call ("called ?" named no tool and no fault).
            failure, detail = "malformed", what_broke()
        elif not correct:
            # A lost call is still a call: on a case that wants none, that is the model's mistake.
            failure = "called_when_should_not"
            detail = f"called {names_text(calls)}" if calls else (lost_detail if lost else s.describe())
    elif lost:
        correct, failure, detail = False, "server_parse_lost", lost_detail
    elif malformed:
        correct, failure, detail = False, "malformed", what_broke()
    elif not parsed:
        # A call written only in the reasoning is no call; the detail says where it was.
        correct, failure, detail = False, "did_not_call", s.describe()
    else:
        match = strict_match = match_calls(expect.calls, parsed, expect.order, extra_allowed)
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
        intended = [c for c in (_lenient_repair(c, schemas) for c in calls) if not c.parse_error]
        intended = by_tool_name(intended + s.recovered)
    else:
        intended = parsed
    if not expect.calls:
        intent_correct = correct  # any attempt, recoverable or not, is still not an abstention
    else:
        # Nothing was recovered: the strict verdict's matching and validation stand.
        same = intended is parsed
        match = strict_match if same and strict_match else match_calls(expect.calls, intended, expect.order, extra_allowed)
        problems = arg_problems if same else [argument_errors(c, tools) for c in intended]
        intent_correct = match.ok and all(p is None for p in problems)
        if lost and not intent_correct:  # the server lost it, but the call itself was wrong too
            why = match.detail or next((p for p in problems if p), None)
            detail = f"{detail}; the call itself is wrong too: {why}" if why else detail

    verdict = Verdict(
        malformed=malformed,
        hallucinated_tool=hallucinated,
        args_valid=args_valid,
        call_correct=correct,
        intent_correct=intent_correct or correct,
        failure_kind=failure,
        failure_detail=detail,
        syntax=syntax or s.syntax,
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


def round_malformed(reply: ParsedReply, scanned: Scan) -> bool:
    """An agent round held a call attempt that could not be parsed (in a call or left in its text)."""
    return any(c.parse_error for c in reply.calls) or scanned.attempted


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
    syntax: str | None = None  # the family of the first call syntax written in any round
    lost: str | None = None  # the last round's call the server's parser lost, in words (None: none)
    note: str | None = None  # the last round's call syntax in words (e.g. only in the reasoning)


def trajectory(replies: Sequence[ParsedReply], schemas: dict[str, Any], own_family: str | None = None) -> Trajectory:
    """A reply without calls ends the case (an answer, or an attempt the format could not
    parse); the case ran out of rounds when every reply asked for tools. Each round's text is
    scanned once."""
    scans = [scan(r.text, schemas) for r in replies]
    executed: list[ToolCall] = []
    for reply in replies:
        if not reply.calls:
            break
        executed += [c for c in reply.calls if not c.parse_error]
    last = replies[-1] if replies else ParsedReply()
    ended_by: Literal["answer", "round_limit"] = "answer" if replies and not last.calls else "round_limit"
    lost = None
    if ended_by == "answer" and own_family and last.server_parses and scans[-1].clean_in(own_family):
        lost = f"round {len(replies)}: {lost_call_detail(scans[-1], own_family)}"
    return Trajectory(
        executed=executed,
        final_text=last.text if ended_by == "answer" else "",
        ended_by=ended_by,
        malformed_rounds=sum(round_malformed(r, sc) for r, sc in zip(replies, scans)),
        syntax=next((r.syntax or sc.syntax for r, sc in zip(replies, scans) if r.syntax or sc.syntax), None),
        lost=lost,
        note=scans[-1].describe() if scans else None,
    )


def score_agent(case: Case, offered: list[ToolDef], replies: Sequence[ParsedReply],
                own_family: str | None = None) -> tuple[Verdict, Trajectory]:
    """Verdicts for an agent case from the parsed reply of each round: the executed calls (each
    distinct call once) against the expected ones, then the rounds and the final answer.
    `own_family` as for `score_reply`: a last round whose call the server lost is `server_parse_lost`."""
    path = trajectory(replies, tool_schemas(offered)[2], own_family)
    verdict = score(case, offered, dedupe(path.executed), "")
    verdict.syntax = path.syntax
    if path.ended_by == "answer":
        verdict.final_answer_ok = final_answer_holds(case.expect.final_answer, path.final_text)
    else:
        verdict.final_answer_ok = False
    if verdict.failure_kind == "did_not_call" and path.note:
        verdict.failure_detail = path.note  # e.g. a call written only in the reasoning
    if path.malformed_rounds:
        verdict.malformed = True
        verdict.call_correct = False
        if verdict.failure_kind in (None, "did_not_call", "wrong_count"):
            if path.lost and path.malformed_rounds == 1:
                verdict.failure_kind, verdict.failure_detail = "server_parse_lost", path.lost
            else:
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
