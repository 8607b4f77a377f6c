"""`evalkit probe`: does a server keep its side of the tool-calling contract? (issue 14)

- checks: THE table of checks (name, requests, pure judge) and the requests they send
- wire: one request, its raw reply kept as evidence
- run: `run_probe(base_url, model) -> ProbeResult`
- the typed results (probe.json) are in evalkit/schema.py: ProbeResult, CheckResult, Exchange
- cli: the `evalkit probe` command
"""

from evalkit.probe.run import MAX_REQUESTS, run_probe
from evalkit.schema import CheckResult, Exchange, ProbeResult

__all__ = ["MAX_REQUESTS", "CheckResult", "Exchange", "ProbeResult", "run_probe"]
