"""Harness overhead (issue 17): does evalkit keep every server slot busy, and at what CPU cost?

    python benchmarks/bench_overhead.py            # the grid below, 3 rounds each, medians
    python benchmarks/bench_overhead.py --quick    # a check that it works: 120 samples, 1 round

The workload: N identical single-turn tool-call samples (one arithmetic case with the suite's
five tools, N times under different ids; native format), against the scripted server in its own
process answering every request with the same tool call after `delay` seconds, at delays 0, 5
and 50 ms and 8 and 64 connections, non-streamed and streamed. The response cache is off
(identical requests would be answered from it), and so are the reports (`--no-report`).

What is measured, for evalkit run as the real command (`python -m evalkit.cli run ...`) in a
child process, so that only the harness is charged:
- wall: from spawning the command to its exit (results.json written, summary printed);
- start-up: from spawning it to the server's first chat request (the server's --stats-file);
- ideal: N x delay / connections, the time the server alone needs;
- CPU: the child's user + system time (rusage), per sample; and the marginal CPU per sample,
  (CPU(N) - CPU(N/10)) / (N - N/10), which leaves out what a run costs once (start-up,
  results.json) whatever its size.
When inspect_ai is importable (by this Python, or by --inspect-python), the same workload runs
through `inspect eval` against the same server, non-streamed, as the peer figure.

Every configuration runs --rounds times; the table shows medians. On a shared machine wall
times vary with the load, which is recorded (os.getloadavg) beside the results. Results go to
benchmarks/results/overhead.json, and a markdown table is printed for README.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCE_SUITE = ROOT / "suites" / "arithmetic.yaml"
CASE_ID = "compare-8.9-8.11-en"
CALL = ("compare_data", json.dumps({"num1": 8.9, "num2": 8.11}))
MODEL = "scripted-model"

# The targets ("Must show").
WALL_TARGET = 1.3  # (wall - start-up) / ideal at 50 ms and 8 connections
CPU_TARGET_MS = 1.5  # harness CPU per sample at 0 ms and 64 connections
STARTUP_TARGET_S = 0.5  # start-up to the first request


def write_suite(path: Path, n: int) -> dict[str, Any]:
    """N copies of one case of the arithmetic suite, as JSONL; returns the case."""
    source = yaml.safe_load(SOURCE_SUITE.read_text(encoding="utf-8"))
    case = next(c for c in source["cases"] if c["id"] == CASE_ID)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"name": "overhead", "tools": source["tools"]}) + "\n")
        for i in range(n):
            handle.write(json.dumps({**case, "id": f"overhead-{i:05d}"}) + "\n")
    return {"case": case, "tools": source["tools"]}


@contextmanager
def scripted_server(delay: float, stats: Path) -> Iterator[str]:
    command = [sys.executable, "-m", "evalkit.testing.scripted_server", "--delay", str(delay), "--content", "",
               "--tool-call", *CALL, "--model", MODEL, "--stats-file", str(stats)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("the scripted server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def timed_child(command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> tuple[float, float, float, int]:
    """(spawn instant as time.time(), wall seconds, CPU seconds, exit code) of one command."""
    with open(log, "wb") as out:
        started = time.time()
        clock = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - clock
    process.returncode = os.waitstatus_to_exitcode(status)
    return started, wall, usage.ru_utime + usage.ru_stime, process.returncode


def run_evalkit(url: str, suite: Path, n: int, connections: int, stream: bool, work: Path) -> dict[str, Any]:
    out = work / "runs"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "evalkit.cli", "run", "--base-url", url, "--model", MODEL, "--suite", str(suite),
               "--format", "native", "--concurrency", str(connections), "--no-cache", "--no-report", "--quiet",
               "--out", str(out)]
    if not stream:
        command.append("--no-stream")
    env = {**os.environ, "EVALKIT_CACHE_DIR": str(work / "cache")}
    started, wall, cpu, code = timed_child(command, env, work / "evalkit.log")
    if code != 0:
        raise RuntimeError(f"evalkit exited with {code}: {(work / 'evalkit.log').read_text()[-2000:]}")
    lines = [json.loads(line) for line in next(out.glob("*/samples.jsonl")).read_text().splitlines()]
    if len(lines) != n or any(s["error"] or not s["call_correct"] for s in lines):
        raise RuntimeError(f"evalkit's run is not {n} correct samples")
    return {"started": started, "wall_s": wall, "cpu_s": cpu}


INSPECT_TASK = '''
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import Score, Target, accuracy, scorer
from inspect_ai.solver import TaskState, generate, use_tools
from inspect_ai.tool import ToolDef, ToolParams

SPEC = {spec!r}


def tools():
    out = []
    for t in SPEC["tools"]:
        fn = t["function"]

        async def execute(**kwargs):
            return "not executed"

        # The suite's JSON Schema as it is, as evalkit sends it.
        out.append(ToolDef(execute, name=fn["name"], description=fn["description"],
                           parameters=ToolParams.model_validate(fn["parameters"])))
    return out


@scorer(metrics=[accuracy()])
def called_expected():
    async def score(state: TaskState, target: Target) -> Score:
        calls = state.output.message.tool_calls or []
        ok = [(c.function, c.arguments) for c in calls] == [("compare_data", {{"num1": 8.9, "num2": 8.11}})]
        return Score(value=1 if ok else 0)
    return score


@task
def overhead():
    messages = [m["content"] for m in SPEC["case"]["messages"] if m["role"] == "user"]
    return Task(
        dataset=[Sample(input=messages[-1], id=i) for i in range({n})],
        solver=[use_tools(*[t.as_tool() for t in tools()]), generate(tool_calls="none")],
        scorer=called_expected(),
    )
'''


def inspect_python(requested: str | None) -> str | None:
    """A Python that can import inspect_ai, or None (it is not an evalkit dependency)."""
    for python in filter(None, [requested, sys.executable]):
        probe = subprocess.run([python, "-c", "import inspect_ai"], capture_output=True)
        if probe.returncode == 0:
            return python
    return None


def run_inspect(python: str, url: str, spec: dict[str, Any], n: int, connections: int, work: Path) -> dict[str, Any]:
    task = work / "inspect_task.py"
    task.write_text(INSPECT_TASK.format(spec=spec, n=n), encoding="utf-8")
    logs = work / "inspect-logs"
    shutil.rmtree(logs, ignore_errors=True)
    inspect = str(Path(python).parent / "inspect")
    command = [inspect, "eval", task.name, "--model", f"openai-api/scripted/{MODEL}", "--max-connections", str(connections),
               "--display", "none", "--log-dir", str(logs), "--max-retries", "0", "--no-fail-on-error"]
    env = {**os.environ, "SCRIPTED_BASE_URL": url, "SCRIPTED_API_KEY": "x", "INSPECT_DISPLAY": "none"}
    started, wall, cpu, code = timed_child(command, env, work / "inspect.log", cwd=work)  # a relative task path
    if code != 0:
        raise RuntimeError(f"inspect exited with {code}: {(work / 'inspect.log').read_text()[-2000:]}")
    return {"started": started, "wall_s": wall, "cpu_s": cpu}


def measure(harness: str, delay: float, n: int, connections: int, stream: bool, work: Path,
            spec: dict[str, Any], suites: dict[int, Path], python: str | None) -> dict[str, Any]:
    stats = work / "server-stats.json"
    stats.unlink(missing_ok=True)
    load = os.getloadavg()[0]
    with scripted_server(delay, stats) as url:
        if harness == "evalkit":
            result = run_evalkit(url, suites[n], n, connections, stream, work)
        else:
            assert python is not None
            result = run_inspect(python, url, spec, n, connections, work)
    server = json.loads(stats.read_text())
    if server["hits"] < n or server["first_request_at"] is None:
        raise RuntimeError(f"{harness}: the server saw {server['hits']} requests for {n} samples")
    result["startup_s"] = server["first_request_at"] - result.pop("started")
    result["load_1min"] = load
    return result


def summarise(harness: str, delay: float, connections: int, stream: bool, n: int,
              big: list[dict[str, Any]], small: list[dict[str, Any]], n_small: int) -> dict[str, Any]:
    med = {k: statistics.median(r[k] for r in big) for k in ("wall_s", "cpu_s", "startup_s")}
    ideal = n * delay / connections
    row: dict[str, Any] = {
        "harness": harness, "delay_ms": round(delay * 1000), "connections": connections, "stream": stream,
        "samples": n, "ideal_s": round(ideal, 3), "startup_s": round(med["startup_s"], 3),
        "wall_s": round(med["wall_s"], 3), "cpu_s": round(med["cpu_s"], 3),
        "cpu_per_sample_ms": round(1000 * med["cpu_s"] / n, 3),
        "wall_minus_startup_over_ideal": round((med["wall_s"] - med["startup_s"]) / ideal, 3) if ideal else None,
        "load_1min": [round(r["load_1min"], 2) for r in big],
        "runs": big,
    }
    if small:
        cpu_small = statistics.median(r["cpu_s"] for r in small)
        marginal = (med["cpu_s"] - cpu_small) / (n - n_small)
        row["marginal_cpu_per_sample_ms"] = round(1000 * marginal, 3)
        row["fixed_cpu_s"] = round(med["cpu_s"] - n * marginal, 3)
        row["runs_small"] = small
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| server delay | connections | replies | harness | ideal | start-up | wall | (wall − start-up) / ideal "
            "| CPU | CPU per sample | marginal CPU per sample |")
    lines = [head, "| " + " | ".join(["---"] * 11) + " |"]
    for r in rows:
        ratio = f"{r['wall_minus_startup_over_ideal']:.2f}×" if r["wall_minus_startup_over_ideal"] is not None else "-"
        marginal = f"{r['marginal_cpu_per_sample_ms']:.2f} ms" if "marginal_cpu_per_sample_ms" in r else "-"
        lines.append(
            f"| {r['delay_ms']} ms | {r['connections']} | {'streamed' if r['stream'] else 'whole'} | {r['harness']} "
            f"| {r['ideal_s']:.2f} s | {r['startup_s']:.2f} s | {r['wall_s']:.2f} s | {ratio} | {r['cpu_s']:.2f} s "
            f"| {r['cpu_per_sample_ms']:.2f} ms | {marginal} |"
        )
    return "\n".join(lines)


def checks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's "Must show", read from the evalkit rows."""
    mine = [r for r in rows if r["harness"] == "evalkit"]
    found = []
    for r in mine:
        if r["delay_ms"] == 50 and r["connections"] == 8:
            found.append({"check": f"50 ms, 8 connections, {'streamed' if r['stream'] else 'whole'}: "
                                   f"(wall - start-up) / ideal <= {WALL_TARGET}",
                          "value": r["wall_minus_startup_over_ideal"], "ok": r["wall_minus_startup_over_ideal"] <= WALL_TARGET})
        if r["delay_ms"] == 0 and r["connections"] == 64:
            for key in ("cpu_per_sample_ms", "marginal_cpu_per_sample_ms"):
                if key in r:
                    found.append({"check": f"0 ms, 64 connections, {'streamed' if r['stream'] else 'whole'}: "
                                           f"{key.replace('_', ' ')} <= {CPU_TARGET_MS}",
                                  "value": r[key], "ok": r[key] <= CPU_TARGET_MS})
    if mine:
        worst = max(r["startup_s"] for r in mine)
        found.append({"check": f"start-up to the first request <= {STARTUP_TARGET_S} s (the slowest median)",
                      "value": round(worst, 3), "ok": worst <= STARTUP_TARGET_S})
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--delays", default="0,5,50", help="server delays in ms (comma-separated)")
    parser.add_argument("--connections", default="8,64", help="connections (comma-separated)")
    parser.add_argument("--modes", default="whole,streamed", help="whole, streamed or both")
    parser.add_argument("--rounds", type=int, default=3, help="runs per configuration (the table shows medians)")
    parser.add_argument("--no-marginal", action="store_true", help="skip the N/10 runs behind the marginal CPU")
    parser.add_argument("--inspect-python", help="a Python with inspect_ai installed (default: this one, if it has it)")
    parser.add_argument("--inspect-rounds", type=int, default=None, help="runs per configuration for inspect_ai (default: --rounds)")
    parser.add_argument("--no-inspect", action="store_true")
    parser.add_argument("--quick", action="store_true", help="120 samples, 1 round: check that it works")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "overhead.json")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.rounds = 120, 1
    n, n_small = args.samples, max(1, args.samples // 10)
    delays = [int(d) / 1000 for d in args.delays.split(",")]
    connections = [int(c) for c in args.connections.split(",")]
    modes = [m.strip() == "streamed" for m in args.modes.split(",")]
    python = None if args.no_inspect else inspect_python(args.inspect_python)
    print(f"inspect_ai: {'via ' + python if python else 'not installed, no peer figure'}", file=sys.stderr)

    # evalkit as installed: pip compiles its bytecode at install time, but an editable checkout
    # run with PYTHONDONTWRITEBYTECODE=1 (as on the shared machine) would compile its ~50 modules
    # from source in every run, about 0.15 s of CPU that no user pays.
    compileall.compile_dir(ROOT / "evalkit", quiet=1)

    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        work = Path(tmp)
        suites = {size: work / f"suite-{size}.jsonl" for size in {n, n_small}}
        spec = {}
        for size, path in suites.items():
            spec = write_suite(path, size)
        for delay in delays:
            for conns in connections:
                for stream in modes:
                    big = [measure("evalkit", delay, n, conns, stream, work, spec, suites, None) for _ in range(args.rounds)]
                    small = [] if args.no_marginal else [
                        measure("evalkit", delay, n_small, conns, stream, work, spec, suites, None) for _ in range(args.rounds)
                    ]
                    rows.append(summarise("evalkit", delay, conns, stream, n, big, small, n_small))
                    print(markdown(rows[-1:]).splitlines()[-1], file=sys.stderr)
                    if python and not stream:
                        peer = [measure("inspect_ai", delay, n, conns, stream, work, spec, suites, python)
                                for _ in range(args.inspect_rounds or args.rounds)]
                        rows.append(summarise("inspect_ai", delay, conns, stream, n, peer, [], n_small))
                        print(markdown(rows[-1:]).splitlines()[-1], file=sys.stderr)

    results = {
        "issue": 17,
        "command": " ".join(["python", "benchmarks/bench_overhead.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_1_5_15_before": [round(x, 2) for x in load_before],
                    "load_1_5_15_after": [round(x, 2) for x in os.getloadavg()]},
        "inspect_python": python,
        "samples": n, "rounds": args.rounds,
        "rows": rows,
        "checks": checks(rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(markdown(rows))
    print()
    for check in results["checks"]:
        print(f"- {'ok  ' if check['ok'] else 'MISS'} {check['check']}: {check['value']}")
    print(f"\nload average (1, 5, 15 min) before {results['machine']['load_1_5_15_before']}, "
          f"after {results['machine']['load_1_5_15_after']}; {os.cpu_count()} CPUs; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
