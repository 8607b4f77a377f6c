"""Call-syntax recognition on the fixtures, per family, before (evalkit/recovery.py, the recogniser
scoring used until issue 11; read from git history) and after (evalkit/callsyntax), plus the time
to scan 1 MB replies.

    python benchmarks/bench_callsyntax.py [--repeat N] [--before REV]

Prints a Markdown table and writes benchmarks/results/callsyntax.json. Columns, per family:
- recognised: call replies (single, parallel, reasoning) where an attempt is found where it was written;
- exact: call replies whose calls are recovered exactly (names, arguments, order), and clean;
- flagged: broken replies (cut off, no end marker, invalid JSON or XML) reported as malformed;
- plain: plain replies (including ones that mention a marker in backticks, or show JSON that is not
  a call) with no attempt invented.
Targets (issue 11): recognised >= 98%, exact >= 95%, plain = 100%.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import types
from collections import defaultdict
from pathlib import Path

from evalkit.callsyntax import FAMILIES, scan
from evalkit.testing.callsyntax_fixtures import CALL_KINDS, load, judge_with, run

RESULTS = Path(__file__).parent / "results" / "callsyntax.json"
ROOT = Path(__file__).resolve().parents[1]
# The last commit with evalkit/recovery.py, the recogniser the family table replaced.
BEFORE = "5942eb7"


def old_recogniser(rev: str) -> types.ModuleType | None:
    """evalkit/recovery.py as it was at `rev`, loaded as a module of the evalkit package (its
    relative imports still resolve); None when git or the revision is not at hand."""
    try:
        source = subprocess.run(["git", "show", f"{rev}:evalkit/recovery.py"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"no 'before' columns: cannot read evalkit/recovery.py at {rev} ({exc})", file=sys.stderr)
        return None
    module = types.ModuleType("evalkit._recovery_before")
    module.__package__ = "evalkit"
    exec(compile(source, f"{rev}:evalkit/recovery.py", "exec"), module.__dict__)  # noqa: S102 - our own history
    return module


def pct(hit: int, total: int) -> str:
    return f"{hit}/{total} ({100 * hit / total:.0f}%)" if total else "–"


def tally(outcomes) -> dict[str, list[int]]:
    t = {"recognised": [0, 0], "exact": [0, 0], "flagged": [0, 0], "plain": [0, 0]}
    for kind, o in outcomes:
        if kind in CALL_KINDS:
            t["recognised"][0] += o.recognised
            t["recognised"][1] += 1
            t["exact"][0] += bool(o.exact)
            t["exact"][1] += 1
        elif kind == "broken":
            t["flagged"][0] += o.recognised
            t["flagged"][1] += 1
        else:
            t["plain"][0] += o.recognised
            t["plain"][1] += 1
    return t


def one_megabyte_replies() -> dict[str, str]:
    mb = 1_000_000
    code = "def f(x):\n    return x + 1  # </tool_call> {\"name\": 1}\n"
    return {
        "prose": ("The weather in Paris is mild; bring an umbrella. " * (mb // 50 + 1))[:mb],
        "hermes call, 1 MB string argument": '<tool_call>\n{"name": "write_file", "arguments": {"path": "a.py", '
        '"content": ' + json.dumps((code * (mb // len(code)))[: mb - 100]) + "}}\n</tool_call>",
        "qwen3 XML call, 1 MB string parameter": "<tool_call>\n<function=write_file>\n<parameter=path>\na.py\n"
        "</parameter>\n<parameter=content>\n" + (code * (mb // len(code)))[: mb - 200] + "\n</parameter>\n"
        "</function>\n</tool_call>",
        "10k parallel calls": ('<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>\n' * 20000)[:mb],
        "cut-off XML blocks": ("<tool_call>\n<function=search>\n<parameter=query>\nx\n" * 30000)[:mb],
        "brackets and quotes": ('{"a": [1, {"b": "}"}], ' * 50000)[:mb],
    }


def timing(repeat: int) -> dict[str, float]:
    tools = json.loads((Path(__file__).parents[1] / "tests/fixtures/callsyntax/tools.json").read_text())
    out = {}
    for name, text in one_megabyte_replies().items():
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            scan(text, tools)
            runs.append(time.perf_counter() - start)
        out[name] = round(statistics.median(runs) * 1000, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed scans per 1 MB reply (median reported)")
    parser.add_argument("--before", default=BEFORE, help="git revision whose evalkit/recovery.py is 'before'")
    args = parser.parse_args()

    fixtures = load()
    old = old_recogniser(args.before)
    before, after = defaultdict(list), defaultdict(list)
    for f in fixtures:
        after[f.family].append((f.kind, run(f)))
        if old is not None:
            before[f.family].append((f.kind, judge_with(f, old.find_call_syntax, old.recover_calls)))

    rows, report = [], {}
    order = [fam.name for fam in FAMILIES]
    for family in order + ["all"]:
        pick = (lambda d: [x for v in d.values() for x in v]) if family == "all" else (lambda d: d[family])
        a, b = tally(pick(after)), tally(pick(before))
        report[family] = {"after": a, "before": b}
        rows.append(f"| {family} | {pct(*a['recognised'])} | {pct(*a['exact'])} | {pct(*a['flagged'])} | "
                    f"{pct(*a['plain'])} | {pct(*b['recognised'])} | {pct(*b['exact'])} | {pct(*b['flagged'])} | "
                    f"{pct(*b['plain'])} |")
    print(f"{len(fixtures)} fixtures\n")
    print("| family | recognised | exact | broken flagged | plain kept | before: recognised | before: exact "
          "| before: flagged | before: plain |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))

    times = timing(args.repeat)
    print("\n| 1 MB reply | scan time (ms, median) |\n|---|---|")
    for name, ms in times.items():
        print(f"| {name} | {ms} |")

    misses = [f"{f.id}: {o.detail}" for f in fixtures for o in [run(f)]
              if (f.kind in CALL_KINDS and not o.exact) or not o.recognised]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"fixtures": len(fixtures), "families": report, "scan_1mb_ms": times,
                                   "misses": misses}, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
