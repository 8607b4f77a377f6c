"""Which run directories a list of paths stands for: run directories, sweep directories, folders of
either (e.g. reports/runs) and shell-style globs. Shared by `evalkit view` and the pandas API."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Iterable

from .errors import EvalkitError
from .rundir import HEADER

# How deep a folder is searched for run directories: reports/runs/sweep-X/run-Y is two levels.
MAX_DEPTH = 3


def _runs_under(path: Path, depth: int) -> list[Path]:
    if (path / HEADER).is_file():
        return [path]
    if depth == 0 or not path.is_dir():
        return []
    found: list[Path] = []
    for child in sorted(path.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            found.extend(_runs_under(child, depth - 1))
    return found


def find_run_dirs(paths: Iterable[Path | str]) -> list[Path]:
    """Every run directory the paths stand for, each once, in the order given. A path that names
    no run directory is one clear error (a typo must not look like an empty result)."""
    out: list[Path] = []
    for raw in paths:
        text = str(raw)
        matches = [Path(m) for m in sorted(glob.glob(text))] if glob.has_magic(text) else [Path(text)]
        found = [run for match in matches for run in _runs_under(match, MAX_DEPTH)]
        if not found:
            what = "no such file or directory" if not matches or not matches[0].exists() else f"no run directory (no {HEADER}) in it"
            raise EvalkitError(f"{text}: {what}")
        out.extend(found)
    seen: set[Path] = set()
    unique = []
    for run in out:
        key = run.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(run)
    return unique
