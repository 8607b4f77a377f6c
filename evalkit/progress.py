"""A run's progress on stderr: tqdm's bar on a terminal, a plain line every few seconds elsewhere.

A bar redraws itself with carriage returns; written to a log file or a CI console (not a
terminal) those pile up into one line of tens of kilobytes. Elsewhere, then, progress is a
line every `every` seconds and one at the end.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from .schema import Sample

LINE_EVERY_S = 10.0


class Progress:
    def __init__(self, total: int, desc: str, *, quiet: bool = False, stream: TextIO | None = None,
                 every: float = LINE_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.total, self.desc = total, desc
        self.stream = stream if stream is not None else sys.stderr
        self.every, self.clock = every, clock
        self.done = self.errors = self.cached = 0
        self.started = self.last = clock()
        self.quiet = quiet
        self.bar = None
        if not quiet and _is_terminal(self.stream):
            from tqdm import tqdm  # here: a run into a log file or a pipe never draws a bar

            self.bar = tqdm(total=total, desc=desc, unit="sample", file=self.stream)

    def update(self, sample: Sample) -> None:
        self.done += 1
        self.errors += sample.error is not None
        self.cached += bool(sample.cached)
        if self.bar is not None:
            self.bar.update(1)
        elif not self.quiet and self.clock() - self.last >= self.every:
            self._line()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif not self.quiet and self.total:
            self._line()

    def _line(self) -> None:
        self.last = self.clock()
        share = self.done / self.total if self.total else 1.0
        extra = "".join(f", {n} {what}" for n, what in ((self.errors, "errors"), (self.cached, "from cache")) if n)
        print(f"{self.desc}: {self.done}/{self.total} samples ({share:.0%}){extra}, "
              f"{self.last - self.started:.0f} s", file=self.stream, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
