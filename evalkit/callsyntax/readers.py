"""How each family's block body is read. A reader gets the text just after its opening marker and
returns a `Read` (the block's end, its calls, why it is broken) or None when the text after the
marker is not this family's call (prose that happens to contain the marker).

Readers only move forward and only search with the shared `Finder`, so a whole scan stays linear;
they never raise for the model's text (the scanner still guards them, see scanner.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from ..formats.pythonic import parse_pythonic
from ..schema import ToolCall
from .model import Tools
from .text import Finder, json_extent, loads, loads_lenient, typed_value

_WS = re.compile(r"\s*")
_NAME = re.compile(r"[A-Za-z_][\w.\-]*")
_ATTR = re.compile(r'(\w+)="([^"]*)"')
# The start of a JSON call object (or a list of them): `{"name":`, `[{"function":`, `{"tool_name":`...
CALL_HEAD = re.compile(r'\s*(?:\[\s*)?\{\s*"(?:name|function|tool_name)"\s*:')
ARGS_KEY = re.compile(r'"(?:arguments|parameters|args)"\s*:')
PYTHONIC_HEAD = re.compile(r"\s*\[\s*[A-Za-z_][\w.]*\(")
ARG_KEYS = ("arguments", "parameters", "args")


@dataclass(frozen=True)
class Ctx:
    text: str
    end: int  # readers stay before this (the end of the answer or reasoning segment)
    tools: Tools
    find: Finder
    start: int = 0  # where the segment begins (a bare call at the very start is surely a call)

    def schema(self, tool: str | None, key: str) -> Any:
        params = (self.tools or {}).get(tool or "") if self.tools else None
        props = params.get("properties") if isinstance(params, dict) else None
        return props.get(key) if isinstance(props, dict) else None

    def skip_ws(self, pos: int) -> int:
        return _WS.match(self.text, pos, self.end).end()

    def at(self, pos: int, token: str) -> bool:
        return self.text.startswith(token, pos) and pos + len(token) <= self.end


@dataclass(frozen=True)
class Read:
    end: int
    calls: list[ToolCall]
    broken: str | None = None
    start: int | None = None  # when the block starts before its marker (Harmony's header)
    family: str | None = None  # a shared reader naming the family it found (fences); "" = prose, skip it


Reader = Callable[[Ctx, int, str], "Read | None"]


# ---------------------------------------------------------------------------------------- calls
def make_call(name: Any, args: Any, raw: str, call_id: Any = None, raw_args: str | None = None) -> ToolCall:
    """A ToolCall from a name and decoded arguments; what is wrong goes in parse_error. `raw_args`:
    the arguments exactly as written, when they were a JSON object of their own."""
    cid = call_id if isinstance(call_id, str) else None
    if not isinstance(name, str) or not name.strip():
        return ToolCall(raw_arguments=raw, parse_error="the call has no function name", id=cid)
    name = name.strip()
    if isinstance(args, str):
        if not args.strip():
            args = {}
        else:
            decoded, reason = loads_lenient(args)
            if decoded is None:
                return ToolCall(name=name, raw_arguments=args, parse_error=f"arguments: {reason}", id=cid)
            args = decoded
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return ToolCall(name=name, raw_arguments=raw,
                        parse_error=f"arguments are a JSON {type(args).__name__}, not an object", id=cid)
    return ToolCall(name=name, arguments=args, id=cid,
                    raw_arguments=raw_args if raw_args is not None else json.dumps(args, ensure_ascii=False))


def call_from_object(obj: Any, raw: str) -> ToolCall | None:
    """`{"name", "arguments"|"parameters"}`, OpenAI's `{"function": {...}}` or Command R's
    `{"tool_name", "parameters"}`; None when the object is not call-shaped."""
    if not isinstance(obj, dict):
        return None
    inner = obj["function"] if isinstance(obj.get("function"), dict) else obj
    name = inner.get("name", inner.get("tool_name"))
    key = next((k for k in ARG_KEYS if k in inner), None)
    if not isinstance(name, str) or key is None:
        return None
    return make_call(name, inner[key], raw, obj.get("id", obj.get("tool_call_id")))


def calls_from_value(value: Any, raw: str) -> list[ToolCall] | None:
    """A call object or a list of them -> calls; None when it is not call-shaped at all."""
    items = value if isinstance(value, list) else [value]
    calls = [call_from_object(item, raw) for item in items]
    if not items or any(c is None for c in calls):
        return None
    return calls  # type: ignore[return-value]


def json_calls(ctx: Ctx, start: int, limit: int | None = None) -> tuple[int, list[ToolCall], str | None]:
    """Read one JSON value at `start` as calls: (end, calls, broken reason)."""
    limit = ctx.end if limit is None else limit
    if start >= limit:
        return limit, [], "cut off before the call's JSON"
    if ctx.text[start] not in "{[":
        return start, [], "no JSON object where the call should be"
    end, reason = json_extent(ctx.text, start, limit)
    raw = ctx.text[start:end]
    if reason:
        value, _ = loads_lenient(raw)
    else:
        value, reason = loads_lenient(raw)
    calls = calls_from_value(value, raw) if value is not None else None
    if calls is None:
        if value is not None and reason is None:
            reason = "the JSON is not a call (no name and arguments)"
        return end, [], reason or "unreadable call"
    if not calls:
        return end, [], "an empty list of calls"
    return end, calls, reason


def json_arguments(ctx: Ctx, name: str, start: int, limit: int | None = None,
                   call_id: str | None = None) -> tuple[int, ToolCall | None, str | None]:
    """Read a JSON arguments object at `start` for a call whose name came before it."""
    limit = ctx.end if limit is None else limit
    start = ctx.skip_ws(start)
    if start >= limit:
        return limit, None, "cut off before the arguments"
    if ctx.text[start] != "{":
        return start, None, "no JSON object where the arguments should be"
    end, reason = json_extent(ctx.text, start, limit)
    raw = ctx.text[start:end]
    value, why = loads_lenient(raw)
    if value is None:
        return end, None, reason or why
    return end, make_call(name, value, raw, call_id, raw_args=raw if isinstance(value, dict) else None), reason or why


def closed(ctx: Ctx, pos: int, token: str, required: bool = True) -> tuple[int, str | None]:
    """Expect `token` at `pos` (after whitespace). Missing: broken when required, else fine at the
    end of the text (a stop token the server swallowed)."""
    at = ctx.skip_ws(pos)
    if ctx.at(at, token):
        return at + len(token), None
    if not required and at >= ctx.end:
        return pos, None
    return pos, f"no {token} after the call"


# ------------------------------------------------------------------------ JSON-bodied envelopes
def json_block(end_token: str | None, required: bool = True) -> Reader:
    """`MARKER {json call or list} END`: Hermes, LM Studio, Command R7B, Granite, Llama's python_tag."""

    def read(ctx: Ctx, at: int, marker: str) -> Read | None:
        body = ctx.skip_ws(at + len(marker))
        if body >= ctx.end:
            return Read(ctx.end, [], f"cut off right after {marker}")
        if ctx.text[body] not in "{[":
            return None
        end, calls, reason = json_calls(ctx, body)
        if end_token:
            if reason and reason.startswith("cut off"):
                return Read(ctx.end, calls, reason)
            close = ctx.find.find(end_token, end, ctx.end)
            if close >= 0 and not ctx.text[end:close].strip():
                return Read(close + len(end_token), calls, reason)
            end, missing = closed(ctx, end, end_token, required)
            return Read(end, calls, reason or missing)
        return Read(end, calls, reason)

    return read


