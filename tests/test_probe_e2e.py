"""`evalkit probe` against the real embedded engine (llama.cpp's server) with the bundled 0.5b.

Only stable facts are asserted: the structure, the request budget, and what llama.cpp tells of
itself. Which checks pass depends on the model and the build; the table is printed for the record.
"""

from __future__ import annotations

import json

import pytest

from evalkit.cli import main
from evalkit.probe import MAX_REQUESTS, ProbeResult
from evalkit.probe.checks import CHECKS
from evalkit.probe.cli import format_result

pytestmark = pytest.mark.e2e


def test_probe_of_the_embedded_engine(capsys):
    code = main(["probe", "--json"])  # no --model: the bundled default, on the embedded engine
    out = capsys.readouterr().out
    result = ProbeResult.model_validate(json.loads(out))
    print(format_result(result))  # for the record (pytest -s)
    assert code == (1 if result.failed else 0)
    assert [c.name for c in result.checks] == [c.name for c in CHECKS]
    assert all(c.status in ("pass", "fail", "unsupported") and c.detail for c in result.checks)
    # Eight requests; one more per connection the engine dropped before answering (seen once: a
    # kept-alive connection closed after a streamed reply).
    assert 8 <= result.chat_requests and result.requests <= MAX_REQUESTS
    server = result.server
    assert server.kind == "llama.cpp"
    assert len(server.template_sha256 or "") == 64 and server.tool_call_format
    assert (server.model.parameter_count or 0) > 100_000_000 and server.model.context_length == 4096
    # Every chat request got an answer from the engine (checks judge replies, not transport errors).
    chat = {e.name: e for c in result.checks for e in c.evidence if e.path == "/v1/chat/completions"}
    assert len(chat) == 8 and all(e.http_status == 200 for e in chat.values())
    # llama.cpp enforces response_format json_schema (a grammar from the schema): the check passes.
    assert {c.name: c.status for c in result.checks}["json_schema"] == "pass"
