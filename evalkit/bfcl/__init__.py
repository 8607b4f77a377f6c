"""Import the Berkeley Function Calling Leaderboard (BFCL) single-turn suites as evalkit suites.

BFCL's data ships in the `bfcl-eval` wheel on PyPI (Apache-2.0). The wheel pins dozens of vendor
SDKs, so it is never installed: `fetch_wheel` downloads it with `pip download --no-deps` and
unpacks only the data files (and the few pure-Python checker files the agreement benchmark needs).

The conversion reproduces what BFCL's AST checker (`eval_checker/ast_eval/ast_checker.py`) accepts,
with evalkit's matchers; docs/bfcl.md lists the mapping and the few intended differences:

* each parameter's list of acceptable values -> a literal, or `one_of`; `""` in the list -> `optional`;
* strings compare as BFCL's `standardize_string` does (case, spaces and `,./-_*^` ignored) through
  the `loose` matcher when the core provides it, else as plain literals (trimmed, case-folded);
* numbers keep BFCL's Python-type rule: an `integer` parameter (and a number inside a typed list)
  must be sent as that type (`exact`), a `float` parameter accepts an int;
* nested dicts become literal objects whose keys carry their own matchers;
* parallel calls are order-free (`order: any`) and the call count is exact;
* `irrelevance` entries expect no call at all (`calls: []`).

Function names with dots (`math.factorial`) are not valid OpenAI function names
(`^[a-zA-Z0-9_-]{1,64}$`), so, as BFCL's FC handlers do, dots become underscores in `tool_defs`
and in the expected calls; the original name is kept on the tool as `x-original-name` (beside
`function`) so a call spelled with dots (as in BFCL's prompt mode) can be mapped back.

Modules: `wheel` (download and unpack the pinned wheel, read its JSON Lines), `conversion` (entries ->
cases), `cli` (`evalkit import bfcl`).
"""

from .conversion import convert, expected_call, import_bfcl, param_matcher, tool_defs, tool_name, write_suite
from .wheel import BFCL_VERSION, CATEGORIES, WHEEL_NAME, data_dir, default_dir, fetch_wheel, read_jsonl

__all__ = [
    "BFCL_VERSION",
    "CATEGORIES",
    "WHEEL_NAME",
    "convert",
    "data_dir",
    "default_dir",
    "expected_call",
    "fetch_wheel",
    "import_bfcl",
    "param_matcher",
    "read_jsonl",
    "tool_defs",
    "tool_name",
    "write_suite",
]
