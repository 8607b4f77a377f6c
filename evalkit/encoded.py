"""Requests encoded once: the bytes a request was sent as are the bytes its sample line holds.

The client encodes each request body with `encode(params)` (pydantic's JSON, the encoding the
sample line uses too); the sample log takes the bytes back with `take(params)` for the line's
`request`, rather than encoding the same dict a second time. Entries are found by the dict's
identity and hold the dict (so an id is never reused) until taken; a request that never
reaches a line (an agent round's, a failed one) is dropped, oldest first, once more than
MAX_HELD_BYTES wait.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import pydantic_core

MAX_HELD_BYTES = 16 * 1024 * 1024

_held: OrderedDict[int, tuple[dict[str, Any], bytes]] = OrderedDict()
_held_bytes = 0
_lock = threading.Lock()


def encode(params: dict[str, Any]) -> bytes:
    """`params` as JSON bytes, kept for `take`. A request must not change once sent."""
    global _held_bytes
    data = pydantic_core.to_json(params)
    with _lock:
        old = _held.pop(id(params), None)
        if old is not None:
            _held_bytes -= len(old[1])
        _held[id(params)] = (params, data)
        _held_bytes += len(data)
        while _held_bytes > MAX_HELD_BYTES and len(_held) > 1:
            _, (_, dropped) = _held.popitem(last=False)
            _held_bytes -= len(dropped)
    return data


def take(params: Any) -> bytes | None:
    """The bytes `params` was sent as, once; None if it was not sent (or was dropped)."""
    global _held_bytes
    with _lock:
        entry = _held.pop(id(params), None)
        if entry is None:
            return None
        _held_bytes -= len(entry[1])
    return entry[1] if entry[0] is params else None
