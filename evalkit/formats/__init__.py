"""Tool-call formats. Each module in this package defines `FORMAT`; adding a format is one new file."""

from __future__ import annotations

import importlib
import pkgutil
import sys

from ..errors import EvalkitError
from .base import ParsedReply, ToolFormat

__all__ = ["ParsedReply", "ToolFormat", "available", "get_format"]


def available() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_")
    )


def get_format(name: str) -> ToolFormat:
    # Every sample asks: a format already imported is answered without listing the package
    # (which reads a directory).
    loaded = sys.modules.get(f"{__name__}.{name}")
    if loaded is not None and hasattr(loaded, "FORMAT"):
        return loaded.FORMAT
    if name not in available():
        raise EvalkitError(f"unknown --format {name!r} (available: {', '.join(available())})")
    module = importlib.import_module(f"{__name__}.{name}")
    return module.FORMAT
