"""The embedded engine: llama.cpp's own HTTP server, in-process, through the xllamacpp wheel.

Lifecycle facts about xllamacpp (checked against the installed build, 2026.10):
- `xllamacpp.Server(params)` blocks until the model is loaded and the HTTP listener is up, and it
  holds the GIL while doing so: neither a watchdog thread nor Ctrl-C can interrupt a load; a
  Ctrl-C pressed meanwhile is raised as soon as the constructor returns (which frees the server).
- There is no stop() method. The C++ destructor terminates the decode loop, stops the listener
  and joins its thread; it runs when the last reference to the Python object goes away. So
  `stop()` drops our only reference; the listener is gone when it returns (tests check this).
- n_ctx is the total KV size, split evenly over n_parallel slots (kv_unified is off), so we ask
  for per-slot context * slots.

What the server does with tools (Qwen GGUFs, seen 2026-11-23): `tools` are rendered into Qwen's
<tools> system block; a reply written as <tool_call>{...}</tool_call> comes back as
`message.tool_calls` (finish_reason "tool_calls"), streamed as `delta.tool_calls` by index. But
Qwen2.5-Coder 0.5B and 1.5B rarely write the tags: they answer with bare or ```json-fenced JSON,
which stays in `content` (tool_calls null) -- a malformed call for the harness to score.
Every reply has `usage` and llama.cpp `timings`; a stream with include_usage ends with both.

Threads: llama.cpp's workers spin at barriers, so when another busy process shares the cores,
using all of them decodes far slower (2 cores: 20 tok/s quiet, 1-4 tok/s beside another busy
process) than one fewer (11 tok/s either way); pass n_threads on a shared machine.
"""

from __future__ import annotations

import atexit
import os
import time
from pathlib import Path

from evalkit.engine.discover import get_json
from evalkit.errors import EvalkitError

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def default_threads() -> int:
    # Honour CPU affinity (containers, taskset) where the platform tells us about it.
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def _bundled(model_path: Path):
    """The registry entry whose assembled file this is, if any."""
    from evalkit.engine.registry import BUNDLED

    return next((m for m in BUNDLED.values() if m.filename == model_path.name), None)


class EmbeddedEngine:
    """Serve one GGUF on loopback with an OpenAI-compatible API; use as a context manager.

    n_ctx is the context of EACH slot; n_parallel is how many requests decode concurrently.
    `alias` is the model id that /v1/models reports (default: the bundled name, else the file
    name), so run headers and other clients see a short name, not a path under the user's home.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        n_ctx: int = 4096,
        n_parallel: int = 2,
        n_threads: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        alias: str | None = None,
        chat_template: str | None = None,
        api_key: str | None = None,
        start_timeout: float = 120.0,
        verbose: bool = False,
    ):
        if host not in LOOPBACK_HOSTS:
            raise EvalkitError(f"the embedded engine only listens on loopback, not {host!r}")
        if n_ctx < 256 or n_parallel < 1:
            raise EvalkitError(f"bad engine settings: n_ctx={n_ctx} (>= 256), n_parallel={n_parallel} (>= 1)")
        self.model_path = Path(model_path)
        self.n_ctx, self.n_parallel = n_ctx, n_parallel
        self.n_threads = n_threads or default_threads()
        self.host, self.port = host, port
        bundled = _bundled(self.model_path)
        # A bundled model is served under its short name, any other GGUF under its file name.
        self.alias = alias or (bundled.name if bundled else self.model_path.name)
        self.chat_template = chat_template or (bundled.chat_template if bundled else "")
        self.start_timeout = start_timeout
        self.api_key = api_key  # requests without it get HTTP 401 (llama.cpp's --api-key)
        self.verbose = verbose
        self._server = None
        self.address: str | None = None  # "http://127.0.0.1:PORT"
        self.model_id: str | None = None
        self.start_seconds: float | None = None

    @property
    def base_url(self) -> str:
        if self.address is None:
            raise RuntimeError("engine not started")
        return self.address + "/v1"

    @property
    def running(self) -> bool:
        return self._server is not None

    def _params(self):
        import xllamacpp

        p = xllamacpp.CommonParams()
        p.model.path = str(self.model_path)
        p.model_alias = {self.alias}
        if self.chat_template:  # only overrides; otherwise the GGUF's own template is used
            p.chat_template = self.chat_template
        p.n_parallel = self.n_parallel
        p.n_ctx = self.n_ctx * self.n_parallel
        p.cpuparams.n_threads = self.n_threads
        p.cpuparams_batch.n_threads = self.n_threads
        p.hostnames = [self.host]
        p.port = self.port
        p.ui = False  # no web UI: this server is for API clients only
        if self.api_key:
            p.api_keys = [self.api_key]
        # verbosity 0 keeps llama.cpp's per-request logs off the user's terminal.
        p.verbosity = 3 if self.verbose else 0
        return p

    def start(self) -> "EmbeddedEngine":
        if self._server is not None:
            return self
        if not self.model_path.is_file():
            raise EvalkitError(f"model file not found: {self.model_path}")
        import xllamacpp

        t0 = time.monotonic()
        try:
            self._server = xllamacpp.Server(self._params())  # blocks until loaded (module doc)
        except RuntimeError as exc:
            raise EvalkitError(
                f"llama.cpp could not load {self.model_path.name} (n_ctx={self.n_ctx}x{self.n_parallel}): {exc}"
            ) from None
        # From here on any exception, including a Ctrl-C held back during the load (it fires at
        # the first bytecode after the constructor returns), must not leave the server running.
        try:
            atexit.register(self.stop)
            self.address = self._server.listening_address.rstrip("/")
            self.model_id = self._wait_ready(t0 + self.start_timeout)
            self.start_seconds = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, deadline: float) -> str:
        """Poll GET /v1/models until it lists a model; return the id it reports."""
        last = "no answer"
        while True:
            try:
                data = get_json(self.address + "/v1/models", 2.0, api_key=self.api_key).get("data") or []
                if data:
                    return data[0]["id"]
                last = "empty model list"
            except (OSError, ValueError, AttributeError) as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise EvalkitError(
                    f"embedded engine at {self.address} did not answer /v1/models within "
                    f"{self.start_timeout:.0f}s ({last})"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Shut the server down; safe to call twice, and called at interpreter exit."""
        server, self._server = self._server, None
        atexit.unregister(self.stop)
        # Dropping the last reference runs the C++ destructor, which stops and joins the server.
        del server

    def __enter__(self) -> "EmbeddedEngine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.address if self.running else "stopped"
        return f"EmbeddedEngine({self.model_path.name!r}, n_ctx={self.n_ctx}x{self.n_parallel}, {state})"
