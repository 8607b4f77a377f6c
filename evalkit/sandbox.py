"""Keeping agent tools inside the temporary directory evalkit gives each sample."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class SandboxEscape(ValueError):
    """A tool was asked to touch a path outside its sandbox."""


def resolve_inside(sandbox: Path, user_path: str | Path) -> Path:
    """Map a path the model asked for onto the sandbox; absolute paths are taken as sandbox-rooted.

    Symlinks are resolved before the check, so a link pointing out of the sandbox is refused too.
    """
    root = Path(sandbox).resolve()
    relative = str(user_path).lstrip("/\\") or "."
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise SandboxEscape(f"path {str(user_path)!r} is outside the sandbox")
    return target


PREFIX = "evalkit-sandbox-"


def remove_stale_sandboxes(folder: Path | None = None) -> int:
    """Remove the sandboxes of evalkit processes that are gone (killed with kill -9, their folders
    stayed); each sandbox's name carries the pid of the evalkit that made it. Returns how many."""
    folder = Path(folder or tempfile.gettempdir())
    removed = 0
    for path in folder.glob(f"{PREFIX}*-*"):
        owner = path.name[len(PREFIX):].split("-", 1)[0]
        if not owner.isdigit() or _alive(int(owner)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


_swept = False


@contextmanager
def sandbox_dir(fixtures: Path | None = None) -> Iterator[Path]:
    """A fresh temporary directory (optionally seeded with a copy of `fixtures`), removed afterwards.
    The first of a process also removes what killed evalkits left behind (remove_stale_sandboxes)."""
    global _swept
    if not _swept:
        _swept = True
        remove_stale_sandboxes()
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    try:
        if fixtures is not None:
            # Links are copied as links (the suite check keeps them inside the fixtures): followed,
            # a link to a file or folder outside put real copies of it in the root.
            shutil.copytree(fixtures, path, dirs_exist_ok=True, symlinks=True)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
