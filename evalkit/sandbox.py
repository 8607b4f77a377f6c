"""Keeping agent tools inside the temporary directory evalkit gives each sample."""

from __future__ import annotations

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


@contextmanager
def sandbox_dir(fixtures: Path | None = None) -> Iterator[Path]:
    """A fresh temporary directory (optionally seeded with a copy of `fixtures`), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="evalkit-sandbox-"))
    try:
        if fixtures is not None:
            # Links are copied as links (the suite check keeps them inside the fixtures): followed,
            # a link to a file or folder outside put real copies of it in the root.
            shutil.copytree(fixtures, path, dirs_exist_ok=True, symlinks=True)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
