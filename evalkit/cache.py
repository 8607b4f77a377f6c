"""A response cache in SQLite, so a repeated deterministic run costs no inference.

The key hashes everything that can change a reply: base URL, model id, what the server said it
serves (its model file or digest, quantization, template hash, build: identity.py), the extra
headers (as a digest), the full request (messages, tools, sampling settings, --extra-body), the
format, streaming, and the repeat index — never the request alone, or two models (or two
repeats) would share answers. Replies cached before the served identity was part of the key
answer only a server that tells no identity (its key is made as it was then): a server that
tells one gets keys no earlier evalkit made, so no old reply answers under an identity.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from .client import Completion
from .paths import cache_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    base_url TEXT NOT NULL,
    completion TEXT NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now'))
)
"""


def default_path() -> Path:
    return cache_dir() / "responses.sqlite"


class ResponseCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # No fsync per insert (WAL syncs at checkpoints): an insert is on the event loop, and the
        # fsync made each one block it for ~1 ms or more. The database stays consistent after
        # any crash; a power cut can lose the last answers cached, which are asked again.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)
        self.hits = 0
        self.misses = 0

    @classmethod
    def open_default(cls) -> "ResponseCache":
        return cls(default_path())

    @staticmethod
    def key(base_url: str, model: str, params: dict[str, Any], stream: bool, repeat: int, fmt: str = "",
            served: dict[str, Any] | None = None, headers: str | None = None) -> str:
        material: dict[str, Any] = {
            "base_url": base_url.rstrip("/"),
            "model": model,
            "request": params,
            "format": fmt,
            "stream": stream,
            "repeat": repeat,
        }
        # Only when told: a server that tells nothing keeps the keys of earlier evalkits (they could
        # not know more either), and any identity makes a key no earlier evalkit made.
        if served:
            material["served"] = served
        if headers:
            material["headers"] = headers
        blob = json.dumps(material, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT completion FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        data = json.loads(row[0])
        return Completion(**data)

    def put(self, key: str, completion: Completion, model: str = "", base_url: str = "") -> None:
        data = {
            "content": completion.content,
            "tool_calls": completion.tool_calls,
            "finish_reason": completion.finish_reason,
            "usage": completion.usage,
            "timings": completion.timings,
            "latency_s": completion.latency_s,
            "ttft_s": completion.ttft_s,
            "extra": completion.extra,
        }
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, model, base_url, completion) VALUES (?, ?, ?, ?)",
                (key, model, base_url, json.dumps(data, ensure_ascii=False)),
            )

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def clear(self) -> int:
        with self._lock:
            removed = self._db.execute("DELETE FROM responses").rowcount
            self._db.execute("VACUUM")
        return int(removed)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def cmd_cache(args: argparse.Namespace) -> int:
    path = default_path()
    if args.action == "clear":
        if not path.exists():
            print(f"cache is empty ({path})")
            return 0
        cache = ResponseCache(path)
        removed = cache.clear()
        cache.close()
        print(f"removed {removed} cached responses from {path}")
        return 0
    count = ResponseCache(path).count() if path.exists() else 0
    print(f"{count} cached responses in {path}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cache", help="the response cache: `cache info`, `cache clear`")
    p.add_argument("action", choices=["info", "clear"])
    p.set_defaults(func=cmd_cache)
