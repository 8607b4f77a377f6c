"""`evalkit models`, `evalkit models pull NAME` and `evalkit serve NAME`."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from evalkit.errors import EvalkitError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list bundled models (and those a server serves); pull one")
    p.add_argument("--base-url", help="also list the models this OpenAI-compatible server serves")
    p.set_defaults(func=cmd_models)
    sub = p.add_subparsers(dest="models_command", metavar="{pull}")
    pull = sub.add_parser("pull", help="download and verify a bundled model into the cache")
    pull.add_argument("name", help="bundled model name, e.g. qwen2.5-coder-0.5b")
    pull.set_defaults(func=cmd_pull)

    s = subparsers.add_parser("serve", help="run the embedded llama.cpp engine for other clients")
    s.add_argument("name", nargs="?", default=None,
                   help="bundled model name or a .gguf path (default: qwen2.5-coder-0.5b)")
    s.add_argument("--port", type=int, default=0, help="loopback port (default: a free one)")
    s.add_argument("--ctx", type=int, default=4096, help="context tokens per slot")
    s.add_argument("--parallel", type=int, default=2, help="requests decoded concurrently (slots)")
    s.add_argument("--threads", type=int, default=None, help="CPU threads (default: all available)")
    s.add_argument("--verbose", action="store_true", help="show llama.cpp's own log")
    s.add_argument("--api-key", help="answer only requests that carry this key (HTTP 401 otherwise; default: any); "
                                     "`evalkit run --api-key` sends it")
    s.set_defaults(func=cmd_serve)


def cmd_models(args: argparse.Namespace) -> int:
    from evalkit.engine.pull import is_present
    from evalkit.engine.registry import BUNDLED, DEFAULT_MODEL
    from evalkit.paths import models_dir

    rows = [
        (m.name + (" *" if m.name == DEFAULT_MODEL else ""), f"{m.size / 1e6:,.0f} MB",
         "yes" if is_present(m) else "no", "native" if m.native_tools else "prompt only", m.display_name)
        for m in BUNDLED.values()
    ]
    _table(("model", "size", "local", "tool template", "weights"), rows)
    print(f"\n* default model. Cache: {models_dir()}  (evalkit models pull NAME)")
    if args.base_url:
        from evalkit.engine.discover import list_server_models, normalise_base_url

        url = normalise_base_url(args.base_url)
        try:
            from evalkit.access import key_from_environment

            served = list_server_models(url, api_key=key_from_environment())
        except (OSError, ValueError) as exc:
            raise EvalkitError(f"cannot list the models of {url} ({exc}); is the server running?") from None
        print(f"\nserved by {url}:")
        for model_id in served or ["(none)"]:
            print(f"  {model_id}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from evalkit.engine.pull import ensure_model

    path = ensure_model(args.name, progress=True)
    print(path)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from evalkit.engine.pull import ensure_model
    from evalkit.engine.registry import DEFAULT_MODEL
    from evalkit.engine.server import EmbeddedEngine

    name = args.name or DEFAULT_MODEL
    # A service manager stops us with SIGTERM: leave through the same clean path as Ctrl-C
    # (also while pulling, so no temporary download is left behind).
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        path = Path(name) if name.endswith(".gguf") else ensure_model(name, progress=True)
        engine = EmbeddedEngine(path, n_ctx=args.ctx, n_parallel=args.parallel, n_threads=args.threads,
                                port=args.port, verbose=args.verbose, api_key=args.api_key)
        with engine:
            print(f"serving {engine.model_id} at {engine.base_url} "
                  f"(ctx {engine.n_ctx} x {engine.n_parallel} slots, {engine.n_threads} threads); Ctrl-C stops",
                  flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print("evalkit: stopping the engine", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _raise_interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
