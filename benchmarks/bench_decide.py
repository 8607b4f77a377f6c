"""Deciding sooner (issue 25): prompt tokens served from llama.cpp's cache before and after
cache-aware scheduling, and wall time to the same decision, fixed run vs --until-decided.

    python benchmarks/bench_decide.py cache  [--limit 2] [--slots 2] [--threads N]
    python benchmarks/bench_decide.py decide [--threads N] [--only native-vs-default|0.5b-vs-1.5b] [--sample N] [--keep DIR]
    python benchmarks/bench_decide.py builtin [--threads N]

`cache`: the built-in single-turn suites (first --limit cases of each, native and default) on the
embedded 0.5B, twice, each time on a fresh engine with the response cache off:
  before  the plan's order (cases interleave the formats) and llama.cpp choosing the slot;
  after   evalkit.slots: jobs grouped by prefix, each worker pinned to its slot (id_slot).
It counts llama.cpp's own `timings` of every reply: `prompt_n` (prompt tokens evaluated) and
`cache_n` (served from the slot's cache). The counts do not depend on machine load (the order of
completions can, a little, with several slots); wall times do.

`decide`: wall time and cases to the decision through the real CLI (`evalkit run`), fixed vs
--until-decided (--min-accuracy 0: the question is which option, not whether one is good enough):
  native-vs-default   --model qwen2.5-coder-0.5b --format native --format default
  0.5b-vs-1.5b        --model qwen2.5-coder-0.5b --model qwen2.5-coder-1.5b --format default
Both need the bundled models (`evalkit pull`). Hours on a CPU; needs a quiet machine.

`builtin`: the whole built-in run (every built-in suite, native and default, as `evalkit run
--model qwen2.5-coder-0.5b` runs it, --no-cache) before and after the scheduling change, through
the same API as `cache` (the "before" order and slot choice are not reachable from the CLI any
more). An agent sample keeps the timings of its last request only, so its token split is partial.

Results go to benchmarks/results/decide.json (merged by part). Timings are only meaningful on a
quiet machine: llama.cpp's threads spin, and another busy process slows them 5-30x.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evalkit.dispatch import run_jobs  # noqa: E402
from evalkit.engine.pull import ensure_model  # noqa: E402
from evalkit.engine.server import EmbeddedEngine  # noqa: E402
from evalkit.jobs import Endpoint, RunContext, plan  # noqa: E402
from evalkit.schema import Settings  # noqa: E402
from evalkit.suites import default_suites  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "decide.json"
MODEL = "qwen2.5-coder-0.5b"


def saved() -> dict:
    return json.loads(OUT.read_text()) if OUT.is_file() else {}


def save(part: str, result: dict) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({**saved(), part: result}, indent=2) + "\n")


def earlier(part: str) -> dict:
    """The figures a part saved before (a variant or scenario not run again keeps them)."""
    return saved().get(part, {})


def load() -> float:
    return os.getloadavg()[0]


# ---------------------------------------------------------------- cache: tokens evaluated vs served


def token_split(samples) -> dict:
    evaluated = cached = replies = 0
    for s in samples:
        timings = (s.raw or {}).get("timings") or {}
        if "prompt_n" in timings:
            evaluated += int(timings["prompt_n"])
            cached += int(timings.get("cache_n") or 0)
            replies += 1
    total = evaluated + cached
    return {"replies": replies, "prompt_tokens": total, "evaluated": evaluated, "from_cache": cached,
            "share_from_cache": round(cached / total, 4) if total else None}


def run_variant(jobs, slots: int, threads: int | None, max_tokens: int, scheduled: bool, n_ctx: int) -> dict:
    # retries as a run's default: llama.cpp closes idle keep-alive connections, and a request
    # written to one that just closed fails before any answer (evalkit retries it).
    settings = Settings(concurrency=slots, max_tokens=max_tokens, retries=2, timeout_s=900, deadline_s=3600)
    ctx = RunContext(model=MODEL, settings=settings, pinned_slots=slots if scheduled else None)
    samples: list = []
    with EmbeddedEngine(ensure_model(MODEL), n_ctx=n_ctx, n_parallel=slots, n_threads=threads) as engine:
        start = time.perf_counter()
        if scheduled:  # what a run does now: lanes of prefix groups (run_jobs), each worker on its slot
            asyncio.run(run_jobs(jobs, [Endpoint(engine.base_url, slots)], ctx, samples.append))
        else:  # before: the plan's order from one shared queue, llama.cpp choosing the slot
            asyncio.run(shared_queue(jobs, engine.base_url, slots, ctx, samples.append))
        wall = time.perf_counter() - start
    errors = [s.error for s in samples if s.error]
    return {**token_split(samples), "samples": len(samples), "errors": len(errors),
            "error_kinds": sorted({e[:120] for e in errors})[:5], "wall_s": round(wall, 1)}


async def shared_queue(jobs, base_url: str, slots: int, ctx: RunContext, on_sample) -> None:
    """The scheduling before issue 25: `slots` workers taking the plan's jobs in order from one
    queue, no slot pinning (ctx.pinned_slots None); the sample itself is made as a run makes it."""
    from evalkit.client import make_client
    from evalkit.dispatch import run_job

    endpoint = Endpoint(base_url, slots, client=make_client(base_url, ctx.settings.timeout_s, connections=slots))
    queue = list(jobs)

    async def worker() -> None:
        while queue:
            on_sample(await run_job(queue.pop(0), endpoint, ctx))

    try:
        await asyncio.gather(*(worker() for _ in range(slots)))
    finally:
        await endpoint.client.close()


def cache_part(args: argparse.Namespace) -> None:
    suites = [s for s in default_suites() if not any(c.mode == "agent" for c in s.suite.cases)
              and s.suite.mcp is None] if args.suites is None else \
        [s for s in default_suites() if s.suite.name in args.suites]
    jobs = [j for j in plan(suites, ["native", "default"], 1, limit=args.limit) if j.case.mode == "single"]
    print(f"{len(jobs)} samples from {len(suites)} suites; load {load():.1f}", file=sys.stderr)
    result = {**earlier("cache"), "model": MODEL, "slots": args.slots, "threads": args.threads, "limit": args.limit,
              "suites": [s.suite.name for s in suites], "load_before": round(load(), 2)}
    for name, scheduled in (("before", False), ("after", True)):
        if name not in args.variants:
            continue
        result[name] = run_variant(jobs, args.slots, args.threads, args.max_tokens, scheduled, args.ctx)
        print(name, json.dumps(result[name]), file=sys.stderr)
    result["load_after"] = round(load(), 2)
    save("cache", result)
    print(json.dumps(result, indent=2))


# ---------------------------------------------------------------- decide: fixed vs --until-decided


SCENARIOS = {
    "native-vs-default": ["--model", MODEL, "--format", "native", "--format", "default"],
    "0.5b-vs-1.5b": ["--model", MODEL, "--model", "qwen2.5-coder-1.5b", "--format", "default"],
}


def cli_run(argv: list[str], out: Path) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "evalkit", "run", *argv, "--out", str(out), "--no-cache", "--quiet"],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"evalkit run {' '.join(argv)} failed: {proc.stderr.strip()[-500:]}")
    (directory,) = [p for p in out.iterdir() if p.is_dir()]
    # The decision, the same way for both: the card over the cases run, with no accuracy floor.
    card = subprocess.run([sys.executable, "-m", "evalkit", "recommend", str(directory), "--min-accuracy", "0"],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = card.stdout.splitlines()
    recommended = next((line for line in lines if line.startswith(("Recommended:", "None is", "A tie"))), None)
    decision = directory / "decision.json"
    stopped = json.loads(decision.read_text()) if decision.is_file() else None
    # The whole card too: on a close call the deciding criterion (or its absence) is the story.
    return {"wall_s": round(wall, 1), "recommended": recommended, "card": lines, "stopped": stopped,
            "directory": str(directory)}


def decide_part(args: argparse.Namespace) -> None:
    extra = ["--threads", str(args.threads)] if args.threads else []
    # --sample N: N cases drawn from each built-in suite (the same for both runs), so the fixed run
    # fits a session; the decision question is the same, only the pool of cases is smaller.
    extra += ["--sample", str(args.sample)] if args.sample else []
    results = earlier("decide")  # --only: the other scenario keeps its earlier figures
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    for name, argv in SCENARIOS.items():
        if args.only and name != args.only:
            continue
        # --keep DIR: the runs stay (their cards can be read again: a close call's tie-break is
        # worth reading), each scenario in a fresh folder under DIR.
        with (contextlib.nullcontext(tempfile.mkdtemp(prefix=f"{name}-", dir=args.keep)) if args.keep
              else tempfile.TemporaryDirectory()) as tmp:
            base = Path(tmp)
            fixed = cli_run(argv + extra, base / "fixed")
            until = cli_run(argv + extra + ["--until-decided", "--min-accuracy", "0"], base / "until")
        results[name] = {"fixed": fixed, "until_decided": until, "load": round(load(), 2), "sample": args.sample,
                         "time_saved": round(1 - until["wall_s"] / fixed["wall_s"], 3)}
        print(name, json.dumps(results[name], indent=2))
    save("decide", results)


def builtin_part(args: argparse.Namespace) -> None:
    suites = default_suites()
    jobs = plan(suites, ["native", "default"], 1)
    result = {"samples": len(jobs), "load_before": round(load(), 2)}
    for name, scheduled in (("before", False), ("after", True)):
        result[name] = run_variant(jobs, args.slots, args.threads, 512, scheduled, args.ctx)
        print(name, json.dumps(result[name]), file=sys.stderr)
    result["load_after"] = round(load(), 2)
    save("builtin", result)
    print(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["cache", "decide", "builtin"])
    parser.add_argument("--limit", type=int, default=2, help="cache: cases per suite")
    parser.add_argument("--suites", nargs="*", default=None, help="cache: these built-in suites (default: single-turn)")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=64,
                        help="cache: longest reply (the prompt counts do not depend on it)")
    parser.add_argument("--only", choices=list(SCENARIOS), default=None)
    parser.add_argument("--sample", type=int, default=None, help="decide: cases drawn per suite (default: all)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="decide: keep the run directories under DIR (default: deleted)")
    parser.add_argument("--variants", nargs="+", choices=["before", "after"], default=["before", "after"],
                        help="cache: which to run (a variant not run keeps its earlier figures)")
    args = parser.parse_args()
    {"cache": cache_part, "decide": decide_part, "builtin": builtin_part}[args.part](args)


if __name__ == "__main__":
    main()
