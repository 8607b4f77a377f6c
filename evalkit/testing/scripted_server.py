"""A scripted OpenAI-compatible chat-completions server for tests and benchmarks.

It is a real HTTP/1.1 server on loopback (stdlib ``ThreadingHTTPServer``, one daemon thread per
connection, keep-alive, exact ``Content-Length``; streams use chunked transfer encoding), so tests
drive the real ``openai`` client over the wire instead of mocking it.

Each ``POST /v1/chat/completions`` is answered by a :class:`Reply` chosen by the *responder*:

* a single ``Reply`` (every request gets it);
* a list / tuple / iterator of ``Reply`` consumed in order; **when exhausted the last one repeats**;
  an empty script answers HTTP 500 (``"scripted responder has no replies"``);
* a callable ``fn(request_json) -> Reply`` (a returned ``str`` means ``Reply(content=str)``);
  see :func:`by_last_user` for routing by the last user message. If the callable raises, the
  request is answered with HTTP 500 whose message names the exception.
* ``None``: every request gets ``Reply(content="ok")``.

Example::

    with ScriptedServer(responder=Reply(tool_calls=[{"name": "f", "arguments": {"x": 1}}])) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        client.chat.completions.create(model="m", messages=[...])
        assert srv.requests[0]["model"] == "m"

Contract breaks (what ``evalkit probe`` must catch): ``Reply`` carries wire-level distortions
(``call_ids``, ``stream_call_index``, ``stream_drop_arguments``, ``arguments_as_object``,
``null_finish_reason``), and :class:`ContractResponder` is a server that keeps the tool-calling
contract, scripted from the request (it honours ``tool_choice`` and ``parallel_tool_calls``),
unless told to break one part of it (``ContractResponder(breaks={"ignore_tool_choice"})``).
``ScriptedServer(endpoints={"GET /props": {...}, "POST /api/show": fn})`` answers other JSON
endpoints, so a test can play llama.cpp, Ollama, LM Studio or vLLM to ``server_facts``.

Keys and what arrived: ``ScriptedServer(api_key="k")`` answers HTTP 401 (``{"error": {"message":
"Invalid API Key ..."}}``, echoing the key it was sent, as some servers do) to any request that does
not carry ``Authorization: Bearer k``, except on ``open_paths`` (``/health``; add ``/v1/models``
to play llama.cpp, whose model list needs no key). ``seen`` lists every request that arrived,
answered or refused: ``(method, path, headers, body)``, header names title-cased. ``models``
lists more ids in /v1/models.

Command line (for benchmarks run by hand)::

    python -m evalkit.testing.scripted_server --port 0 --delay 0.05 --content hello
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union

__all__ = ["BREAKS", "ContractResponder", "Reply", "ResponderLike", "ScriptedServer", "by_last_user",
           "fit_schema", "last_user_text", "main"]

DEFAULT_CONTENT_CHUNK_CHARS = 4
"""Streamed content is cut into pieces of this many characters unless ``stream_content_chunks``."""


@dataclass
class Reply:
    """One scripted answer to a chat-completions request.

    ``tool_calls`` items are ``{"name": str, "arguments": str | dict, "id": str (optional)}``;
    non-string arguments are ``json.dumps``'ed, strings are sent verbatim (so broken JSON can be
    sent). ``finish_reason`` defaults to ``"tool_calls"`` when there are tool calls, else
    ``"stop"``. ``completion_tokens`` defaults to ``len(text) // 4 + 1`` over the content,
    reasoning, tool names and arguments.

    Failure modes: ``delay_s`` sleeps before anything is sent (timeouts, latency); ``status`` other
    than 200 answers ``error_body`` (a dict sent as JSON, a str used as the message, or ``None`` for
    a default ``{"error": {"message", "type", "code"}}``); ``raw_body`` is sent verbatim with
    status 200 (content type ``content_type`` or JSON / event-stream to match the request);
    ``drop_connection`` closes the socket without answering; ``drop_after_chunks`` (streaming)
    closes the socket after that many ``data:`` events, without ``[DONE]``.

    Streaming pacing: headers go out after ``delay_s``; the first event after a further
    ``first_token_delay_s``; each later event ``chunk_delay_s`` after the previous one.
    ``split_arguments`` cuts each tool call's arguments string into that many fragments at evenly
    spaced character positions (which land mid-token / mid-escape); ``stream_content_chunks``
    cuts the content into that many pieces (0: pieces of 4 characters).

    ``headers`` are extra response headers (e.g. ``{"retry-after": "0"}``, or
    ``{"x-should-retry": "false"}`` which the openai client honours).
    """

    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 10
    completion_tokens: int | None = None
    timings: dict[str, Any] | None = None
    delay_s: float = 0.0
    first_token_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    status: int = 200
    error_body: dict[str, Any] | str | None = None
    raw_body: bytes | None = None
    drop_connection: bool = False
    split_arguments: int = 1
    stream_content_chunks: int = 0
    # Extensions beyond the brief; all optional.
    reasoning_content: str | None = None
    drop_after_chunks: int | None = None
    headers: dict[str, str] | None = None
    content_type: str | None = None
    # Contract breaks, one part of the tool-calling wire format each (see ContractResponder).
    call_ids: str = "unique"  # "unique" | "repeat" (all calls share the first id) | "empty" ("")
    stream_call_index: str = "distinct"  # "distinct" | "zero": every streamed call says index 0
    stream_drop_arguments: bool = False  # streamed calls carry no argument fragments at all
    arguments_as_object: bool = False  # `arguments` sent as a JSON object instead of a string
    null_finish_reason: bool = False  # finish_reason null, even when calls are returned

    @property
    def effective_finish_reason(self) -> str | None:
        if self.null_finish_reason:
            return None
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"

    def wire_arguments(self, args: str) -> Any:
        """What goes in `function.arguments`: the string, or (broken) the object it encodes."""
        if not self.arguments_as_object:
            return args
        try:
            return json.loads(args)
        except ValueError:
            return args

    def normalized_calls(self) -> list[tuple[str, str, str]]:
        """``(id, name, arguments_string)`` per tool call, with ids filled in."""
        out = []
        for i, call in enumerate(self.tool_calls or []):
            if not isinstance(call, Mapping) or "name" not in call:
                raise ValueError(f"tool_calls[{i}] must be a dict with a 'name': {call!r}")
            args = call.get("arguments", "{}")
            if not isinstance(args, str):
                args = json.dumps(args, ensure_ascii=False)
            call_id = call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
            if self.call_ids == "empty":
                call_id = ""
            elif self.call_ids == "repeat" and out:
                call_id = out[0][0]
            out.append((str(call_id), str(call["name"]), args))
        return out

    def usage(self, calls: list[tuple[str, str, str]]) -> dict[str, int]:
        if self.completion_tokens is not None:
            completion = self.completion_tokens
        else:
            text = (self.content or "") + (self.reasoning_content or "")
            text += "".join(name + args for _, name, args in calls)
            completion = len(text) // 4 + 1
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }


ResponderLike = Union[Reply, str, Iterable[Reply], Callable[[dict], Union[Reply, str]], None]


def last_user_text(request: Mapping[str, Any]) -> str:
    """Text of the last ``user`` message (list-of-parts content joined by newlines), or ``""``."""
    for msg in reversed(request.get("messages") or []):
        if not isinstance(msg, Mapping) or msg.get("role") != "user":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            parts = []
            for part in content:
                if isinstance(part, str):
                    parts.append(part)
                elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    parts.append(part["text"])
            return "\n".join(parts)
        return ""
    return ""


def by_last_user(
    mapping: Mapping[str, Reply], default: Reply | None = None
) -> Callable[[dict], Reply]:
    """A responder picking the Reply of the first key (in mapping order) that is a substring of
    the last user message. Without a match it returns ``default``; when ``default`` is ``None``
    it raises ``LookupError``, which the server answers as HTTP 500 naming the message."""
    items = list(mapping.items())

    def pick(request: dict) -> Reply:
        text = last_user_text(request)
        for key, reply in items:
            if key in text:
                return reply
        if default is None:
            raise LookupError(f"no scripted reply matches last user message {text[:120]!r}")
        return default

    return pick


class _Script:
    """Replies consumed in order; the last one repeats once the source is exhausted."""

    def __init__(self, source: Iterable[Reply]):
        self._it: Iterator[Reply] = iter(source)
        self._last: Reply | None = None
        self._done = False

    def next(self) -> Reply:
        if not self._done:
            try:
                self._last = next(self._it)
            except StopIteration:
                self._done = True
        if self._last is None:
            raise LookupError("scripted responder has no replies")
        return self._last


def _split(text: str, n: int) -> list[str]:
    """Cut ``text`` into ``n`` pieces at evenly spaced character positions (no empty pieces)."""
    if not text:
        return []
    n = max(1, min(int(n), len(text)))
    size, extra = divmod(len(text), n)
    out, pos = [], 0
    for i in range(n):
        step = size + (1 if i < extra else 0)
        out.append(text[pos : pos + step])
        pos += step
    return out


def _content_pieces(text: str | None, chunks: int) -> list[str]:
    if not text:
        return []
    if chunks and chunks > 0:
        return _split(text, chunks)
    k = DEFAULT_CONTENT_CHUNK_CHARS
    return [text[i : i + k] for i in range(0, len(text), k)]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error_obj(message: str, status: int, type_: str | None = None) -> dict[str, Any]:
    if type_ is None:
        type_ = "invalid_request_error" if 400 <= status < 500 else "server_error"
    return {"error": {"message": message, "type": type_, "code": status}}


_CONN_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], owner: ScriptedServer):
        self.owner = owner
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # One daemon thread per connection, named after the port (never joined: stop() closes
        # the sockets and wakes sleeping handlers instead).
        name = f"scripted-server:{self.server_address[1]}:handler"
        threading.Thread(target=self.process_request_thread, args=(request, client_address),
                         name=name, daemon=True).start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.owner._stopping.is_set():
            return  # client went away or we are shutting down: stay quiet
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "evalkit-scripted/1"
    sys_version = ""
    server: _HTTPServer

    # -- plumbing ---------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)

    def _head(self, status: int, headers: Mapping[str, str]) -> bytes:
        reason = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {self.date_time_string()}",
                 f"Server: {self.server_version}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send_bytes(self, status: int, body: bytes, content_type: str = "application/json",
                    headers: Mapping[str, str] | None = None) -> None:
        hdrs = {"Content-Type": content_type, "Content-Length": str(len(body))}
        hdrs.update(headers or {})
        self._write(self._head(status, hdrs) + body)

    def _send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send_bytes(status, _dumps(obj), "application/json", headers)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _guarded(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except _CONN_ERRORS:
            self.close_connection = True

    @property
    def _route(self) -> str:
        path = self.path.split("?", 1)[0]
        return path.rstrip("/") or "/"

    # -- endpoints --------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def _endpoint(self, method: str, body: bytes | None = None) -> bool:
        """Answer a JSON endpoint the test scripted (``endpoints``); False when there is none."""
        owner = self.server.owner
        answer = owner.endpoints.get(f"{method} {self._route}")
        if answer is None:
            return False
        owner._count_endpoint()
        if callable(answer):
            try:
                request = json.loads(body) if body else None
            except ValueError:
                request = None
            answer = answer(request)
        status, obj = answer if isinstance(answer, tuple) else (200, answer)
        self._send_json(status, obj)
        return True

    def _refused(self, method: str, body: bytes | None) -> bool:
        """Record the request; answer 401 when the server wants a key it was not sent."""
        owner = self.server.owner
        # Names title-cased (clients differ: httpx sends `authorization`, aiohttp `Authorization`).
        owner._saw(method, self._route, {k.title(): v for k, v in self.headers.items()}, body)
        if owner.api_key is None or self._route in owner.open_paths:
            return False
        sent = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if sent == owner.api_key:
            return False
        self._send_json(401, _error_obj(f"Invalid API Key {sent!r}", 401, "authentication_error"))
        return True

    def _get(self) -> None:
        route = self._route
        owner = self.server.owner
        if self._refused("GET", None) or self._endpoint("GET"):
            return
        if route in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [
                {"id": model_id, "object": "model", "created": 0, "owned_by": "scripted"}
                for model_id in [owner.model_id, *owner.models]]})
        elif route in ("/health", "/v1/health"):
            self._send_json(200, {"status": "ok"})
        else:
            self._send_json(404, _error_obj(f"unknown path {self.path}", 404, "not_found_error"))

    def _post(self) -> None:
        body = self._read_body()
        if self._refused("POST", body) or self._endpoint("POST", body):
            return
        if self._route not in ("/v1/chat/completions", "/chat/completions"):
            self._send_json(404, _error_obj(f"unknown path {self.path}", 404, "not_found_error"))
            return
        owner = self.server.owner
        owner._count_hit()
        try:
            request = json.loads(body or b"null")
            if not isinstance(request, dict):
                raise ValueError("request body must be a JSON object")
        except ValueError as exc:
            self._send_json(400, _error_obj(f"invalid JSON body: {exc}", 400))
            return
        owner._record(request)
        try:
            reply = owner._reply_for(request)
        except Exception as exc:  # noqa: BLE001 - a broken script must surface to the test
            self._send_json(500, _error_obj(f"scripted responder failed: "
                                            f"{type(exc).__name__}: {exc}", 500))
            return
        if reply.delay_s > 0 and owner._sleep(reply.delay_s):
            self._drop()
            return
        if reply.drop_connection:
            self._drop()
            return
        stream = bool(request.get("stream"))
        extra = dict(reply.headers or {})
        if reply.raw_body is not None:
            ctype = reply.content_type or ("text/event-stream" if stream else "application/json")
            self._send_bytes(200, reply.raw_body, ctype, extra)
            return
        if reply.status != 200:
            err = reply.error_body
            if err is None:
                err = _error_obj(f"scripted error {reply.status}", reply.status)
            elif isinstance(err, str):
                err = _error_obj(err, reply.status)
            self._send_json(reply.status, err, extra)
            return
        model = request.get("model") or owner.model_id
        if stream:
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            self._stream(reply, model, include_usage, extra)
        else:
            self._send_json(200, _completion(reply, model), extra)

    def _stream(self, reply: Reply, model: str, include_usage: bool,
                extra: Mapping[str, str]) -> None:
        owner = self.server.owner
        events = [b"data: " + _dumps(ev) + b"\n\n"
                  for ev in _chunks(reply, model, include_usage)]
        events.append(b"data: [DONE]\n\n")
        head = self._head(200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                "Transfer-Encoding": "chunked", **extra})

        def frame(data: bytes) -> bytes:
            return b"%x\r\n%s\r\n" % (len(data), data)

        end = b"0\r\n\r\n"
        paced = reply.first_token_delay_s > 0 or reply.chunk_delay_s > 0
        if not paced and reply.drop_after_chunks is None:
            self._write(head + b"".join(frame(e) for e in events) + end)  # one write: fast path
            return
        self._write(head)
        for i, event in enumerate(events):
            pause = reply.first_token_delay_s if i == 0 else reply.chunk_delay_s
            if pause > 0 and owner._sleep(pause):
                self._drop()
                return
            if reply.drop_after_chunks is not None and i >= reply.drop_after_chunks:
                self._drop()
                return
            self._write(frame(event) + (end if i == len(events) - 1 else b""))


def _completion(reply: Reply, model: str) -> dict[str, Any]:
    calls = reply.normalized_calls()
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.reasoning_content is not None:
        message["reasoning_content"] = reply.reasoning_content
    if calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": reply.wire_arguments(args)}}
            for cid, name, args in calls
        ]
    body: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": reply.effective_finish_reason}],
        "usage": reply.usage(calls),
    }
    if reply.timings is not None:
        body["timings"] = reply.timings
    return body


def _chunks(reply: Reply, model: str, include_usage: bool) -> list[dict[str, Any]]:
    calls = reply.normalized_calls()
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": finish}]}

    out = [chunk({"role": "assistant"})]
    for piece in _content_pieces(reply.reasoning_content, reply.stream_content_chunks):
        out.append(chunk({"reasoning_content": piece}))
    for piece in _content_pieces(reply.content, reply.stream_content_chunks):
        out.append(chunk({"content": piece}))
    for position, (cid, name, args) in enumerate(calls):
        index = 0 if reply.stream_call_index == "zero" else position
        out.append(chunk({"tool_calls": [{"index": index, "id": cid, "type": "function",
                                          "function": {"name": name, "arguments": ""}}]}))
        if reply.stream_drop_arguments:
            continue
        # An object cannot be cut into fragments: a server that sends objects sends it whole.
        pieces = [reply.wire_arguments(args)] if reply.arguments_as_object else _split(args, reply.split_arguments)
        for frag in pieces:
            out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": frag}}]}))
    final = chunk({}, reply.effective_finish_reason)
    if reply.timings is not None:
        final["timings"] = reply.timings
    out.append(final)
    if include_usage:
        usage_chunk: dict[str, Any] = {**base, "choices": [], "usage": reply.usage(calls)}
        if reply.timings is not None:
            usage_chunk["timings"] = reply.timings
        out.append(usage_chunk)
    return out


# -- a server that keeps (or breaks) the tool-calling contract -------------------------------

BREAKS: dict[str, str] = {
    "ignore_tool_choice": "treats every tool_choice as auto (Ollama #11171, llama.cpp #27217)",
    "drop_stream_arguments": "streamed calls carry a name but no arguments",
    "stream_index_zero": "every streamed call says index 0 (llama.cpp #18591)",
    "repeat_ids": "all calls in a reply share one id",
    "empty_ids": "calls come with an empty id (llama.cpp #12279)",
    "null_finish_reason": "finish_reason is null even when calls are returned",
    "reject_tool_turns": "answers HTTP 400 to any request holding a `tool` message",
    "arguments_object": "arguments arrive as a JSON object instead of a string",
    "stream_disagrees": "the streamed reply differs from the non-streamed one (Ollama #5796, vLLM #19056)",
    "calls_in_content": "calls are left as <tool_call> text in content, unparsed (llama.cpp #20260)",
    "refuse_response_format": "answers HTTP 400 to any request with a response_format (a server that cannot constrain)",
    "ignore_response_format": "accepts a response_format json_schema but answers as if it were not there",
}
"""Break modes of :class:`ContractResponder`: name -> what the server then does wrong."""

DEFAULT_CITIES = ("Paris", "Tokyo", "London", "Berlin", "New York")


class ContractResponder:
    """A responder for a server whose model always does what it is asked, and whose server keeps
    the tool-calling contract, deterministically from the request alone:

    * a last message from a ``tool`` answers in text, quoting the result;
    * ``tool_choice: "none"`` (or no tools) answers in text;
    * a named ``tool_choice`` calls that function; ``"required"`` calls a tool even for a greeting;
    * otherwise (``auto``) it calls one tool per city named in the last user message (the tool
      whose name's last word, e.g. ``weather``, the message mentions, else the first tool), or
      answers in text when no city is named; ``parallel_tool_calls: false`` keeps the first call.
    * a ``response_format`` json_schema (constrained decoding) gets the same decision written as
      JSON the schema admits (:func:`fit_schema`); the tools are then the schema's call objects
      (``{"name": {"const": ...}, "arguments": {...}}``, as llama.cpp enforces them), and a last
      user turn ``Result of NAME: ...`` (how prompt formats return tool results) is a tool turn.

    ``breaks`` names modes from :data:`BREAKS`; each one breaks exactly one part of the contract.
    """

    def __init__(self, breaks: Iterable[str] = (), cities: Iterable[str] = DEFAULT_CITIES):
        self.breaks = frozenset(breaks)
        unknown = self.breaks - set(BREAKS)
        if unknown:
            raise ValueError(f"unknown break modes {sorted(unknown)}; known: {sorted(BREAKS)}")
        self.cities = tuple(cities)

    def __call__(self, request: dict[str, Any]) -> Reply:
        messages = request.get("messages") or []
        has_tool_turn = any(isinstance(m, Mapping) and m.get("role") == "tool" for m in messages)
        if "reject_tool_turns" in self.breaks and has_tool_turn:
            return Reply(status=400, error_body="unexpected message role 'tool'")
        schema = _response_schema(request)
        if schema is not None and "refuse_response_format" in self.breaks:
            return Reply(status=400, error_body="response_format is not supported")
        if schema is not None and "ignore_response_format" in self.breaks:
            schema = None
        last = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
        if last.get("role") == "tool":
            reply = Reply(content=f"The tool says: {last.get('content')}")
        elif schema is not None and last.get("role") == "user" and str(last.get("content")).startswith("Result of "):
            reply = Reply(content=f"The tool says: {str(last.get('content')).partition(': ')[2]}")
        else:
            reply = self._answer({**request, "tools": _schema_tools(schema)} if schema is not None else request)
        if "stream_disagrees" in self.breaks and request.get("stream"):
            reply = self._disagree(reply)
        if schema is not None:  # whatever it decided, a server that constrains writes it as the schema asks
            reply = Reply(content=json.dumps(fit_schema(schema, reply), ensure_ascii=False))
        return self._wire(reply)

    def _answer(self, request: dict[str, Any]) -> Reply:
        tools = [t["function"] for t in request.get("tools") or [] if isinstance(t, Mapping) and "function" in t]
        choice = request.get("tool_choice", "auto")
        if "ignore_tool_choice" in self.breaks:
            choice = "auto"
        text = last_user_text(request)
        cities = sorted((c for c in self.cities if c in text), key=text.index)
        if not tools or choice == "none":
            return Reply(content=f"I cannot look anything up right now{' about ' + cities[0] if cities else ''}.")
        if isinstance(choice, Mapping):
            wanted = (choice.get("function") or {}).get("name")
            tool = next((t for t in tools if t.get("name") == wanted), tools[0])
            return self._calls([tool], cities[:1] or [self.cities[0]])
        if not cities:
            if choice == "required":
                return self._calls([tools[0]], [self.cities[0]])
            return Reply(content="Hello! How can I help you today?")
        lowered = text.lower()
        tool = next((t for t in tools if str(t.get("name", "")).split("_")[-1].lower() in lowered), tools[0])
        if request.get("parallel_tool_calls") is False:
            cities = cities[:1]
        return self._calls([tool], cities)

    @staticmethod
    def _calls(tools: list[Mapping[str, Any]], cities: list[str]) -> Reply:
        calls = []
        for city in cities:
            for tool in tools:
                params = tool.get("parameters") or {}
                names = params.get("required") or list((params.get("properties") or {}))[:1]
                calls.append({"name": tool["name"], "arguments": {name: city for name in names}})
        return Reply(tool_calls=calls)

    @staticmethod
    def _disagree(reply: Reply) -> Reply:
        if reply.tool_calls:
            calls = [{**c, "arguments": {k: "Berlin" for k in c["arguments"]}} for c in reply.tool_calls]
            return Reply(content=reply.content, tool_calls=calls)
        return Reply(content=(reply.content or "") + " (streamed)")

    def _wire(self, reply: Reply) -> Reply:
        b = self.breaks
        if "calls_in_content" in b and reply.tool_calls:
            # Qwen2.5's call syntax, as its chat template asks for it: "<tool_call>\n{"name":
            # <function-name>, "arguments": <args-json-object>}\n</tool_call>" (tokenizer_config.json
            # of https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct, served in /props).
            blocks = [f"<tool_call>\n{json.dumps({'name': c['name'], 'arguments': c['arguments']})}\n</tool_call>"
                      for c in reply.tool_calls]
            return Reply(content="\n".join(blocks))
        reply.call_ids = "repeat" if "repeat_ids" in b else "empty" if "empty_ids" in b else "unique"
        reply.stream_call_index = "zero" if "stream_index_zero" in b else "distinct"
        reply.stream_drop_arguments = "drop_stream_arguments" in b
        reply.arguments_as_object = "arguments_object" in b
        reply.null_finish_reason = "null_finish_reason" in b
        return reply


def _response_schema(request: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema a request's `response_format` asks the reply to keep, if any."""
    fmt = request.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        return dict((fmt.get("json_schema") or {}).get("schema") or {})
    return None


def _call_objects(schema: Any) -> Iterator[dict[str, Any]]:
    """Every object schema in `schema` shaped like one call: a const `name` and `arguments`."""
    if isinstance(schema, Mapping):
        props = schema.get("properties") or {}
        if isinstance(props.get("name"), Mapping) and "const" in props["name"] and "arguments" in props:
            yield dict(schema)
            return
        for value in schema.values():
            yield from _call_objects(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _call_objects(value)


def _schema_tools(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": c["properties"]["name"]["const"],
                                              "parameters": c["properties"]["arguments"]}}
            for c in _call_objects(schema)]


