"""Harness benchmarks (issue 7): overhead per sample, concurrency vs a naive loop, cache replay.

    python benchmarks/bench_harness.py [--samples 200]

The scripted server runs in its own process so its CPU time is not charged to evalkit.
Results go to benchmarks/results/harness.json and are printed as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evalkit.dispatch import run_jobs  # noqa: E402
from evalkit.jobs import Endpoint, RunContext, plan  # noqa: E402
from evalkit.schema import Settings  # noqa: E402
from evalkit.suites import read_suite  # noqa: E402

SUITE = ROOT / "suites" / "arithmetic.yaml"
CALL = ["compare_data", json.dumps({"num1": 8.9, "num2": 8.11})]


@contextmanager
def server_process(delay: float) -> Iterator[str]:
    command = [sys.executable, "-m", "evalkit.testing.scripted_server", "--delay", str(delay), "--content", "",
               "--tool-call", *CALL]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


def jobs_for(samples: int):
    loaded = read_suite(SUITE)
    per_round = len(loaded.suite.cases)
    repeats = max(1, -(-samples // per_round))
    return plan([loaded], ["native"], repeats)[:samples]


def evalkit_run(base_url: str, jobs, concurrency: int, cache=None, stream: bool = True) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for evalkit to run the jobs."""
    settings = Settings(concurrency=concurrency, stream=stream, retries=0)
    ctx = RunContext(model="bench", settings=settings, cache=cache)
    sink: list = []
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(run_jobs(jobs, [Endpoint(base_url, concurrency)], ctx, sink.append))
    assert len(sink) == len(jobs) and not any(s.error for s in sink), "benchmark run had errors"
    return time.perf_counter() - wall, time.process_time() - cpu


def client_only(base_url: str, jobs) -> tuple[float, float]:
    """The openai client's own cost for the same streamed requests, one after another."""
    from evalkit.formats import get_format
    from evalkit.jobs import tool_payload

    fmt = get_format("native")

    async def go() -> None:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
        for job in jobs:
            request = fmt.build_request([m.model_dump(exclude_none=True) for m in job.case.messages],
                                        tool_payload(job.loaded.suite.tools_for(job.case)))
            stream = await client.chat.completions.create(model="bench", stream=True, **request)
            async for _ in stream:
                pass
        await client.close()

    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(go())
    return time.perf_counter() - wall, time.process_time() - cpu


def naive_loop(base_url: str, jobs) -> float:
    """The tutorial loop: a blocking client, one request after another."""
    client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
    start = time.perf_counter()
    for job in jobs:
        tools = [t.model_dump(mode="json", exclude_none=True) for t in job.loaded.suite.tools_for(job.case)]
        messages = [m.model_dump(exclude_none=True) for m in job.case.messages]
        client.chat.completions.create(model="bench", messages=messages, tools=tools)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--concurrency-samples", type=int, default=80)
    args = parser.parse_args()
    results: dict[str, float] = {}

    jobs = jobs_for(args.samples)
    with server_process(0.0) as url:
        evalkit_run(url, jobs[:20], 1)  # warm up imports and connections
        client_only(url, jobs[:20])
        _, base_cpu = client_only(url, jobs)
        _, ek_cpu = evalkit_run(url, jobs, 1)
    results["client_cpu_ms_per_sample"] = 1000 * base_cpu / len(jobs)
    results["evalkit_cpu_ms_per_sample"] = 1000 * ek_cpu / len(jobs)
    results["overhead_cpu_ms_per_sample"] = 1000 * (ek_cpu - base_cpu) / len(jobs)

    cjobs = jobs_for(args.concurrency_samples)
    with server_process(0.05) as url:
        loop_wall = naive_loop(url, cjobs)
        ek_wall, _ = evalkit_run(url, cjobs, 8)
        ek_wall_nostream, _ = evalkit_run(url, cjobs, 8, stream=False)
        from evalkit.cache import ResponseCache

        with tempfile.TemporaryDirectory() as tmp:
            cache = ResponseCache(Path(tmp) / "cache.sqlite")
            first, _ = evalkit_run(url, cjobs, 1, cache)
            second, _ = evalkit_run(url, cjobs, 1, cache)
            cache.close()
    results["naive_loop_samples_per_s"] = len(cjobs) / loop_wall
    results["evalkit_c8_samples_per_s"] = len(cjobs) / ek_wall
    results["speedup_vs_naive_loop"] = loop_wall / ek_wall
    results["evalkit_c8_no_stream_samples_per_s"] = len(cjobs) / ek_wall_nostream
    results["speedup_no_stream_vs_naive_loop"] = loop_wall / ek_wall_nostream
    results["cache_first_run_s"] = first
    results["cache_second_run_s"] = second
    results["cache_second_over_first"] = second / first

    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "harness.json").write_text(json.dumps(results, indent=2) + "\n")
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value:10.3f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
