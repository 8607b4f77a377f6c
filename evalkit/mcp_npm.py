"""The npm reference MCP servers of the built-in suites: installed once, run without the network.

`evalkit mcp pull` runs `npm ci` on evalkit's own package-lock.json (evalkit/data/mcp_npm/: exact
versions with integrity hashes, which npm checks) into `<cache>/mcp/npm`, as `evalkit models
pull` fetches weights. Suites then start a server with

    command: [python, -m, evalkit.mcp_npm, server-filesystem, ARGS...]

which runs the installed package's own entry point with node, never `npx` (which may resolve
versions over the network at run time). A server not installed yet exits with a line that says
to run `evalkit mcp pull`, which evalkit shows as the server's stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .errors import EvalkitError

LOCK_DIR = Path(__file__).resolve().parent / "data" / "mcp_npm"
SCOPE = "@modelcontextprotocol"
MARKER = ".evalkit-lock-sha256"


def install_dir() -> Path:
    from .paths import cache_dir

    return cache_dir() / "mcp" / "npm"


def _lock_digest() -> str:
    return hashlib.sha256((LOCK_DIR / "package-lock.json").read_bytes()).hexdigest()


def packages() -> dict[str, str]:
    """The pinned npm servers: package name -> version."""
    return dict(json.loads((LOCK_DIR / "package.json").read_text())["dependencies"])


def installed(dest: Path | None = None) -> bool:
    marker = (dest or install_dir()) / MARKER
    return marker.is_file() and marker.read_text().strip() == _lock_digest()


def pull(dest: Path | None = None, quiet: bool = False) -> Path:
    """Install the pinned servers with `npm ci` (hash-checked) unless this lock is installed already."""
    dest = dest or install_dir()
    if installed(dest):
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise EvalkitError("npm is not installed; the filesystem MCP suite needs Node.js 20 or later with npm")
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(LOCK_DIR / name, dest / name)
    command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev"]
    if not quiet:
        print(f"installing {', '.join(f'{k}@{v}' for k, v in packages().items())} into {dest}", file=sys.stderr)
    try:
        done = subprocess.run(command, cwd=dest, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EvalkitError(f"npm ci in {dest} failed: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise EvalkitError(f"npm ci in {dest} failed: {lines[-1] if lines else f'exit code {done.returncode}'}")
    (dest / MARKER).write_text(_lock_digest() + "\n")
    return dest


def entry_point(server: str, dest: Path | None = None) -> Path:
    """The JavaScript file that starts `server` (e.g. "server-filesystem"), from its package.json `bin`."""
    package_dir = (dest or install_dir()) / "node_modules" / SCOPE / server
    manifest = package_dir / "package.json"
    if f"{SCOPE}/{server}" not in packages():
        raise EvalkitError(f"{SCOPE}/{server} is not one of evalkit's npm MCP servers ({', '.join(packages())})")
    if not installed(dest) or not manifest.is_file():
        raise EvalkitError(f"{SCOPE}/{server} is not installed; run `evalkit mcp pull` (needs npm, once)")
    data: dict[str, Any] = json.loads(manifest.read_text())
    binary = data.get("bin")
    relative = binary if isinstance(binary, str) else next(iter((binary or {}).values()), None)
    if not relative:
        raise EvalkitError(f"{manifest}: no `bin` entry to start the server with")
    return package_dir / relative


def main(argv: list[str] | None = None) -> int:
    """`python -m evalkit.mcp_npm SERVER ARGS...`: become `node <entry point> ARGS...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m evalkit.mcp_npm SERVER [ARGS...]", file=sys.stderr)
        return 2
    node = shutil.which("node")
    try:
        if node is None:
            raise EvalkitError("node is not installed; npm MCP servers need Node.js 20 or later")
        script = entry_point(argv[0])
    except EvalkitError as exc:
        print(f"evalkit: {exc}", file=sys.stderr)
        return 1
    # exec, not a child: the server keeps this process (and its group), so stopping it is direct.
    os.execv(node, [node, str(script), *argv[1:]])
    return 0  # pragma: no cover - execv does not return


# ---------------------------------------------------------------- command line


def _cmd_mcp(args: Any) -> int:
    if args.action == "pull":
        dest = pull()
        print(f"{', '.join(f'{k}@{v}' for k, v in packages().items())}: installed in {dest}")
        return 0
    state = "installed" if installed() else "not installed (evalkit mcp pull)"
    for name, version in packages().items():
        print(f"{name}@{version}  {state}")
    print(f"npm servers' folder: {install_dir()}")
    return 0


def add_commands(subparsers: Any) -> None:
    """Add `mcp [pull]`: show or install the npm reference servers of the built-in MCP suites."""
    parser = subparsers.add_parser("mcp", help="the npm MCP servers of the built-in suites: show, or pull (install)")
    parser.add_argument("action", nargs="?", choices=["list", "pull"], default="list",
                        help="pull: install them with npm ci from evalkit's lock file (default: list)")  # fmt: skip
    parser.set_defaults(func=_cmd_mcp)


if __name__ == "__main__":
    sys.exit(main())
