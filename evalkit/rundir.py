"""A run's directory: header.json, samples.jsonl appended as samples finish, results.json.

Nothing measured is ever lost: each sample is one line, handed to the operating system as soon
as it is scored (by a writer thread, off the event loop); a crash can only lose the lines queued
at that instant or tear the last one, which the reader skips. Whole-file writes go to a temporary
file first and are then renamed over the old one (`os.replace` is atomic on POSIX).
"""

from __future__ import annotations

import os
import queue
import secrets
import tempfile
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None  # type: ignore[assignment]

from pydantic import BaseModel, ValidationError

from . import callsyntax, encoded
from .errors import EvalkitError
from .schema import Header, ProbeResult, Results, Sample, SampleKey

HEADER = "header.json"
SAMPLES = "samples.jsonl"
RESULTS = "results.json"
PROBE = "probe.json"  # `run --probe`: the server's probe before the run (schema.ProbeResult)
LOCK = ".lock"  # held by the one evalkit writing the run (its pid inside, for the message)


def new_run_id(model: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in ".-_" else "-" for ch in model.split("/")[-1])[:40]
    return f"{stamp}-{safe}-{secrets.token_hex(2)}"


def file_mode(path: Path) -> int:
    """The permission bits a file rewritten in place keeps: its own, or for a new file what the
    umask gives (mkstemp makes 0600, and replacing once turned a 644 file into 600)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def write_atomic(path: Path, data: str | bytes) -> None:
    """evalkit's one way to write a whole file: a reader sees the old file or the new one, never
    a torn one. Text is written as UTF-8; the file's mode is kept (see file_mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_model(path: Path, model: BaseModel) -> None:
    write_atomic(path, model.model_dump_json(indent=2, exclude_none=False) + "\n")


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One writer per run directory: a second `run --resume` (or `rescore`) of it is refused in one line.

    An flock, not a pid file: the kernel drops it when its holder dies (kill -9 included), so a
    crashed run never blocks the next one; the file it leaves is locked afresh. The holder removes
    the file when it is done, and a newcomer checks that the file it locked is still the one at
    the path, so removing it never lets two writers in.
    """
    path = Path(run_dir) / LOCK
    while True:
        try:
            handle = open(path, "a+", encoding="utf-8")
        except OSError as exc:
            raise EvalkitError(f"{run_dir}: cannot write in this run directory ({exc.strerror})") from None
        if fcntl is None:
            break
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            by = f" (pid {holder})" if holder.isdigit() else ""
            raise EvalkitError(
                f"{run_dir}: another evalkit{by} is writing this run directory; wait for it to end or stop it"
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()  # its holder removed it as we opened it: lock the new one
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        try:
            path.unlink()
        except OSError:
            pass
        handle.close()  # releases the lock


class SampleLog:
    """Appends samples to samples.jsonl as they arrive; safe to call from several threads.

    The caller's thread only serialises the sample; a writer thread appends the lines, each
    batch of lines waiting at that moment in one write, as soon as they are queued. So a slow
    or throttled disk never stalls the event loop, and a crash loses at most the lines queued
    in that instant. A failed write (a full disk) stops the writing: what could not be written is
    dropped, a torn last line is cut, and the error is raised by the next `append` (or by `close`,
    when no append did).
    """

    _CLOSE = None

    def __init__(self, run_dir: Path):
        self.path = run_dir / SAMPLES
        self._repair_torn_tail()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._error: OSError | None = None
        self._reported = False  # an append raised the error already
        self._closed = False
        self._lock = threading.Lock()
        self._writer = threading.Thread(target=self._write_lines, name="evalkit-samples", daemon=True)
        self._writer.start()

    def _repair_torn_tail(self) -> None:
        # A crash mid-write leaves a last line without its newline; cut it so appends stay valid.
        # Only the tail is read: a resumed run's samples.jsonl may be gigabytes.
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as handle:
            end = handle.seek(0, os.SEEK_END)
            handle.seek(end - 1)
            if handle.read(1) == b"\n":
                return
            position = end
            while position > 0:
                start = max(0, position - 65536)
                handle.seek(start)
                newline = handle.read(position - start).rfind(b"\n")
                if newline >= 0:
                    handle.truncate(start + newline + 1)
                    return
                position = start
            handle.truncate(0)

    def append(self, sample: Sample) -> None:
        if self._error is not None:
            self._reported = True
            raise self._error
        if self._closed:
            raise ValueError(f"{self.path}: the sample log is closed")
        self._queue.put(sample_line(sample))

    def _write_lines(self) -> None:
        closing = False
        while not closing:
            batch = [self._queue.get()]  # blocks until there is a line
            while True:  # and whatever else is waiting now: one write for all of it
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            closing = self._CLOSE in batch
            data = b"".join(line for line in batch if line is not self._CLOSE)
            if self._error is None and data:
                try:
                    view = memoryview(data)
                    while view:  # a write may take only part of it
                        view = view[os.write(self._fd, view):]
                except OSError as exc:
                    # A full disk: what could not be written is dropped, and nothing after it is
                    # written (it would follow a lost sample its caller goes on without); a torn
                    # last line is cut, so the file stays whole lines for --resume.
                    self._error = exc
                    try:
                        self._repair_torn_tail()
                    except OSError:
                        pass

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(self._CLOSE)
            self._writer.join()
            try:
                if self._error is None:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
        if self._error is not None and not self._reported:  # one error, said once
            raise self._error


# The field after `request` in a sample line (fields are written in declaration order).
_AFTER_REQUEST = list(Sample.model_fields)[list(Sample.model_fields).index("request") + 1]
_ANCHOR = f',"{_AFTER_REQUEST}":'.encode()


def sample_line(sample: Sample) -> bytes:
    """The sample's line in samples.jsonl: `model_dump_json()` and a newline. When the request
    was sent by the client, its bytes are spliced in rather than encoded again (encoded.py)."""
    sent = encoded.take(sample.request)
    if sent is not None:
        rest = sample.model_dump_json(exclude={"request"}).encode("utf-8")
        at = rest.find(_ANCHOR)  # the first: no value before it can hold `,"` unescaped
        if at > 0:
            return b"%s,\"request\":%s%s\n" % (rest[:at], sent, rest[at:])
    return sample.model_dump_json().encode("utf-8") + b"\n"


def read_samples(run_dir: Path) -> Iterator[Sample]:
    path = Path(run_dir) / SAMPLES
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith("\n"):
                return  # torn by a crash: the sample was never completed
            try:
                yield Sample.model_validate_json(line)
            except ValidationError as exc:
                raise EvalkitError(f"{path}:{number}: not a valid sample ({exc.errors()[0]['msg']})") from None


def latest_samples(*run_dirs: Path) -> list[Sample]:
    """The samples of one run (or of shards, in order); a later sample of the same key wins, as
    a resumed run appends the redone samples after the failed ones."""
    latest: dict[SampleKey, Sample] = {}
    for run_dir in run_dirs:
        for sample in read_samples(run_dir):
            latest[sample.key()] = sample
    return list(latest.values())


def read_header(run_dir: Path) -> Header:
    path = Path(run_dir) / HEADER
    if not path.is_file():
        raise EvalkitError(f"{run_dir}: not a run directory (no {HEADER})")
    try:
        return Header.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise EvalkitError(f"{path}: not a valid header ({exc.errors()[0]['msg']})") from None


def read_results(run_dir: Path) -> Results | None:
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        return None
    return Results.model_validate_json(path.read_text(encoding="utf-8"))


def read_probe(run_dir: Path) -> ProbeResult | None:
    """The probe `run --probe` stored before the run; None when the run was not probed."""
    path = Path(run_dir) / PROBE
    if not path.is_file():
        return None
    try:
        return ProbeResult.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise EvalkitError(f"{path}: not a valid probe result ({exc.errors()[0]['msg']})") from None


def own_family(header: Header) -> str | None:
    """The call-syntax family the run's model writes natively (for `server_parse_lost`): the one
    its chat template renders, when the server told it (`serving.template_family`), else the one
    its name implies. The one place a run's own family is decided."""
    if header.serving is not None and header.serving.template_family:
        return header.serving.template_family
    for name in (header.model, header.model_requested):
        family = callsyntax.own_family(name)
        if family:
            return family
    return None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def finalize(run_dir: Path) -> None:
    """(Re)compute results.json from samples.jsonl; a later sample of the same key wins (resume).

    The samples are streamed: only the columns the metrics read are kept, one row per key, so
    memory does not grow with the size of requests and replies.
    """
    from .aggregate import aggregate  # the next layer (run directory -> aggregate), used only here

    header = read_header(run_dir)
    results = aggregate(read_samples(run_dir), header.run_id, header.model, latest=True)
    write_model(run_dir / RESULTS, results)


def print_summary(run_dir: Path) -> None:
    """The summary table of results.json and where the run is: what `run` and `merge` print."""
    from .aggregate import cache_note, server_lost_lines, summary_text

    results = read_results(run_dir)
    if results is None:
        return
    print(summary_text(results))
    note = cache_note(results)
    if note:
        print(note)
    header = read_header(run_dir)
    if header.cache_identity == "untied":
        print(f"response cache: {header.base_url} tells nothing of what it serves (no model file, quantization, "
              "template or build), so the cache could not be tied to a server identity, only to its URL and "
              "model name; after changing what it serves, run with --no-cache")
    for line in server_lost_lines(results.aggregates, own_family(header)):
        print(f"\n{line}")
    print(f"\nrun directory: {run_dir}")

