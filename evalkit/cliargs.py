"""Argument types shared by evalkit's subcommands: a bad value is one argparse line, not a traceback."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Callable

from .clihelp import suggestion


def rate(text: str) -> float:
    """A rate: 0.8 or 80%. A bare number above 1 is refused: 1 reads as 100% but 1.5 would read
    as 1.5%, so it is never guessed."""
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw.removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate (e.g. 0.8 or 80%)") from None
    if not percent and value > 1:
        raise argparse.ArgumentTypeError(f"{text!r}: did you mean {value:g}%? (a bare number is a fraction from 0 to 1)")
    if percent:
        value /= 100
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1 (or 0% and 100%)")
    return value


def whole_number(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be {minimum} or more")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


def finite_number(text: str) -> float:
    """A finite number (`--temperature nan` was sent as NaN and stored as null in header.json)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number")
    return value


def positive_seconds(text: str) -> float:
    """A duration: a finite number above 0 (`--timeout 0` made every request time out; nan broke the run)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds above 0")
    return value


positive_seconds.__name__ = "seconds"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (the usage text is what --help is for), with a
    "did you mean" when a flag or subcommand is a typo away from a real one."""

    _argv: list[str] = []

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self._argv = list(sys.argv[1:] if args is None else args)  # for error()'s suggestion
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> None:  # type: ignore[override]
        hint = suggestion(self, self._argv, message)
        self.exit(2, f"{self.prog}: error: {message}{hint} (see `{self.prog} --help`)\n")
