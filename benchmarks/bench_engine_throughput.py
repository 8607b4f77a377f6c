"""evalkit's throughput against the embedded engine, over the server's own best (issue 7).

    python benchmarks/bench_engine_throughput.py [--model qwen2.5-coder-0.5b] [--slots 4]

"Direct" fires the same requests straight at the server with the raw openai client, `slots`
at a time, which is the best the server can do; "evalkit" runs them through the harness with
`--concurrency slots`. The ratio is evalkit's samples/s over direct samples/s (target >= 0.9).
Run it on a quiet machine: llama.cpp's threads spin, so any other load skews both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evalkit.engine.pull import ensure_model  # noqa: E402
from evalkit.engine.server import EmbeddedEngine  # noqa: E402
from evalkit.formats import get_format  # noqa: E402
from evalkit.dispatch import run_jobs  # noqa: E402
from evalkit.jobs import Endpoint, RunContext, plan, request_params  # noqa: E402
from evalkit.schema import Settings  # noqa: E402
from evalkit.suites import read_suite  # noqa: E402


def make_jobs(suite: str, fmt: str):
    return plan([read_suite(ROOT / "suites" / f"{suite}.yaml")], [fmt], 1)


async def direct(base_url: str, payloads: list[dict], slots: int) -> float:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=600)
    gate = asyncio.Semaphore(slots)

    async def one(payload: dict) -> None:
        async with gate:
            stream = await client.chat.completions.create(**payload, stream=True)
            async for _ in stream:
                pass

    start = time.perf_counter()
    await asyncio.gather(*(one(p) for p in payloads))
    elapsed = time.perf_counter() - start
    await client.close()
    return elapsed


def through_evalkit(base_url: str, jobs, settings: Settings) -> float:
    ctx = RunContext(model="bench", settings=settings)
    samples: list = []
    start = time.perf_counter()
    asyncio.run(run_jobs(jobs, [Endpoint(base_url, settings.concurrency)], ctx, samples.append))
    elapsed = time.perf_counter() - start
    assert not any(s.error for s in samples), [s.error for s in samples if s.error][:3]
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--suite", default="arithmetic")
    parser.add_argument("--format", default="native")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()

    settings = Settings(concurrency=args.slots, max_tokens=args.max_tokens, retries=0, timeout_s=600)
    jobs = make_jobs(args.suite, args.format)
    ctx = RunContext(model="bench", settings=settings)
    fmt = get_format(args.format)
    payloads = [
        request_params(ctx, fmt, [m.model_dump(exclude_none=True) for m in j.case.messages], j.loaded.suite.tools_for(j.case))
        for j in jobs
    ]
    path = ensure_model(args.model)
    rows = []
    with EmbeddedEngine(path, n_ctx=2048, n_parallel=args.slots) as engine:
        asyncio.run(direct(engine.base_url, payloads[:4], args.slots))  # warm up
        through_evalkit(engine.base_url, jobs[:4], settings)
        for trial in range(args.trials):
            # Alternate who goes first: llama.cpp's per-slot prompt cache favours whoever repeats
            # a prompt the other just sent.
            if trial % 2 == 0:
                d = asyncio.run(direct(engine.base_url, payloads, args.slots))
                e = through_evalkit(engine.base_url, jobs, settings)
            else:
                e = through_evalkit(engine.base_url, jobs, settings)
                d = asyncio.run(direct(engine.base_url, payloads, args.slots))
            rows.append({"trial": trial, "direct_s": d, "evalkit_s": e, "ratio": d / e})
            print(f"trial {trial}: direct {len(jobs) / d:.2f} samples/s, evalkit {len(jobs) / e:.2f} samples/s, "
                  f"ratio {d / e:.3f}")
    best = {"direct_samples_per_s": max(len(jobs) / r["direct_s"] for r in rows),
            "evalkit_samples_per_s": max(len(jobs) / r["evalkit_s"] for r in rows)}
    best["ratio"] = best["evalkit_samples_per_s"] / best["direct_samples_per_s"]
    best["median_trial_ratio"] = sorted(r["ratio"] for r in rows)[len(rows) // 2]
    result = {"model": args.model, "slots": args.slots, "samples": len(jobs), "trials": rows, "best": best}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "engine_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(best, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
