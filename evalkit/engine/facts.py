"""What a server tells about itself and the model it serves: `server_facts(base_url, model)`.

For a run's header (issue 14: serving stack; issue 12: model identity) and for `evalkit probe`.
Never fatal: whatever does not answer is named in `errors`. Loopback only: evalkit asks no other
host about itself. Every field below is read from the servers' own documentation or source:

- llama.cpp: `GET /props` (`build_info`, `chat_template`, `chat_template_caps`, `total_slots`,
  `model_path`, `default_generation_settings.n_ctx`) and `GET /v1/models` (`owned_by:
  "llamacpp"`, `meta.n_params`, `meta.n_ctx_train`, `meta.size`) per
  https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md; `meta.ftype` (the
  quantization, e.g. "Q4_K - Medium") and `GET /slots` -> `params.chat_format` (the tool-call
  format the server detected from the template, e.g. "peg-native", once a request has run)
  as the embedded engine (xllamacpp 2026.10.11549) answers them.
- Ollama: `GET /api/version` -> `{"version"}` and `POST /api/show {"model"}` -> `details`
  (`quantization_level`, `parameter_size`), `model_info` (`general.parameter_count`,
  `<arch>.context_length`), `template`, `capabilities`, `parser`, `renderer` per
  https://github.com/ollama/ollama/blob/main/docs/api.md and `api/types.go` (ShowResponse);
  `GET /api/ps` -> `models[]` with `name`, `size`, `digest`, `size_vram` (the bytes in GPU memory) and
  `context_length` (the context it was loaded with) per https://docs.ollama.com/api/ps.
- LM Studio: `GET /api/v0/models` -> `data[]` with `id`, `arch`, `compatibility_type`,
  `quantization`, `max_context_length` per https://lmstudio.ai/docs/developer/rest/endpoints.
- vLLM: `GET /v1/models` -> `owned_by: "vllm"`, `root`, `max_model_len` (ModelCard in
  vllm/entrypoints/openai/protocol.py) and `GET /version` -> `{"version"}`
  (vllm tests/entrypoints/openai/test_basic.py::test_show_version).
"""

from __future__ import annotations

import hashlib
import re
from functools import partial
from typing import Any, Callable
from urllib.parse import urlsplit

from evalkit.callsyntax import own_family
from evalkit.engine.discover import HTTPStatusError, get_json, server_root
from evalkit.engine.server import LOOPBACK_HOSTS
from evalkit.schema import ServerFacts

KINDS = ("llama.cpp", "ollama", "lmstudio", "vllm", "unknown")
TIMEOUT_S = 3.0

Fetch = Callable[[str, "dict | None", float], Any]


def fetch_json(url: str, body: dict | None = None, timeout: float = TIMEOUT_S, api_key: str | None = None) -> Any:
    """GET (or POST `body`) and decode JSON, through evalkit's one HTTP probe helper."""
    return get_json(url, timeout, body=body, api_key=api_key)


def is_loopback(base_url: str) -> bool:
    return (urlsplit(base_url).hostname or "") in LOOPBACK_HOSTS


def sha256_text(text: str | None) -> str | None:
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text else None


