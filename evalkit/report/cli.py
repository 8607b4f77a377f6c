"""`evalkit report` and `evalkit recommend`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cliargs import rate, whole_number


def _seconds(text: str) -> float:
    try:
        value = float(text.strip().removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0")
    return value


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="write report.md / report.html for a run, or a comparison report for several",
        description="One run directory: its report (report.md, report.html, figures, leaderboard.csv) in the run "
                    "directory. Several: a comparison report in --out (default reports/compare-<timestamp>/); "
                    "the first run is the baseline for flipped cases. A folder of runs stands for all of them.")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, help="where to write (one run: default its own directory)")
    p.add_argument("--print", action="store_true", dest="print_md", help="also print the Markdown report")
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser(
        "recommend", help="the best model x format under your constraints, and why the others are out",
        description="Options are compared on the cases all of them ran. Among those meeting every constraint, the "
                    "highest call accuracy wins unless the gap is within the noise (McNemar's exact test on cases); a tie "
                    "goes to the first of fewer hallucinated tools, higher no-call accuracy, lower latency p95 with a "
                    "basis on both sides and a difference beyond the noise (docs/recommendation.md). Exits 1 when "
                    "no option meets the constraints (none is ready for deployment). A sweep directory or a folder "
                    "of runs stands for all its runs.")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--min-accuracy", type=rate, default=None,
                   help="lowest acceptable call accuracy, 0.9 or 90%% (default 80%%; 0 for no floor)")
    p.add_argument("--max-hallucination", type=rate, default=None,
                   help="highest acceptable share of replies calling a tool that was not offered (default no limit)")
    p.add_argument("--min-no-call-accuracy", type=rate, default=None,
                   help="lowest acceptable accuracy on cases that need no call (default no limit)")
    p.add_argument("--max-latency-p95", type=_seconds, help="highest acceptable latency p95 in seconds (default no limit)")
    p.add_argument("--suite", action="append", default=[], dest="suites",
                   help="judge on these suites only (repeatable; default: all in the runs)")
    p.add_argument("--min-samples", type=whole_number(0), default=None,
                   help="fewest scored samples an option needs (default 10)")
    p.add_argument("--max-error-rate", type=rate, default=None,
                   help="largest share of server errors an option may have, 0.1 or 10%% (default 10%%)")
    p.add_argument("--distractors", type=whole_number(0), default=None, metavar="N",
                   help="compare the options at N distractor tools (default +0, the smallest count run)")
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON")
    p.set_defaults(func=cmd_recommend)


def cmd_report(args: argparse.Namespace) -> int:
    from .model import expand_run_dirs
    from .write import write_comparison, write_run_report

    run_dirs = expand_run_dirs(args.run_dirs)
    if len(run_dirs) == 1:
        md, html = write_run_report(run_dirs[0], args.out)
    else:
        md, html = write_comparison(run_dirs, args.out)
    if args.print_md:
        print(md.read_text(encoding="utf-8"))
    print(f"report: {md}")
    print(f"        {html}")
    print(f"        {md.parent / 'leaderboard.csv'}")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from .recommend import DEFAULT_MAX_ERROR_RATE, DEFAULT_MIN_ACCURACY, DEFAULT_MIN_SAMPLES, recommend

    rec = recommend(
        args.run_dirs,
        min_accuracy=DEFAULT_MIN_ACCURACY if args.min_accuracy is None else (args.min_accuracy or None),
        max_hallucination=args.max_hallucination,
        min_no_call_accuracy=args.min_no_call_accuracy,
        max_latency_p95=args.max_latency_p95,
        suites=args.suites or None,
        min_samples=DEFAULT_MIN_SAMPLES if args.min_samples is None else args.min_samples,
        max_error_rate=DEFAULT_MAX_ERROR_RATE if args.max_error_rate is None else args.max_error_rate,
        distractors=args.distractors,
    )
    print(rec.to_json() if args.json else rec.text())
    return 0 if rec.best is not None else 1
