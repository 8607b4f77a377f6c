"""`evalkit probe`: does a server keep its side of the tool-calling contract? (issue 14)

- checks: THE table of checks (name, requests, pure judge) and the requests they send
- wire: one request, its raw reply kept as evidence
- run: `run_probe(base_url, model) -> ProbeResult`
- the typed results (probe.json) are in evalkit/schema.py: ProbeResult, CheckResult, Exchange
- cli: the `evalkit probe` command
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evalkit.schema import CheckResult, Exchange, ProbeResult

if TYPE_CHECKING:
    from evalkit.probe.run import MAX_REQUESTS, run_probe

__all__ = ["MAX_REQUESTS", "CheckResult", "Exchange", "ProbeResult", "run_probe"]

# Loaded when first used: every evalkit command imports probe.cli (and so this package), and the
# probe's checks and wire are not needed to start `evalkit run`.
_FROM = {"MAX_REQUESTS": "run", "run_probe": "run"}


def __getattr__(name: str) -> Any:
    if name not in _FROM:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_FROM[name]}"), name)
