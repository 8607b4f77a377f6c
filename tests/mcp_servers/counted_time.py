"""The reference mcp-server-time, started through a wrapper that first appends its process id to
the file named by EVALKIT_MCP_STARTS: tests count the servers a run started and check that
none of them is left running afterwards."""

from __future__ import annotations

import os
import runpy
import sys

with open(os.environ["EVALKIT_MCP_STARTS"], "a", encoding="utf-8") as handle:
    handle.write(f"{os.getpid()}\n")
sys.argv = ["mcp_server_time", "--local-timezone", "Etc/UTC"]
runpy.run_module("mcp_server_time", run_name="__main__", alter_sys=True)