def unreadable(end_token: str) -> Reader:
    """The envelope is there and closed, but nobody could read its body: still an attempt."""

    def read(ctx: Ctx, at: int, marker: str) -> Read | None:
        body = ctx.skip_ws(at + len(marker))
        if body >= ctx.end:
            return Read(ctx.end, [], f"cut off right after {marker}")
        close = ctx.find.find(end_token, body, ctx.end)
        if close < 0:
            return None
        return Read(close + len(end_token), [], f"unreadable {marker} block")

    return read


def mistral(ctx: Ctx, at: int, marker: str) -> Read | None:
    """v3: `[TOOL_CALLS][{json}, ...]`; v11+: `[TOOL_CALLS]NAME[CALL_ID]ID[ARGS]{json}`, repeated;
    with special tokens skipped by the detokenizer the v11 form is `[TOOL_CALLS]NAME{json}`."""
    pos = ctx.skip_ws(at + len(marker))
    if pos >= ctx.end:
        return Read(ctx.end, [], "cut off right after [TOOL_CALLS]")
    if ctx.text[pos] in "[{":
        end, calls, reason = json_calls(ctx, pos)
        return Read(end, calls, reason)
    calls: list[ToolCall] = []
    while True:
        name = _NAME.match(ctx.text, pos, ctx.end)
        if not name:
            return Read(pos, calls, "unreadable text after [TOOL_CALLS]")
        pos, call_id = name.end(), None
        if ctx.at(pos, "[CALL_ID]"):
            stop, _ = ctx.find.first(("[ARGS]", "{"), pos, ctx.end)
            if stop < 0:
                return Read(ctx.end, calls, "cut off after [CALL_ID]")
            call_id, pos = ctx.text[pos + 9:stop].strip(), stop
        if ctx.at(pos, "[ARGS]"):
            pos += 6
        elif pos >= ctx.end:
            return Read(ctx.end, calls, "cut off after the function name")
        elif ctx.text[pos] != "{":
            return Read(pos, calls, "no arguments after the function name")
        end, call, reason = json_arguments(ctx, name.group(), pos, call_id=call_id)
        if call is None:
            return Read(end, calls, reason)
        calls.append(call)
        if reason:
            return Read(end, calls, reason)
        pos = ctx.skip_ws(end)
        if not ctx.at(pos, "[TOOL_CALLS]"):
            return Read(end, calls, None)
        pos = ctx.skip_ws(pos + len("[TOOL_CALLS]"))


