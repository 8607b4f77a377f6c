"""What a server serves, as far as it tells (engine/facts.py reads it): the identity that ties
cached replies to the weights and template that made them, and sweep members to their weights.

One table of the facts that make the identity; a fact a server does not tell is left out.
"""

from __future__ import annotations

from typing import Any, Callable

from .schema import ServerFacts

# name in the identity -> how it is read from the server's facts. The served id alone names a
# model, it does not pin it: the others change when the weights, the quantization, the chat
# template or the engine do (a restarted server with a fixed template is another server).
IDENTITY_FACTS: dict[str, Callable[[ServerFacts], Any]] = {
    "served_id": lambda f: f.model.id,
    "file": lambda f: f.model.file,
    "digest": lambda f: f.model.digest,
    "size_bytes": lambda f: f.model.size_bytes,
    "quantization": lambda f: f.model.quantization,
    "template_sha256": lambda f: f.template_sha256,
    "build": lambda f: f.build,
    "kind": lambda f: f.kind if f.kind != "unknown" else None,
}
# Facts that pin what answers beyond its name: without any, the cache is tied to a name only.
PINNING = ("file", "digest", "quantization", "template_sha256", "build")
# Facts that say which weights are loaded (a sweep of the same weights twice compares nothing).
WEIGHTS = ("file", "digest", "size_bytes", "quantization")


def served_identity(facts: ServerFacts | None) -> dict[str, Any]:
    if facts is None:
        return {}
    return {name: value for name, read in IDENTITY_FACTS.items() if (value := read(facts)) is not None}


def is_tied(identity: dict[str, Any] | None) -> bool:
    """Does the identity pin what answers (not just its name)?"""
    return any(identity.get(name) is not None for name in PINNING) if identity else False


def weights_of(identity: dict[str, Any], server: str) -> tuple[Any, ...]:
    """The weights a sweep member runs: the model file or digest when the server tells it, else
    the server and the id it answers as (llama.cpp answers every name with its one model)."""
    told = tuple((name, identity[name]) for name in WEIGHTS if identity.get(name) is not None)
    if any(name in ("file", "digest") for name, _ in told):
        return told
    return (("server", server), ("served_id", identity.get("served_id")))


def describe(identity: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in identity.items() if k != "template_sha256") or "nothing told"
