"""`evalkit import bfcl [--category C]... [--out DIR]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .conversion import import_bfcl
from .wheel import BFCL_VERSION, CATEGORIES


def cmd_import_bfcl(args: argparse.Namespace) -> int:
    counts = import_bfcl(args.category or None, args.out)
    width = max(len(c) for c in counts)
    for category, n in counts.items():
        print(f"{category:<{width}}  {n:>5}  {Path(args.out) / (category + '.jsonl')}")
    print(f"{sum(counts.values())} BFCL entries imported from bfcl-eval {BFCL_VERSION}")
    return 0


def add_import_command(sources: argparse._SubParsersAction) -> None:
    """Add `bfcl` to the sub-parsers of `evalkit import` (see evalkit.cli.add_import_commands)."""
    bfcl = sources.add_parser(
        "bfcl",
        help=f"Berkeley Function Calling Leaderboard (bfcl-eval {BFCL_VERSION})",
        description="Download bfcl-eval's wheel (no dependencies) and convert its single-turn "
        "categories into evalkit JSONL suites.",
    )
    bfcl.add_argument(
        "--category", action="append", choices=CATEGORIES, metavar="C",
        help=f"a category to import (repeatable; default all: {', '.join(CATEGORIES)})",
    )  # fmt: skip
    bfcl.add_argument("--out", default=str(Path("suites") / "bfcl"), help="output directory (default suites/bfcl)")
    bfcl.set_defaults(func=cmd_import_bfcl)