def harmony(ctx: Ctx, at: int, marker: str) -> Read | None:
    """gpt-oss: `<|start|>assistant to=functions.NAME<|channel|>commentary json<|message|>{...}<|call|>`,
    the recipient in the role header or after the channel (`<|channel|>commentary to=functions.NAME`)."""
    text = ctx.text
    name = _NAME.match(text, at + len(marker), ctx.end)
    if not name:
        return Read(ctx.end, [], "cut off after to=functions.") if at + len(marker) >= ctx.end else None
    header_end = ctx.find.find("<|message|>", name.end(), min(ctx.end, name.end() + 200))
    if header_end < 0:
        if ctx.end - name.end() < 200 and "<|" not in text[name.end():ctx.end].replace("<|channel|>", "").replace(
                "<|constrain|>", ""):
            return Read(ctx.end, [], "cut off in the message header")
        return None
    header = text[name.end():header_end]
    if not re.fullmatch(r"(?:\s*<\|channel\|>\s*\w+|\s*<\|constrain\|>\s*[\w/+.-]+|\s*[\w/+.-]+)*\s*", header):
        return None
    begin = max(text.rfind("<|start|>", max(0, at - 60), at), -1)
    channel = text.rfind("<|channel|>", max(0, at - 60), at)
    starts = [s for s in (begin, channel) if s >= 0]
    start = min(starts) if starts else at
    end, call, reason = json_arguments(ctx, name.group(), header_end + len("<|message|>"))
    if call is None:
        return Read(end, [], reason, start=start)
    stop = ctx.skip_ws(end)
    for token in ("<|call|>", "<|end|>"):
        if ctx.at(stop, token):
            return Read(stop + len(token), [call], reason, start=start)
    return Read(end, [call], reason, start=start)


def _stopped(ctx: Ctx, pos: int, calls: list[ToolCall], section: bool, close: str, where: str) -> Read:
    """A section of calls (Kimi's) holds no next call at `pos`: the block ends there, and why."""
    if pos >= ctx.end:
        return Read(ctx.end, calls, f"cut off before {close}" if section else None if calls else "cut off")
    if not section and calls:
        return Read(pos, calls)
    return Read(pos, calls, f"unexpected text in the {where}")


def kimi(ctx: Ctx, at: int, marker: str) -> Read | None:
    """Kimi K2: `<|tool_calls_section_begin|>` then `<|tool_call_begin|>functions.NAME:IDX
    <|tool_call_argument_begin|>{json}<|tool_call_end|>`... `<|tool_calls_section_end|>`."""
    section = marker == "<|tool_calls_section_begin|>"
    pos = at + len(marker) if section else at
    calls: list[ToolCall] = []
    while True:
        pos = ctx.skip_ws(pos)
        if section and ctx.at(pos, "<|tool_calls_section_end|>"):
            return Read(pos + len("<|tool_calls_section_end|>"), calls,
                        None if calls else "an empty tool-call section")
        if not ctx.at(pos, "<|tool_call_begin|>"):
            return _stopped(ctx, pos, calls, section, "<|tool_calls_section_end|>", "tool-call section")
        pos += len("<|tool_call_begin|>")
        arg = ctx.find.find("<|tool_call_argument_begin|>", pos, min(ctx.end, pos + 300))
        if arg < 0:
            return Read(ctx.end, calls, "cut off in the call header")
        call_id = ctx.text[pos:arg].strip()
        name = call_id.split(":")[0].removeprefix("functions.")
        end, call, reason = json_arguments(ctx, name, arg + len("<|tool_call_argument_begin|>"), call_id=call_id)
        if call is None:
            return Read(end, calls, reason)
        calls.append(call)
        end, missing = closed(ctx, end, "<|tool_call_end|>")
        if reason or missing:
            return Read(end, calls, reason or missing)
        pos = end
        if not section:
            if not ctx.at(ctx.skip_ws(pos), "<|tool_call_begin|>"):
                return Read(pos, calls)


# Kimi K3's XTML: tags built from the dedicated <|open|>, <|close|> and <|sep|> tokens.
_K3_OPEN, _K3_CLOSE, _K3_SEP = "<|open|>", "<|close|>", "<|sep|>"
_K3_TAG = re.compile(r"\s*(tools|call|argument|json)\b")


def _k3_attrs(ctx: Ctx, pos: int) -> tuple[dict[str, str], int] | None:
    """The attributes of an XTML tag header up to its <|sep|>: ({key: value}, index after <|sep|>).
    The template escapes `&` and `"` in attribute values; they are unescaped here."""
    sep = ctx.find.find(_K3_SEP, pos, min(ctx.end, pos + 300))
    if sep < 0:
        return None
    attrs = {k: v.replace("&quot;", '"').replace("&amp;", "&") for k, v in _ATTR.findall(ctx.text, pos, sep)}
    return attrs, sep + len(_K3_SEP)


def _k3_close(ctx: Ctx, pos: int, tag: str) -> int:
    """Index after `<|close|>TAG<|sep|>` at `pos` (after whitespace), or -1."""
    pos = ctx.skip_ws(pos)
    token = f"{_K3_CLOSE}{tag}{_K3_SEP}"
    return pos + len(token) if ctx.at(pos, token) else -1


