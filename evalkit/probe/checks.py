"""THE table of probe checks: does a server keep its side of the tool-calling contract?

Each check is one `Check` entry: a name, the requests it needs, and a pure function from the
evidence (those requests' exchanges, and the server's facts) to (status, detail). Requests that
several checks need are sent once. Adding a check is adding one entry to CHECKS.

Prompts are phrased so that a model that follows instructions passes; where a failure can be
placed, the detail ends with whose it is: "(server)" or "(model)".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from evalkit.callsyntax import scan
from evalkit.schema import Exchange
from evalkit.schema import ProbeStatus as Status

SEED = 7
MAX_TOKENS = 64  # two short calls fit (about 20 tokens each); a chatty reply is cut early: no prose is judged


def _tool(name: str, description: str) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "city name"}},
                       "required": ["city"]}}}


TOOLS = [_tool("get_weather", "Current weather in a city."), _tool("get_time", "Current local time in a city.")]
TOOL_SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}  # what the call-syntax scanner reads
# Call syntax with no markers of its own: a model writing it did not use its template's syntax.
UNMARKED = ("json", "pythonic")
SYSTEM = {"role": "system", "content": "You are a helpful assistant. Use the provided tools when they help."}
WEATHER_RESULT = '{"city": "Paris", "temperature_c": 21, "sky": "sunny"}'

Exchanges = dict[str, Exchange]
Verdict = tuple[Status, str]


@dataclass(frozen=True)
class ProbeRequest:
    """One chat completion the probe sends; `build` may read earlier exchanges (by name)."""

    name: str
    build: Callable[[Exchanges], dict[str, Any]]
    stream: bool = False


def _ask(user: str, **options: Any) -> Callable[[Exchanges], dict[str, Any]]:
    def build(_: Exchanges) -> dict[str, Any]:
        return {"messages": [SYSTEM, {"role": "user", "content": user}], "tools": TOOLS, **options}

    return build


def _tool_turn(done: Exchanges) -> dict[str, Any]:
    """The follow-up after a call: the server's own call (id and all) from the non-streamed
    weather request when one came back, else a stand-in; then a `tool` message answering it by
    its tool_call_id."""
    earlier = done.get(PARITY_PLAIN.name)
    calls = [c for c in (earlier.calls if earlier else []) if c.get("id") and c.get("name") == "get_weather"
             and isinstance(c.get("arguments"), str)]
    call = calls[0] if calls else {"id": "call_probe_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    return {"messages": [
        SYSTEM,
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": WEATHER_RESULT},
    ], "tools": TOOLS}


NONE = ProbeRequest("tool_choice_none", _ask("What is the weather in Paris?", tool_choice="none"))
REQUIRED = ProbeRequest("tool_choice_required", _ask("Hello! How are you today?", tool_choice="required"), stream=True)
NAMED_TOOL = "get_time"
NAMED = ProbeRequest("tool_choice_named", _ask("I need information about Paris.",
                                               tool_choice={"type": "function", "function": {"name": NAMED_TOOL}}))
PARALLEL = ProbeRequest("parallel", _ask("What is the weather in Paris and in Tokyo? Call get_weather once for each city.",
                                         parallel_tool_calls=True), stream=True)
PARITY_STREAM = ProbeRequest("parity_stream", _ask("Use the get_weather tool to get the weather in Paris."), stream=True)
PARITY_PLAIN = ProbeRequest("parity_plain", _ask("Use the get_weather tool to get the weather in Paris."))
TOOL_TURN = ProbeRequest("tool_result_turn", _tool_turn)
CALLING = (REQUIRED, NAMED, PARALLEL, PARITY_STREAM, PARITY_PLAIN)  # the requests that should bring calls

# A schema that admits one fixed object, and a prompt that asks for something else: only a server
# that constrains decoding returns the object (a model left free says hello).
FIXED_OBJECT = {"probe": "evalkit", "n": 7}
FIXED_SCHEMA = {"type": "object", "properties": {k: {"const": v} for k, v in FIXED_OBJECT.items()},
                "required": list(FIXED_OBJECT), "additionalProperties": False}
JSON_SCHEMA = ProbeRequest("json_schema", lambda _: {
    "messages": [SYSTEM, {"role": "user", "content": "Say hello in one short sentence."}],
    "response_format": {"type": "json_schema", "json_schema": {"name": "probe", "schema": FIXED_SCHEMA}}},
    # Streamed, as runs are: a slow engine on a loaded CPU still sends a token within the read timeout.
    stream=True)


# ---------------------------------------------------------------- helpers for the judges

def _names(ex: Exchange) -> list[str]:
    return [str(c.get("name")) for c in ex.calls]


def _quote(text: str | None, limit: int = 80) -> str:
    text = " ".join((text or "").split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _rejected(ex: Exchange, what: str) -> Verdict | None:
    """A request the server refused: 4xx says it does not support the option (honest), anything
    else is a failure."""
    if ex.ok:
        return None  # a stream evalkit could not join is arguments_json's finding
    if ex.http_status is not None and 400 <= ex.http_status < 500:
        return "unsupported", f"the server rejects {what}: {ex.error}"
    return "fail", f"{what}: {ex.error} (server)"


def _wrote_call(content: str | None) -> bool:
    """The content holds a call attempt in any family's syntax (evalkit/callsyntax)."""
    return scan(content, TOOL_SCHEMAS).attempted


