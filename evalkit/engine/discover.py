"""Decide which server and model id a `--model NAME [--base-url URL]` means.

- `--base-url` given: trust the user; the name is passed through (or the server's first model).
- no `--base-url` and a bundled name (or no name): the embedded engine (the caller starts it).
- otherwise: ask the usual local servers what they serve and match the name loosely, so
  `qwen2.5-7b` finds `qwen2.5-7b-instruct`, `qwen2.5:7b` or `lmstudio-community/Qwen2.5-7B-Instruct-GGUF`.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from evalkit.engine.registry import BUNDLED, DEFAULT_MODEL, find
from evalkit.access import refusal
from evalkit.errors import EvalkitError, KeyRefused

# (backend, base URL) probed in this order when no --base-url is given. Loopback only: evalkit
# never scans the network. Tests replace this list (or pass probes=) to use ephemeral ports.
PROBES: list[tuple[str, str]] = [
    ("lmstudio", "http://127.0.0.1:1234/v1"),
    ("ollama", "http://127.0.0.1:11434/v1"),
    ("llamacpp", "http://127.0.0.1:8080/v1"),
    ("vllm", "http://127.0.0.1:8000/v1"),
]
ENV_VARS = ("EVALKIT_BASE_URL", "OPENAI_BASE_URL")
PORT_BACKENDS = {1234: "lmstudio", 11434: "ollama", 8080: "llamacpp", 8000: "vllm"}
CONNECT_TIMEOUT = 0.3  # a closed loopback port refuses at once; this bounds a filtered one
READ_TIMEOUT = 5.0  # a server that accepted may be busy loading a model
MAX_JSON_BYTES = 16 * 1024 * 1024
"""One GET's body (a model list, /props with its chat template, Ollama's /api/show): bounded, as a
chat reply is, so a hostile or broken server cannot fill memory."""


@dataclass
class Resolved:
    base_url: str | None  # None for the embedded engine (not started yet)
    model_id: str  # what to send as `model`
    requested: str | None  # what the user typed (the canonical bundled name for bundled models)
    backend: str  # embedded | lmstudio | ollama | llamacpp | vllm | openai-compatible | env
    bundled: bool
    match: str = "exact"  # exact | case | normalised | contains | passthrough | first
    served: list[str] = field(default_factory=list)  # the models the chosen server listed


def normalise_base_url(url: str) -> str:
    """Strip the trailing slash; a bare `http://host:port` gets `/v1` (what every server here uses)."""
    url = url.strip()
    if "://" in url:  # slashes stripped after the scheme only: `http://` became `http:`, host `http`
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://{rest.rstrip('/')}"
    else:
        url = "http://" + url.rstrip("/")
    return url + "/v1" if urlsplit(url).path in ("", "/") else url


def check_base_url(url: str) -> None:
    """One line for a `--base-url` that no request could use: no http(s) scheme or host, a port
    out of range, unbalanced IPv6 brackets."""
    try:
        parts = urlsplit(normalise_base_url(url))
        port = parts.port  # a ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        raise EvalkitError(f"--base-url {url!r}: not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EvalkitError(f"--base-url {url!r}: expected an http:// or https:// URL with a host")
    if port == 0:
        raise EvalkitError(f"--base-url {url!r}: port 0 is not a port a server listens on")


def guess_backend(base_url: str) -> str:
    return PORT_BACKENDS.get(urlsplit(normalise_base_url(base_url)).port or 0, "openai-compatible")


class HTTPStatusError(OSError):
    """The server answered, with a status other than 200."""

    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status


def get_json(url: str, timeout: float = READ_TIMEOUT, *, connect_timeout: float | None = None,
             api_key: str | None = None, body: Any = None) -> Any:
    """GET a JSON document: evalkit's one HTTP probe outside the chat client (stdlib only);
    with `body`, POST it as JSON instead (Ollama's /api/show is asked that way).

    Raises OSError when the server cannot be reached (HTTPStatusError when it answers with an
    error status) and ValueError when the body is not JSON. `connect_timeout` (default `timeout`)
    bounds the connection alone: a closed loopback port refuses at once, a filtered one hangs.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=min(connect_timeout or timeout, timeout))
    try:
        conn.connect()
        conn.sock.settimeout(timeout)  # the connect timeout was for connecting only
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if body is None:
            conn.request("GET", target, headers=headers)
        else:
            headers["Content-Type"] = "application/json"
            conn.request("POST", target, body=json.dumps(body).encode("utf-8"), headers=headers)
        sock = conn.sock  # the response keeps reading from it after the connection lets go of it
        try:
            resp = conn.getresponse()
            body = _read_bounded(sock, resp, timeout)
        except http.client.HTTPException as exc:  # reached, but what came back is not HTTP/1.x
            raise ValueError(f"the answer is not HTTP/1.x ({type(exc).__name__}: {_printable(str(exc))})") from None
        if resp.status != 200:
            raise HTTPStatusError(resp.status)
    finally:
        conn.close()
    return json.loads(body)