def fit_schema(schema: dict[str, Any], reply: Reply) -> Any:
    """The reply's decision (its calls, or its text) written as a JSON value the schema admits, as a
    model under constrained decoding would write it: a branch of an `anyOf` that holds the calls
    (or, for text, no call and a string for it) wins. Raises ValueError when none can hold it."""
    calls = [{"name": c["name"], "arguments": c.get("arguments") or {}} for c in reply.tool_calls or []]
    text = reply.content or ""

    def gen(node: Any) -> tuple[Any, bool, bool]:  # (value, holds the calls, holds the text)
        if not isinstance(node, Mapping):
            return None, False, False
        if "const" in node:
            return node["const"], False, False
        if "enum" in node:
            return node["enum"][0], False, False
        if "anyOf" in node or "oneOf" in node:
            options = [gen(b) for b in node.get("anyOf") or node.get("oneOf")]
            wanted = [o for o in options if (o[1] if calls else (not o[1] and o[2]))]
            return (wanted or options)[0]
        kind = node.get("type")
        if kind == "object":
            if "name" in (node.get("properties") or {}) and "arguments" in (node.get("properties") or {}):
                return None, False, False  # a call object: placed by its array
            out, has_calls, has_text = {}, False, False
            for key, sub in (node.get("properties") or {}).items():
                out[key], c, t = gen(sub)
                has_calls, has_text = has_calls or c, has_text or t
            return out, has_calls, has_text
        if kind == "array":
            if list(_call_objects(node.get("items"))):
                if calls:
                    return calls, True, False
                return [], False, False
            return [], False, False
        if kind == "string":
            return text, False, True
        return {"integer": 0, "number": 0, "boolean": False}.get(str(kind)), False, False

    value, held_calls, _ = gen(schema)
    if calls and not held_calls:
        raise ValueError("the response_format schema has no place for the calls the scripted model makes")
    return value