def _lost_call(ex: Exchange) -> str:
    """Why a call the model meant is not in tool_calls, from what the content holds."""
    attempts = scan(ex.content, TOOL_SCHEMAS).where("answer")
    if not attempts:
        if ex.read_error and not ex.content:
            return f"the reply could not be read: {ex.read_error} (server)"
        return f"the model answered in text: {_quote(ex.content)}" if ex.content else "the reply is empty"
    marked = [a for a in attempts if a.family not in UNMARKED]
    if marked and marked[0].clean:
        return (f"the model wrote a call in {marked[0].family} call syntax in content, which the server did not parse "
                f"(server)")
    if marked:
        return f"the model wrote a broken call in {marked[0].family} call syntax ({marked[0].broken}) (model)"
    what = "plain JSON" if attempts[0].family == "json" else "a bare Python call list"
    return (f"the model wrote the call as {what} in content instead of its template's call syntax, "
            f"so the server did not parse it: {_quote(ex.content)} (model)")


def _args(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _starts(ex: Exchange) -> list[dict[str, Any]]:
    """Stream fragments that open a call (they carry its id or name)."""
    return [f for f in ex.fragments if isinstance(f, dict) and (f.get("id") is not None or (f.get("function") or {}).get("name"))]


def _ids(ex: Exchange) -> list[Any]:
    """Every call's id as the wire carried it: a stream's opening fragments, else the message."""
    return [f.get("id") for f in _starts(ex)] if ex.stream else [c.get("id") for c in ex.calls]


def _with_calls(ex: Exchanges) -> list[Exchange]:
    return [e for e in ex.values() if e.ok and (e.calls or _starts(e))]


# ---------------------------------------------------------------- the judges (pure)

def judge_none(ex: Exchanges, facts: dict) -> Verdict:
    reply = ex[NONE.name]
    if (problem := _rejected(reply, 'tool_choice "none"')) is not None:
        return problem
    if reply.calls:
        return "fail", f'tool_choice "none" ignored: the reply called {", ".join(_names(reply))} (server)'
    note = ""
    if _wrote_call(reply.content):
        note = "; the model still wrote a call as text, which the server rightly left unparsed"
    return "pass", "no call came back" + note


def judge_required(ex: Exchanges, facts: dict) -> Verdict:
    reply = ex[REQUIRED.name]
    if (problem := _rejected(reply, 'tool_choice "required"')) is not None:
        return problem
    if reply.calls:
        return "pass", f"a greeting still yielded a call to {', '.join(_names(reply))}"
    return "fail", ('tool_choice "required" accepted but not enforced (no constrained decoding): no call came back '
                    f"(server); {_lost_call(reply)}")


def judge_named(ex: Exchanges, facts: dict) -> Verdict:
    reply = ex[NAMED.name]
    if (problem := _rejected(reply, f"a named tool_choice ({NAMED_TOOL})")) is not None:
        return problem
    names = _names(reply)
    if names and all(n == NAMED_TOOL for n in names):
        return "pass", f"the reply called {NAMED_TOOL}, as named"
    if names:
        return "fail", (f"named tool_choice {NAMED_TOOL} accepted but not enforced: the reply called "
                        f"{', '.join(names)} (server)")
    return "fail", f"named tool_choice {NAMED_TOOL} accepted but not enforced: no call came back (server); {_lost_call(reply)}"


def judge_parallel(ex: Exchanges, facts: dict) -> Verdict:
    reply = ex[PARALLEL.name]
    if (problem := _rejected(reply, "parallel_tool_calls")) is not None:
        return problem
    starts = _starts(reply)
    indexes = [f.get("index") for f in starts]
    ids = [f.get("id") for f in starts]
    if len(starts) >= 2:
        if len(set(indexes)) < len(starts):
            # Counted from the raw fragments: evalkit's own reader tells such calls apart by id.
            return "fail", (f"{len(starts)} calls streamed with indexes {indexes}: a client that joins fragments by "
                            f"index alone merges them into {len(set(indexes))} call(s) (server)")
        if len({i for i in ids if i}) < len(starts):
            return "fail", f"{len(starts)} calls streamed, but their ids are not distinct: {ids} (server)"
        return "pass", f"{len(starts)} calls with indexes {indexes} and distinct ids"
    caps = facts.get("template_caps") or {}
    if caps.get("supports_parallel_tool_calls") is False:
        return "unsupported", "the server says its chat template cannot make parallel calls (chat_template_caps)"
    if len(starts) == 1:
        extra = _wrote_call(reply.content)
        if extra:
            return "fail", f"one call came back and another stayed in content: {_lost_call(reply)}"
        return "fail", f"one call came back ({', '.join(_names(reply))}): the model made one call for two cities (model)"
    return "fail", f"no call came back; {_lost_call(reply)}"


def judge_parity(ex: Exchanges, facts: dict) -> Verdict:
    streamed, whole = ex[PARITY_STREAM.name], ex[PARITY_PLAIN.name]
    if (problem := _rejected(streamed, "streaming")) is not None:
        return problem
    if (problem := _rejected(whole, "a non-streamed request")) is not None:
        return problem

    def view(e: Exchange) -> tuple[list[tuple[str, Any]], str]:
        return [(str(c.get("name")), _args(c.get("arguments"))) for c in e.calls], (e.content or "").strip()

    (s_calls, s_text), (w_calls, w_text) = view(streamed), view(whole)
    if s_calls == w_calls and s_text == w_text:
        what = f"{len(s_calls)} call(s)" if s_calls else "no calls"
        return "pass", f"streamed and non-streamed replies agree: {what}, same content (temperature 0, seed {SEED})"
    if [n for n, _ in s_calls] == [n for n, _ in w_calls] and any(a in ("", None) for _, a in s_calls):
        return "fail", f"streamed calls lost their arguments: {s_calls} vs non-streamed {w_calls} (server)"
    if s_calls != w_calls:
        return "fail", f"streamed calls {s_calls} differ from non-streamed {w_calls} (temperature 0, seed {SEED}) (server)"
    return "fail", f"streamed content {_quote(s_text)} differs from non-streamed {_quote(w_text)} (server)"


def _each_reply_with_calls(ex: Exchanges, problem: Callable[[Exchange], str | None],
                           passed: Callable[[list[Exchange]], str]) -> Verdict:
    """The per-call checks: judge every reply that carried calls; the first problem fails."""
    replies = _with_calls(ex)
    if not replies:
        return "unsupported", "not tested: no reply carried a parsed call"
    for reply in replies:
        if (detail := problem(reply)) is not None:
            return "fail", f"{reply.name}: {detail} (server)"
    return "pass", passed(replies)


def _replies(replies: list[Exchange]) -> str:
    return f"{len(replies)} repl{'y' if len(replies) == 1 else 'ies'}"


def _id_problem(reply: Exchange) -> str | None:
    ids = _ids(reply)
    if any(not i for i in ids):
        return f"a call came without an id ({ids}): the next turn cannot answer it"
    if len(set(ids)) < len(ids):
        return f"call ids repeat within the reply: {ids}"
    return None


def judge_ids(ex: Exchanges, facts: dict) -> Verdict:
    return _each_reply_with_calls(ex, _id_problem, lambda replies: (
        f"{sum(len(_ids(r)) for r in replies)} call(s) in {_replies(replies)}, each with a unique non-empty id"))


def _finish_problem(reply: Exchange) -> str | None:
    if reply.finish_reason == "tool_calls":
        return None
    return f"calls came back with finish_reason {reply.finish_reason!r}, not 'tool_calls'"


def judge_finish(ex: Exchanges, facts: dict) -> Verdict:
    return _each_reply_with_calls(ex, _finish_problem, lambda replies: f"'tool_calls' in all {_replies(replies)} with calls")


def _arguments_problem(reply: Exchange) -> str | None:
    pieces = [(f.get("function") or {}).get("arguments") for f in reply.fragments] if reply.stream else []
    odd = [p for p in pieces if p is not None and not isinstance(p, str)]
    if odd:
        return f"a streamed arguments fragment is a {type(odd[0]).__name__}, not a string"
    if reply.read_error:
        return f"the streamed calls cannot be joined: {reply.read_error}"
    for call in reply.calls:
        value = call.get("arguments")
        if not isinstance(value, str):
            return f"{call.get('name')} arguments arrived as a {type(value).__name__}, not a JSON string"
        if not isinstance(_args(value), dict):
            return f"{call.get('name')} arguments are not a JSON object: {_quote(value)}"
    return None


def judge_arguments(ex: Exchanges, facts: dict) -> Verdict:
    return _each_reply_with_calls(ex, _arguments_problem, lambda replies: (
        f"all {sum(len(r.calls) for r in replies)} call(s) carry arguments as a JSON object string"))


def judge_tool_turn(ex: Exchanges, facts: dict) -> Verdict:
    reply = ex[TOOL_TURN.name]
    request = reply.request or {}
    call_id = (request.get("messages") or [{}])[-1].get("tool_call_id")
    if not reply.ok:
        return "fail", f"the server rejected a tool message (tool_call_id {call_id!r}): {reply.error} (server)"
    if reply.calls:
        return "fail", f"accepted, but the model called {', '.join(_names(reply))} again instead of answering (model)"
    if _wrote_call(reply.content):
        return "fail", f"accepted, but the model wrote another call as text instead of answering: {_quote(reply.content)} (model)"
    if not (reply.content or "").strip():
        return "fail", "accepted, but the answer is empty"
    used = "21" in reply.content
    return "pass", (f"accepted (tool_call_id {call_id!r}) and answered{'' if used else ' (without the tool result)'}: "
                    f"{_quote(reply.content)}")


def judge_json_schema(ex: Exchanges, facts: dict) -> Verdict:
    reply = ex[JSON_SCHEMA.name]
    if (problem := _rejected(reply, "response_format json_schema")) is not None:
        return problem
    try:
        value = json.loads(reply.content or "")
    except ValueError:
        value = None
    if value == FIXED_OBJECT:
        return "pass", f"asked for a greeting, the reply is the one object the schema admits: {_quote(reply.content)}"
    return "fail", (f"response_format json_schema accepted but not enforced: the schema admits only "
                    f"{json.dumps(FIXED_OBJECT)}, the reply is {_quote(reply.content)} (server)")


def judge_template(ex: Exchanges, facts: dict) -> Verdict:
    kind = facts.get("kind", "unknown")
    caps = facts.get("template_caps") or {}
    told = {k: facts.get(k) for k in ("template_sha256", "tool_call_format") if facts.get(k)}
    if caps.get("supports_tool_calls") is False or caps.get("supports_tools") is False:
        return "fail", (f"{kind} says the chat template cannot take tools: tool requests are ignored or answered "
                        "as plain text (the model's template)")
    if not told:
        why = {"lmstudio": "LM Studio's /api/v0/models tells quantization and context, not the template",
               "vllm": "vLLM publishes neither its chat template nor its tool parser"}.get(kind, "")
        return "unsupported", why or f"the server ({kind}) tells nothing of its chat template; asked {', '.join(facts.get('asked', []))}"
    parts = [f"{kind} template sha256 {told['template_sha256'][:12]}…" if "template_sha256" in told else kind]
    parts.append(f"tool-call format {told['tool_call_format']}" if "tool_call_format" in told else "tool-call format not told")
    if caps:
        parts.append("caps: " + ", ".join(sorted(k.removeprefix("supports_") for k, v in caps.items() if v is True)))
    return "pass", "; ".join(parts)


# ---------------------------------------------------------------- the table

@dataclass(frozen=True)
class Check:
    name: str
    requests: tuple[ProbeRequest, ...]
    judge: Callable[[Exchanges, dict], Verdict]
    meaning: str
    facts_evidence: bool = False  # the server's self-description is the evidence


CHECKS: list[Check] = [
    Check("tool_choice_none", (NONE,), judge_none, 'with tools offered and tool_choice "none", no call comes back'),
    Check("tool_choice_required", (REQUIRED,), judge_required, 'with "required", even a greeting yields a call'),
    Check("tool_choice_named", (NAMED,), judge_named, "naming a function yields a call to it"),
    Check("parallel_calls", (PARALLEL,), judge_parallel,
          "parallel_tool_calls and two cities: two calls with distinct ids and streamed indexes"),
    Check("stream_parity", (PARITY_STREAM, PARITY_PLAIN), judge_parity,
          "the same request streamed and not (temperature 0, a seed) gives the same calls and content"),
    Check("call_ids", CALLING, judge_ids, "every call has a non-empty id, unique within its reply"),
    Check("finish_reason", CALLING, judge_finish, "finish_reason is tool_calls when calls are returned"),
    Check("tool_result_turn", (PARITY_PLAIN, TOOL_TURN), judge_tool_turn,
          "a follow-up carrying a tool message with its tool_call_id is accepted and answered"),
    Check("arguments_json", CALLING, judge_arguments, "arguments arrive as a JSON object string"),
    Check("json_schema", (JSON_SCHEMA,), judge_json_schema,
          "response_format json_schema admitting one fixed object yields that object (constrained decoding)"),
    Check("template", (), judge_template, "what the server tells of its chat template and tool-call format",
          facts_evidence=True),
]


def planned_requests() -> list[ProbeRequest]:
    """Every request the checks need, each once, in first-needed order (earlier ones feed later)."""
    seen: dict[str, ProbeRequest] = {}
    for check in CHECKS:
        for request in check.requests:
            seen.setdefault(request.name, request)
    return list(seen.values())
