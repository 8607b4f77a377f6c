"""Write evalkit/data/tool_pool.json: real tool schemas to draw `--distractors` from.

Sources, de-duplicated by name (the first definition of a name wins, in this order):
1. the built-in MCP suites' tools (suites/mcp/*.yaml: exactly as the pinned servers list them);
2. the functions of BFCL's single-turn categories, from the pinned bfcl-eval wheel that
   `evalkit.bfcl.fetch_wheel` downloads (SHA-256 checked; needs PyPI once), converted with
   `evalkit.bfcl.tool_defs` as `evalkit import bfcl` offers them (dots in names become
   underscores), without the answer-fitting (a distractor has no answer) and without BFCL's
   "Note that the provided function is in Python 3 syntax." (a distractor must not stand out).
Each schema must be a valid JSON Schema with an object at the root and an OpenAI-valid name.

    python scripts/build_tool_pool.py [--out evalkit/data/tool_pool.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evalkit import bfcl  # noqa: E402
from evalkit.bfcl import conversion  # noqa: E402
from evalkit.mcp_tools import OPENAI_NAME  # noqa: E402
from evalkit.suites import read_suite  # noqa: E402


def usable(tool: dict) -> bool:
    function = tool["function"]
    if not OPENAI_NAME.match(function["name"]) or function.get("parameters", {}).get("type") != "object":
        return False
    try:
        Draft202012Validator.check_schema(function["parameters"])
    except SchemaError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "evalkit" / "data" / "tool_pool.json")
    args = parser.parse_args()

    pool: dict[str, dict] = {}
    counts = {"mcp": 0, "bfcl": 0, "duplicate_names": 0, "unusable": 0}

    def add(tool: dict, source: str) -> None:
        if not usable(tool):
            counts["unusable"] += 1
        elif tool["function"]["name"] in pool:
            counts["duplicate_names"] += 1
        else:
            pool[tool["function"]["name"]] = {**tool, "x-source": source}
            counts[source.split(":")[0]] += 1

    for path in sorted((ROOT / "suites" / "mcp").glob("*.yaml")):
        suite = read_suite(path).suite
        for tool in suite.tools:
            add(tool.model_dump(exclude_none=True), f"mcp:{suite.name}")
    data = bfcl.data_dir(bfcl.fetch_wheel())
    for category in bfcl.CATEGORIES:
        prompts, _answers = conversion._paths(category, data)  # noqa: SLF001 - the one place that names BFCL's files
        for entry in bfcl.read_jsonl(prompts):
            for tool in bfcl.tool_defs(entry.get("function") or []):
                function = tool["function"]
                function["description"] = function["description"].removesuffix(conversion.PYTHON_HINT)
                add(tool, f"bfcl:{category}")

    document = {
        "about": "Real tool schemas for evalkit's --distractors; built by scripts/build_tool_pool.py.",
        "sources": {
            "mcp": "the built-in MCP suites' tools (suites/mcp): mcp-server-time and mcp-server-git 2026.10.19 "
            "(PyPI, MIT), @modelcontextprotocol/server-filesystem 2026.8.31 (npm)",
            "bfcl": f"functions of BFCL v4's single-turn categories ({', '.join(bfcl.CATEGORIES)}) in "
            f"bfcl-eval {bfcl.BFCL_VERSION} (PyPI wheel SHA-256 {bfcl.wheel.WHEEL_SHA256}), Apache-2.0, "
            "converted by evalkit.bfcl.tool_defs",
        },
        "licence": "BFCL functions: Apache-2.0 (bfcl-eval's METADATA); mcp-server-time and mcp-server-git: "
        "MIT (their PyPI METADATA); server-filesystem: the licence of its package (modelcontextprotocol/servers)",
        "counts": {**counts, "tools": len(pool)},
        "tools": sorted(pool.values(), key=lambda t: t["function"]["name"]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(pool)} tools ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
