"""Tool implementations for suites/agent_files.yaml, confined to the per-sample sandbox.

evalkit passes `sandbox` (a fresh temporary directory, seeded with a copy of FIXTURES) and
removes it afterwards. Every path the model sends goes through `resolve_inside`, so
"/project" means <sandbox>/project and "../../etc/passwd" raises SandboxEscape. Results name
paths as the model sees them ("/project/src"), never the real temporary directory.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from evalkit.sandbox import resolve_inside

# Relative to suites/: the sandbox receives suites/fixtures/*, i.e. a "project" folder.
FIXTURES = "fixtures"


def _shown(sandbox: Path, path: Path) -> str:
    relative = path.relative_to(Path(sandbox).resolve()).as_posix()
    return "/" if relative == "." else "/" + relative


def _directory(sandbox: Path, directory: str) -> Path:
    target = resolve_inside(sandbox, directory)
    if not target.exists():
        raise FileNotFoundError(f"no such directory: {directory}")
    if not target.is_dir():
        raise NotADirectoryError(f"not a directory: {directory}")
    return target


def list_files(directory: str, *, sandbox: Path) -> list[str]:
    target = _directory(sandbox, directory)
    return sorted(p.name + "/" if p.is_dir() else p.name for p in target.iterdir())


def analyze_directory(path: str, *, sandbox: Path) -> dict:
    target = _directory(sandbox, path)
    files = [p for p in target.rglob("*") if p.is_file()]
    dirs = [p for p in target.rglob("*") if p.is_dir()]
    by_extension = Counter(p.suffix.lower() or "(none)" for p in files)
    sizes = {p: p.stat().st_size for p in files}
    largest = max(sizes, key=lambda p: (sizes[p], str(p)), default=None)
    return {
        "path": _shown(sandbox, target),
        "total_files": len(files),
        "total_directories": len(dirs),
        "files_by_extension": dict(sorted(by_extension.items())),
        "total_bytes": sum(sizes.values()),
        "largest_file": _shown(sandbox, largest) if largest else None,
    }


def create_file(name: str, content: str, *, sandbox: Path) -> dict:
    target = resolve_inside(sandbox, name)
    if target.exists():
        raise FileExistsError(f"{name} already exists; refusing to overwrite it")
    if target.parent.exists() and not target.parent.is_dir():
        raise NotADirectoryError(f"{_shown(sandbox, target.parent)} is a file, not a directory")
    target.parent.mkdir(parents=True, exist_ok=True)  # inside the sandbox: target is resolved and checked
    with open(target, "x", encoding="utf-8") as handle:  # "x": never overwrite, even in a race
        handle.write(content)
    return {"created": _shown(sandbox, target), "bytes": len(content.encode("utf-8"))}
