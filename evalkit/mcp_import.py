"""`evalkit import mcp`: read an MCP server's tools and write a suite skeleton around them.

    evalkit import mcp [--name NAME] [--out DIR] -- COMMAND [ARGS...]     (a server over stdio)
    evalkit import mcp [--name NAME] [--out DIR] --url URL               (streamable HTTP)

The suite declares the tools as the server lists them (`inputSchema` becomes `parameters`), so
its cases are checked offline and a run can tell when the server no longer offers one. Its
`implementations` name the server, and one commented case template per tool shows where the
cases go. The server's name and version go into the description.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import yaml

from .cliargs import positive_seconds
from .errors import EvalkitError
from .mcp_tools import ServerInfo, name_clashes, read_server, tool_def
from .rundir import write_atomic

DEFAULT_OUT = Path("suites") / "imported"

# A placeholder value for a required argument of each JSON type, for the case templates.
_PLACEHOLDER = {"string": "...", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}


def suite_name(text: str) -> str:
    """A suite (and file) name from a server name: `mcp-time` -> `mcp_time`."""
    name = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    return name or "mcp_server"


def _placeholder(schema: dict[str, Any]) -> Any:
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and isinstance(schema.get("anyOf"), list):
        kind = next((s.get("type") for s in schema["anyOf"] if isinstance(s, dict) and s.get("type") != "null"), None)
    return _PLACEHOLDER.get(kind, "...")


def _case_template(tool: dict[str, Any]) -> list[str]:
    function = tool["function"]
    params = function.get("parameters") or {}
    properties = params.get("properties") or {}
    required = [name for name in params.get("required") or [] if name in properties]
    args = {name: _placeholder(properties[name]) for name in required}
    optional = [name for name in properties if name not in required]
    flow = yaml.safe_dump(args, default_flow_style=True, allow_unicode=True, width=1000, sort_keys=False).strip()
    lines = [
        f"  - id: {function['name'].replace('_', '-').lower()}-1-en",
        "    messages:",
        f"      - {{role: user, content: \"A request that needs {function['name']}\"}}",
        "    expect:",
        "      calls:",
        f"        - name: {function['name']}",
        f"          args: {flow}" + (f"  # optional: {', '.join(optional)}" if optional else ""),
        "    tags: [en]",
    ]
    return ["# " + line for line in lines]


def skeleton(name: str, info: ServerInfo, tools: list[dict[str, Any]], server: dict[str, Any], source: str) -> str:
    """The suite file's text: header fields and tools as YAML, then commented case templates."""
    description = f"Tools of the MCP server {info.name} {info.version} ({source}), read by `evalkit import mcp`."
    body = {"name": name, "description": description, "implementations": {"mcp": server}, "tools": tools, "cases": []}
    head = [
        f"# Written by `evalkit import mcp` from {info.name} {info.version}: {len(tools)} tool(s).",
        "# Add cases under `cases:` (replace the []), e.g. from the templates at the end, then:",
        f"#   evalkit run --suite PATH/{name}.yaml",
    ]
    text = yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)
    templates = ["", "# Case templates, one per tool (agent cases add `mode: agent` and `final_answer`):", "# cases:"]
    for tool in tools:
        templates += _case_template(tool)
    return "\n".join(head) + "\n" + text + "\n".join(templates) + "\n"


def import_mcp(
    command: list[str] | None = None,
    url: str | None = None,
    name: str | None = None,
    out_dir: Path | str = DEFAULT_OUT,
    timeout_s: float = 30.0,
    force: bool = False,
) -> tuple[Path, ServerInfo, int]:
    """Write `<out_dir>/<name>.yaml` from the server's tools; returns (path, server, tool count)."""
    if (not command) == (url is None):
        raise EvalkitError("import mcp: give the server's command after `--`, or --url URL (not both)")
    if name is not None and suite_name(name) != name:
        raise EvalkitError(f"--name {name!r}: use lower-case letters, digits and _ (e.g. {suite_name(name)!r})")
    info, listed = asyncio.run(read_server(command=command, url=url, timeout_s=timeout_s))
    name = name or suite_name(info.name)
    path = Path(out_dir) / f"{name}.yaml"
    if path.exists() and not force:
        raise EvalkitError(f"{path} exists; pass --force to replace it, or --name another")
    if (clash := name_clashes([t.name for t in listed])) is not None:
        raise EvalkitError(f"import mcp: {info.name} {info.version}: {clash}; nothing was written")
    tools = [tool_def(t.name, t.description, t.input_schema).model_dump(exclude_none=True) for t in listed]
    server: dict[str, Any] = {"command": list(command)} if command else {"url": url}
    source = f"`{' '.join(command)}`" if command else url
    text = skeleton(name, info, tools, server, str(source))
    _write_checked(path, text)
    return path, info, len(tools)


def _write_checked(path: Path, text: str) -> None:
    """Write the suite only once it loads: checked under a name `evalkit suites` does not list, then
    renamed into place (a failed import once left an unloadable file that broke `suites --dir`)."""
    from .errors import SuiteError
    from .suites import read_suite

    trial = path.with_name(f".{path.name}.check")
    write_atomic(trial, text)
    try:
        read_suite(trial)
    except SuiteError as exc:
        trial.unlink(missing_ok=True)
        raise EvalkitError(f"import mcp: the suite made from the server's tools does not load ({exc}); nothing was written") from None
    except BaseException:
        trial.unlink(missing_ok=True)
        raise
    trial.replace(path)


# ---------------------------------------------------------------- command line


def _cmd_import_mcp(args: Any) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    path, info, count = import_mcp(command or None, args.url, args.name, args.out, args.timeout, args.force)
    print(f"{path}: {count} tool(s) from {info.name} {info.version}; add cases, then: evalkit run --suite {path}")
    return 0


def add_import_command(sources: Any) -> None:
    """Add `mcp` to the sub-parsers of `evalkit import` (see evalkit.cli.add_import_commands):
    `import mcp [--name NAME] [--out DIR] [--url URL] -- COMMAND...`."""
    import argparse

    parser = sources.add_parser(
        "mcp",
        help="an MCP server's tools, as a suite skeleton",
        description="Start an MCP server (the command after --) or reach one (--url), read its tools "
        "and write a suite skeleton: the tools, the server as implementations, a commented case template per tool.",
        usage="evalkit import mcp [--name NAME] [--out DIR] [--timeout SECONDS] [--force] (--url URL | -- COMMAND [ARGS...])",
    )
    parser.add_argument("--name", help="suite name and file name (default: from the server's name)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--url", help="a streamable HTTP server, e.g. http://127.0.0.1:8000/mcp")
    parser.add_argument("--timeout", type=positive_seconds, default=30.0, help="seconds to wait for the server (default 30)")
    parser.add_argument("--force", action="store_true", help="replace an existing suite file")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the server's command and arguments, after --")
    parser.set_defaults(func=_cmd_import_mcp)