def kimi_k3(ctx: Ctx, at: int, marker: str) -> Read | None:
    """Kimi K3 (XTML): `<|open|>tools<|sep|>` then, per call, `<|open|>call tool="NAME" index="1"<|sep|>`
    with `<|open|>argument key="K" type="string"<|sep|>VALUE<|close|>argument<|sep|>` (a string raw,
    any other type JSON) or one `<|open|>json type="object"<|sep|>{...}<|close|>json<|sep|>`, then
    `<|close|>call<|sep|>`, and `<|close|>tools<|sep|>`. Other `<|open|>` tags (response, think) are not calls."""
    text = ctx.text
    head = _K3_TAG.match(text, at + len(marker), ctx.end)
    if head is None or head.group(1) not in ("tools", "call"):
        return None
    section = head.group(1) == "tools"
    pos = at
    if section:
        pos = ctx.skip_ws(head.end())
        if not ctx.at(pos, _K3_SEP):
            return Read(ctx.end, [], "cut off in the tools tag") if pos >= ctx.end else None
        pos += len(_K3_SEP)
    calls: list[ToolCall] = []
    while True:
        pos = ctx.skip_ws(pos)
        if section and (end := _k3_close(ctx, pos, "tools")) >= 0:
            return Read(end, calls, None if calls else "an empty tools section")
        tag = _K3_TAG.match(text, pos + len(_K3_OPEN), ctx.end) if ctx.at(pos, _K3_OPEN) else None
        if tag is None or tag.group(1) != "call":
            return _stopped(ctx, pos, calls, section, "<|close|>tools<|sep|>", "tools section")
        header = _k3_attrs(ctx, tag.end())
        if header is None:
            return Read(ctx.end, calls, "cut off in a call tag")
        attrs, pos = header
        args: dict[str, Any] = {}
        name = attrs.get("tool", "")
        while True:
            pos = ctx.skip_ws(pos)
            if (end := _k3_close(ctx, pos, "call")) >= 0:
                calls.append(make_call(name, args, ""))
                pos = end
                break
            tag = _K3_TAG.match(text, pos + len(_K3_OPEN), ctx.end) if ctx.at(pos, _K3_OPEN) else None
            if tag is None or tag.group(1) not in ("argument", "json"):
                calls.append(make_call(name, args, ""))
                return Read(min(pos, ctx.end), calls, "cut off before <|close|>call<|sep|>" if pos >= ctx.end
                            else "no <|close|>call<|sep|> after the call")
            header = _k3_attrs(ctx, tag.end())
            if header is None:
                calls.append(make_call(name, args, ""))
                return Read(ctx.end, calls, f"cut off in an {tag.group(1)} tag")
            pattrs, body = header
            close = f"{_K3_CLOSE}{tag.group(1)}{_K3_SEP}"
            # The value ends at its close tag; the next tag opening first means that close is missing.
            stop, which = ctx.find.first((close, _K3_OPEN, f"{_K3_CLOSE}call{_K3_SEP}"), body, ctx.end)
            if which != close:
                calls.append(make_call(name, args, ""))
                return Read(stop if stop >= 0 else ctx.end, calls,
                            f"cut off before {close}" if stop < 0 else f"no {close} before {which}")
            raw = text[body:stop]
            if tag.group(1) == "json":  # the whole arguments object as one JSON value
                value, reason = loads_lenient(raw)
                if not isinstance(value, dict):
                    calls.append(make_call(name, raw, raw))
                    return Read(stop + len(close), calls, reason or "the json block is not an object")
                args.update(value)
            elif pattrs.get("type", "string") == "string":
                args[pattrs.get("key", "")] = raw
            else:
                value, reason = loads(raw.strip())
                args[pattrs.get("key", "")] = raw if reason else value
            pos = stop + len(close)
        if not section and not ctx.at(ctx.skip_ws(pos), _K3_OPEN + "call"):
            return Read(pos, calls)


_DS = {"calls_begin": "<｜tool▁calls▁begin｜>", "calls_end": "<｜tool▁calls▁end｜>", "begin": "<｜tool▁call▁begin｜>",
       "end": "<｜tool▁call▁end｜>", "sep": "<｜tool▁sep｜>"}


def deepseek(ctx: Ctx, at: int, marker: str) -> Read | None:
    """DeepSeek V3/R1: `<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\\n```json\\n{...}\\n```<｜tool▁call▁end｜>`;
    V3.1+: `<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>`; inside `<｜tool▁calls▁begin｜>...<｜tool▁calls▁end｜>`."""
    section = marker == _DS["calls_begin"]
    pos = at + len(marker) if section else at
    calls: list[ToolCall] = []
    text = ctx.text
    while True:
        pos = ctx.skip_ws(pos)
        if section and ctx.at(pos, _DS["calls_end"]):
            return Read(pos + len(_DS["calls_end"]), calls, None if calls else "an empty tool-call section")
        if not ctx.at(pos, _DS["begin"]):
            if pos >= ctx.end:
                return Read(ctx.end, calls, "cut off before <｜tool▁calls▁end｜>" if section else
                            None if calls else "cut off")
            if not section:
                return Read(pos, calls) if calls else None
            return Read(pos, calls, "unexpected text in the tool-call section")
        pos += len(_DS["begin"])
        sep = ctx.find.find(_DS["sep"], pos, min(ctx.end, pos + 300))
        if sep < 0:
            return Read(ctx.end, calls, "cut off before <｜tool▁sep｜>")
        head = text[pos:sep].strip()
        pos = sep + len(_DS["sep"])
        if head == "function":  # V3/R1: the name, then a ```json fence
            nl = ctx.find.find("\n", pos, min(ctx.end, pos + 300))
            if nl < 0:
                return Read(ctx.end, calls, "cut off after the function name")
            name, pos = text[pos:nl].strip(), ctx.skip_ws(nl)
            fenced = ctx.at(pos, "```json")
            if fenced:
                pos += len("```json")
            end, call, reason = json_arguments(ctx, name, pos)
            if call is None:
                return Read(end, calls, reason)
            if fenced and not reason:
                end, reason = closed(ctx, end, "```")
        else:
            end, call, reason = json_arguments(ctx, head, pos)
            if call is None:
                return Read(end, calls, reason)
        calls.append(call)
        end, missing = closed(ctx, end, _DS["end"])
        if reason or missing:
            return Read(end, calls, reason or missing)
        pos = end
        if not section and not ctx.at(ctx.skip_ws(pos), _DS["begin"]):
            return Read(pos, calls)


