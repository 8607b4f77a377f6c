"""`evalkit view [DIR...]`: serve the viewer on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cliargs import whole_number
from ..errors import EvalkitError
from . import links

DEFAULT_DIR = Path("reports/runs")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "view", help="browse runs in a local web viewer: filter samples, compare one case across options",
        description="Serves a viewer of run and sweep directories on 127.0.0.1 (nothing is reachable from "
                    "another machine, and the page loads nothing from the network): a samples table with "
                    "filters, sorting, search and paging; one case across every model x format side by side; "
                    "agent trajectories round by round. report.html links its failing cases here.")
    p.add_argument("dirs", nargs="*", type=Path, metavar="DIR",
                   help=f"run directories, sweep directories or folders of them (default {DEFAULT_DIR})")
    p.add_argument("--port", type=whole_number(0), default=links.PORT,
                   help="port on 127.0.0.1; 0 picks a free one (default %(default)d, where report.html's links point)")
    p.set_defaults(func=cmd_view)


def cmd_view(args: argparse.Namespace) -> int:
    from .serve import serve

    if not args.dirs and not DEFAULT_DIR.is_dir():
        raise EvalkitError(f"{DEFAULT_DIR}: no runs here yet; `evalkit run` writes them, or name run "
                           "directories: evalkit view DIR...")
    serve(args.dirs or [DEFAULT_DIR], args.port, announce=lambda url: print(url, file=sys.stderr, flush=True))
    return 0
