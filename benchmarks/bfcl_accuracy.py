"""BFCL accuracies of evalkit runs, per category, next to BFCL's published figures.

    python benchmarks/bfcl_accuracy.py reports/measured/RUN_DIR [...]

Prints the Markdown table of docs/bfcl.md: one row per BFCL category, one column per model x
format measured (evalkit's strict call accuracy and n; the irrelevance categories also by BFCL's
rule, where an attempt that does not decode counts as abstaining), then the published columns.
Numbers are recomputed from each run's samples.jsonl.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evalkit.aggregate import ALL, aggregate  # noqa: E402
from evalkit.bfcl import CATEGORIES  # noqa: E402
from evalkit.rundir import latest_samples, read_header  # noqa: E402
from evalkit.schema import Aggregate  # noqa: E402

IRRELEVANCE = ("irrelevance", "live_irrelevance")

# Published figures (%) for the nearest models: Qwen2.5-*-Instruct, not the Coder variants bundled
# here. simple_python: the issue (FC) and the Bielik v3 report's BFCL table (1.5B Prompt). The
# rest: the BFCL paper (Patil et al., ICML 2025), Table 1; its "Irrelevance" column is the
# hallucination measure, put under `irrelevance` here. Empty where no figure was found offline.
PUBLISHED: dict[str, dict[str, float]] = {
    "Qwen2.5-0.5B-Instruct (FC)": {
        "simple_python": 81.5, "multiple": 78.0, "parallel": 60.0, "parallel_multiple": 50.0,
        "irrelevance": 46.2, "live_simple": 56.2, "live_multiple": 41.3, "live_parallel": 56.2,
        "live_parallel_multiple": 20.8,
    },
    "Qwen2.5-0.5B-Instruct (Prompt)": {
        "multiple": 68.0, "parallel": 53.5, "parallel_multiple": 33.0, "irrelevance": 16.4,
        "live_simple": 53.9, "live_multiple": 34.8, "live_parallel": 56.2, "live_parallel_multiple": 16.7,
    },
    "Qwen2.5-1.5B-Instruct (FC)": {
        "simple_python": 92.25, "multiple": 87.0, "parallel": 81.5, "parallel_multiple": 75.5,
        "irrelevance": 62.7, "live_simple": 74.0, "live_multiple": 66.1, "live_parallel": 50.0,
        "live_parallel_multiple": 45.8,
    },
    "Qwen2.5-1.5B-Instruct (Prompt)": {
        "simple_python": 89.0, "multiple": 86.0, "parallel": 70.0, "parallel_multiple": 66.5,
        "irrelevance": 63.0, "live_simple": 70.5, "live_multiple": 59.3, "live_parallel": 56.2,
        "live_parallel_multiple": 41.7,
    },
}  # fmt: skip


def run_aggregates(run_dir: Path) -> list[Aggregate]:
    # Recomputed from samples.jsonl, so runs made before a metric existed (e.g. the BFCL-rule
    # no-call figure) get it too; for newer runs this equals results.json.
    header = read_header(run_dir)
    return [a for a in aggregate(latest_samples(run_dir), header.run_id, header.model).aggregates if a.tag is None]


def pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f}"


def cell(agg: Aggregate | None) -> str:
    if agg is None or agg.call_accuracy is None:
        return ""
    text = f"{pct(agg.call_accuracy)} ({agg.n})"
    if agg.suite.removeprefix("bfcl_") in IRRELEVANCE and agg.no_call_accuracy_bfcl is not None:
        text += f" · BFCL rule {pct(agg.no_call_accuracy_bfcl)}"
    return text


def table(run_dirs: list[Path]) -> str:
    """Categories down, one column per model x format measured, then the published columns."""
    columns: list[tuple[str, dict[str, Aggregate]]] = []
    for run_dir in run_dirs:
        aggs = run_aggregates(run_dir)
        for fmt in sorted({a.format for a in aggs}):
            by_suite = {a.suite: a for a in aggs if a.format == fmt}
            columns.append((f"{by_suite[ALL].model} `{fmt}`", by_suite))
    head = ["category", *(name for name, _ in columns), *(f"{name}, published" for name in PUBLISHED)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for category in CATEGORIES:
        measured = [cell(by_suite.get(f"bfcl_{category}")) for _, by_suite in columns]
        published = [f"{figures[category]:g}" if category in figures else "" for figures in PUBLISHED.values()]
        lines.append(f"| {category} | " + " | ".join(measured + published) + " |")
    totals = []
    for _, by_suite in columns:
        overall, ci = by_suite[ALL], by_suite[ALL].call_accuracy_ci95
        totals.append(f"**{pct(overall.call_accuracy)}** ({overall.n}; 95% CI {pct(ci.low)}-{pct(ci.high)})" if ci else "")
    lines.append("| all sampled | " + " | ".join(totals + [""] * len(PUBLISHED)) + " |")
    intents = [pct(by_suite[ALL].intent_accuracy) for _, by_suite in columns]
    lines.append("| all sampled, intent (lenient) | " + " | ".join(intents + [""] * len(PUBLISHED)) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    print(table([Path(a) for a in argv]))
    print("\nCells: strict call accuracy % (n). Irrelevance cells add BFCL's rule, where a reply whose call "
          "attempt does not decode counts as a correct abstention.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
