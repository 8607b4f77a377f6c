"""Writing reports: report.md, failures.md, report.html, the figures (PNG) and leaderboard.csv.

`write_run_report(run_dir)` writes them into the run directory; `write_comparison(run_dirs,
out_dir)` does the same across several runs. The only module that imports the renderers.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from ..metrics import METRICS
from ..stopping.schedule import read_stopping
from ..rundir import read_header, write_atomic
from .build import Report, build_report, leaderboard_order
from .figures import make_figures
from .html import render_html
from .markdown import FAILURES_FILE, render_failures, render_markdown
from .model import Entry, load_run
from .recommend import Constraints


def leaderboard_csv(entries: Sequence[Entry]) -> str:
    """One row per model x format, in the order given (the report's leaderboard order), every metric
    at full precision."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["run_id", "model", "format"] + [c for m in METRICS for c in m.csv_columns])
    for entry in entries:
        row = [entry.run.run_id, entry.model, entry.format]
        row += [cell for m in METRICS for cell in m.cells(getattr(entry.overall, m.key))]
        writer.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
    return buffer.getvalue()


def write_report(report: Report, out_dir: Path | str) -> tuple[Path, Path]:
    """Write report.md, failures.md, report.html, the figures (PNG) and leaderboard.csv into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = make_figures(report)
    for figure in figures:
        write_atomic(out / figure.filename, figure.png)
    md_path, html_path = out / "report.md", out / "report.html"
    write_atomic(md_path, render_markdown(report, figures))
    write_atomic(out / FAILURES_FILE, render_failures(report))
    write_atomic(html_path, render_html(report, figures))
    write_atomic(out / "leaderboard.csv", leaderboard_csv(leaderboard_order(report)))
    return md_path, html_path


def write_run_report(run_dir: Path | str, out_dir: Path | str | None = None) -> tuple[Path, Path]:
    """One run's report, written into the run directory (or `out_dir`). Returns (md, html) paths."""
    run = load_run(run_dir)
    constraints, stopped = decided_by(run.path)
    return write_report(build_report([run], constraints=constraints, stopped=stopped),
                        out_dir if out_dir is not None else run.path)


def decided_by(run_dir: Path) -> tuple[Constraints | None, str | None]:
    """An --until-decided run's floor for the recommendation and the line saying why it stopped."""
    spec = read_header(run_dir).until_decided
    if spec is None:
        return None, None
    stopping = read_stopping(run_dir)
    return Constraints(min_accuracy=spec.min_accuracy), (f"--until-decided: {stopping.text}" if stopping else None)


def write_run_report_closing(run_dir: Path | str) -> list[str]:
    """Write one run's report into its directory; return the lines `evalkit run` ends with: each
    model's format verdict (one line each, the report's wording) and the path of report.html."""
    run = load_run(run_dir)
    constraints, stopped = decided_by(run.path)
    report = build_report([run], constraints=constraints, stopped=stopped)
    _md, html = write_report(report, run.path)
    verdicts = [f"{d.model_label}: {d.result.brief(d.reference.format, d.other.format)}" for d in report.differences]
    return verdicts + [f"report: {html}"]


def default_compare_dir() -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"compare-{stamp}"


def write_comparison(run_dirs: Sequence[Path | str], out_dir: Path | str | None = None) -> tuple[Path, Path]:
    """A side-by-side report over several runs (models x formats); the first run is the baseline
    that flipped cases are counted against. Returns (md, html) paths."""
    runs = [load_run(d) for d in run_dirs]
    return write_report(build_report(runs, comparison=True), out_dir if out_dir is not None else default_compare_dir())