def invoke_xml(close_block: str, invoke: str, invoke_end: str, param: str, param_end: str) -> Reader:
    """`<invoke name="NAME"><parameter name="KEY" ...>VALUE</parameter></invoke>` blocks: MiniMax M2
    and DeepSeek's DSML (where `string="true"` marks a raw string and anything else is JSON)."""

    def read(ctx: Ctx, at: int, marker: str) -> Read | None:
        text = ctx.text
        pos = at + len(marker)
        calls: list[ToolCall] = []
        while True:
            pos = ctx.skip_ws(pos)
            if ctx.at(pos, close_block):
                return Read(pos + len(close_block), calls, None if calls else "an empty call block")
            if pos >= ctx.end:
                return Read(ctx.end, calls, f"cut off before {close_block}")
            if not ctx.at(pos, invoke):
                return Read(pos, calls, f"unexpected text inside {marker}") if calls or pos > at + len(marker) \
                    else None
            tag_end = ctx.find.find(">", pos, min(ctx.end, pos + 300))
            if tag_end < 0:
                return Read(ctx.end, calls, "cut off in an invoke tag")
            attrs = dict(_ATTR.findall(text, pos, tag_end))
            name = attrs.get("name", "")
            pos, args, broken = tag_end + 1, {}, None
            while True:
                pos = ctx.skip_ws(pos)
                if ctx.at(pos, invoke_end):
                    pos += len(invoke_end)
                    break
                if not ctx.at(pos, param):
                    broken = "cut off inside an invoke" if pos >= ctx.end else f"no {invoke_end}"
                    break
                ptag = ctx.find.find(">", pos, min(ctx.end, pos + 300))
                if ptag < 0:
                    broken = "cut off in a parameter tag"
                    break
                pattrs = dict(_ATTR.findall(text, pos, ptag))
                stop, which = value_end(ctx, ptag + 1, param_end, (param,), (invoke_end, close_block))
                if stop < 0:
                    broken = f"cut off before {param_end}"
                    break
                raw = text[ptag + 1:stop]
                key = pattrs.get("name", "")
                if pattrs.get("string") == "true":
                    args[key] = raw
                elif "string" in pattrs:
                    value, _ = loads_lenient(raw)
                    args[key] = raw if value is None and raw.strip() not in ("null",) else value
                else:
                    args[key] = typed_value(raw, ctx.schema(name, key))
                if which != param_end:
                    broken = f"no {param_end} before {which}"
                pos = stop + len(which)
            calls.append(make_call(name, args, ""))
            if broken:
                return Read(min(pos, ctx.end), calls, broken)

    return read


def value_end(ctx: Ctx, start: int, close: str, opens: tuple[str, ...], closes: tuple[str, ...]) -> tuple[int, str]:
    """Where a raw XML-style value ends: at its close tag, so a value may hold other markup (a code
    argument with `</tool_call>` in it). When the next parameter opens first, or the block closes with
    no close tag of the value before the next parameter, the close tag is missing: the value ends
    there and the caller reports it. Returns (index, the tag found), or (-1, "")."""
    at, which = ctx.find.first((close,) + opens + closes, start, ctx.end)
    if at < 0 or which == close or which in opens:
        return at, which
    own = ctx.find.find(close, at, ctx.end)
    if own < 0 or ctx.find.first(opens, at, own)[0] >= 0:
        return at, which
    return own, close


