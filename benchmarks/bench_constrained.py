"""Native, default, constrained (each envelope) and native + required side by side (issue 22):
call accuracy, malformed, did not call and called when it should not, per bundled model, over
every built-in single-turn suite, on the embedded engine; each model's options over the cases all
of them answered.

    python benchmarks/bench_constrained.py                      # the full table (a quiet machine: hours)
    python benchmarks/bench_constrained.py --limit 5 --suite weather --suite arithmetic --suite no_tool
    python benchmarks/bench_constrained.py --tabulate RUN_DIR...   # only the table, from runs (pooled per model x format)

Each model is one `evalkit run` (a run directory under --out; Ctrl-C and the same command again
resumes nothing: use `evalkit run --resume RUN_DIR`, then --tabulate). Accuracy does not depend on
the machine's load, only wall time does. Prints a Markdown table and writes
benchmarks/results/constrained.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from evalkit.engine.registry import BUNDLED
from evalkit.formats.constrained import DEFAULT_ENVELOPE, ENVELOPES
from evalkit.metrics import pct
from evalkit.report.compare import difference
from evalkit.report.model import Entry, case_key, load_run, make_entries
from evalkit.report.support import RATES, rate
from evalkit.suites import default_suites

RESULTS = Path(__file__).parent / "results" / "constrained.json"
FORMATS = ["native", "default", *(f"constrained+{name}" for name in ENVELOPES)]
TOOL_CHOICES = ["auto", "required"]  # native, and native+required
REFERENCE = f"constrained+{DEFAULT_ENVELOPE}"  # each model's other options are compared with it


def single_turn_suites() -> list[str]:
    """The built-in suites with no agent case and no MCP server."""
    return [s.suite.name for s in default_suites()
            if s.suite.mcp is None and all(c.mode == "single" for c in s.suite.cases)]


def run_model(model: str, suites: list[str], limit: int | None, out: Path, threads: int | None) -> Path:
    argv = [sys.executable, "-m", "evalkit", "run", "--model", model, "--out", str(out), "--no-report"]
    for suite in suites:
        argv += ["--suite", suite]
    for fmt in FORMATS:
        argv += ["--format", fmt]
    for choice in TOOL_CHOICES:
        argv += ["--tool-choice", choice]
    argv += ["--limit", str(limit)] if limit else []
    argv += ["--threads", str(threads)] if threads else []
    before = set(out.iterdir()) if out.is_dir() else set()
    subprocess.run(argv, check=True)
    (run_dir,) = set(out.iterdir()) - before
    return run_dir


def pool(entries: list[Entry]) -> Entry:
    """One model x format, pooled over the runs given (e.g. a subset measured in two runs)."""
    return replace(entries[0], samples=[s for e in entries for s in e.samples])


def row(pooled: Entry, runs: list[str]) -> dict:
    scored = [s for s in pooled.samples if s.error is None]
    return {
        "model": pooled.model, "format": pooled.format, "runs": runs, "n": len(scored),
        "correct": sum(1 for s in scored if s.call_correct),
        **{which.name: rate(pooled, which) for which in RATES},
    }


def table(rows: list[dict]) -> str:
    headers = ["model", "option", "call accuracy", *(which.name for which in RATES)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        accuracy = f"{r['correct']}/{r['n']} ({pct(r['correct'] / r['n'] if r['n'] else None, 0)})"
        lines.append("| " + " | ".join([r["model"], r["format"], accuracy, *(pct(r[w.name], 0) for w in RATES)]) + " |")
    return "\n".join(lines)


# Each comparison over every case, and over the cases that want no call (where constraining may
# push a model to call).
SUBSETS = {"all cases": lambda s: True, "no-call cases": lambda s: s.expected_calls == 0}


def versus(options: dict[tuple[str, str], Entry]) -> list[dict]:
    """Per model, the default envelope against every other option: McNemar's exact test on the
    paired cases (the cases all options answered), so each claim in docs/constrained.md reruns."""
    out = []
    for (model, fmt), other in sorted(options.items()):
        reference = options.get((model, REFERENCE))
        if reference is None or fmt == REFERENCE:
            continue
        for subset, keep in SUBSETS.items():
            d = difference([s for s in reference.samples if keep(s)], [s for s in other.samples if keep(s)],
                           REFERENCE, fmt)
            out.append({"model": model, "a": REFERENCE, "b": fmt, "subset": subset, "paired": d.paired,
                        "only_a": d.only_a, "only_b": d.only_b, "p": d.p_value,
                        "line": f"{model}, {subset}: {d.brief()}; {d.only_a} better, {d.only_b} worse"})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], help="default: every bundled Qwen model")
    parser.add_argument("--suite", action="append", default=[], help="default: every built-in single-turn suite")
    parser.add_argument("--limit", type=int, default=None, help="first N cases of each suite (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="embedded engine threads (default: all)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench-constrained"))
    parser.add_argument("--tabulate", nargs="+", type=Path, metavar="RUN_DIR", help="only tabulate these runs")
    args = parser.parse_args(argv)
    run_dirs = args.tabulate
    if not run_dirs:
        models = args.model or [name for name in BUNDLED if name.startswith("qwen")]
        suites = args.suite or single_turn_suites()
        run_dirs = [run_model(model, suites, args.limit, args.out, args.threads) for model in models]
    options: dict[tuple[str, str], list[Entry]] = {}
    for entry in make_entries([load_run(d) for d in run_dirs]):
        options.setdefault((entry.model, entry.format), []).append(entry)
    # Every option of a model on the same cases: those all of them answered (an interrupted run
    # leaves some options a case short).
    common: dict[str, set] = {}
    for (model, _fmt), entries in options.items():
        keys = {case_key(s) for e in entries for s in e.samples}
        common[model] = common[model] & keys if model in common else keys
    pooled = {key: pool([replace(e, samples=[s for s in e.samples if case_key(s) in common[key[0]]]) for e in entries])
              for key, entries in options.items()}
    rows = [row(pooled[key], [e.run.run_id for e in options[key]]) for key in sorted(pooled)]
    pairs = versus(pooled)
    print(table(rows))
    print()
    print("\n".join(p["line"] for p in pairs))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"runs": [str(d) for d in run_dirs], "rows": rows, "versus": pairs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
