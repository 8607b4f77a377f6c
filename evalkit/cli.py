"""The `evalkit` command line. User mistakes end in one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

from . import __version__, cache, ci, limits, mcp_import, mcp_npm, rescore, schema_cli, shards
from .access import Access, key_from_environment, parse_extra_body, parse_header
from .bfcl import cli as bfcl_cli
from .clihelp import polish
from .cliargs import OneLineParser, finite_number, positive_seconds, rate, whole_number
from .engine import cli as engine_cli
from .errors import EvalkitError, Interrupted
from .formats.native import TOOL_CHOICES, with_tool_choices
from .probe import cli as probe_cli
from .report import cli as report_cli
from .view import cli as view_cli
from .schema import Settings, UntilDecided

# Modules that add their own subcommands with `add_commands(subparsers)`.
COMMAND_MODULES = [engine_cli, report_cli, view_cli, rescore, shards, cache, probe_cli, mcp_npm, schema_cli]
# Importers of public benchmarks: each adds its source to `evalkit import` with
# `add_import_command(sources)`, `sources` being the sub-parsers of the one `import` command.
IMPORT_MODULES = [bfcl_cli, mcp_import]


def _add_run(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="run suites against a model (or several: a sweep) and write run directories",
        description="One --model: a run directory. Several --model: a sweep, one run per model in turn and a "
                    "comparison report with the recommendation, all in OUT/sweep-<timestamp>-<hex>/; "
                    "`evalkit run --resume SWEEP_DIR` finishes an interrupted sweep.")
    p.add_argument("--model", action="append", default=[], dest="models", metavar="MODEL",
                   help="model name; a bundled one starts the embedded engine, another is looked up on the local "
                        "servers (default qwen2.5-coder-0.5b). Repeat it to sweep several models")
    p.add_argument("--base-url", action="append", default=[], dest="base_urls", metavar="URL",
                   help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:1234/v1 (repeat to share the work; "
                        "default: the embedded engine or a local server found on its usual port)")
    p.add_argument("--base-url-file", type=Path, help="a file listing endpoints, one per line (default none)")
    p.add_argument("--suite", action="append", default=[], dest="suites", metavar="SUITE",
                   help="suite name or path (repeatable; default: every built-in suite)")
    p.add_argument("--format", action="append", default=[], dest="formats", metavar="FORMAT",
                   help="tool-call format: native, default, pythonic, constrained (the reply held to a JSON Schema "
                        "of the offered calls; constrained+naive, +choice, +calls_first pick its envelope) "
                        "(repeatable; default: native and default)")
    p.add_argument("--tool-choice", action="append", default=[], dest="tool_choices", choices=TOOL_CHOICES,
                   help="native's tool_choice; repeat it to measure each as its own format, e.g. native and "
                        "native+required (default: auto, sent as no tool_choice)")
    p.add_argument("--tag", action="append", default=[], dest="tags", metavar="TAG",
                   help="only cases with this tag (repeatable; default: every case)")
    p.add_argument("--limit", type=whole_number(1), default=None,
                   help="only the first N cases of each suite (default: all)")
    p.add_argument("--sample", type=whole_number(1), default=None,
                   help="N cases of each suite drawn at random (fixed by --seed): the same N for every model and "
                        "format (default: all)")
    p.add_argument("--repeats", type=whole_number(1), default=1,
                   help="ask every case this many times; reports pass^k and the flip rate (default 1)")
    p.add_argument("--concurrency", type=whole_number(1), default=None,
                   help="requests in flight per endpoint (default: the server's slots when it reports them, else "
                        "4 with --base-url and 2 otherwise, the embedded engine's slots)")
    p.add_argument("--temperature", type=finite_number, default=0.0, help="sampling temperature (default 0)")
    p.add_argument("--max-tokens", type=whole_number(1), default=512, help="longest reply, in tokens (default 512)")
    p.add_argument("--seed", type=int, default=0, help="sent with every request, and draws --sample (default 0)")
    p.add_argument("--timeout", type=positive_seconds, default=limits.TIMEOUT_S,
                   help="seconds the server may stay silent mid-reply (default %(default)g)")
    p.add_argument("--deadline", type=positive_seconds, default=limits.DEADLINE_S,
                   help="seconds for a whole reply, request to last byte (default %(default)g: a CPU model can be slow)")
    p.add_argument("--max-reply-chars", type=whole_number(1), default=limits.MAX_REPLY_CHARS,
                   help="a longer reply (content and tool calls) is an error sample (default %(default)d)")
    p.add_argument("--retry-after-cap", type=positive_seconds, default=limits.RETRY_AFTER_CAP_S,
                   help="the longest wait a server's Retry-After gets (default %(default)g s)")
    p.add_argument("--max-arg-depth", type=whole_number(1), default=limits.MAX_ARG_DEPTH,
                   help="deeper-nested tool-call arguments are malformed (default %(default)d)")
    p.add_argument("--max-int-bits", type=whole_number(1), default=limits.MAX_INT_BITS,
                   help="larger integer arguments are malformed (default %(default)d)")
    p.add_argument("--max-alias-nodes", type=whole_number(0), default=limits.MAX_ALIAS_NODES,
                   help="nodes YAML aliases may add to a suite file (default %(default)d)")
    p.add_argument("--retries", type=int, default=2,
                   help="retries on connection errors, timeouts, 429 and 5xx (default 2)")
    p.add_argument("--no-stream", action="store_true", help="ask for whole replies instead of streaming (default: stream)")
    p.add_argument("--no-cache", action="store_true",
                   help="never answer from the response cache (default: the cache answers repeats at temperature 0)")
    p.add_argument("--cache", action="store_true", help="use the response cache even at temperature > 0 (default off)")
    p.add_argument("--max-parallel-tool-calls", type=whole_number(1), default=1,
                   help="agent cases: run up to N requested tools at once (default 1)")
    p.add_argument("--distractors", action="append", type=whole_number(0), default=[], metavar="N",
                   help="also offer N tools from the built-in pool that do not fit the request, drawn by --seed "
                        "and case id (repeatable: --distractors 0 --distractors 8 --distractors 32 draws the "
                        "accuracy-vs-tool-count curve); implies --tool-cost (default: none)")
    p.add_argument("--tool-cost", action="store_true",
                   help="measure the prompt tokens the tool definitions cost (one tools-free request per prompt; "
                        "default off)")
    p.add_argument("--shard", help="run only shard i of n (i/n), for splitting a run across machines; `auto` (or "
                                   "`auto/N`) reads i and n from a Kubernetes Indexed Job or a Slurm job array "
                                   "(default: all)")
    own = p.add_argument_group("your own server (docs/own-server.md)")
    own.add_argument("--api-key", help="sent as `Authorization: Bearer KEY` with every request; never written "
                                       "anywhere (default: $EVALKIT_API_KEY, else $OPENAI_API_KEY, else none)")
    own.add_argument("--header", action="append", type=parse_header, default=[], dest="headers",
                     metavar="'NAME: VALUE'",
                     help="an HTTP header for every chat request, e.g. a gateway's (repeatable; the run records the "
                          "names, not the values; default none)")
    own.add_argument("--extra-body", type=parse_extra_body, default=None, metavar="JSON",
                     help="fields merged into every chat request, e.g. "
                          "'{\"chat_template_kwargs\": {\"enable_thinking\": false}}' (default none)")
    own.add_argument("--config", type=Path, default=None, metavar="FILE.yaml",
                     help="a sweep whose options (model, base_url, api_key_env, extra_body, headers, formats) "
                          "differ: one run per option (default none)")
    own.add_argument("--allow-unlisted", action="store_true",
                     help="run a --model the server does not list (default: refused, as the results would carry "
                          "a name the server does not serve)")
    gates = p.add_argument_group("CI: exit 1 when a gate fails")
    gates.add_argument("--max-error-rate", type=rate, default=ci.DEFAULT_MAX_ERROR_RATE, metavar="RATE",
                       help="exit 1 when more of the samples are errors (default 10%%)")
    gates.add_argument("--fail-under", type=rate, default=None, metavar="RATE",
                       help="exit 1 when a model x format's call accuracy is below RATE, e.g. 0.8 (default none)")
    gates.add_argument("--junit", type=Path, default=None, metavar="FILE",
                       help="write JUnit XML: a testcase per sample, failures with their kind and detail "
                            "(default none)")
    p.add_argument("--until-decided", action="store_true",
                   help="run the cases in rounds, in one order drawn by --seed for every model and format, and stop "
                        "once the recommendation is settled by an anytime-valid test at alpha 0.05 "
                        "(docs/deciding.md; default: run every case)")
    p.add_argument("--min-accuracy", type=rate, default=None,
                   help="with --until-decided: the accuracy floor of the recommendation, 0 for none "
                        "(default: the recommendation's, 80%%)")
    p.add_argument("--out", type=Path, default=Path("reports/runs"),
                   help="parent directory of run (and sweep) directories (default reports/runs)")
    p.add_argument("--resume", type=Path, help="finish an interrupted run directory or sweep directory (default none)")
    p.add_argument("--ctx", type=whole_number(1), default=4096,
                   help="embedded engine: context tokens per slot (default 4096)")
    p.add_argument("--threads", type=whole_number(1), default=None,
                   help="embedded engine: CPU threads (default: all; fewer keeps a shared machine responsive)")
    p.add_argument("--probe", action="store_true",
                   help="first run `evalkit probe`'s checks on the same server and model; kept as probe.json "
                        "and shown in the report (default: off)")
    p.add_argument("--no-report", action="store_true",
                   help="skip report.md / report.html (default: write them, and a sweep's comparison)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (default: progress)")
    p.set_defaults(func=cmd_run)


def _read_url_file(path: Path) -> list[str]:
    if not path.is_file():
        raise EvalkitError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EvalkitError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def cmd_run(args: argparse.Namespace) -> int:
    from .rundir import print_summary
    from .session import RunOptions, execute

    if _OWN_PROCESS:
        _settle_imports()

    base_urls = list(args.base_urls) + (_read_url_file(args.base_url_file) if args.base_url_file else [])
    concurrency = args.concurrency
    if concurrency is None:
        concurrency = 2 if not base_urls else 4
    settings = Settings(
        temperature=args.temperature,
        repeats=args.repeats,
        concurrency=concurrency,
        seed=args.seed,
        max_tokens=args.max_tokens,
        stream=not args.no_stream,
        timeout_s=args.timeout,
        retries=max(0, args.retries),
        deadline_s=args.deadline,
        max_reply_chars=args.max_reply_chars,
        retry_after_cap_s=args.retry_after_cap,
        max_arg_depth=args.max_arg_depth,
        max_int_bits=args.max_int_bits,
        max_alias_nodes=args.max_alias_nodes,
        extra_body=args.extra_body,
    )
    if args.resume is not None and (args.models or args.config):
        raise EvalkitError("--resume takes the models from the run (or sweep) directory; "
                           "leave out --model and --config")
    if args.config is not None and args.models:
        raise EvalkitError("--config lists the models; leave out --model")
    from .runconfig import read_config
    from .schema import SweepMember

    config = read_config(args.config) if args.config is not None else None
    access = Access(api_key=args.api_key or key_from_environment(), headers=dict(args.headers))
    until_decided = _until_decided(args)
    options = RunOptions(
        model=args.models[0] if len(args.models) == 1 else None,
        base_urls=base_urls,
        suites=args.suites,
        formats=with_tool_choices(args.formats or ["native", "default"], args.tool_choices),
        tags=args.tags,
        limit=args.limit,
        sample=args.sample,
        settings=settings,
        concurrency_given=args.concurrency is not None,
        out=args.out,
        resume=args.resume,
        cache=False if args.no_cache else (True if args.cache else None),
        shard=shards.resolve_shard(args.shard, os.environ),
        max_parallel_tool_calls=args.max_parallel_tool_calls,
        distractors=args.distractors,
        tool_cost=args.tool_cost or bool(args.distractors),
        report=not args.no_report,
        engine_ctx=args.ctx,
        engine_threads=args.threads,
        quiet=args.quiet,
        probe=args.probe,
        access=access,
        allow_unlisted=args.allow_unlisted,
        until_decided=until_decided,
    )
    from . import sweep

    members: list[str] | list[SweepMember] = sweep.members_of(config) if config else args.models
    if len(members) > 1 or config or (args.resume is not None and sweep.is_sweep(args.resume)):
        sweep_dir = args.resume if args.resume is not None else sweep.start(members, options, args.config)
        run_dirs = sweep.run(sweep_dir, quiet=options.quiet, access=access)
        sweep.finish(sweep_dir, run_dirs)
        return _gates(args, run_dirs)
    run_dir = execute(options)
    closing: list[str] = []
    if options.report:
        from .report.write import write_run_report_closing

        closing = write_run_report_closing(run_dir)
    print_summary(run_dir)
    _print_decision(run_dir)
    if closing:  # the verdict per model and where the report is, last
        print("\n" + "\n".join(closing))
    return _gates(args, [run_dir])


def _gates(args: argparse.Namespace, run_dirs: list[Path]) -> int:
    """--junit, then the CI gates: each failed one is a line on stderr, and the exit code 1."""
    if args.junit is not None:
        ci.write_junit(run_dirs, args.junit)
    failed = [line for run_dir in run_dirs for line in ci.gate_failures(run_dir, args.max_error_rate, args.fail_under)]
    for line in failed:
        print(f"evalkit: {line}", file=sys.stderr)
    return 1 if failed else 0


def _until_decided(args: argparse.Namespace) -> UntilDecided | None:
    """--until-decided's settings, after the checks that need only the flags."""
    if not args.until_decided:
        if args.min_accuracy is not None:
            raise EvalkitError("--min-accuracy sets the floor of --until-decided; add --until-decided "
                               "(or use `evalkit recommend --min-accuracy`)")
        return None
    if args.resume is not None:
        raise EvalkitError("--resume continues the run (or sweep) as it started; leave out --until-decided")
    if args.shard:
        raise EvalkitError("--until-decided decides on the cases every option ran; it cannot run one shard")
    if args.config is None and len(args.models) < 2 and len(set(args.formats or ["native", "default"])) < 2:
        raise EvalkitError("--until-decided chooses between options: give several --model or several --format")
    spec = UntilDecided()
    if args.min_accuracy is not None:
        spec.min_accuracy = args.min_accuracy or None
    return spec


