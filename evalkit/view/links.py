"""Where `evalkit view` listens by default, and the address of one case in it.

report.html links each failing case here; the viewer resolves the link against the runs it serves.
Imports nothing of evalkit's, so the report can use it without pulling in the server.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

HOST = "127.0.0.1"  # never another interface: run files hold prompts and replies
PORT = 8765


def case_url(run_id: str, suite: str, case_id: str, port: int = PORT) -> str:
    """The viewer's page for one case, opened with the run `run_id` highlighted."""
    return f"http://{HOST}:{port}/#case={quote(suite, safe='')}/{quote(case_id, safe='')}&run={quote(run_id, safe='')}"


def samples_url(port: int = PORT, **filters: str) -> str:
    """The viewer's samples table with these filters set (names as the table's: run, model,
    format, suite, tag, verdict, kind, syntax, cached, distractors, mode, q)."""
    return f"http://{HOST}:{port}/#" + urlencode(filters)
