"""Peak memory of the wire client on huge replies (issue 16): eight 50 MB replies at once.

    python benchmarks/bench_huge_replies.py [--mb 50] [--replies 8] [--no-stream]

A stdlib HTTP server in a child process (so its memory is not counted) answers every request with
a reply of --mb megabytes of content, streamed in 64 KB events or as one JSON body, generated
lazily; this process runs --replies `evalkit.client.complete` calls concurrently and prints its
own peak RSS, the wall time, and how each call ended.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SERVER = r'''
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
MB = int(sys.argv[1])
PIECE = "x" * 65536
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def log_message(self, *a): pass
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = MB * 1024 * 1024 // len(PIECE)
        self.send_response(200)
        try:
            if request.get("stream"):
                self.send_header("Content-Type", "text/event-stream"); self.end_headers()
                event = ("data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": PIECE}, "finish_reason": None}]}) + "\n\n").encode()
                for _ in range(n):
                    self.wfile.write(event)
                self.wfile.write(b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n')
            else:
                head = b'{"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "'
                tail = b'"}}]}'
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(head) + n * len(PIECE) + len(tail))); self.end_headers()
                self.wfile.write(head)
                for _ in range(n):
                    self.wfile.write(PIECE.encode())
                self.wfile.write(tail)
        except (BrokenPipeError, ConnectionResetError):
            pass
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
'''


async def main_async(port: int, replies: int, stream: bool) -> list[str]:
    from evalkit.client import TransportError, complete, make_client

    client = make_client(f"http://127.0.0.1:{port}/v1", 120.0)

    async def one() -> str:
        try:
            completion = await complete(client, {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                                        stream=stream, retries=0)
            return f"ok, {len(completion.content or ''):,} characters"
        except TransportError as exc:
            return f"error: {exc}"

    try:
        return await asyncio.gather(*(one() for _ in range(replies)))
    finally:
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--replies", type=int, default=8)
    parser.add_argument("--no-stream", action="store_true")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(args.mb)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        start = time.perf_counter()
        outcomes = asyncio.run(main_async(port, args.replies, not args.no_stream))
        took = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"replies": args.replies, "mb_each": args.mb, "stream": not args.no_stream,
                      "peak_rss_mb": round(peak), "seconds": round(took, 2), "outcomes": sorted(set(outcomes))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
