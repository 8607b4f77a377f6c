"""What served a run, in a few words for the Runs table, and its probe (`run --probe`) for the
report's Server probe section. Read from header.json and probe.json only.

Headers written before the header kept typed facts hold the raw /v1/models and /props bodies in
`server`; `engine.facts.stored_facts` reads those with the same readers as a live server.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.facts import stored_facts
from ..probe.checks import CHECKS
from ..schema import Header, ProbeResult, ServerFacts
from .model import Run

MEANINGS = {c.name: c.meaning for c in CHECKS}


@dataclass
class Identity:
    """Three short cells of the Runs table; "-" where nothing is known."""

    server: str
    model: str
    machine: str


def serving_of(header: Header) -> ServerFacts | None:
    if header.serving is not None:
        return header.serving
    facts = stored_facts(header.server, header.base_url, header.model) if header.server else None
    return ServerFacts.model_validate(facts) if facts else None


def count(n: int | None) -> str | None:
    """630167424 -> "630M", 8030261248 -> "8.0B"."""
    if not n:
        return None
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            value = n / size
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
    return str(n)


def identity(run: Run) -> Identity:
    h = run.header
    s = serving_of(h)
    return Identity(_server_text(s), _model_text(h, s), _machine_text(h, s))


def _server_text(s: ServerFacts | None) -> str:
    if s is None or (s.kind == "unknown" and not s.build):
        return "-"
    parts = [" ".join(p for p in (s.kind, s.build) if p)]
    if s.tool_call_format:
        parts.append(f"format {s.tool_call_format}")
    if s.template_sha256:
        parts.append(f"template {s.template_sha256[:8]}")
    return ", ".join(parts)


def _model_text(h: Header, s: ServerFacts | None) -> str:
    parts: list[str] = []
    if h.model_served_ids and h.model not in h.model_served_ids:
        parts.append(f"not among the served ({', '.join(h.model_served_ids[:3])})")
    m = s.model if s else None
    if m is not None:
        if m.id and m.id != h.model:
            parts.append(f"served as {m.id}")
        params = count(m.parameter_count) or m.parameter_label
        parts += [p for p in (m.quantization, f"{params} params" if params else None) if p]
        if m.context_length or m.context_length_train:
            trained = f" (trained {m.context_length_train})" if m.context_length_train else ""
            parts.append(f"ctx {m.context_length or '?'}{trained}")
    return ", ".join(parts) or "-"


def _machine_text(h: Header, s: ServerFacts | None) -> str:
    mc = h.machine
    parts: list[str] = []
    if mc is not None:
        if mc.local:
            cpu = mc.cpu_model or "CPU ?"
            parts.append(f"{cpu} x{mc.cpu_cores}" if mc.cpu_cores else cpu)
        else:
            parts.append("remote")
        parts.append({True: "GPU", False: "CPU only", None: "GPU ?"}[mc.gpu])
        if mc.engine_threads:
            parts.append(f"{mc.engine_threads} threads")
    if s is not None and s.slots:
        parts.append(f"{s.slots} slots")
    endpoints = len(h.base_urls) if len(h.base_urls) > 1 else 1
    parts.append(f"concurrency {h.settings.concurrency}" + (f" x {endpoints} endpoints" if endpoints > 1 else ""))
    return ", ".join(parts)


@dataclass
class ProbeView:
    """One run's probe as the report shows it: the counts line and a row per check."""

    run: Run
    result: ProbeResult
    rows: list[tuple[str, str, str]]  # check, status, detail

    @property
    def line(self) -> str:
        r = self.result
        counts = r.summary()
        return (f"`evalkit probe` of {r.model} at {r.base_url} before run {self.run.run_id} ({r.started_at}): "
                f"{counts['pass']} pass, {counts['fail']} fail, {counts['unsupported']} unsupported; "
                f"{r.requests} requests in {r.elapsed_s:.1f} s.")


def probe_views(runs: list[Run]) -> list[ProbeView]:
    return [ProbeView(run, run.probe, [(c.name, c.status, c.detail) for c in run.probe.checks])
            for run in runs if run.probe is not None]


PROBE_NOTE = ("Each check asks the server one thing of the tool-calling contract; a detail ending in (server) "
              "or (model) says whose fault a failure is. Full requests and raw replies are in probe.json.")


def probe_meanings(views: list[ProbeView]) -> list[tuple[str, str]]:
    """(check, what it means) for every check the shown probes ran, in the probe's order: the
    legend under the Server probe tables of report.md and report.html alike."""
    ran = {row[0] for view in views for row in view.rows}
    return [(name, meaning) for name, meaning in MEANINGS.items() if name in ran]