def xml_function(ctx: Ctx, pos: int, strip_newlines: bool) -> tuple[int, ToolCall | None, str | None]:
    """`<function=NAME><parameter=KEY>VALUE</parameter>...</function>` at `pos` (Qwen3-Coder, Seed-OSS).
    Qwen3-Coder's template puts each value between newlines; those two newlines are not the value."""
    text = ctx.text
    start = pos + len("<function=")
    gt = ctx.find.find(">", start, min(ctx.end, start + 200))
    if gt < 0:
        return ctx.end, None, "cut off in <function=...>"
    name = text[start:gt].strip()
    pos, args = gt + 1, {}
    while True:
        pos = ctx.skip_ws(pos)
        if ctx.at(pos, "</function>"):
            return pos + len("</function>"), make_call(name, args, ""), None
        if not ctx.at(pos, "<parameter="):
            reason = "cut off before </function>" if pos >= ctx.end else "no </function>"
            return pos, make_call(name, args, ""), reason
        kgt = ctx.find.find(">", pos, min(ctx.end, pos + 200))
        if kgt < 0:
            return ctx.end, make_call(name, args, ""), "cut off in <parameter=...>"
        key = text[pos + len("<parameter="):kgt].strip()
        stop, which = value_end(ctx, kgt + 1, "</parameter>", ("<parameter=",), ("</function>", "</tool_call>"))
        raw = text[kgt + 1:stop if stop >= 0 else ctx.end]
        if strip_newlines:
            raw = raw[1:] if raw.startswith("\n") else raw
            raw = raw[:-1] if raw.endswith("\n") else raw
        args[key] = typed_value(raw, ctx.schema(name, key))
        if which != "</parameter>":
            call = make_call(name, args, "")
            return (stop if stop >= 0 else ctx.end), call, ("cut off inside a parameter value" if stop < 0
                                                            else f"no </parameter> before {which}")
        pos = stop + len("</parameter>")


def xml_block(close_block: str, strip_newlines: bool) -> Reader:
    """`<tool_call><function=...>...</function></tool_call>`; also a bare `<function=...>` with parameters."""

    def read(ctx: Ctx, at: int, marker: str) -> Read | None:
        bare = marker == "<function="
        pos = at if bare else ctx.skip_ws(at + len(marker))
        if not bare and pos >= ctx.end:
            return Read(ctx.end, [], f"cut off right after {marker}")
        if not ctx.at(pos, "<function="):
            if not bare and ctx.text.startswith("<function="[: ctx.end - pos], pos):
                return Read(ctx.end, [], f"cut off right after {marker}")
            return None
        if bare:  # claim only `<function=NAME>` followed by a parameter or its end: otherwise functionary
            gt = ctx.find.find(">", pos, min(ctx.end, pos + 200))
            nxt = ctx.skip_ws(gt + 1) if gt >= 0 else ctx.end
            if gt >= 0 and not (ctx.at(nxt, "<parameter=") or ctx.at(nxt, "</function>")) and nxt < ctx.end:
                return None
        calls: list[ToolCall] = []
        while True:
            end, call, reason = xml_function(ctx, pos, strip_newlines)
            if call is not None:
                calls.append(call)
            if reason:
                return Read(end, calls, reason)
            pos = ctx.skip_ws(end)
            if bare:
                return Read(end, calls)
            if ctx.at(pos, close_block):
                return Read(pos + len(close_block), calls)
            if not ctx.at(pos, "<function="):
                return Read(end, calls, f"no {close_block} after the call")

    return read


def glm(ctx: Ctx, at: int, marker: str) -> Read | None:
    """GLM-4.5+: `<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value>...</tool_call>`."""
    text = ctx.text
    pos = ctx.skip_ws(at + len(marker))
    name = _NAME.match(text, pos, ctx.end)
    if not name:
        return None
    pos = ctx.skip_ws(name.end())
    if pos < ctx.end and not (ctx.at(pos, "<arg_key>") or ctx.at(pos, "</tool_call>")):
        return None  # `<tool_call> tags are...`: prose
    args: dict[str, Any] = {}
    fn = name.group()
    while True:
        pos = ctx.skip_ws(pos)
        if ctx.at(pos, "</tool_call>"):
            return Read(pos + len("</tool_call>"), [make_call(fn, args, "")])
        if not ctx.at(pos, "<arg_key>"):
            reason = "cut off before </tool_call>" if pos >= ctx.end else "no </tool_call> after the call"
            return Read(pos, [make_call(fn, args, "")], reason)
        kend = ctx.find.find("</arg_key>", pos, min(ctx.end, pos + 300))
        if kend < 0:
            return Read(ctx.end, [make_call(fn, args, "")], "cut off in an <arg_key>")
        key = text[pos + len("<arg_key>"):kend].strip()
        pos = ctx.skip_ws(kend + len("</arg_key>"))
        if not ctx.at(pos, "<arg_value>"):
            return Read(pos, [make_call(fn, args, "")], "cut off before <arg_value>" if pos >= ctx.end
                        else "no <arg_value> after an <arg_key>")
        stop, which = value_end(ctx, pos, "</arg_value>", ("<arg_key>",), ("</tool_call>",))
        raw = text[pos + len("<arg_value>"):stop if stop >= 0 else ctx.end]
        args[key] = typed_value(raw, ctx.schema(fn, key))
        if which != "</arg_value>":
            call = make_call(fn, args, "")
            return Read(stop if stop >= 0 else ctx.end, [call],
                        "cut off inside an argument value" if stop < 0 else f"no </arg_value> before {which}")
        pos = stop + len("</arg_value>")


# --------------------------------------------------------------------------------- Gemma 4 values
_GEMMA_STR = '<|"|>'
_GEMMA_BARE = re.compile(r"[^,}\]]*")
# Greedy, over a class without `:`, and with no `\s*` around it (the caller skipped the blanks; the
# key is stripped after): a lazy key followed by `\s*:` retried the rest of the text at every
# character, 10 s for a key followed by 100,000 spaces and no colon.
_GEMMA_KEY = re.compile(r"([^:{}\[\],<]+):")


