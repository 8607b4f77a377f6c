"""Peak memory of `evalkit run` against the number of samples (issue 16: memory roughly constant).

    python benchmarks/bench_memory.py [--samples 3000 30000] [--concurrency 16]

The scripted server runs in its own process; each `evalkit run` (with --no-report: the report is a
separate step that reads every sample by design) runs in a child process whose peak RSS is read
from the kernel (`wait4` rusage). `finalize` (samples.jsonl -> results.json) is then timed and
measured alone, in a fresh process, on the finished run directory.
Results go to benchmarks/results/memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "arithmetic.yaml"
CALL = ["compare_data", json.dumps({"num1": 8.9, "num2": 8.11})]
FINALIZE = "import sys; from pathlib import Path; from evalkit.rundir import finalize; finalize(Path(sys.argv[1]))"


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of a child process; fails on a non-zero exit."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed: {stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024  # KB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[3000, 30000])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--label", default="", help="a name for this measurement (e.g. before/after)")
    args = parser.parse_args()

    cases = sum(1 for line in SUITE.read_text().splitlines() if line.strip().startswith("- id:"))
    server = subprocess.Popen(
        [sys.executable, "-m", "evalkit.testing.scripted_server", "--content", "", "--tool-call", *CALL],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    results: dict[str, dict[str, float]] = {}
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "EVALKIT_CACHE_DIR": str(Path(tmp) / "cache")}
            for samples in args.samples:
                repeats = -(-samples // cases)
                out = Path(tmp) / f"runs-{samples}"
                wall, rss = measured(
                    [sys.executable, "-m", "evalkit", "run", "--base-url", base_url, "--model", "m", "--allow-unlisted",
                     "--suite",
                     str(SUITE), "--format", "native", "--repeats", str(repeats), "--concurrency",
                     str(args.concurrency), "--out", str(out), "--no-report", "--no-cache", "--quiet"],
                    env,
                )
                (run_dir,) = list(out.iterdir())
                written = sum(1 for _ in open(run_dir / "samples.jsonl", encoding="utf-8"))
                fin_wall, fin_rss = measured([sys.executable, "-c", FINALIZE, str(run_dir)], env)
                results[str(written)] = {
                    "run_wall_s": round(wall, 1), "run_peak_rss_mb": round(rss, 1),
                    "finalize_wall_s": round(fin_wall, 2), "finalize_peak_rss_mb": round(fin_rss, 1),
                    "samples_jsonl_mb": round((run_dir / "samples.jsonl").stat().st_size / 2**20, 1),
                }
                print(f"{written:>7} samples: run {wall:6.1f} s, peak RSS {rss:6.1f} MB; "
                      f"finalize alone {fin_wall:5.2f} s, peak RSS {fin_rss:6.1f} MB", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
    out_path = ROOT / "benchmarks" / "results" / "memory.json"
    stored = json.loads(out_path.read_text()) if out_path.exists() else {}
    stored[args.label or "latest"] = results
    out_path.write_text(json.dumps(stored, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