def _print_decision(run_dir: Path) -> None:
    """An --until-decided run: when and why it stopped, and the recommendation over its formats."""
    from .report.model import load_run, make_entries
    from .report.recommend import recommend_entries
    from .report.write import decided_by

    constraints, stopped = decided_by(run_dir)
    if constraints is None:
        return
    if stopped:
        print(f"\n{stopped}")
    rec = recommend_entries(make_entries([load_run(run_dir)]), constraints)
    print(f"no recommendation: {rec.reason}" if rec.refused else rec.text())


def cmd_suites(args: argparse.Namespace) -> int:
    from .suites import read_suite, suite_paths

    rows = []
    for path in suite_paths(args.dir):
        loaded = read_suite(path)
        suite = loaded.suite
        agent = sum(1 for c in suite.cases if c.mode == "agent")
        rows.append((suite.name, len(suite.cases), agent, str(path), suite.description))
    if not rows:
        print("no suites found")
        return 0
    width = max(len(r[0]) for r in rows)
    print(f"{'suite':<{width}}  cases  agent  description")
    for name, cases, agent, _path, description in rows:
        summary = description.split(". ")[0].strip()
        summary = summary if len(summary) <= 70 else summary[:67] + "..."
        print(f"{name:<{width}}  {cases:>5}  {agent:>5}  {summary}")
    print(f"\n{len(rows)} suites, {sum(r[1] for r in rows)} cases")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="evalkit", description="Tool-calling evaluation for local LLMs.",
                           epilog="`evalkit COMMAND --help` shows a command's options with their defaults. "
                                  "Start with: evalkit run --model MODEL --base-url URL (README.md)")
    parser.add_argument("--version", action="version", version=f"evalkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(subparsers)
    p = subparsers.add_parser("suites", help="list suites with their case counts")
    p.add_argument("--dir", type=Path, default=None, help="a folder of suites (default: the built-in ones)")
    p.set_defaults(func=cmd_suites)
    for module in COMMAND_MODULES:
        module.add_commands(subparsers)
    add_import_commands(subparsers)
    polish(parser)
    return parser


def add_import_commands(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """`evalkit import SOURCE ...`: one sub-command, a sub-parser per importer module."""
    p = subparsers.add_parser("import", help="convert a public benchmark or an MCP server's tools into evalkit suites")
    sources = p.add_subparsers(dest="source", metavar="SOURCE", required=True)
    for module in IMPORT_MODULES:
        module.add_import_command(sources)
    return sources


# Set by `console`, the `evalkit` command: the process is evalkit's alone, so process-wide settings
# (the garbage collector's) are evalkit's to make; not when other code (a test) calls `main`.
_OWN_PROCESS = False


def _settle_imports() -> None:
    """Everything a run imports lives as long as the process: import the HTTP client's library
    now (the first request needs it anyway), then move all of it out of the cyclic garbage
    collector's sight (`gc.freeze`). Every later full collection, and the passes at exit, would
    traverse those objects again for nothing: about 0.2 s of CPU per run on the 2-core benchmark
    machine (issue 17)."""
    from .client import load_http

    load_http()
    gc.freeze()


def console() -> int:
    """The `evalkit` command (console script, `python -m evalkit`, `python -m evalkit.cli`)."""
    global _OWN_PROCESS
    _OWN_PROCESS = True
    return main()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad flag (one line printed): its code, as for any command
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EvalkitError as exc:
        print(f"evalkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if not isinstance(exc, Interrupted):  # a run says where its samples are; anything else says this
            print("evalkit: interrupted", file=sys.stderr)
        return 128 + getattr(exc, "signum", 2)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(console())
