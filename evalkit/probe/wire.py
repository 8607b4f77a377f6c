"""Send one probe request and keep everything it returned: the raw reply as evidence, and what
evalkit's own client reads from it (streamed fragments joined by `index`, as client.py does).

The probe sees the raw wire on purpose: a reply that the client silently repairs or merges (every
streamed call at index 0, arguments as an object) is exactly what it must show.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from evalkit.client import TransportError, _StreamState, _within, classify
from evalkit.schema import Exchange

MAX_REPLY_BYTES = 256 * 1024
"""Wire bytes of one probe reply: the probe asks for 64 tokens (a streamed reply of them is about
20 KB). Without a limit, 50 MB replies took it to 7.66 GB RSS and 2.1 GB of --json output (issue
26). Past it, reading stops and the first EVIDENCE_EVENTS events (or characters) are kept."""
EVIDENCE_EVENTS = 20

if TYPE_CHECKING:  # imported where a probe runs: it takes about a second (evalkit run never needs it)
    import openai


async def send(client: openai.AsyncOpenAI, name: str, body: dict[str, Any], deadline_s: float = 60.0) -> Exchange:
    """POST one chat completion (streamed when `body["stream"]`); never raises. Each attempt ends
    at `deadline_s`, request to last byte (a server trickling a byte a second never trips the
    client's read-gap timeout), and reading stops past MAX_REPLY_BYTES.

    A connection dropped before any answer is tried once more, as client.py would: llama.cpp's
    server may close a kept-alive connection after a streamed reply, and that is transport, not
    the tool-calling contract. The evidence says so (`attempts`, `retried_after`).
    """
    exchange, dropped = await _send_once(client, name, body, deadline_s)
    if dropped:
        first = exchange.error
        exchange, _ = await _send_once(client, name, body, deadline_s)
        exchange.attempts, exchange.retried_after = 2, first
    return exchange


async def _send_once(client: openai.AsyncOpenAI, name: str, body: dict[str, Any],
                     deadline_s: float) -> tuple[Exchange, bool]:
    """The exchange, and whether the connection failed before any answer (not a timeout)."""
    import openai

    stream = bool(body.get("stream"))
    exchange = Exchange(name=name, stream=stream, request=body)
    # As in client.py: the body goes as it is (extra_body); the typed parameters stay empty.
    extra = {k: v for k, v in body.items() if k not in ("model", "messages")}
    typed = {"model": body["model"], "messages": [], "extra_body": {**extra, "messages": body["messages"]}}
    start = time.perf_counter()
    dropped = False
    try:
        await _within(deadline_s, _exchange(client, typed, exchange))
    except Exception as exc:  # noqa: BLE001 - every failure is evidence, not a crash
        dropped = isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError)
        exchange.error = str(classify(exc))
        exchange.http_status = getattr(exc, "status_code", None)
        if getattr(exc, "body", None) is not None:
            exchange.raw = exc.body
    exchange.elapsed_s = round(time.perf_counter() - start, 3)
    if exchange.ok and (problem := _unreadable(exchange)) is not None:
        # A 2xx that says nothing a client can read (an HTML page, an empty body) is no answer:
        # judged as one, it passed tool_choice_none and stream_parity ("no call came back").
        exchange.error = f"HTTP {exchange.http_status}, but the reply could not be read: {problem}"
    if exchange.ok:
        (_read_stream if stream else _read_whole)(exchange)
    return exchange, dropped


def _unreadable(exchange: Exchange) -> str | None:
    """What makes a 2xx reply no chat completion at all, or None when it is one (maybe a broken one)."""
    raw = exchange.raw
    if exchange.stream:
        if not raw:
            return "the stream ended without a single event"
        if not any(isinstance(e, dict) and isinstance(e.get("choices"), list) and e["choices"] for e in raw):
            return f"no stream event holds a choice (first event: {str(raw[0])[:80]!r})"
        return None
    if raw in (None, ""):
        return "the reply body is empty"
    if not isinstance(raw, dict):
        return f"the reply is not a JSON object: {str(raw)[:80]!r}"
    choices = raw.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "the reply has no choices"
    return None


async def _exchange(client: openai.AsyncOpenAI, typed: dict[str, Any], exchange: Exchange) -> None:
    async with client.chat.completions.with_streaming_response.create(**typed) as response:
        exchange.http_status = response.status_code
        events: list[Any] = []
        pending, size = b"", 0
        async for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                # Evidence, not the whole: an exchange is shown under every check it serves.
                exchange.raw = events[:EVIDENCE_EVENTS] if exchange.stream else pending[:EVIDENCE_EVENTS * 100].decode("utf-8", "replace")
                raise TransportError(f"the reply is over the probe's limit of {MAX_REPLY_BYTES:,} bytes "
                                     f"(it asks for 64 tokens); reading stopped there, the start is kept", False)
            pending += chunk
            if exchange.stream:  # events as they come: one line of the stream is never held twice
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if (event := _event(line)) is not None:
                        events.append(event)
        if exchange.stream:
            events.extend(e for e in (_event(pending),) if e is not None)
            exchange.raw = events
        else:
            exchange.raw = _json_or_text(pending.decode("utf-8", "replace"))


def _event(line: bytes) -> Any:
    """A stream line's `data:` payload (JSON where it parses), or None for other lines and [DONE]."""
    text = line.decode("utf-8", "replace").strip()
    if not text.startswith("data:") or text[5:].strip() == "[DONE]":
        return None
    return _json_or_text(text[5:].strip())


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _read_whole(exchange: Exchange) -> None:
    raw = exchange.raw
    choices = raw.get("choices") if isinstance(raw, dict) else None
    if not choices or not isinstance(choices[0], dict):
        exchange.read_error = "the reply has no choices"
        return
    choice = choices[0]
    message = choice.get("message") or {}
    exchange.content = message.get("content")
    exchange.finish_reason = choice.get("finish_reason")
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        # Arguments are kept exactly as sent (a string, or whatever else the server put there).
        exchange.calls.append({"id": call.get("id"), "name": function.get("name"), "arguments": function.get("arguments")})


def _read_stream(exchange: Exchange) -> None:
    for event in exchange.raw or []:
        for choice in (event.get("choices") or []) if isinstance(event, dict) else []:
            for item in (choice.get("delta") or {}).get("tool_calls") or []:
                exchange.fragments.append(item)
    state = _StreamState(0.0, time.perf_counter)
    try:
        for event in exchange.raw or []:
            state.feed(json.dumps(event) if not isinstance(event, str) else event)
        completion = state.completion(0.0)
    except (TransportError, TypeError, AttributeError) as exc:
        # evalkit's reader gave up (arguments that are not strings...): record why, and read the
        # rest plainly so the other checks still judge what the server sent.
        exchange.read_error = f"{type(exc).__name__}: {exc}"
        _read_plainly(exchange)
        return
    exchange.content = completion.content
    exchange.finish_reason = completion.finish_reason
    exchange.calls = [dict(call) for call in completion.tool_calls]


def _read_plainly(exchange: Exchange) -> None:
    """Content, finish_reason and calls, keeping argument pieces that are not strings as they came."""
    content = []
    for event in exchange.raw or []:
        for choice in (event.get("choices") or []) if isinstance(event, dict) else []:
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                content.append(delta["content"])
            exchange.finish_reason = choice.get("finish_reason") or exchange.finish_reason
    exchange.content = "".join(content) or None
    calls: list[dict] = []
    for f in exchange.fragments:
        function = f.get("function") or {}
        if f.get("id") is not None or function.get("name") or not calls:
            calls.append({"id": f.get("id"), "name": function.get("name"), "pieces": []})
        if function.get("arguments") not in (None, ""):
            calls[-1]["pieces"].append(function["arguments"])
    for call in calls:
        pieces = call.pop("pieces")
        odd = [p for p in pieces if not isinstance(p, str)]
        call["arguments"] = odd[0] if odd else "".join(pieces)
    exchange.calls = calls
