"""`run_probe(base_url, model)`: send the checks' requests once each, ask the server about itself,
judge every check. `evalkit run --probe` stores the result as probe.json in the run directory."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any

from evalkit import __version__
from evalkit.client import make_openai_client
from evalkit.engine.facts import server_facts
from evalkit.probe.checks import CHECKS, MAX_TOKENS, SEED, Exchanges, ProbeRequest, planned_requests
from evalkit.schema import CheckResult, Exchange, ProbeResult
from evalkit.probe.wire import send

MAX_REQUESTS = 20  # chat completions (retries included) plus the facts' GETs (issue 14: "at most 20")
TIMEOUT_S = 60.0


def run_probe(base_url: str, model: str, *, timeout_s: float = TIMEOUT_S, api_key: str | None = None,
              headers: dict[str, str] | None = None) -> ProbeResult:
    """Probe one OpenAI-compatible server serving `model`; never raises on what the server does."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    exchanges = asyncio.run(_send_all(base_url, model, timeout_s, api_key, headers))
    # Asked after the requests: llama.cpp shows the tool-call format it detected only once a
    # request with tools has run.
    facts = server_facts(base_url, model, keep_raw=True, api_key=api_key)
    raw = facts.pop("raw", {})
    chat = sum(e.attempts for e in exchanges.values())
    checks = []
    for check in CHECKS:
        mine: Exchanges = {r.name: exchanges[r.name] for r in check.requests}
        try:
            status, detail = check.judge(mine, facts)
        except Exception as exc:  # noqa: BLE001 - a judge tripping on odd evidence is a finding, not a crash
            status, detail = "fail", f"the reply could not be judged: {type(exc).__name__}: {exc}"
        evidence = _facts_evidence(raw) if check.facts_evidence else list(mine.values())
        checks.append(CheckResult(name=check.name, status=status, detail=detail, evidence=evidence))
    return ProbeResult(
        evalkit_version=__version__, base_url=base_url, model=model, started_at=started,
        elapsed_s=round(time.perf_counter() - t0, 2),
        requests=chat + len(facts.get("asked", [])), chat_requests=chat,
        server=facts, checks=checks,
    )


def run_check(base_url: str, model: str, name: str, *, timeout_s: float = TIMEOUT_S,
              api_key: str | None = None, headers: dict[str, str] | None = None) -> CheckResult:
    """One check alone, on its own requests and no server facts: what `evalkit run` asks before
    a run whose formats need it (`needs_check`), so that a server without the capability is one
    line, not a run of error samples."""
    check = next(c for c in CHECKS if c.name == name)
    exchanges = asyncio.run(_send_all(base_url, model, timeout_s, api_key, headers, list(check.requests)))
    status, detail = check.judge(exchanges, {})
    return CheckResult(name=name, status=status, detail=detail, evidence=list(exchanges.values()))


async def _send_all(base_url: str, model: str, timeout_s: float, api_key: str | None,
                    headers: dict[str, str] | None = None, requests: list[ProbeRequest] | None = None) -> Exchanges:
    client = make_openai_client(base_url, timeout_s, api_key, headers)
    done: Exchanges = {}
    try:
        for request in requests or planned_requests():  # one at a time: parity must not race another slot
            body: dict[str, Any] = {"model": model, **request.build(done), "temperature": 0, "seed": SEED,
                                    "max_tokens": MAX_TOKENS, "stream": request.stream}
            if request.stream:
                body["stream_options"] = {"include_usage": True}
            # Each request ends at the timeout, request to last byte, not only at a gap that long.
            done[request.name] = await send(client, request.name, body, timeout_s)
    finally:
        await client.close()
    return done


def _facts_evidence(raw: dict[str, Any]) -> list[Exchange]:
    out = []
    for label, body in raw.items():
        method, path = label.split(" ", 1)
        out.append(Exchange(name=label, method=method, path=path, http_status=200, raw=body))
    return out
