"""Chaos benchmark (issue 16): a run survives poisoned replies, server restarts and kill -9.

    python benchmarks/bench_chaos.py [--samples 2000] [--poison 0.05] [--kills 4] [--restarts 4] [--seed 0]

A suite of `add A and B` cases runs in three formats (native, default, pythonic) against the
scripted server in its own process. A share `--poison` of its replies is drawn from a poison set:
the hostile replies of tests/test_parsers_hostile.py (400-digit integers, 10k-deep nesting,
pythonic bytes/ellipsis/100k terms ...) and server faults (streams cut mid-way, trickles past the
deadline, 429 with Retry-After, 5xx, garbage JSON, empty choices, replies over the size limit, a
lone surrogate no file can hold, dropped connections; issue 26: streams of 200,000 tool-call
fragments that each bring only a new id, and a lone surrogate inside tool-call arguments). Meanwhile the server is killed and
restarted at random moments, and evalkit is killed with SIGKILL at random moments, each time
followed by `evalkit run --resume DIR`, until a run ends by itself.

Asserted: every invocation ends (bounded wait); every planned sample is present; no sample was
finished twice (a key's finished line is its last); results.json counts every sample once.
Printed and written to benchmarks/results/chaos.json: wall time, restarts, kills, resumes, error
samples by kind, malformed samples. Figures depend on the machine's load.

Then (issue 26) one run of agent cases against a real hostile MCP server process
(tests/mcp_servers/hostile_server.py): a tool answering 3 MB in one block, one answering 100,000
blocks (each reaches the model cut at 100,000 characters), the same answering 100 MB and 500,000
blocks (each refused as it arrives, over the 4 MiB limit on one message), and servers listing
hostile names (`abc\n`, `a/b` beside `a_b`, `dup` twice). Asserted: each run ends, every result is
cut or refused, no sample line is over 1 MB, and the names are refused in one line (exit 2).
`--no-mcp` skips this part.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the hostile replies and the reply helpers of the tests

FORMATS = ("native", "default", "pythonic")
DEADLINE_S = 3.0  # the run's --deadline: trickles are built to outlast it
RUN_BOUND_S = 900.0  # an evalkit invocation that takes longer has hung: the benchmark fails
SURROGATE = '"\\ud800 is not a character"'

FAULTS = ("hostile", "cut_stream", "trickle", "http_429", "http_5xx", "garbage_json", "empty_choices", "huge",
          "surrogate", "dropped", "id_fragments", "surrogate_args")
ID_FRAGMENTS = 200_000  # fragments that each open a call with a new id and bring nothing else
HOSTILE_MCP = ROOT / "tests" / "mcp_servers" / "hostile_server.py"


# ---------------------------------------------------------------- the server side (its own process)


def _event(payload: str) -> bytes:
    return b"data: " + payload.encode() + b"\n\n"


def poison_reply(kind: str, fmt: str, stream: bool, rng: random.Random):
    from test_parsers_hostile import HOSTILE

    from evalkit.testing.scripted_server import Reply

    if kind == "hostile":
        _, _, text, _ = rng.choice([h for h in HOSTILE if h[1] == fmt])
        if fmt == "native":
            return Reply(tool_calls=[{"name": "add_data", "arguments": text}], split_arguments=16)
        return Reply(content=text, stream_content_chunks=16)  # pieces of 4 characters: 50,000 events
    if kind == "cut_stream":
        return Reply(content="an answer that stops " * 10, drop_after_chunks=3)
    if kind == "trickle":
        pieces = 12
        return Reply(content="slow " * pieces, stream_content_chunks=pieces, chunk_delay_s=DEADLINE_S / pieces * 2)
    if kind == "http_429":
        return Reply(status=429, headers={"retry-after": "1"})
    if kind == "http_5xx":
        return Reply(status=rng.choice([500, 502, 503]))
    if kind == "garbage_json":
        return Reply(raw_body=_event("{not json") if stream else b"{not json")
    if kind == "empty_choices":
        body = _event('{"id": "x", "choices": []}') + b"data: [DONE]\n\n" if stream else b'{"id": "x", "choices": []}'
        return Reply(raw_body=body)
    if kind == "huge":
        return Reply(content="x" * 1_200_000, stream_content_chunks=24)  # over the default max_reply_chars
    if kind == "surrogate":
        if stream:
            body = _event('{"choices": [{"index": 0, "delta": {"content": %s}, "finish_reason": "stop"}]}' % SURROGATE)
            return Reply(raw_body=body + b"data: [DONE]\n\n")
        return Reply(raw_body=b'{"choices": [{"message": {"role": "assistant", "content": %s}, '
                              b'"finish_reason": "stop"}]}' % SURROGATE.encode())
    if kind == "dropped":
        return Reply(drop_connection=True)
    if kind == "id_fragments":
        return Reply(raw_body=id_fragments(stream))
    if kind == "surrogate_args":
        escaped = '{"num1": "\\ud800", "num2": 1}'
        if fmt == "native":
            return Reply(tool_calls=[{"name": "add_data", "arguments": escaped}])
        if fmt == "default":
            return Reply(content='[TOOL_REQUEST]{"name": "add_data", "arguments": %s}[END_TOOL_REQUEST]' % escaped)
        return Reply(content="[add_data(num1='\\ud800', num2=1)]")
    raise ValueError(kind)


_ID_BODIES: dict[bool, bytes] = {}


def id_fragments(stream: bool) -> bytes:
    """A reply of ID_FRAGMENTS calls that bring only an id (about 14 MB streamed, 2.8 MB whole)."""
    if stream not in _ID_BODIES:
        if stream:
            body = b"".join(b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"id":"c%d"}]}}]}\n\n' % i
                            for i in range(ID_FRAGMENTS))
            _ID_BODIES[stream] = body + b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n'
        else:
            calls = b",".join(b'{"id":"c%d"}' % i for i in range(ID_FRAGMENTS))
            _ID_BODIES[stream] = b'{"choices":[{"message":{"role":"assistant","tool_calls":[%s]},"finish_reason":"tool_calls"}]}' % calls
    return _ID_BODIES[stream]


def serve(port: int, poison: float, seed: int, log_path: Path) -> int:
    """The chaos server: right answers, and a share `poison` of replies from the poison set."""
    from conftest import reply_for_format, request_format

    from evalkit.testing.scripted_server import ScriptedServer

    rng = random.Random(seed)
    lock = threading.Lock()
    log = open(log_path, "a", encoding="utf-8")

    def responder(request: dict):
        fmt = request_format(request)
        text = [m for m in request["messages"] if m["role"] == "user"][-1]["content"]
        with lock:
            kind = rng.choice(FAULTS) if rng.random() < poison else "good"
            log.write(kind + "\n")
            log.flush()
            if kind != "good":
                return poison_reply(kind, fmt, bool(request.get("stream")), rng)
        _, a, _, b = text.split()
        return reply_for_format(fmt, [("add_data", {"num1": int(a), "num2": int(b)})])

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with ScriptedServer(model_id="chaos-model", responder=responder, port=port) as server:
        print(server.base_url, flush=True)
        while not done.wait(0.5):
            pass
    return 0


# ---------------------------------------------------------------- the driver


class ChaosServer:
    """The server process, on one port across restarts."""

    def __init__(self, port: int, poison: float, seed: int, log_path: Path):
        self.port, self.poison, self.seed, self.log_path = port, poison, seed, log_path
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.lock = threading.Lock()

    def start(self) -> str:
        command = [sys.executable, __file__, "--serve", str(self.port), "--poison", str(self.poison),
                   "--seed", str(self.seed + self.starts), "--log", str(self.log_path)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.process.stdout is not None
        url = self.process.stdout.readline().strip()
        if not url:
            raise SystemExit("the chaos server did not start")
        self.starts += 1
        return url

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, down_s: float) -> None:
        with self.lock:
            self.kill()
            time.sleep(down_s)
            for _ in range(50):  # the port may linger for a moment
                try:
                    self.start()
                    return
                except SystemExit:
                    time.sleep(0.2)
            raise SystemExit("the chaos server could not be restarted")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_suite(path: Path, cases: int, rng: random.Random) -> None:
    from conftest import TOOLS, case, write_suite as write

    rows = [case(f"add-{i:05d}", f"add {a} and {b}", {"calls": [{"name": "add_data", "args": {"num1": a, "num2": b}}]})
            for i, (a, b) in enumerate((rng.randint(1, 10**6), rng.randint(1, 10**6)) for _ in range(cases))]
    write(path.parent, rows, name=path.stem, tools=[TOOLS[1]])


def classify(error: str) -> str:
    """An error sample's kind, from its one-line error."""
    if error.startswith("evalkit failed on this sample: "):
        return "evalkit_failed: " + error.split(": ")[1]  # the exception's type
    rules = [
        ("deadline", "deadline"),
        ("timed out", "read_timeout"), ("HTTP 429", "http_429"), ("HTTP 5", "http_5xx"), ("cut off", "cut_stream"),
        ("broke mid-reply", "cut_stream"), ("not JSON", "garbage_json"), ("no choices", "empty_choices"),
        ("max_reply_chars", "over_size_limit"), ("cannot connect", "connection"), ("without a single event", "empty_stream"),
    ]
    return next((kind for needle, kind in rules if needle in error), "other: " + error[:60])