class ScriptedServer:
    """A scripted OpenAI-compatible server on a background thread.

    ``with ScriptedServer(responder=...) as srv: ... srv.base_url ...``. ``requests`` is a
    snapshot list of the JSON bodies of chat-completions requests received; ``hits`` counts
    chat-completions POSTs (including ones with an unparseable body); ``reset()`` clears both.
    """

    def __init__(self, model_id: str = "scripted-model", responder: ResponderLike = None,
                 host: str = "127.0.0.1", port: int = 0,
                 endpoints: Mapping[str, Any] | None = None, api_key: str | None = None,
                 open_paths: Iterable[str] = ("/health", "/v1/health"), models: Iterable[str] = ()):
        self.model_id = model_id
        self.models = list(models)  # listed in /v1/models after model_id
        self.api_key = api_key
        self.open_paths = set(open_paths)
        self._seen: list[tuple[str, str, dict[str, str], bytes | None]] = []
        # "GET /props" or "POST /api/show" -> a JSON body, a (status, body) pair, or a callable
        # taking the request's JSON (None for GET) and returning either; it wins over built-ins.
        self.endpoints: dict[str, Any] = dict(endpoints or {})
        self.endpoint_hits = 0
        self.host = host
        self._want_port = port
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._hits = 0
        # Wall-clock time (time.time()) of the first chat-completions POST: when a harness
        # started in another process got its first request out (benchmarks/bench_overhead.py).
        self.first_hit_at: float | None = None
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._single: Reply | None = None
        self._script: _Script | None = None
        self._fn: Callable[[dict], Reply | str] | None = None
        self.set_responder(responder)

    # -- scripting --------------------------------------------------------------------------
    def set_responder(self, responder: ResponderLike) -> None:
        """Replace the responder (see the module docstring); a list restarts from its start."""
        single = script = fn = None
        if responder is None:
            single = Reply(content="ok")
        elif isinstance(responder, Reply):
            single = responder
        elif isinstance(responder, str):
            single = Reply(content=responder)
        elif callable(responder):
            fn = responder
        elif isinstance(responder, Iterable) and not isinstance(responder, (bytes, Mapping)):
            script = _Script(list(responder) if isinstance(responder, (list, tuple)) else responder)
        else:
            raise TypeError(f"responder must be a Reply, a list of Reply or a callable, "
                            f"not {type(responder).__name__}")
        with self._lock:
            self._single, self._script, self._fn = single, script, fn

    def _reply_for(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            single, script, fn = self._single, self._script, self._fn
            if script is not None:
                return script.next()
        reply = single if fn is None else fn(request)
        if isinstance(reply, str):
            reply = Reply(content=reply)
        if not isinstance(reply, Reply):
            raise TypeError(f"responder returned {type(reply).__name__}, expected Reply")
        return reply

    # -- bookkeeping ------------------------------------------------------------------------
    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> dict[str, Any] | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    @property
    def hits(self) -> int:
        with self._lock:
            return self._hits

    @property
    def seen(self) -> list[tuple[str, str, dict[str, str], bytes | None]]:
        """Every request that arrived: (method, path, headers, body), refused ones included."""
        with self._lock:
            return list(self._seen)

    def _saw(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> None:
        with self._lock:
            self._seen.append((method, path, headers, body))

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()
            self._requests.clear()
            self._hits = 0
            self.first_hit_at = None

    def _record(self, request: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(request)

    def _count_hit(self) -> None:
        with self._lock:
            self._hits += 1
            if self.first_hit_at is None:
                self.first_hit_at = time.time()

    def _count_endpoint(self) -> None:
        with self._lock:
            self.endpoint_hits += 1

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early on stop(); True when the server is stopping."""
        return self._stopping.wait(seconds)

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("ScriptedServer is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Root URL without ``/v1``, e.g. ``http://127.0.0.1:PORT``."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` — what the openai client takes as ``base_url``."""
        return self.url + "/v1"

    def start(self) -> ScriptedServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self._want_port), self)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"scripted-server:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping in delays
        httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # idle keep-alive connections would otherwise block their threads
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"<ScriptedServer {self.model_id!r} {where}>"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evalkit.testing.scripted_server",
        description="Serve canned OpenAI-compatible chat completions until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--model", default="scripted-model", help="model id for /v1/models")
    parser.add_argument("--content", default="hello", help="assistant content of every reply")
    parser.add_argument("--tool-call", nargs=2, action="append", metavar=("NAME", "ARGS_JSON"),
                        default=[], help="add a tool call to every reply (repeatable)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--split-arguments", type=int, default=1)
    parser.add_argument("--api-key", help="answer HTTP 401 to requests without `Authorization: Bearer KEY`")
    parser.add_argument("--stats-file", help='on exit, write {"hits", "first_request_at"} (time.time()) here as JSON')
    args = parser.parse_args(argv)

    calls = [{"name": name, "arguments": raw} for name, raw in args.tool_call] or None
    reply = Reply(content=args.content if not calls else (args.content or None),
                  tool_calls=calls, delay_s=args.delay, first_token_delay_s=args.first_token_delay,
                  chunk_delay_s=args.chunk_delay, split_arguments=args.split_arguments)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with ScriptedServer(model_id=args.model, responder=reply, host=args.host,
                        port=args.port, api_key=args.api_key) as server:
        print(server.base_url, flush=True)
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        if args.stats_file:
            stats = {"hits": server.hits, "first_request_at": server.first_hit_at}
            with open(args.stats_file, "w", encoding="utf-8") as handle:
                json.dump(stats, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
