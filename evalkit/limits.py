"""The default of every limit that keeps a reply, a suite or a run bounded (issue 16).

Each is a run setting (schema.Settings, a `run` flag, recorded in header.json) and is reported in
words naming it when hit. This module imports nothing, so the client, the parsers, the suite
loader and the schema can all take their defaults from here.
"""

DEADLINE_S = 600.0
"""A whole reply, request to last byte. Generous: a CPU model can take minutes for one reply."""

TIMEOUT_S = 120.0
"""The longest gap between two reads of a reply (the openai client's timeout)."""

MAX_REPLY_CHARS = 1_000_000
"""Characters of content plus tool-call names and arguments per reply; also what the parsers read."""

RETRY_AFTER_CAP_S = 30.0
"""The longest wait a server's `Retry-After` gets (a server asking for an hour still gets 30 s)."""

MAX_ARG_DEPTH = 64
"""Nesting of one argument value the parsers accept; pydantic serialises at most ~255 levels."""

MAX_INT_BITS = 1024
"""Beyond a double's range an integer argument cannot be compared as a number."""

MAX_ALIAS_NODES = 1_000_000
"""Nodes YAML aliases may add to a suite when expanded; a 1 KB "billion laughs" file adds 10^9."""

MAX_TOOL_RESULT_CHARS = 100_000
"""Characters of one MCP tool result given to the model (and stored, twice: the round's result and
the next request). A 10 MB result went whole to the model and made a 21 MB sample line."""

MAX_MCP_MESSAGE_BYTES = 4 * 1024 * 1024
"""Bytes of one JSON-RPC message from a stdio MCP server that evalkit reads (counted by
evalkit/mcp_launcher.py as the bytes arrive; a longer answer is an error naming its size). The
SDK read and parsed a 100 MB result whole before the character cut above could apply, and
500,000 small content blocks (14 MB of JSON) took 1 GB once parsed."""