def mcp_phase(tmp_path: Path, env: dict[str, str]) -> dict:
    """Agent cases against a real hostile MCP server process; hostile tool names in runs and imports."""
    import yaml

    from evalkit.testing.scripted_server import Reply, ScriptedServer

    def responder(request: dict) -> Reply:
        messages = request["messages"]
        if any(m["role"] == "tool" for m in messages):
            return Reply(content="done")
        tool = next(m["content"] for m in messages if m["role"] == "user").split()[-1]
        return Reply(tool_calls=[{"name": tool, "arguments": {}}])

    def suite(name: str, names: list[str], calls: list[str], sizes: tuple[str, str] = ("10000000", "500000")) -> Path:
        path = tmp_path / "mcp-suites" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        tools = [{"type": "function", "function": {"name": n, "description": "", "parameters": {"type": "object", "properties": {}}}}
                 for n in dict.fromkeys(c for c in calls)]
        cases = [{"id": f"call-{c}", "mode": "agent", "max_rounds": 2, "messages": [{"role": "user", "content": f"call {c}"}],
                  "expect": {"calls": [{"name": c, "args": {}}]}} for c in calls]
        server = {"command": [sys.executable, str(HOSTILE_MCP), json.dumps(names), *sizes], "timeout_s": 120}
        path.write_text(yaml.safe_dump({"name": name, "description": "issue 26 chaos", "implementations": {"mcp": server},
                                        "tools": tools, "cases": cases}, sort_keys=False))
        return path

    def run(server: ScriptedServer, path: Path) -> dict:
        out = tmp_path / "mcp-runs" / path.stem
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "evalkit", "run", "--base-url", server.base_url, "--model", "m",
                               "--suite", str(path), "--format", "native", "--out", str(out), "--no-report", "--quiet",
                               "--no-cache", "--timeout", "120"], env=env, capture_output=True, text=True, timeout=RUN_BOUND_S)
        if "Traceback" in done.stderr:
            raise SystemExit(f"a traceback from evalkit:\n{done.stderr[-3000:]}")
        lines = [line for d in out.glob("*") for line in (d / "samples.jsonl").read_text().splitlines()] if out.exists() else []
        samples = [json.loads(line) for line in lines]
        return {"exit": done.returncode, "wall_s": round(time.perf_counter() - began, 1),
                "largest_sample_line_bytes": max((len(line.encode()) for line in lines), default=0),
                "results_cut_at_the_limit": sum("evalkit's limit on a tool result" in line for line in lines),
                "results_refused_over_the_message_limit": sum("bytes on one message" in line for line in lines),
                "sample_errors": sorted({s["error"][:160] for s in samples if s["error"]})}

    report: dict = {}
    with ScriptedServer(model_id="m", responder=responder) as server:
        report["large_results"] = large = run(server, suite("mcp_large", ["big", "many"], ["big", "many"], ("3000000", "100000")))
        assert large["exit"] == 0 and large["results_cut_at_the_limit"] == 2 and large["largest_sample_line_bytes"] < 1_000_000, large
        report["huge_results"] = big = run(server, suite("mcp_huge", ["big", "many"], ["big", "many"], ("100000000", "500000")))
        assert big["results_refused_over_the_message_limit"] == 2 and big["largest_sample_line_bytes"] < 1_000_000, big
        for label, names in {"sanitised_alike": ["a/b", "a_b"], "repeated": ["dup", "dup"]}.items():
            report[f"names_{label}_run"] = outcome = run(server, suite(f"mcp_{label}", names, [names[1]]))
            assert outcome["sample_errors"] and all("OpenAI function name" in e or "more than once" in e
                                                    for e in outcome["sample_errors"]), outcome
    for label, names in {"newline": ["abc\n", "ok"], "sanitised_alike": ["a/b", "a_b"], "repeated": ["dup", "dup"]}.items():
        folder = tmp_path / "imported" / label
        done = subprocess.run([sys.executable, "-m", "evalkit", "import", "mcp", "--out", str(folder), "--",
                               sys.executable, str(HOSTILE_MCP), json.dumps(names)], env=env, capture_output=True, text=True,
                              timeout=RUN_BOUND_S)
        listed = subprocess.run([sys.executable, "-m", "evalkit", "suites", "--dir", str(folder)], env=env,
                                capture_output=True, text=True, timeout=RUN_BOUND_S) if folder.exists() else None
        report[f"names_{label}_import"] = {"exit": done.returncode, "stderr": done.stderr.strip()[:200],
                                           "suites_dir_exit": listed.returncode if listed else None}
        assert "Traceback" not in done.stderr and (listed is None or listed.returncode == 0), report
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--poison", type=float, default=0.05, help="share of replies drawn from the poison set")
    parser.add_argument("--kills", type=int, default=4, help="kill -9 of evalkit, each followed by --resume")
    parser.add_argument("--restarts", type=int, default=4, help="server restarts at random moments")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--kill-within", type=float, default=15.0, help="a kill comes 1 s to this many s into an invocation")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "chaos.json")
    parser.add_argument("--no-mcp", action="store_true", help="skip the hostile MCP server part")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve, args.poison, args.seed, args.log)

    rng = random.Random(args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="evalkit-chaos-") as tmp:
        tmp_path = Path(tmp)
        suite = tmp_path / "suite" / "chaos.yaml"
        cases = -(-args.samples // len(FORMATS))
        write_suite(suite, cases, rng)
        server = ChaosServer(free_port(), args.poison, args.seed, tmp_path / "served.log")
        base_url = server.start()
        out = tmp_path / "runs"
        env = {**os.environ, "EVALKIT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
        env.pop("EVALKIT_BASE_URL", None)
        fresh = [sys.executable, "-m", "evalkit", "run", "--base-url", base_url, "--model", "chaos-model",
                 "--suite", str(suite), *[a for f in FORMATS for a in ("--format", f)], "--out", str(out),
                 "--concurrency", str(args.concurrency), "--deadline", str(DEADLINE_S), "--timeout", "2",
                 "--retries", "2", "--retry-after-cap", "2", "--no-report", "--quiet",
                 "--max-error-rate", "100%"]  # error samples are what this measures, not a failed CI gate

        figures = collections.Counter()
        restarts_done = threading.Event()
        stop_restarts = threading.Event()

        def restarter() -> None:
            for _ in range(args.restarts):
                if stop_restarts.wait(rng.uniform(3, 12)):
                    return
                server.restart(rng.uniform(0.2, 1.5))
                figures["server_restarts"] += 1
            restarts_done.set()

        thread = threading.Thread(target=restarter, daemon=True)
        thread.start()
        run_dir: Path | None = None
        exit_codes: list[int] = []
        try:
            while True:
                if run_dir is None:
                    found = [p for p in out.glob("*") if (p / "header.json").is_file()] if out.exists() else []
                    for half_made in (p for p in out.glob("*") if not (p / "header.json").is_file()) if out.exists() else []:
                        os.rename(half_made, tmp_path / f"half-made-{half_made.name}")  # killed before its header
                    run_dir = found[0] if found else None
                command = fresh if run_dir is None else [sys.executable, "-m", "evalkit", "run", "--resume",
                                                         str(run_dir), "--no-report", "--quiet", "--max-error-rate",
                                                         "100%"]
                figures["invocations"] += 1
                figures["resumes" if run_dir is not None else "fresh_starts"] += 1
                process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                           text=True)
                kill_at = rng.uniform(1.0, args.kill_within) if figures["kills"] < args.kills else None
                begun = time.monotonic()
                while process.poll() is None:
                    elapsed = time.monotonic() - begun
                    if kill_at is not None and elapsed >= kill_at:
                        process.kill()
                        figures["kills"] += 1
                        break
                    if elapsed > RUN_BOUND_S:
                        process.kill()
                        raise SystemExit(f"evalkit did not end within {RUN_BOUND_S:.0f} s: {command}")
                    time.sleep(0.05)
                process.wait()
                err = process.stderr.read() if process.stderr else ""
                exit_codes.append(process.returncode)
                if "Traceback" in err or "Exception ignored" in err:
                    raise SystemExit(f"a traceback from evalkit:\n{err[-3000:]}")
                if run_dir is None:
                    found = [p for p in out.glob("*") if (p / "header.json").is_file()] if out.exists() else []
                    run_dir = found[0] if found else None
                if process.returncode == 0:
                    break  # the run ended by itself
                if process.returncode == 2:
                    figures["refused_server_down"] += 1  # --resume checks the server first
                    time.sleep(0.5)
                elif process.returncode != -signal.SIGKILL:
                    raise SystemExit(f"evalkit exited {process.returncode}: {err[-2000:]}")
        finally:
            stop_restarts.set()
            thread.join(timeout=30)
            server.kill()
        wall = time.perf_counter() - started

        assert run_dir is not None
        lines = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
        planned = {(suite.stem, f"add-{i:05d}", fmt, 0) for i in range(cases) for fmt in FORMATS}
        by_key: dict[tuple, list[dict]] = collections.defaultdict(list)
        for line in lines:
            by_key[(line["suite"], line["case_id"], line["format"], line["repeat"])].append(line)
        assert set(by_key) == planned, f"missing {len(planned - set(by_key))}, unexpected {len(set(by_key) - planned)}"
        for key, seen in by_key.items():
            finished = [i for i, s in enumerate(seen) if s["error"] is None]
            assert len(finished) <= 1, f"{key} finished {len(finished)} times"
            assert not finished or finished[0] == len(seen) - 1, f"{key} was redone after it finished"
        results = json.loads((run_dir / "results.json").read_text())
        overall = [a for a in results["aggregates"] if a["suite"] == "*" and a["tag"] is None]
        assert sum(a["n"] + a["errors"] for a in overall) == len(planned)

        final = [seen[-1] for seen in by_key.values()]
        errors = collections.Counter(classify(s["error"]) for s in final if s["error"])
        redone = collections.Counter(classify(s["error"]) for seen in by_key.values() for s in seen[:-1] if s["error"])

        # One more --resume, the server up (and still poisoning): it redoes the error samples only.
        server.start()
        try:
            again = subprocess.run([sys.executable, "-m", "evalkit", "run", "--resume", str(run_dir), "--no-report",
                                    "--quiet", "--max-error-rate", "100%"], env=env, capture_output=True, text=True,
                                   timeout=RUN_BOUND_S)
        finally:
            server.kill()
        if again.returncode != 0:
            raise SystemExit(f"the last --resume exited {again.returncode}: {again.stderr[-2000:]}")
        after: dict[tuple, dict] = {}
        for line in (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines():
            sample = json.loads(line)
            after[(sample["suite"], sample["case_id"], sample["format"], sample["repeat"])] = sample
        assert set(after) == planned
        left = collections.Counter(classify(s["error"]) for s in after.values() if s["error"])
        served = collections.Counter((tmp_path / "served.log").read_text().split())
        largest_line = max(len(line.encode()) for line in (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines())
        mcp = None if args.no_mcp else mcp_phase(tmp_path, env)
    report = {
        "samples": len(planned),
        "wall_s": round(wall, 1),
        "poison_share": args.poison,
        "replies_served": sum(served.values()),
        "poisoned_replies_served": {k: v for k, v in sorted(served.items()) if k != "good"},
        "server_restarts": figures["server_restarts"],
        "evalkit_kills": figures["kills"],
        "resumes": figures["resumes"],
        "fresh_starts": figures["fresh_starts"],
        "resumes_refused_server_down": figures["refused_server_down"],
        "exit_codes": exit_codes,
        "samples_lines": len(lines),
        "error_samples_final_by_kind": dict(sorted(errors.items())),
        "error_samples_redone_on_resume_by_kind": dict(sorted(redone.items())),
        "error_samples_after_one_more_resume_by_kind": dict(sorted(left.items())),
        "malformed_samples": sum(1 for s in final if s["malformed"]),
        "call_correct_samples": sum(1 for s in final if s["call_correct"]),
        "every_sample_present_once": True,
        "largest_sample_line_bytes": largest_line,
        "mcp": mcp,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "note": "wall time depends on the machine's load; run on a quiet machine for README figures",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
