"""Where evalkit keeps files that are not part of a run: the model cache."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$EVALKIT_CACHE_DIR, else $XDG_CACHE_HOME/evalkit, else ~/.cache/evalkit (not created here)."""
    explicit = os.environ.get("EVALKIT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "evalkit"
    return Path.home() / ".cache" / "evalkit"


def models_dir() -> Path:
    """Assembled GGUF files live here, one per bundled model."""
    return cache_dir() / "models"
