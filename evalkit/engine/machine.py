"""Where a run's model ran (issue 12 §4): this machine's CPU when the server is local, and whether
the model uses a GPU, as far as anything tells.

- The embedded engine: llama.cpp's own device list (`xllamacpp.get_device_info()`, the devices its
  backends found; it offloads every layer to a GPU when there is one, as `n_gpu_layers` defaults
  to -1). The CPU wheel lists the CPU alone.
- Another server: what it reports (Ollama's `/api/ps` `size_vram`, read by engine/facts.py);
  llama.cpp, LM Studio and vLLM say nothing of it, so it stays unknown.
"""

from __future__ import annotations

import platform
from pathlib import Path

from evalkit.engine.facts import is_loopback
from evalkit.engine.server import default_threads
from evalkit.schema import Machine, ServerFacts


def cpu_model() -> str | None:
    """The CPU's marketing name (Linux: /proc/cpuinfo), else what the platform says, else None."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def engine_gpu() -> tuple[bool | None, str | None]:
    """(uses a GPU, how that is known) for the embedded engine, from llama.cpp's device list."""
    try:
        import xllamacpp

        devices = xllamacpp.get_device_info()
    except Exception:  # noqa: BLE001 - a missing or older wheel: unknown, never fatal
        return None, None
    names = []
    gpu = False
    for device in devices:
        kind = getattr(device.get("type"), "name", str(device.get("type")))
        gpu = gpu or kind.endswith(("_GPU", "_IGPU"))
        names.append(f"{device.get('name')} ({device.get('description')})" if device.get("description") else
                     str(device.get("name")))
    return gpu, "llama.cpp devices: " + ", ".join(names)


def served_gpu(serving: ServerFacts | None) -> tuple[bool | None, str | None]:
    """(uses a GPU, how that is known) from what another server reported; (None, None) when silent."""
    model = serving.model if serving else None
    vram = model.vram_bytes if model else None
    if vram is None:
        return None, None
    share = f"{vram / model.size_bytes:.0%} of the model" if model and model.size_bytes else f"{vram} bytes"
    return vram > 0, f"{serving.kind} reports {share} in GPU memory"  # type: ignore[union-attr]


def describe_machine(base_url: str, *, embedded: bool, serving: ServerFacts | None,
                     engine_threads: int | None = None) -> Machine:
    local = embedded or is_loopback(base_url)
    gpu, detail = engine_gpu() if embedded else served_gpu(serving)
    return Machine(
        local=local,
        cpu_model=cpu_model() if local else None,
        cpu_cores=default_threads() if local else None,
        gpu=gpu,
        gpu_detail=detail,
        engine_threads=engine_threads if embedded else None,
    )