def _gemma_value(ctx: Ctx, pos: int, depth: int) -> tuple[Any, int, str | None]:
    text = ctx.text
    pos = ctx.skip_ws(pos)
    if pos >= ctx.end:
        return None, ctx.end, "cut off inside the arguments"
    if depth > 100:
        return None, pos, "arguments nested too deep"
    if ctx.at(pos, _GEMMA_STR):
        close = ctx.find.find(_GEMMA_STR, pos + len(_GEMMA_STR), ctx.end)
        if close < 0:
            return None, ctx.end, "a string that never closes"
        return text[pos + len(_GEMMA_STR):close], close + len(_GEMMA_STR), None
    if text[pos] in "{[":
        obj = text[pos] == "{"
        out: Any = {} if obj else []
        pos += 1
        while True:
            pos = ctx.skip_ws(pos)
            if pos >= ctx.end:
                return None, ctx.end, "cut off inside the arguments"
            if text[pos] in "}]":
                return out, pos + 1, None if (text[pos] == "}") == obj else "brackets do not match"
            if obj:
                key = _GEMMA_KEY.match(text, pos, ctx.end)
                if not key or not key.group(1).strip():
                    return None, pos, "a key without a value"
                value, pos, reason = _gemma_value(ctx, key.end(), depth + 1)
                out[key.group(1).strip().replace(_GEMMA_STR, "")] = value
            else:
                value, pos, reason = _gemma_value(ctx, pos, depth + 1)
                out.append(value)
            if reason:
                return None, pos, reason
            pos = ctx.skip_ws(pos)
            if pos < ctx.end and text[pos] == ",":
                pos += 1
    bare = _GEMMA_BARE.match(text, pos, ctx.end)
    token = bare.group().strip()
    value, reason = loads(token)
    if reason is not None or isinstance(value, (dict, list)):
        value = token
    if bare.end() >= ctx.end:
        return value, ctx.end, "cut off inside the arguments"
    return value, bare.end(), None


def gemma4(ctx: Ctx, at: int, marker: str) -> Read | None:
    """Gemma 4: `<|tool_call>call:NAME{key:<|"|>text<|"|>,n:42}<tool_call|>` (keys bare, strings quoted by
    the `<|"|>` token)."""
    pos = ctx.skip_ws(at + len(marker))
    if pos >= ctx.end or ctx.text.startswith("call:"[: ctx.end - pos], pos) and ctx.end - pos < 5:
        return Read(ctx.end, [], f"cut off right after {marker}")
    if not ctx.at(pos, "call:"):
        return None
    name = _NAME.match(ctx.text, pos + 5, ctx.end)
    if not name:
        return Read(ctx.end, [], "cut off before the function name")
    pos = ctx.skip_ws(name.end())
    if not ctx.at(pos, "{"):
        return Read(pos, [], "cut off before the arguments" if pos >= ctx.end else "no { after the function name")
    start = pos
    try:
        value, pos, reason = _gemma_value(ctx, pos, 0)
    except RecursionError:
        return Read(ctx.end, [], "arguments nested too deep")
    if reason:
        return Read(pos, [], reason)
    call = make_call(name.group(), value, ctx.text[start:pos])
    end, missing = closed(ctx, pos, "<tool_call|>")
    return Read(end, [call], missing)


# ------------------------------------------------------------------------------ bare JSON
_LLAMA_FORM = re.compile(r'\s*\{\s*"name"\s*:\s*"[^"]*"\s*,\s*"parameters"\s*:')


def bare_json(ctx: Ctx, at: int, marker: str) -> Read | None:
    """A JSON call with no envelope: `{"name": ..., "parameters": {...}}` is Llama 3.x's own form
    (family `llama3`), anything else call-shaped is `json`. JSON that is not a call is prose."""
    text = ctx.text
    end, reason = json_extent(text, at, ctx.end)
    raw = text[at:end]
    family = "llama3" if _LLAMA_FORM.match(raw) else "json"
    if reason:
        at_start = not text[ctx.start:at].strip()
        if not (ARGS_KEY.search(raw) or at_start):
            return None  # `{"name": "x"` in prose that never closes: nothing to say it is a call
        value, _ = loads_lenient(raw) if not reason.startswith("cut off") else (None, None)
        calls = calls_from_value(value, raw) if value is not None else None
        return Read(end, calls or [], reason, family=family)
    value, why = loads_lenient(raw)
    calls = calls_from_value(value, raw) if value is not None else None
    if calls is None:
        if value is None and ARGS_KEY.search(raw):
            return Read(end, [], why, family=family)
        return Read(end, [], None, family="")  # `{"name": "evalkit", "version": "1.0"}`: not a call
    before = text[max(ctx.start, at - 20):at].rstrip()
    if before.endswith("{"):
        return Read(end, calls, "stray braces around the call", family=family, start=len(before) + max(ctx.start, at - 20) - 1)
    return Read(end, calls, f"not valid JSON ({why})" if why else None, family=family)


