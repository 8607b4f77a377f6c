"""Reports that answer "which model and which format should I deploy?".

- `write_run_report(run_dir)` -> (report.md, report.html), plus figures and leaderboard.csv beside them;
- `write_comparison(run_dirs, out_dir)` -> the same across several runs (models x formats);
- `recommend(run_dirs, min_accuracy=..., max_latency_p95=..., suites=...)` -> a `Recommendation`.
"""

from __future__ import annotations

from .build import build_report, load_run, write_comparison, write_report, write_run_report
from .recommend import Constraints, Recommendation, recommend

__all__ = [
    "Constraints", "Recommendation", "build_report", "load_run", "recommend", "write_comparison", "write_report",
    "write_run_report",
]
