"""One chat completion over the OpenAI wire protocol: streamed or not, timed, retried.

The openai client does the HTTP; this module accumulates streamed tool-call fragments by
`index`, measures latency and time to first token, and turns every transport failure into a
`TransportError` so the runner records an `error` sample instead of crashing.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import openai

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TransportError(Exception):
    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


def decode_rate(tokens: int | None, latency_s: float, ttft_s: float | None) -> float | None:
    """Tokens per second of decoding: the time after the first token (the whole time when no
    first token was timed, e.g. a reply that was not streamed)."""
    if not tokens:
        return None
    generation = latency_s - (ttft_s or 0.0)
    if generation <= 0:
        generation = latency_s
    return tokens / generation if generation > 0 else None


@dataclass
class Completion:
    content: str | None
    tool_calls: list[dict[str, Any]]  # {id, name, arguments} with arguments as the raw string sent
    finish_reason: str | None
    usage: dict[str, Any] | None
    timings: dict[str, Any] | None
    latency_s: float
    ttft_s: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_tokens(self) -> int | None:
        return (self.usage or {}).get("prompt_tokens")

    @property
    def completion_tokens(self) -> int | None:
        return (self.usage or {}).get("completion_tokens")

    @property
    def tokens_per_s(self) -> float | None:
        """The server's own decode speed when it reports one (llama.cpp `timings`), else ours."""
        if self.timings and self.timings.get("predicted_per_second"):
            return float(self.timings["predicted_per_second"])
        return decode_rate(self.completion_tokens, self.latency_s, self.ttft_s)

    def raw(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "tool_calls": self.tool_calls,
            "finish_reason": self.finish_reason,
            "usage": self.usage,
            "timings": self.timings,
            **self.extra,
        }


def classify(exc: BaseException) -> TransportError:
    """Which failures are worth a retry: connection errors, timeouts, 429 and 5xx only."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return TransportError("timed out waiting for the server", True)
    if isinstance(exc, openai.APIConnectionError):
        return TransportError(f"cannot connect to the server: {exc.__cause__ or exc}", True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _error_message(exc)
        return TransportError(f"HTTP {status}: {message}", status == 429 or status >= 500)
    if isinstance(exc, openai.APIResponseValidationError):
        return TransportError(f"the server's reply does not follow the OpenAI protocol: {exc}", False)
    return TransportError(f"bad reply from the server: {type(exc).__name__}: {exc}", False)


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
        if isinstance(inner, str):
            return inner[:300]
    return str(exc.message)[:300]


def _extra(obj: Any, name: str) -> Any:
    """Non-standard fields (llama.cpp `timings`) survive in pydantic's `model_extra`."""
    extra = getattr(obj, "model_extra", None) or {}
    return extra.get(name)


async def _complete_once(
    client: openai.AsyncOpenAI, params: dict[str, Any], stream: bool, clock: Clock
) -> Completion:
    start = clock()
    # The request body goes in `extra_body`, which the client sends as it is: its per-request
    # type transform of messages and tools otherwise costs about a third of evalkit's CPU.
    body = dict(params)
    typed = {"model": body.pop("model"), "messages": body.pop("messages")[:0], "extra_body": body}
    body["messages"] = params["messages"]
    if not stream:
        response = await client.chat.completions.create(**typed)
        latency = clock() - start
        if not getattr(response, "choices", None):
            raise TransportError("the server answered with no choices", False)
        choice = response.choices[0]
        message = choice.message
        calls = [
            {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments}
            for tc in (message.tool_calls or [])
            if getattr(tc, "function", None) is not None
        ]
        usage = response.usage.model_dump() if response.usage else None
        return Completion(message.content, calls, choice.finish_reason, usage, _extra(response, "timings"), latency, None)

    # Streamed events are read as plain JSON rather than as the client's pydantic chunk objects:
    # that halves evalkit's CPU per sample, which is what limits throughput on a small machine.
    stream_state = _StreamState(start, clock)
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    async with client.chat.completions.with_streaming_response.create(**typed) as response:
        # Read to the very end (not just to [DONE]) so the connection goes back to the pool.
        async for line in response.iter_lines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                stream_state.feed(line[5:].strip())
    return stream_state.completion(clock() - start)


class _StreamState:
    """Accumulates `chat.completion.chunk` events; tool-call fragments are joined by `index`."""

    def __init__(self, start: float, clock: Clock):
        self.start, self.clock = start, clock
        self.content: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.timings: dict[str, Any] | None = None
        self.ttft: float | None = None
        self.events = 0

    def _first_token(self) -> None:
        if self.ttft is None:
            self.ttft = self.clock() - self.start

    def feed(self, data: str) -> None:
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise TransportError(f"a stream event is not JSON: {data[:80]!r}", False) from None
        if not isinstance(chunk, dict):
            raise TransportError(f"a stream event is not a JSON object: {data[:80]!r}", False)
        self.events += 1
        if chunk.get("error") and not chunk.get("choices"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise TransportError(f"the server reported an error mid-stream: {message}", False)
        self.timings = chunk.get("timings") or self.timings
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._first_token()
                self.content.append(delta["content"])
            for fragment in delta.get("tool_calls") or []:
                self._first_token()
                # Fragments of one call share an `index`; only the first carries id and name.
                slot = self.calls.setdefault(fragment.get("index") or 0, {"id": None, "name": "", "arguments": ""})
                if fragment.get("id"):
                    slot["id"] = fragment["id"]
                function = fragment.get("function") or {}
                if function.get("name"):
                    slot["name"] += function["name"]
                if function.get("arguments"):
                    slot["arguments"] += function["arguments"]
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def completion(self, latency: float) -> Completion:
        if self.events == 0:
            raise TransportError("the server's stream ended without a single event", False)
        calls = [self.calls[i] for i in sorted(self.calls)]
        content = "".join(self.content) if self.content else None
        return Completion(content, calls, self.finish_reason, self.usage, self.timings, latency, self.ttft)


async def complete(
    client: openai.AsyncOpenAI,
    params: dict[str, Any],
    *,
    stream: bool = True,
    retries: int = 2,
    clock: Clock = time.perf_counter,
    sleep: Sleep = asyncio.sleep,
    backoff_s: float = 0.5,
    backoff_cap_s: float = 8.0,
) -> Completion:
    """One completion with capped exponential backoff on retryable failures."""
    attempt = 0
    while True:
        try:
            return await _complete_once(client, params, stream, clock)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a TransportError
            error = classify(exc)
            if not error.retryable or attempt >= retries:
                raise error from None
            delay = min(backoff_cap_s, backoff_s * 2**attempt) * (0.5 + random.random() / 2)
            attempt += 1
            await sleep(delay)


def make_client(base_url: str, timeout_s: float, api_key: str | None = None) -> openai.AsyncOpenAI:
    # Retries are ours (only for retryable failures); local servers accept any key.
    return openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "evalkit", timeout=timeout_s, max_retries=0)
