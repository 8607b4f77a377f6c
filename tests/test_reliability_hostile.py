"""Issue 26, reliability round three: the attacks that got through the previous rounds, each
against a real server on 127.0.0.1 (the scripted server, a few-line stdlib server, or real MCP
server processes), each checked to fail on the code before the fix."""

from __future__ import annotations

import json

import pytest

from evalkit.client import CALL_CHARS
from test_reliability_client import LIMIT_LINE, _Handler, failure, run, stdlib_server

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------- 1: id-only stream fragments


def _fragments(count: int, fragment) -> bytes:
    head = b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
    body = b"".join(b'data: {"choices":[{"index":0,"delta":{"tool_calls":[%s]}}]}\n\n' % fragment(i)
                    for i in range(count))
    return head + body + b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n'


def _sse_server(body: bytes):
    def answer(handler: _Handler) -> None:
        handler.sse_head()
        handler.wfile.write(body)

    return stdlib_server(answer)


@pytest.mark.parametrize("fragment", [
    lambda i: b'{"id":"c%d"}' % i,  # the attack: each fragment a new id, nothing else
    lambda i: b'{"index":%d}' % i,  # each a new index, not even an id
], ids=["new-id", "new-index"])
def test_fragments_that_only_open_calls_count_against_the_reply_limit(fragment):
    # 100,000 fragments opening a call each: 3.2 M characters at CALL_CHARS apiece, over 1 M.
    with _sse_server(_fragments(100_000, fragment)) as srv:
        error, _ = failure(srv.base_url, retries=0)
    assert str(error) == LIMIT_LINE.format(1_000_000) and not error.retryable


def test_call_ids_and_a_per_call_cost_count_in_a_whole_reply_too():
    calls = [{"id": "c%d" % i, "type": "function", "function": {}} for i in range(40_000)]
    body = json.dumps({"choices": [{"message": {"role": "assistant", "tool_calls": calls}, "finish_reason": "tool_calls"}]})

    def answer(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        handler.wfile.write(body.encode())

    with stdlib_server(answer) as srv:
        error, _ = failure(srv.base_url, stream=False, retries=0)
    assert str(error) == LIMIT_LINE.format(1_000_000)


def test_a_few_calls_stay_well_under_the_limit():
    with _sse_server(_fragments(3, lambda i: b'{"index":%d,"id":"c%d","function":{"name":"f","arguments":"{}"}}' % (i, i))) as srv:
        calls = run(srv.base_url, max_reply_chars=3 * (CALL_CHARS + 2 + 1 + 2)).tool_calls
    assert [c["id"] for c in calls] == ["c0", "c1", "c2"]
