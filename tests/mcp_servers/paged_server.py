"""A small real MCP server for tests, on the official SDK's low-level `Server` API.

It pages its tools three at a time (tools/list `nextCursor`), and its tools misbehave on
purpose: `crash` kills the process mid-call, `sleep` never answers in time, `fail` returns an
`isError` result. Run over stdio (default) or streamable HTTP (`--http PORT`).
"""

from __future__ import annotations

import os
import sys

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server

PAGE = 3


def _tool(name: str, description: str, properties: dict | None = None) -> types.Tool:
    schema = {"type": "object", "properties": properties or {}, "additionalProperties": False}
    return types.Tool(name=name, description=description, input_schema=schema)


TOOLS = [
    _tool("echo", "Return the text it is given.", {"text": {"type": "string", "description": "what to echo"}}),
    _tool("crash", "Exit the server process in the middle of the call."),
    _tool("sleep", "Sleep for a minute before answering."),
    _tool("fail", "Answer with a tool error (isError)."),
    _tool("tool.with.dots", "A name that is not a valid OpenAI function name."),
    _tool("noop_a", "Does nothing."),
    _tool("noop_b", "Does nothing either."),
]


async def list_tools(ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    start = int(params.cursor) if params is not None and params.cursor else 0
    end = start + PAGE
    return types.ListToolsResult(tools=TOOLS[start:end], next_cursor=str(end) if end < len(TOOLS) else None)


async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    args = params.arguments or {}
    if params.name == "crash":
        print("paged_server: crashing on purpose", file=sys.stderr, flush=True)
        os._exit(7)
    if params.name == "sleep":
        await anyio.sleep(60)
    if params.name == "fail":
        return types.CallToolResult(content=[types.TextContent(text="it failed on purpose")], is_error=True)
    text = f"{params.name}: {args.get('text', '')}"
    return types.CallToolResult(content=[types.TextContent(text=text)])


server = Server("paged-test-server", version="1.2.3", on_list_tools=list_tools, on_call_tool=call_tool)


async def main_stdio() -> None:
    from mcp.server.stdio import stdio_server

    print("paged_server: ready", file=sys.stderr, flush=True)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def main_http(port: int) -> None:
    import uvicorn

    uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        main_http(int(sys.argv[2]))
    else:
        anyio.run(main_stdio)
