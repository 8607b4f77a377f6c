"""Peak RSS of `evalkit probe` and `evalkit run` against hostile servers (issue 26): 50 MB replies,
and 2 million streamed tool-call fragments that each bring only a new id. Target: < 300 MB each.

    python benchmarks/bench_hostile_rss.py [--mb 50] [--fragments 2000000]

A stdlib HTTP server in a child process answers every chat request with the hostile reply, made
lazily (streamed, or as one JSON body, as the request asks), and GET /v1/models with a model list.
Each evalkit command runs in a child process of its own that reports its own peak RSS
(ru_maxrss, not load-sensitive); wall times are printed too but depend on the machine's load.
Writes benchmarks/results/hostile_rss.json.
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "hostile_rss.json"
TARGET_MB = 300

SERVER = r'''
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
MODE, MB, FRAGMENTS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
PIECE = "x" * 65536
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def log_message(self, *a): pass
    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        stream = bool(request.get("stream"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if stream else "application/json"); self.end_headers()
        try:
            if MODE == "huge" and stream:
                event = ("data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": PIECE}, "finish_reason": None}]}) + "\n\n").encode()
                for _ in range(MB * 1024 * 1024 // len(PIECE)):
                    self.wfile.write(event)
                self.wfile.write(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
            elif MODE == "huge":
                self.wfile.write(b'{"choices":[{"index":0,"message":{"role":"assistant","content":"')
                for _ in range(MB * 1024 * 1024 // len(PIECE)):
                    self.wfile.write(PIECE.encode())
                self.wfile.write(b'"},"finish_reason":"stop"}]}')
            elif stream:
                batch = []
                for i in range(FRAGMENTS):
                    batch.append(b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"id":"c%d"}]}}]}\n\n' % i)
                    if len(batch) == 4096:
                        self.wfile.write(b"".join(batch)); batch = []
                self.wfile.write(b"".join(batch) + b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n')
            else:
                self.wfile.write(b'{"choices":[{"index":0,"message":{"role":"assistant","tool_calls":[')
                for start in range(0, FRAGMENTS, 4096):
                    self.wfile.write((b"," if start else b"") + b",".join(b'{"id":"c%d"}' % i for i in range(start, min(FRAGMENTS, start + 4096))))
                self.wfile.write(b']},"finish_reason":"tool_calls"}]}')
        except (BrokenPipeError, ConnectionResetError):
            pass
httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
httpd.daemon_threads = True
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
'''

# Runs one evalkit command in this child process and prints its peak RSS (KiB on Linux) last.
MEASURED = r'''
import resource, sys
from evalkit.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("exit", code, "maxrss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
'''

SUITE = """name: hostile_rss
description: two cases for the hostile RSS benchmark (issue 26)
tools:
  - {type: function, function: {name: add_data, description: add, parameters: {type: object, properties: {a: {type: integer}}}}}
cases:
  - {id: add-1, messages: [{role: user, content: add 1}], expect: {calls: [{name: add_data, args: {a: 1}}]}}
  - {id: add-2, messages: [{role: user, content: add 2}], expect: {calls: [{name: add_data, args: {a: 2}}]}}
"""


def measure(argv: list[str], env: dict[str, str]) -> dict:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURED, *argv], env=env, capture_output=True, text=True, timeout=900)
    last = done.stderr.strip().splitlines()[-1].split()
    first_line = next((line for line in done.stderr.splitlines() if line.strip()), "")
    return {"exit": int(last[1]) if last[1].lstrip("-").isdigit() else last[1], "peak_rss_mb": round(int(last[3]) / 1024, 1),
            "wall_s": round(time.perf_counter() - began, 1), "stderr_first_line": first_line[:200]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--fragments", type=int, default=2_000_000)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EVALKIT_CACHE_DIR": tempfile.mkdtemp(prefix="evalkit-rss-cache-")}
    rows = []
    with tempfile.TemporaryDirectory(prefix="evalkit-rss-") as tmp:
        suite = Path(tmp) / "hostile_rss.yaml"
        suite.write_text(SUITE)
        for mode in ("huge", "ids"):
            server = subprocess.Popen([sys.executable, "-c", SERVER, mode, str(args.mb), str(args.fragments)],
                                      stdout=subprocess.PIPE, text=True)
            try:
                base_url = f"http://127.0.0.1:{server.stdout.readline().strip()}/v1"
                what = f"{args.mb} MB replies" if mode == "huge" else f"{args.fragments:,} id-only fragments"
                commands = {
                    "probe": ["probe", "--base-url", base_url, "--model", "m", "--json", "--timeout", "60"],
                    "run (streamed)": ["run", "--base-url", base_url, "--model", "m", "--suite", str(suite), "--format",
                                       "native", "--out", f"{tmp}/runs-{mode}-s", "--no-report", "--quiet", "--no-cache"],
                    "run (not streamed)": ["run", "--base-url", base_url, "--model", "m", "--suite", str(suite), "--format",
                                           "native", "--out", f"{tmp}/runs-{mode}-w", "--no-report", "--quiet", "--no-cache",
                                           "--no-stream"],
                }
                for label, argv in commands.items():
                    row = {"command": label, "server": what, **measure(argv, env)}
                    rows.append(row)
                    print(f"{label:<20} {what:<30} peak RSS {row['peak_rss_mb']:>7.1f} MB  exit {row['exit']}  {row['wall_s']:>6.1f} s")
            finally:
                server.kill()
                server.wait()
    worst = max(row["peak_rss_mb"] for row in rows)
    print(f"\nworst peak RSS {worst:.1f} MB ({'within' if worst < TARGET_MB else 'OVER'} the {TARGET_MB} MB target); "
          f"load average {os.getloadavg()[0]:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"mb": args.mb, "fragments": args.fragments, "target_mb": TARGET_MB,
                                   "load_average_1min": round(os.getloadavg()[0], 2), "rows": rows}, indent=1) + "\n")
    return 0 if worst < TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
