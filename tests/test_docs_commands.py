"""Every command block of README.md and docs/*.md works as written (docs/writing-docs.md).

Shell blocks run with bash against the scripted OpenAI-compatible server (the URLs in them are
pointed at it), in a fresh folder holding a copy of reports/measured; the blocks of one file share
that folder, in order. Python blocks run in the repository; a ```text block right after one is its
output and must match. A block marked `<!-- not run: why -->` on the line above is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from evalkit.engine.registry import BUNDLED
from evalkit.testing.scripted_server import Reply, ScriptedServer

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"sh", "bash", "shell"}
NOT_RUN = re.compile(r"^<!--\s*not run:\s*\S.*-->\s*$")
LOCAL_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):\d+/v1")


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    output: str | None = None  # a python block's ```text block
    skipped: bool = False
    end: int = 0  # index of the closing fence

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\S*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        block = Block(path, i + 1, fence.group(1), "\n".join(lines[i + 1:end]) + "\n",
                      skipped=i > 0 and bool(NOT_RUN.match(lines[i - 1])))
        if block.lang == "text" and found and found[-1].lang == "python" and found[-1].output is None \
                and all(not line.strip() for line in lines[found[-1].end + 1:i]):
            found[-1].output = block.code
        else:
            found.append(block)
        found[-1].end = end
        i = end + 1
    return found


ALL = [b for path in DOCS for b in blocks_of(path)]
PYTHON = [b for b in ALL if b.lang == "python" and not b.skipped]


def answer(request):
    """A plain-text answer, whatever the format: every command completes (the scores do not matter here)."""
    return Reply(content="Happy to help: here is my answer.")


@pytest.fixture(scope="module")
def server():
    """Serves (lists) every model the runnable blocks name, as the user's server would."""
    names = sorted({name for b in ALL if b.lang in SHELL and not b.skipped
                    for name in re.findall(r"--model[ =](\S+)", b.code)})
    with ScriptedServer(model_id="scripted-model", models=names, responder=answer) as srv:
        yield srv


def test_the_docs_hold_runnable_blocks():
    shell = [b for b in ALL if b.lang in SHELL and not b.skipped]
    assert len(shell) >= 5 and len(PYTHON) >= 5
    assert any(b.path.name == "README.md" and "--model" in b.code and "--format" in b.code for b in shell)


def test_every_skip_says_why():
    for path in DOCS:
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            if "not run" in line and line.startswith("<!--"):
                assert NOT_RUN.match(line), f"{path.name}:{number}: write <!-- not run: the reason -->"


def engine_lines(code: str) -> list[str]:
    """The commands of a block that would start the embedded engine (a bundled model, or no
    --model at all): minutes of CPU, not a docs check; such a block is marked not run."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        if not re.match(r"\s*evalkit (run|probe|serve)\b", line) or re.search(r"--(resume|config)\b", line):
            continue
        models = re.findall(r"--model[ =](\S+)", line)
        if line.split()[1] == "serve" or not models or any(m in BUNDLED for m in models):
            out.append(line.strip())
    return out


def test_no_runnable_block_starts_the_embedded_engine():
    found = [f"{b.name}: {line}" for b in ALL if b.lang in SHELL and not b.skipped for line in engine_lines(b.code)]
    assert not found, "mark these blocks <!-- not run: the embedded engine -->:\n" + "\n".join(found)
    assert engine_lines("evalkit run --suite weather") and engine_lines("evalkit run --model qwen2.5-coder-0.5b")
    assert not engine_lines("evalkit run --model my-model --base-url http://127.0.0.1:1234/v1")


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_shell_blocks_run(path, server, tmp_path):
    blocks = [b for b in blocks_of(path) if b.lang in SHELL and not b.skipped]
    if not blocks:
        pytest.skip("no runnable shell block")
    shutil.copytree(ROOT / "reports" / "measured", tmp_path / "reports" / "measured")
    env = {**os.environ, "EVALKIT_BASE_URL": server.base_url, "EVALKIT_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    env.pop("OPENAI_BASE_URL", None)
    for block in blocks:
        assert not engine_lines(block.code), f"{block.name} would start the embedded engine: mark it not run"
        script = LOCAL_URL.sub(server.base_url, block.code)
        result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{block.name} exited {result.returncode}:\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("block", PYTHON, ids=[b.name for b in PYTHON])
def test_python_blocks_print_what_the_docs_show(block):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", block.code], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"{block.name}:\n{result.stderr[-3000:]}"
    if block.output is not None:
        got = [line.rstrip() for line in result.stdout.rstrip("\n").split("\n")]
        shown = [line.rstrip() for line in block.output.rstrip("\n").split("\n")]
        assert got == shown, f"{block.name}: the output shown is not what it prints today:\n" + "\n".join(got)


def test_blocks_are_read_with_their_marks_and_outputs(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# t\n\n<!-- not run: serves until Ctrl-C -->\n```sh\nevalkit view\n```\n\n"
                    "```python\nprint(1 + 1)\n```\n\n```text\n2\n```\n\n```sh\nevalkit suites\n```\n\n"
                    "```text\nnot an output: no python block before it\n```\n", encoding="utf-8")
    view, python, suites, text = blocks_of(page)
    assert (view.lang, view.skipped, view.code) == ("sh", True, "evalkit view\n")
    assert (python.lang, python.output, python.skipped) == ("python", "2\n", False)
    assert (suites.lang, suites.skipped) == ("sh", False) and suites.output is None
    assert text.lang == "text"
