"""`evalkit view` at BFCL scale: how long indexing a 30,000-sample run takes, what one filtered,
sorted, searched page and one case cost, and the memory the index holds.

    python benchmarks/bench_view.py              # 30,000 samples
    python benchmarks/bench_view.py --samples 3000

The run: the measured BFCL run's samples (reports/measured/20261123-181700-...-d9d5, 200 real
replies with their full requests) repeated under new case ids up to --samples, in a temporary
directory. Times are wall clock on whatever load the machine has (recorded beside them);
results go to benchmarks/results/view.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from evalkit.view.detail import case_detail
from evalkit.view.index import build_index

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "reports" / "measured" / "20261123-181700-qwen2.5-coder-0.5b-d9d5"


def make_run(directory: Path, samples: int) -> Path:
    run = directory / "big"
    run.mkdir()
    shutil.copy(SOURCE / "header.json", run / "header.json")
    lines = (SOURCE / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    with open(run / "samples.jsonl", "w", encoding="utf-8") as handle:
        for number in range(samples):
            data = json.loads(lines[number % len(lines)])
            data["case_id"] = f"{data['case_id']}-{number}"
            handle.write(json.dumps(data) + "\n")
    return run


def timed(work):
    start = time.perf_counter()
    value = work()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp), args.samples)
        size_mb = (run / "samples.jsonl").stat().st_size / 1e6
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        index, index_s = timed(lambda: build_index([run]))
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        page, query_s = timed(lambda: index.query({"kind": "malformed", "sort": "latency_s", "desc": "1",
                                                   "q": "weather", "limit": "100"}))
        row = index.rows[len(index.rows) // 2]
        _case, case_s = timed(lambda: case_detail(index, row["suite"], row["case_id"]))
    result = {
        "samples": args.samples, "samples_jsonl_mb": round(size_mb, 1), "index_s": round(index_s, 2),
        "filtered_sorted_searched_page_s": round(query_s, 4), "matching": page["total"],
        "open_case_s": round(case_s, 4), "peak_rss_growth_mb": round((rss_after - rss_before) / 1024, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results" / "view.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
