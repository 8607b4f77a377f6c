"""The `evalkit run` workflow: resolve what to run, run it into a run directory, summarise."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import tempfile
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator

from . import __version__
from .access import Access, refusal
from .cache import ResponseCache
from .stopping.rounds import Rounds
from .dispatch import run_jobs
from .engine.discover import best_match, check_base_url, check_server, resolve, unserved_warning
from .engine.machine import describe_machine
from .errors import EvalkitError, Interrupted, KeyRefused
from .formats import canonical, get_format
from .identity import describe, is_tied, served_identity
from .jobs import Endpoint, RunContext, done_keys, plan
from .progress import Progress
from .rundir import (
    HEADER, PROBE, SampleLog, finalize, new_run_id, now_iso, own_family, read_header, read_probe, read_samples,
    run_lock, write_model,
)
from .schema import Header, Sample, ServerFacts, Settings, SuiteRef, UntilDecided
from .shards import shard_of
from .slots import cache_order
from .suites import LoadedSuite, default_suites, find_suite, read_suite

if TYPE_CHECKING:
    from .engine.pool import EnginePool


@dataclass
class RunOptions:
    model: str | None = None
    base_urls: list[str] = field(default_factory=list)
    suites: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=lambda: ["native", "default"])
    tags: list[str] = field(default_factory=list)
    limit: int | None = None
    sample: int | None = None
    settings: Settings = field(default_factory=Settings)
    concurrency_given: bool = False
    out: Path = Path("reports/runs")
    resume: Path | None = None
    cache: bool | None = None  # None: on at temperature 0 only
    shard: str | None = None
    max_parallel_tool_calls: int = 1
    distractors: list[int] = field(default_factory=list)  # --distractors: counts of pool tools to add
    tool_cost: bool = False  # --tool-cost (implied by --distractors)
    report: bool = True
    engine_ctx: int = 4096
    engine_threads: int | None = None
    quiet: bool = False
    probe: bool = False  # run `evalkit probe`'s checks first and keep them as probe.json
    on_run_dir: Callable[[Path], None] | None = None  # told the new run directory before any sample (sweeps)
    resume_hint: Path | None = None  # what `--resume` finishes after Ctrl-C (a sweep's directory)
    run_dir: Path | None = None  # where the run is written: out/<run_id>, or the --resume directory itself
    access: Access = field(default_factory=Access)  # the key and extra headers (kept in memory only)
    allow_unlisted: bool = False  # run a --model the server does not list (servers that list nothing)
    until_decided: UntilDecided | None = None  # --until-decided: the formats run in rounds until settled
    cases: frozenset[tuple[str, str]] | None = None  # only these (suite, case id): a sweep's round
    engines: EnginePool | None = None  # a sweep's rounds: the embedded engine outlives this run (engine.pool)


def load_suites(names: list[str]) -> list[LoadedSuite]:
    if not names:
        suites = default_suites()
        if not suites:
            raise EvalkitError("no built-in suites found; pass --suite PATH")
        return suites
    return [find_suite(name) for name in names]


def execute(options: RunOptions) -> Path:
    """Run and return the run directory. Ctrl-C leaves a valid partial run that --resume completes."""
    check_options(options)
    try:
        with ExitStack() as stack:
            if options.resume:
                header, suites, endpoints = _resume_setup(options, stack)
            else:
                header, suites, endpoints = _fresh_setup(options, stack)
            if options.probe:
                _probe(options, header, endpoints[0])
            return _run(options, header, suites, endpoints)
    except KeyRefused:
        # Nothing was measured: a fresh run leaves no directory of error samples behind.
        fresh = options.resume is None and options.run_dir is not None
        if fresh and next(read_samples(options.run_dir), None) is None:  # type: ignore[arg-type]
            shutil.rmtree(options.run_dir, ignore_errors=True)  # type: ignore[arg-type]
        raise


def check_options(options: RunOptions) -> None:
    """What can be checked before anything starts (a run, or a sweep's directory): each a line
    and exit 2, never a traceback."""
    for url in options.base_urls:
        check_base_url(url)
    if options.resume is None:
        _check_writable(options.out)


def _check_writable(out: Path) -> None:
    """`--out` can hold run directories: a folder is made in it (or in the nearest folder that
    exists) and removed again, leaving nothing behind when the run then fails for another reason."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "not a folder")
        Path(tempfile.mkdtemp(prefix=".evalkit-check-", dir=existing)).rmdir()
    except OSError as exc:
        raise EvalkitError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


def _import_implementations(suites: list[LoadedSuite]) -> None:
    """Agent suites' tool implementations, imported before the run: one that fails to import is
    one line naming the file, not an error in every agent sample."""
    from .agent import load_implementations

    for loaded in suites:
        if isinstance(loaded.suite.implementations, str) and any(c.mode == "agent" for c in loaded.suite.cases):
            load_implementations(loaded)


def _apply_limits(settings: Settings, stack: ExitStack) -> None:
    """The run's parser and suite-loading limits, in force until the run ends."""
    from . import suites as suites_module
    from .formats import base

    saved = (base.LIMITS.max_chars, base.LIMITS.max_depth, base.LIMITS.max_int_bits, suites_module.MAX_ALIAS_NODES)
    base.LIMITS.max_chars = settings.max_reply_chars
    base.LIMITS.max_depth = settings.max_arg_depth
    base.LIMITS.max_int_bits = settings.max_int_bits
    suites_module.MAX_ALIAS_NODES = settings.max_alias_nodes

    def restore() -> None:
        base.LIMITS.max_chars, base.LIMITS.max_depth, base.LIMITS.max_int_bits, suites_module.MAX_ALIAS_NODES = saved

    stack.callback(restore)


def _fresh_setup(options: RunOptions, stack: ExitStack) -> tuple[Header, list[LoadedSuite], list[str]]:
    _apply_limits(options.settings, stack)
    suites = load_suites(options.suites)
    _import_implementations(suites)
    # Fails early on a typo; a run records each format by its canonical name (`constrained` is
    # written as the envelope it stands for), so its samples and reports say what was sent.
    formats = list(dict.fromkeys(canonical(fmt) for fmt in options.formats))
    base_urls, model_id, backend, requested = _resolve_target(options, stack)
    for url in base_urls:
        check_server(url, options.access.api_key)
    preflight(formats, base_urls, model_id, options.settings.timeout_s, options.access)
    settings = options.settings
    settings.header_names = options.access.header_names()
    serving = serving_facts(base_urls[0], model_id, options.access.api_key)
    if not options.concurrency_given and backend != "embedded" and serving.slots:
        # As many requests in flight as the server has slots: busy without queueing (capped, so a
        # single local GPU is never flooded).
        settings.concurrency = min(serving.slots, 16)
    served = serving.served if "GET /v1/models" not in serving.errors else None
    if options.base_urls and options.model:  # a name the user typed: is it what the server serves?
        _check_listed(options, base_urls[0], served, serving)
    run_id = new_run_id(model_id)
    header = Header(
        evalkit_version=__version__,
        run_id=run_id,
        started_at=now_iso(),
        model=model_id,
        model_requested=requested,
        backend=backend,
        base_url=base_urls[0],
        base_urls=base_urls,
        formats=formats,
        suites=[
            # Absolute: a --resume or rescore from another directory found "no suite named ...".
            SuiteRef(name=s.suite.name, path=str(Path(s.path).resolve()), sha256=s.sha256, cases=len(s.suite.cases))
            for s in suites
        ],
        settings=settings,
        serving=serving,
        model_served_ids=served,
        machine=describe_machine(base_urls[0], embedded=backend == "embedded", serving=serving,
                                 engine_threads=options.engine_threads),
        shard=options.shard,
        tags=options.tags or None,
        limit=options.limit,
        sample=options.sample,
        distractors=list(dict.fromkeys(options.distractors)) or None,
        tool_cost=options.tool_cost or None,
        api_key_sent=bool(options.access.api_key) or None,
        served_identity=_identity(backend, serving),
        until_decided=options.until_decided,
    )
    run_dir = options.out / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    stack.enter_context(run_lock(run_dir))
    options.run_dir = run_dir
    write_model(run_dir / HEADER, header)
    if options.on_run_dir is not None:
        options.on_run_dir(run_dir)
    return header, suites, base_urls


def _resolve_target(options: RunOptions, stack: ExitStack) -> tuple[list[str], str, str, str | None]:
    """(base URLs, model id, backend, name the user typed). Starts the embedded engine if needed."""
    if len(options.base_urls) > 1:
        if not options.model:
            raise EvalkitError("--model is required with several --base-url")
        return options.base_urls, options.model, "openai-compatible", options.model
    resolved = resolve(options.model, options.base_urls[0] if options.base_urls else None,
                       api_key=options.access.api_key)
    if resolved.bundled:
        return [_start_engine(options, stack, resolved.requested)], resolved.requested, "embedded", options.model
    if resolved.requested and resolved.model_id != resolved.requested:
        _say(options, f"using {resolved.model_id!r} on {resolved.base_url} for --model {resolved.requested!r}")
    return [resolved.base_url], resolved.model_id, resolved.backend, options.model


def _resume_setup(options: RunOptions, stack: ExitStack) -> tuple[Header, list[LoadedSuite], list[str]]:
    run_dir = Path(options.resume)  # type: ignore[arg-type]
    header = read_header(run_dir)
    stack.enter_context(run_lock(run_dir))
    _apply_limits(header.settings, stack)
    suites = []
    for ref in header.suites:
        loaded = read_suite(ref.path) if Path(ref.path).is_file() else find_suite(ref.name)
        if loaded.sha256 != ref.sha256:
            raise EvalkitError(f"{ref.path}: suite changed since the run started (SHA-256 differs); start a new run")
        suites.append(loaded)
    _import_implementations(suites)
    options.run_dir = run_dir  # this directory, whatever its name: it may have been copied or renamed
    # What to run comes from the header (as `_run` reads it); the engine's slots from its settings.
    options.settings = header.settings
    if header.backend == "embedded" and not options.base_urls:
        base_url = _start_engine(options, stack, header.model)
        preflight(header.formats, [base_url], header.model, header.settings.timeout_s, options.access)
        return header, suites, [base_url]
    base_urls = options.base_urls or header.base_urls or [header.base_url]
    for url in base_urls:  # a dead server fails fast, as on a fresh run, not as a run of error samples
        check_server(url, options.access.api_key)
    _check_same_server(options, header, base_urls[0])
    preflight(header.formats, base_urls, header.model, header.settings.timeout_s, options.access)
    return header, suites, base_urls


def preflight(formats: list[str], base_urls: list[str], model: str, timeout_s: float, access: Access) -> None:
    """The probe checks the run's formats need (`constrained` needs `json_schema`), on every
    endpoint before the first sample: a server that cannot do it ends the run here in one line."""
    needed = {check: fmt for fmt in formats if (check := getattr(get_format(fmt), "needs_check", None))}
    if not needed:
        return
    from .probe.run import run_check

    for check, fmt in needed.items():
        for url in base_urls:
            result = run_check(url, model, check, timeout_s=timeout_s, api_key=access.api_key, headers=access.headers)
            if result.status != "pass":  # scrubbed: a server may echo the key it refused
                detail = access.scrub(" ".join(result.detail.split()))
                raise EvalkitError(f"--format {fmt}: {url} failed the probe's {check} check "
                                   f"({result.status}: {detail}); the run was not started")


def _start_engine(options: RunOptions, stack: ExitStack, name: str) -> str:
    from .engine.pool import EnginePool
    from .engine.pull import ensure_model

    path = ensure_model(name, progress=not options.quiet)
    slots = max(1, options.settings.concurrency)
    # A sweep's rounds lend their pool (the engine outlives this run); otherwise the engine is
    # this run's own, stopped with it.
    engines = options.engines or stack.enter_context(EnginePool())
    engine, started = engines.get(path, options.engine_ctx, slots, options.engine_threads)
    kept = "" if started else ", kept from the last round"
    options.engine_threads = engine.n_threads  # the threads it really uses, for the header's machine
    _say(options, f"embedded engine: {name} at {engine.base_url} ({slots} slots{kept})")
    return engine.base_url


def _run(options: RunOptions, header: Header, suites: list[LoadedSuite], base_urls: list[str]) -> Path:
    run_dir = options.run_dir
    assert run_dir is not None  # set by both setups
    settings = header.settings
    jobs = plan(
        suites, header.formats, settings.repeats, header.tags or None, header.limit, header.sample, settings.seed,
        list(header.distractors or []),
    )
    planned = jobs = shard_of(jobs, header.shard)
    if options.cases is not None:
        jobs = [job for job in jobs if (job.loaded.suite.name, job.case.id) in options.cases]
    already = done_keys(read_samples(run_dir))
    jobs = cache_order([job for job in jobs if job.key() not in already])
    rounds = Rounds(run_dir, header, planned, jobs) if header.until_decided and options.cases is None else None

    cache = _open_cache(options, settings)
    if cache is not None and header.cache_identity is None:
        header.cache_identity = "tied" if is_tied(header.served_identity) else "untied"
        write_model(run_dir / HEADER, header)
    ctx = RunContext(
        model=header.model, settings=settings, cache=cache, max_parallel_tool_calls=options.max_parallel_tool_calls,
        own_family=own_family(header),
        tool_cost=bool(header.tool_cost),
        access=options.access,
        # Only an identity that pins what answers goes into the cache key; without one the key is
        # made as before (the summary says the cache could not be tied to an identity).
        served=header.served_identity if header.cache_identity == "tied" else None,
        pinned_slots=_llama_slots(header),
    )
    per_endpoint = max(1, settings.concurrency)
    identity = f"embedded:{header.model}:{_engine_version()}" if header.backend == "embedded" else None
    endpoints = [Endpoint(url, per_endpoint, identity=identity) for url in base_urls]
    log = SampleLog(run_dir)
    bar = Progress(len(jobs), header.model, quiet=options.quiet)

    def on_sample(sample: Sample) -> None:
        log.append(sample)
        bar.update(sample)

    with _signals_deferred() as stop:
        try:
            work = rounds.run(endpoints, ctx, on_sample) if rounds else run_jobs(jobs, endpoints, ctx, on_sample)
            asyncio.run(_until_stopped(work, stop))
        except OSError as exc:  # samples.jsonl could not be written (a full disk): nothing more can be kept
            raise EvalkitError(f"{run_dir}: cannot write samples ({exc}); finish later with --resume") from None
        finally:
            bar.close()
            log.close()
            if cache is not None:
                cache.close()
            finalize(run_dir)
    if stop.signum is not None:
        what = "interrupted" if stop.signum == signal.SIGINT else f"stopped by {signal.Signals(stop.signum).name}"
        print(f"{what}: the samples so far are in {run_dir}; finish with "
              f"`evalkit run --resume {options.resume_hint or run_dir}`",
              file=sys.stderr)
        raise Interrupted(stop.signum)
    _complete_serving(run_dir, header, base_urls[0], options.access.api_key)
    return run_dir


def _llama_slots(header: Header) -> int | None:
    """The slots each worker may pin itself to (evalkit/slots.py): a llama.cpp server's, as /props
    reported them, or the embedded engine's (one per request in flight); None for other servers."""
    serving = header.serving
    if header.backend == "embedded":
        return max(1, header.settings.concurrency)
    if serving is not None and serving.kind == "llama.cpp" and serving.slots:
        return serving.slots
    return None


# ---------------------------------------------------------------- the server's identity and probe


def serving_facts(base_url: str, model_id: str, api_key: str | None = None) -> ServerFacts:
    """What the server tells of itself and its model. The user named this server (or evalkit
    found it on loopback), so it is asked wherever it is; never fatal."""
    from .engine.facts import server_facts

    return ServerFacts.model_validate(server_facts(base_url, model_id, any_host=True, api_key=api_key))


def _identity(backend: str, serving: ServerFacts) -> dict[str, Any]:
    identity = served_identity(serving)
    if backend == "embedded":  # its port changes every run; its version is part of what answers
        identity["engine"] = f"xllamacpp {_engine_version()}"
    return identity


def _check_listed(options: RunOptions, base_url: str, served: list[str] | None, serving: ServerFacts) -> None:
    """A --model the server does not list is refused (one line naming what it serves), unless
    --allow-unlisted: then a warning, as every result will carry that label."""
    model = options.model
    assert model is not None
    if served and model in served:
        return
    if options.allow_unlisted:
        line = unserved_warning(model, base_url, served or [])
        if line:  # always shown, --quiet or not
            print(f"evalkit: {line}", file=sys.stderr)
        return
    if served is None:
        why = serving.errors.get("GET /v1/models", "no answer")
        if why in ("HTTP 401", "HTTP 403"):
            raise KeyRefused(refusal(base_url, f"GET /v1/models: {why}", bool(options.access.api_key)))
        raise EvalkitError(f"{base_url} did not list its models (GET /v1/models: {why}); pass --allow-unlisted "
                           f"to run --model {model!r} anyway")
    if not served:
        raise EvalkitError(f"{base_url} lists no models; pass --allow-unlisted to run --model {model!r} anyway")
    close = best_match(model, served)
    hint = f"did you mean {close[0]!r}? " if close else "pass one of those "
    listed = ", ".join(served[:8]) + (f" (+{len(served) - 8} more)" if len(served) > 8 else "")
    raise EvalkitError(f"--model {model!r} is not served by {base_url}, which serves {listed}; {hint}"
                       "(--allow-unlisted runs it anyway, for a server that answers names it does not list)")


def _check_same_server(options: RunOptions, header: Header, base_url: str) -> None:
    """A resumed run asks the server again: other headers, or another identity (a restarted server
    with another template or quantization), would mix two measurements in one run."""
    if options.access.header_names() != header.settings.header_names:
        raise EvalkitError(f"{options.run_dir}: the run sent the headers {header.settings.header_names or []}; "
                           f"pass the same --header options to resume it")
    if header.served_identity is None or header.backend == "embedded":
        return
    now = served_identity(serving_facts(base_url, header.model, options.access.api_key))
    if is_tied(header.served_identity) and now != header.served_identity:
        raise EvalkitError(f"{base_url} now serves {describe(now)}, not what the run started with "
                           f"({describe(header.served_identity)}); start a new run")


def _complete_serving(run_dir: Path, header: Header, base_url: str, api_key: str | None) -> None:
    """llama.cpp shows the tool-call format it detected from the template only once a request
    with tools has run: ask again now that samples have, and keep it in the header."""
    from .engine.facts import tool_call_format

    serving = header.serving
    if serving is None or serving.kind != "llama.cpp" or serving.tool_call_format:
        return
    detected = tool_call_format(base_url, api_key)
    if detected:
        serving.tool_call_format = detected
        write_model(run_dir / HEADER, header)


def _probe(options: RunOptions, header: Header, base_url: str) -> None:
    """`run --probe`: the probe's checks on the same endpoint and model, before the run, kept as
    probe.json; a resumed run keeps the probe it has."""
    from .probe.run import run_probe

    run_dir = options.run_dir
    assert run_dir is not None  # set by both setups
    result = read_probe(run_dir)
    if result is None:
        _say(options, f"probing {base_url} before the run (about 8 requests)...")
        result = run_probe(base_url, header.model, timeout_s=header.settings.timeout_s,
                           api_key=options.access.api_key, headers=options.access.headers)
        write_model(run_dir / PROBE, result)
    counts = result.summary()
    failed = ", ".join(c.name for c in result.failed)
    line = (f"probe: {counts['pass']} pass, {counts['fail']} fail, {counts['unsupported']} unsupported"
            + (f"; failed: {failed} (details in {run_dir / PROBE} and the report)" if failed else ""))
    if failed:
        print(f"evalkit: {line}", file=sys.stderr)  # shown even with --quiet, like a warning
    else:
        _say(options, line)


class _Stop:
    """The first stopping signal of a run, and how to stop the run when it comes."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.on_signal: Any = None  # set while the event loop runs

    def __call__(self, signum: int, _frame: Any) -> None:
        if self.signum is not None:
            return  # Ctrl-C again: already stopping, and what was done is being saved
        self.signum = signum
        if self.on_signal is not None:
            self.on_signal()


@contextmanager
def _signals_deferred() -> Iterator[_Stop]:
    """SIGINT and SIGTERM stop the run between samples, however often they come.

    Python's default turns Ctrl-C into an exception wherever the code happens to be: a second one
    during the cancellation or while results.json is written broke the partial run or printed
    "Exception ignored" tracebacks. Here a signal only asks the run to stop; the samples are
    saved and results.json is written before the caller raises `Interrupted`.
    """
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be set from the main thread
        return
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _until_stopped(work: Awaitable[None], stop: _Stop) -> None:
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    stop.on_signal = lambda: loop.call_soon_threadsafe(task.cancel)
    if stop.signum is not None:  # it came before the loop started
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if stop.signum is None:
            raise
    finally:
        stop.on_signal = None


def _engine_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xllamacpp")
    except PackageNotFoundError:
        return "unknown"


def _open_cache(options: RunOptions, settings: Settings) -> ResponseCache | None:
    enabled = options.cache if options.cache is not None else settings.temperature == 0
    return ResponseCache.open_default() if enabled else None


def _say(options: RunOptions, message: str) -> None:
    if not options.quiet:
        print(message, file=sys.stderr)
