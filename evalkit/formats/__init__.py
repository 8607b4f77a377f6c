"""Tool-call formats. Each module in this package defines `FORMAT`; adding a format is one new file.

A module may also define `VARIANTS` (variant name -> format): its one table of ways to send the
same format, named `FORMAT+VARIANT` on the command line and in every file (`native+required`,
`constrained+naive`). A format's `name` is its canonical spelling: what a run records and keys
its samples by, so `constrained` and `native+auto` are written as the variant they stand for.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from ..errors import EvalkitError
from .base import ParsedReply, ToolFormat

__all__ = ["ParsedReply", "ToolFormat", "available", "canonical", "get_format"]


def _modules() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_")
    )


def available() -> list[str]:
    """Every name --format takes: each format, then its variants."""
    names = []
    for module_name in _modules():
        names.append(module_name)
        variants = getattr(importlib.import_module(f"{__name__}.{module_name}"), "VARIANTS", {})
        names += [f"{module_name}+{variant}" for variant in variants]
    return names


# Every request and sample asks: once found, a format is answered without listing the package
# (which reads a directory). An unknown name raises, and errors are not cached.
@functools.cache
def get_format(name: str) -> ToolFormat:
    base, plus, variant = name.partition("+")
    if base not in _modules():
        raise EvalkitError(f"unknown --format {name!r} (available: {', '.join(available())})")
    module = importlib.import_module(f"{__name__}.{base}")
    if not plus:
        return module.FORMAT
    variants = getattr(module, "VARIANTS", {})
    if variant not in variants:
        raise EvalkitError(f"unknown --format {name!r} (available: {', '.join(available())})")
    return variants[variant]


def canonical(name: str) -> str:
    """The name a run records for --format `name` (`constrained` -> its default envelope's name)."""
    return get_format(name).name
