"""Tool-call formats. Each module in this package defines `FORMAT`; adding a format is one new file."""

from __future__ import annotations

import functools
import importlib
import pkgutil

from ..errors import EvalkitError
from .base import ParsedReply, ToolFormat

__all__ = ["ParsedReply", "ToolFormat", "available", "get_format"]


def available() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_")
    )


# Every request and sample asks: once found, a format is answered without listing the package
# (which reads a directory). An unknown name raises, and errors are not cached.
@functools.cache
def get_format(name: str) -> ToolFormat:
    if name not in available():
        raise EvalkitError(f"unknown --format {name!r} (available: {', '.join(available())})")
    module = importlib.import_module(f"{__name__}.{name}")
    return module.FORMAT
