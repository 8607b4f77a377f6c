"""A real MCP server (the official SDK's low-level `Server`) that is hostile on request, for the
reliability tests and benchmarks/bench_chaos.py (issue 26).

    hostile_server.py [NAMES_JSON [CHARS [BLOCKS]]]

NAMES_JSON: the tool names to list (names with a newline, names that become the same OpenAI name,
a name twice; default ["big", "many"]). CHARS: the `big` tool answers that many characters in one
text block (default 10 MB); BLOCKS: `many` answers that many small blocks (default 100,000).
Arguments, not environment variables: evalkit starts MCP servers with the suite's environment.
"""

from __future__ import annotations

import json
import sys

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server

_ARGS = sys.argv[1:] + [""] * 3
NAMES = json.loads(_ARGS[0] or '["big", "many"]')
CHARS = int(_ARGS[1] or 10_000_000)
BLOCKS = int(_ARGS[2] or 100_000)


def _tool(name: str) -> types.Tool:
    return types.Tool(name=name, description=f"The tool {name!r}.", input_schema={"type": "object", "properties": {}})


async def list_tools(ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[_tool(n) for n in NAMES])


async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    if params.name == "big":
        text = "r" * CHARS
        return types.CallToolResult(content=[types.TextContent(text=text)])
    if params.name == "many":
        return types.CallToolResult(content=[types.TextContent(text="b") for _ in range(BLOCKS)])
    return types.CallToolResult(content=[types.TextContent(text=f"called {params.name}")])


server = Server("hostile-test-server", version="0.0.1", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
