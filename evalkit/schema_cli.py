"""`evalkit schema NAME`: print the JSON Schema of one evalkit file format."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import published
from .errors import EvalkitError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    names = ", ".join(f"{name} ({model.__name__})" for name, (model, _) in published.SCHEMAS.items())
    p = subparsers.add_parser(
        "schema", help="print the JSON Schema of a suite file, a sample line, results.json or header.json",
        description=f"Prints the JSON Schema (draft 2020-12) generated from evalkit's typed schema: {names}. "
                    "Point an editor at the suite schema to check suite files as you type (the built-in suites "
                    "do, in their first line); validate files with any JSON Schema tool.")
    p.add_argument("name", nargs="?", choices=list(published.SCHEMAS), metavar="NAME",
                   help="which format: " + ", ".join(published.SCHEMAS) + " (default: none; needed without --out)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write every schema as DIR/NAME.schema.json instead of printing one (default: print)")
    p.set_defaults(func=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> int:
    if args.out is None and args.name is None:
        raise EvalkitError("name the format: evalkit schema " + "|".join(published.SCHEMAS) + " (or --out DIR for all)")
    if args.out is None:
        print(published.schema_text(args.name), end="")
        return 0
    from .rundir import write_atomic

    for name in published.SCHEMAS:
        write_atomic(args.out / published.FILE.format(name=name), published.schema_text(name))
    return 0