class _Asker:
    """Asks one server, remembering what answered (and, when asked to, the raw bodies)."""

    def __init__(self, root: str, fetch: Fetch, keep_raw: bool):
        self.root, self.fetch, self.keep_raw = root, fetch, keep_raw
        self.asked: list[str] = []
        self.errors: dict[str, str] = {}
        self.raw: dict[str, Any] = {}

    def __call__(self, path: str, body: dict | None = None) -> Any:
        label = f"{'POST' if body is not None else 'GET'} {path}"
        self.asked.append(label)
        try:
            value = self.fetch(self.root + path, body, TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - never fatal: the facts say what failed
            self.errors[label] = _short_error(exc)
            return None
        if self.keep_raw:
            self.raw[label] = value
        return value


def _short_error(exc: Exception) -> str:
    if isinstance(exc, HTTPStatusError):
        return f"HTTP {exc.status}"
    reason = getattr(exc, "reason", None)
    return f"{type(exc).__name__}: {reason or exc}"[:200]


def server_facts(base_url: str, model: str | None = None, *, keep_raw: bool = False,
                 fetch: Fetch | None = None, api_key: str | None = None, any_host: bool = False) -> dict[str, Any]:
    """Serving stack and model identity as the server tells them; unknown fields are None.

    The fields of `schema.ServerFacts` as a dict: `{"kind", "build", "template_sha256",
    "tool_call_format", "template_caps", "slots", "model": {"id", "quantization", ...},
    "served": [ids from /v1/models], "asked": [...], "errors": {...}}`, plus `raw` (the bodies,
    for a probe's evidence) when `keep_raw`. Only loopback servers are asked unless `any_host`
    (a run asks the server the user named with --base-url, where its requests go anyway).
    """
    facts: dict[str, Any] = ServerFacts().model_dump()
    facts["model"]["id"] = model
    if not any_host and not is_loopback(base_url):
        facts["errors"]["*"] = "not a loopback server: evalkit asks only loopback servers about themselves"
        return facts
    if fetch is None:
        fetch = partial(fetch_json, api_key=api_key) if api_key else fetch_json
    ask = _Asker(server_root(base_url), fetch, keep_raw)
    listing = ask("/v1/models")
    facts["served"] = _served(listing)
    entry = _model_entry(listing, model)
    if entry and entry.get("id") and (not model or len(facts["served"]) == 1):
        facts["model"]["id"] = str(entry["id"])  # a one-model server serves it whatever it is called
    owner = entry.get("owned_by") if entry else None
    if owner == "llamacpp":
        _llamacpp(facts, ask, entry)
    elif owner == "vllm" or (entry and "max_model_len" in entry):
        _vllm(facts, ask, entry)
    else:
        # No tell-tale owner: ask each server's own endpoint, the cheapest first.
        props = ask("/props")
        if isinstance(props, dict) and ("build_info" in props or "chat_template" in props):
            _llamacpp(facts, ask, entry, props)
        elif isinstance(version := ask("/api/version"), dict) and "version" in version:
            _ollama(facts, ask, version, facts["model"]["id"])
        elif isinstance(v0 := ask("/api/v0/models"), dict) and isinstance(v0.get("data"), list):
            _lmstudio(facts, v0, facts["model"]["id"])
    facts["asked"], facts["errors"] = ask.asked, ask.errors
    if keep_raw:
        facts["raw"] = ask.raw
    return facts


def _served(listing: Any) -> list[str]:
    data = listing.get("data") if isinstance(listing, dict) else None
    return [str(e["id"]) for e in data or [] if isinstance(e, dict) and e.get("id")][:50]


def _model_entry(listing: Any, model: str | None) -> dict[str, Any] | None:
    data = listing.get("data") if isinstance(listing, dict) else None
    entries = [e for e in data or [] if isinstance(e, dict)]
    return next((e for e in entries if model and e.get("id") == model), entries[0] if entries else None)


def _template_family(template: Any) -> str | None:
    """The call-syntax family a chat template renders tool calls in (its fingerprints in the
    family table): the header keeps this, not the template, so a run knows its model's own syntax."""
    return own_family(None, template) if isinstance(template, str) and template else None


def _llamacpp(facts: dict, ask: _Asker, entry: dict | None, props: Any = None) -> None:
    facts["kind"] = "llama.cpp"
    props = props if props is not None else ask("/props")
    meta = (entry or {}).get("meta") or {}
    m = facts["model"]
    m["parameter_count"] = meta.get("n_params")
    m["context_length_train"] = meta.get("n_ctx_train")
    m["size_bytes"] = meta.get("size")
    m["quantization"] = meta.get("ftype")
    if isinstance(props, dict):
        facts["build"] = props.get("build_info")
        facts["template_sha256"] = sha256_text(props.get("chat_template"))
        facts["template_family"] = _template_family(props.get("chat_template"))
        caps = props.get("chat_template_caps")
        facts["template_caps"] = caps if isinstance(caps, dict) else None
        facts["slots"] = props.get("total_slots")
        settings = props.get("default_generation_settings") or {}
        m["context_length"] = settings.get("n_ctx") or props.get("n_ctx")
        if props.get("model_path"):
            m["file"] = re.split(r"[\\/]", str(props["model_path"]))[-1]
    facts["tool_call_format"] = _slots_format(ask("/slots"))


def _slots_format(slots: Any) -> str | None:
    """The format llama.cpp detected from the template shows in a slot's params once a request
    has run; before that /slots has no params and the format stays unknown. "Content-only" is
    what a request without tools gets (and /props' default before any request), not the format."""
    formats = [s.get("params", {}).get("chat_format") for s in slots or [] if isinstance(s, dict)]
    return next((f for f in formats if f and f != "Content-only"), None)


def tool_call_format(base_url: str, api_key: str | None = None) -> str | None:
    """llama.cpp's detected tool-call format, asked again once requests have run (None: not told)."""
    try:
        return _slots_format(fetch_json(server_root(base_url) + "/slots", api_key=api_key))
    except (OSError, ValueError):
        return None


def stored_facts(server: dict[str, Any], base_url: str, model: str | None) -> dict[str, Any] | None:
    """Facts read from the raw bodies older run headers kept (`{"models": /v1/models, "props":
    /props}`), by the same readers as live ones; None when the header kept none."""
    bodies = {"/v1/models": server.get("models"), "/props": server.get("props")}
    if not any(isinstance(body, dict) for body in bodies.values()):
        return None

    root = server_root(base_url)

    def stored(url: str, body: dict | None, timeout: float) -> Any:
        path = url.removeprefix(root)
        if bodies.get(path) is None:
            raise OSError("not kept in this run's header")
        return bodies[path]

    return server_facts(base_url, model, fetch=stored, any_host=True)


def _vllm(facts: dict, ask: _Asker, entry: dict) -> None:
    facts["kind"] = "vllm"
    facts["model"]["context_length"] = entry.get("max_model_len")
    if entry.get("root"):
        facts["model"]["file"] = str(entry["root"])
    version = ask("/version")
    if isinstance(version, dict):
        facts["build"] = version.get("version")


def _ollama(facts: dict, ask: _Asker, version: dict, model: str | None) -> None:
    facts["kind"] = "ollama"
    facts["build"] = version.get("version")
    if not model:
        return
    show = ask("/api/show", {"model": model})
    if not isinstance(show, dict):
        return
    details = show.get("details") or {}
    info = show.get("model_info") or {}
    arch = info.get("general.architecture")
    m = facts["model"]
    m["architecture"] = arch
    m["quantization"] = details.get("quantization_level") or None
    m["parameter_label"] = details.get("parameter_size") or None
    m["parameter_count"] = info.get("general.parameter_count")
    m["context_length_train"] = info.get(f"{arch}.context_length") if arch else None
    # The serving context is a Modelfile parameter ("num_ctx 4096") when one is set.
    num_ctx = re.search(r"(?m)^num_ctx\s+(\d+)", show.get("parameters") or "")
    m["context_length"] = int(num_ctx.group(1)) if num_ctx else None
    facts["template_sha256"] = sha256_text(show.get("template"))
    facts["template_family"] = _template_family(show.get("template"))
    facts["tool_call_format"] = show.get("parser") or show.get("renderer") or None
    capabilities = show.get("capabilities")
    if isinstance(capabilities, list):
        facts["template_caps"] = {"supports_tool_calls": "tools" in capabilities, "capabilities": capabilities}
    # Once loaded, /api/ps tells how much of the model sits in GPU memory and its real context.
    ps = ask("/api/ps")
    running = ps.get("models") if isinstance(ps, dict) else None
    loaded = [e for e in running or [] if isinstance(e, dict) and model in (e.get("name"), e.get("model"))]
    if loaded:
        m["vram_bytes"] = loaded[0].get("size_vram")
        m["digest"] = loaded[0].get("digest")  # the weights' blob: what the cache and a sweep key on
        m["size_bytes"] = loaded[0].get("size")
        m["context_length"] = m["context_length"] or loaded[0].get("context_length")


def _lmstudio(facts: dict, v0: dict, model: str | None) -> None:
    facts["kind"] = "lmstudio"
    entry = _model_entry(v0, model) or {}
    m = facts["model"]
    m["quantization"] = entry.get("quantization")
    m["context_length"] = entry.get("max_context_length")
    m["architecture"] = entry.get("arch")
