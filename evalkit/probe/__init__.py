"""`evalkit probe`: does a server keep its side of the tool-calling contract? (issue 14)

- checks: THE table of checks (name, requests, pure judge) and the requests they send
- wire: one request, its raw reply kept as evidence
- run: `run_probe(base_url, model) -> ProbeResult`
- result: the typed results (probe.json)
- cli: the `evalkit probe` command
"""

from evalkit.probe.result import CheckResult, Exchange, ProbeResult
from evalkit.probe.run import MAX_REQUESTS, run_probe

__all__ = ["MAX_REQUESTS", "CheckResult", "Exchange", "ProbeResult", "run_probe"]