def _printable(text: str, limit: int = 60) -> str:
    """Random bytes from a server, as a short ASCII excerpt for one line."""
    return text[:limit].encode("unicode_escape").decode("ascii")


def _read_bounded(sock: Any, resp: http.client.HTTPResponse, timeout: float) -> bytes:
    """The body, within MAX_JSON_BYTES and `timeout` in all: a server trickling a byte a second
    never trips the socket's timeout, which bounds one read only."""
    deadline = time.monotonic() + timeout
    chunks, size = [], 0
    while chunk := resp.read1(65536):
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            raise ValueError(f"the body is over {MAX_JSON_BYTES:,} bytes")
        chunks.append(chunk)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no whole answer within {timeout:g} s")
        sock.settimeout(left)
    return b"".join(chunks)


def list_server_models(base_url: str, timeout: float = READ_TIMEOUT, api_key: str | None = None) -> list[str]:
    """Model ids from GET <base_url>/models; raises OSError (or ValueError on a bad body)."""
    url = normalise_base_url(base_url) + "/models"
    data = get_json(url, timeout, connect_timeout=CONNECT_TIMEOUT, api_key=api_key)
    if not isinstance(data, dict):
        raise ValueError("the model list is not a JSON object")
    return [str(m["id"]) for m in data.get("data", []) if isinstance(m, dict) and m.get("id")]


def server_root(base_url: str) -> str:
    """llama.cpp's own endpoints (/props) sit beside /v1, not under it."""
    return base_url.rstrip("/").removesuffix("/v1")


def check_server(base_url: str, api_key: str | None = None) -> None:
    """One clear line when nothing answers at `base_url`; any answer at all is good enough."""
    url = base_url.rstrip("/") + "/models"
    if urlsplit(url).scheme not in ("http", "https"):
        raise EvalkitError(f"--base-url {base_url!r}: expected an http:// or https:// URL")
    try:
        get_json(url, 5.0, api_key=api_key)
    except (HTTPStatusError, ValueError):
        return  # it answers; whether /models exists (or is JSON) is not our business
    except OSError as exc:
        raise EvalkitError(f"cannot reach {base_url}: {exc}; is the server running?") from None


def unserved_warning(model: str, base_url: str, served: list[str]) -> str | None:
    """One line when `model` is not among what the server lists (the run goes on: some servers
    answer any name, but every result will carry this label); None when it is, or nothing is listed."""
    if not served or model in served:
        return None
    close = best_match(model, served)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (f"warning: --model {model!r} is not among the models {base_url} serves {_short_list(served)}{hint} "
            f"(running anyway: some servers accept any name; results are labelled {model!r})")


# --- loose matching -----------------------------------------------------------------------

_QUANT = re.compile(
    r"(?<![a-z0-9])(i?q\d(_[a-z0-9]+)*|f16|f32|bf16|fp16|fp8|int[48]|awq|gptq|mlx|gguf|\d+bit)(?![a-z0-9])"
)
_NOISE = {"instruct", "gguf", "latest", ""}


def _tokens(model_id: str) -> list[str]:
    """`lmstudio-community/Qwen2.5-7B-Instruct-GGUF` -> ['qwen2.5', '7b'] (dots kept: 1.5b != 15b)."""
    s = model_id.strip().lower().rsplit("/", 1)[-1]
    s = re.sub(r"\.gguf$", "", s)
    s = _QUANT.sub("", s)
    return [t for t in re.split(r"[-_:\s]+", s) if t not in _NOISE]


def _contains(big: list[str], small: list[str]) -> bool:
    """`small` appears as a contiguous run of whole tokens in `big` ('phi-3' is not in 'phi-3.5')."""
    n = len(small)
    return n > 0 and any(big[i : i + n] == small for i in range(len(big) - n + 1))


