"""`evalkit probe [--model M] [--base-url URL] [--json]`: exit 1 when a check fails, 2 on bad input."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from typing import Any

from evalkit.cliargs import positive_seconds, whole_number
from evalkit.errors import EvalkitError
from evalkit.schema import Exchange, ProbeResult


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("probe", help="check that a server keeps its side of the tool-calling contract")
    p.add_argument("--model", help="model name (a bundled one starts the embedded engine; default qwen2.5-coder-0.5b)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 (default: the embedded engine "
                        "for a bundled --model, else the local server that serves it)")
    p.add_argument("--json", action="store_true", help='print {"server": {...}, "checks": [...]} with the evidence')
    p.add_argument("--timeout", type=positive_seconds, default=60.0, help="seconds per request (default 60)")
    p.add_argument("--threads", type=whole_number(1), default=None,
                   help="embedded engine: CPU threads (default: all)")
    p.add_argument("--api-key", help="sent with every request (default: $EVALKIT_API_KEY, else $OPENAI_API_KEY)")
    p.set_defaults(func=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    from evalkit.engine.discover import check_base_url, list_server_models, resolve
    from evalkit.probe.run import run_probe

    if args.base_url:
        check_base_url(args.base_url)  # a scheme and a host (`http://` alone was "cannot reach http://http:/v1")
    from evalkit.access import Access, key_from_environment

    api_key = args.api_key or key_from_environment()
    resolved = resolve(args.model, args.base_url, api_key=api_key)
    with ExitStack() as stack:
        if resolved.bundled:
            base_url = _start_engine(stack, resolved.model_id, args.threads, quiet=args.json)
        else:
            base_url = resolved.base_url or ""
            try:
                list_server_models(base_url, api_key=api_key)
            except ValueError as exc:  # it was reached: what it said is not a model list
                raise EvalkitError(f"{base_url}/models answered, but not with an OpenAI model list ({exc}); "
                                   f"is {base_url} an OpenAI-compatible /v1 URL?") from None
            except OSError as exc:
                raise EvalkitError(f"cannot reach {base_url} ({exc}); is the server running?") from None
        result = run_probe(base_url, resolved.model_id, timeout_s=args.timeout, api_key=api_key)
    # A server may echo the key it refused in its error messages: never shown.
    scrub = Access(api_key=api_key).scrub
    if args.json:
        print(scrub(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=1)))
    else:
        print(scrub(format_result(result)))
    return 1 if result.failed else 0


def _start_engine(stack: ExitStack, name: str, threads: int | None, quiet: bool) -> str:
    from evalkit.engine.pull import ensure_model
    from evalkit.engine.server import EmbeddedEngine

    path = ensure_model(name, progress=not quiet)
    # One slot: the probe sends one request at a time, and stream parity must not depend on
    # which slot answered (llama.cpp is not batch-invariant across slots).
    engine = stack.enter_context(EmbeddedEngine(path, n_ctx=4096, n_parallel=1, n_threads=threads))
    if not quiet:
        print(f"embedded engine: {name} at {engine.base_url}", file=sys.stderr)
    return engine.base_url


# ---------------------------------------------------------------- human output

def format_result(result: ProbeResult) -> str:
    s = result.server
    stack = [s.kind] + [s.build] * bool(s.build)
    if s.template_sha256:
        stack.append(f"template {s.template_sha256[:12]}…")
    if s.tool_call_format:
        stack.append(f"format {s.tool_call_format}")
    lines = [f"probe: {result.model} at {result.base_url} — {', '.join(stack)}", ""]
    width = max(len(c.name) for c in result.checks)
    lines.append(f"{'check':<{width}}  {'status':<11}  detail")
    for check in result.checks:
        lines.append(f"{check.name:<{width}}  {check.status:<11}  {check.detail}")
    counts = result.summary()
    lines.append("")
    lines.append(f"{counts['pass']} pass, {counts['fail']} fail, {counts['unsupported']} unsupported · "
                 f"{result.requests} requests ({result.chat_requests} chat) · {result.elapsed_s:.1f} s")
    for check in result.failed:
        lines.append("")
        lines.append(f"── {check.name}: evidence")
        for exchange in check.evidence:
            lines.extend("   " + line for line in describe(exchange))
    return "\n".join(lines)


def describe(exchange: Exchange, limit: int = 600) -> list[str]:
    """A request and its raw reply, short enough to read; --json has them whole."""
    out = [f"{exchange.method} {exchange.path}{' (stream)' if exchange.stream else ''}: {exchange.name}"]
    if exchange.request is not None:
        out.append("request: " + _clip(json.dumps(_short_request(exchange.request), ensure_ascii=False), limit))
    status = f"HTTP {exchange.http_status}" if exchange.http_status is not None else "no answer"
    if exchange.error:
        out.append(f"reply: {status}: {exchange.error}")
    elif exchange.stream and isinstance(exchange.raw, list):
        out.append(f"reply: {status}, {len(exchange.raw)} events; their choices:")
        shown = [json.dumps(_choices(event), ensure_ascii=False) for event in exchange.raw]
        out.extend("  " + _clip(line, 200) for line in shown[:12])
        if len(shown) > 12:
            out.append(f"  … {len(shown) - 12} more events")
    else:
        out.append(f"reply: {status}: " + _clip(json.dumps(exchange.raw, ensure_ascii=False), limit))
    return out


def _short_request(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    short = {k: v for k, v in body.items() if k not in ("tools", "model")}
    if "tools" in body:
        short["tools"] = [t.get("function", {}).get("name") for t in body["tools"] if isinstance(t, dict)]
    return short


def _choices(event: Any) -> Any:
    if not isinstance(event, dict):
        return event
    return [{k: v for k, v in c.items() if k in ("delta", "finish_reason")} for c in event.get("choices") or []] \
        or {k: event[k] for k in ("usage",) if k in event}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
