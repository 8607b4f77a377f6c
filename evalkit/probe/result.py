"""The probe's typed results: what `run_probe` returns, `--json` prints and a run stores as probe.json.

(These belong beside the other file formats in evalkit/schema.py once its refactor lands.)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["pass", "fail", "unsupported"]
PROBE_FILE = "probe.json"


class Exchange(BaseModel):
    """One HTTP exchange, as evidence: the request as sent and the reply as received.

    `raw` is the reply body: a non-streamed reply's JSON, or a stream's `data:` payloads in order
    (JSON where they parse). The fields after it are what a client reads from that raw reply.
    """

    name: str
    method: str = "POST"
    path: str = "/v1/chat/completions"
    stream: bool = False
    request: Any = None
    http_status: int | None = None
    error: str | None = None  # transport failure, or the server's error message on a non-2xx
    raw: Any = None
    elapsed_s: float = 0.0
    content: str | None = None
    calls: list[dict[str, Any]] = Field(default_factory=list)  # {id, name, arguments} as a client joins them
    finish_reason: str | None = None
    fragments: list[dict[str, Any]] = Field(default_factory=list)  # stream: every raw tool_calls delta item
    read_error: str | None = None  # evalkit's own stream reader could not join the fragments
    attempts: int = 1  # 2 when the connection dropped before any answer and it was sent again
    retried_after: str | None = None  # the first attempt's transport error

    @property
    def ok(self) -> bool:
        return self.error is None and self.http_status is not None and 200 <= self.http_status < 300


class CheckResult(BaseModel):
    name: str
    status: Status
    detail: str
    evidence: list[Exchange] = Field(default_factory=list)


class ProbeResult(BaseModel):
    evalkit_version: str
    base_url: str
    model: str
    started_at: str
    elapsed_s: float
    requests: int  # every HTTP request the probe sent: chat completions and the facts' GETs
    chat_requests: int
    server: dict[str, Any]  # engine.facts.server_facts, without the raw bodies
    checks: list[CheckResult]

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "fail"]

    def summary(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "unsupported": 0}
        for check in self.checks:
            counts[check.status] += 1
        return counts