# ------------------------------------------------------------------------- pythonic and fences
def pythonic_calls(source: str, tools: Tools) -> tuple[list[ToolCall], str | None]:
    """`[f(a=1), g(b="x")]` via formats.pythonic; never raises."""
    try:
        calls, error = parse_pythonic(source)
    except Exception as exc:  # noqa: BLE001 - ast on hostile input (deep nesting, huge literals)
        return [], f"not a Python call list: {type(exc).__name__}"
    if error:
        return [], error
    if not calls:
        return [], "an empty list of calls"
    return calls, None


def python_block(end_token: str) -> Reader:
    """Llama 4: `<|python_start|>[f(a=1)]<|python_end|>`."""

    def read(ctx: Ctx, at: int, marker: str) -> Read | None:
        body = at + len(marker)
        close = ctx.find.find(end_token, body, ctx.end)
        stop = close if close >= 0 else ctx.end
        if not ctx.text[body:stop].strip():
            return Read(ctx.end, [], f"cut off right after {marker}") if close < 0 else None
        calls, error = pythonic_calls(ctx.text[body:stop], ctx.tools)
        return Read(stop + len(end_token) if close >= 0 else stop, calls, error)

    return read


def functools(ctx: Ctx, at: int, marker: str) -> Read | None:
    """Phi-4-mini and FireFunction v2: `functools[{"name": ..., "arguments": {...}}, ...]`."""
    end, calls, reason = json_calls(ctx, at + len(marker) - 1)
    return Read(end, calls, reason)


def functionary_tag(ctx: Ctx, at: int, marker: str) -> Read | None:
    """Functionary v3.1: `<function=NAME>{json}</function>`."""
    start = at + len(marker)
    gt = ctx.find.find(">", start, min(ctx.end, start + 200))
    if gt < 0:
        return Read(ctx.end, [], "cut off in <function=...>") if ctx.end - start < 200 else None
    name = ctx.text[start:gt]
    if not _NAME.fullmatch(name):
        return None
    end, call, reason = json_arguments(ctx, name, gt + 1)
    if call is None:
        return Read(end, [], reason)
    end, missing = closed(ctx, end, "</function>")
    return Read(end, [call], reason or missing)


def functionary_recipient(ctx: Ctx, at: int, marker: str) -> Read | None:
    """Functionary v3.2: `>>>NAME\\n{json}` (`>>>all\\n` is plain text)."""
    name = _NAME.match(ctx.text, at + len(marker), ctx.end)
    if not name or name.group() == "all" or not ctx.at(name.end(), "\n"):
        return None
    end, call, reason = json_arguments(ctx, name.group(), name.end() + 1)
    return Read(end, [call] if call else [], reason)


def _json_call_lines(ctx: Ctx, pos: int, stop: int) -> list[ToolCall] | None:
    """Call objects written one after another between `pos` and `stop` (JSON Lines, as qwen2.5-coder
    does for parallel calls in a ```json fence): each value read by `json_calls`, and every one
    must be a whole, clean call, else None. Each value is read once: linear."""
    calls: list[ToolCall] = []
    while (pos := ctx.skip_ws(pos)) < stop:
        pos, found, reason = json_calls(ctx, pos, stop)
        if reason:
            return None
        calls += found
    return calls or None


_FENCE_LANG = re.compile(r"[\w+-]*[ \t]*\n?")


def fence(ctx: Ctx, at: int, marker: str) -> Read | None:
    """A Markdown code fence holding a call: JSON (family `json`), a Python call list (`pythonic`),
    or Gemma 3's ```tool_code (`gemma3`). Other code blocks are prose."""
    text = ctx.text
    lang = _FENCE_LANG.match(text, at + len(marker), ctx.end)
    body = lang.end()
    tag = text[at + 3:body].strip().lower()
    close = ctx.find.find("```", body, ctx.end)
    stop = close if close >= 0 else ctx.end
    end = stop + 3 if close >= 0 else ctx.end
    source = text[body:stop]
    family = "gemma3" if tag == "tool_code" else None
    if CALL_HEAD.match(source):
        value, reason = loads_lenient(source.strip())
        calls = calls_from_value(value, source) if value is not None else None
        if calls is None and value is None and (in_a_row := _json_call_lines(ctx, body, stop)):
            # Several call objects in a row: not one JSON value, so malformed; each object is a whole
            # call, so what the model meant is still recovered.
            calls, reason = in_a_row, "several JSON objects in a row, not one JSON value"
        if calls:
            return Read(end, calls, reason if close >= 0 else "cut off before the closing ```",
                        family=family or "json")
        if value is None and ARGS_KEY.search(source):  # a call whose JSON is broken
            return Read(end, [], reason, family=family or "json")
        if not family:
            return Read(end, [], None, family="")  # JSON that is not a call (`{"name": "evalkit", ...}`)
    if PYTHONIC_HEAD.match(source) or (family and _NAME.match(source.strip())):
        calls, error = pythonic_calls(source, ctx.tools)
        if family or (calls and (ctx.tools is None or all(c.name in ctx.tools for c in calls))):
            return Read(end, calls, error or (None if close >= 0 else "cut off before the closing ```"),
                        family=family or "pythonic")
    if family:
        return Read(end, [], "unreadable tool_code block" if source.strip() else "an empty tool_code block",
                    family=family)
    return Read(end, [], None, family="")  # a code block that is not a call: prose, skipped whole