def match_rank(wanted: str, served: str) -> tuple[int, str] | None:
    """How well `served` matches `wanted`: (rank, kind), lower is better; None for no match."""
    if served == wanted:
        return 0, "exact"
    if served.lower() == wanted.lower():
        return 1, "case"
    a, b = _tokens(wanted), _tokens(served)
    if a and a == b:
        return 2, "normalised"
    if _contains(b, a) or _contains(a, b):
        return 3 + abs(len(a) - len(b)), "contains"  # fewer extra tokens is a closer match
    return None


def best_match(wanted: str, served: list[str]) -> tuple[str, str] | None:
    """(model id, kind) of the closest match in `served`, first listed wins a tie."""
    ranked = [(r, i, m) for i, m in enumerate(served) if (r := match_rank(wanted, m))]
    if not ranked:
        return None
    (rank, kind), _, model = min(ranked, key=lambda x: (x[0][0], x[1]))
    return model, kind


# --- resolve ------------------------------------------------------------------------------


def env_probes() -> list[tuple[str, str]]:
    urls = [os.environ.get(var, "").strip() for var in ENV_VARS]
    seen: list[str] = []
    for url in urls:
        if url and normalise_base_url(url) not in seen:
            seen.append(normalise_base_url(url))
    return [("env", url) for url in seen]


def resolve(model: str | None, base_url: str | None, *, probes: list[tuple[str, str]] | None = None,
            api_key: str | None = None) -> Resolved:
    """`api_key` (default: $EVALKIT_API_KEY, else $OPENAI_API_KEY) goes with every listing asked."""
    api_key = api_key or _api_key()
    if base_url:
        url = normalise_base_url(base_url)
        backend = guess_backend(url)
        if model:
            return Resolved(url, model, model, backend, False, "passthrough")
        try:
            served = list_server_models(url, api_key=api_key)
        except HTTPStatusError as exc:
            if exc.status in (401, 403):
                raise KeyRefused(refusal(url, f"GET /v1/models: HTTP {exc.status}", bool(api_key))) from None
            raise EvalkitError(f"cannot list the models of {url} ({exc}); is the server running?") from None
        except (OSError, ValueError) as exc:
            raise EvalkitError(f"cannot list the models of {url} ({exc}); is the server running?") from None
        if not served:
            raise EvalkitError(f"{url} serves no models; load one or pass --model")
        return Resolved(url, served[0], None, backend, False, "first", served)

    bundled = find(model or DEFAULT_MODEL)
    if bundled is not None:
        return Resolved(None, bundled.name, bundled.name, "embedded", True)

    assert model is not None
    candidates = env_probes() + list(PROBES if probes is None else probes)
    found: list[tuple[int, int, Resolved]] = []
    report: list[str] = []
    for order, (backend, url) in enumerate(candidates):
        url = normalise_base_url(url)
        try:
            served = list_server_models(url, api_key=api_key)
        except (OSError, ValueError) as exc:
            why = str(exc) if str(exc).startswith("HTTP ") else "down" if isinstance(exc, OSError) else "bad answer"
            report.append(f"{backend} {url}: {why}")
            continue
        report.append(f"{backend} {url}: {_short_list(served)}")
        hit = best_match(model, served)
        if hit:
            rank = match_rank(model, hit[0])[0]  # type: ignore[index]
            found.append((rank, order, Resolved(url, hit[0], model, backend, False, hit[1], served)))
    if found:
        # The best match anywhere wins (an exact id on Ollama beats a loose one on LM Studio);
        # probe order breaks ties.
        return min(found, key=lambda x: (x[0], x[1]))[2]
    raise EvalkitError(
        f"model {model!r} is neither bundled nor served by a local server; probed "
        + "; ".join(report)
        + f"; bundled models: {', '.join(BUNDLED)}; pass --base-url URL to use another server"
    )


def _api_key() -> str | None:
    return os.environ.get("EVALKIT_API_KEY") or os.environ.get("OPENAI_API_KEY") or None


def _short_list(served: list[str], limit: int = 8) -> str:
    if not served:
        return "no models"
    more = f" (+{len(served) - limit} more)" if len(served) > limit else ""
    return "[" + ", ".join(served[:limit]) + "]" + more
