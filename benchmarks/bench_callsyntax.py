"""Call-syntax recognition on the fixtures, per family, before (evalkit/recovery.py, the recogniser
scoring used until issue 11; read from git history) and after (evalkit/callsyntax), plus the time
to scan 1 MB replies.

    python benchmarks/bench_callsyntax.py [--repeat N] [--before REV] [--heldout PATH]

Prints a Markdown table and writes benchmarks/results/callsyntax.json. Columns, per family:
- recognised: call replies (single, parallel, reasoning) where an attempt is found where it was written;
- exact: call replies whose calls are recovered exactly (names, arguments, order), and clean;
- flagged: broken replies (cut off, no end marker, invalid JSON or XML) reported as malformed;
- plain: plain replies (including ones that mention a marker in backticks, or show JSON that is not
  a call) with no attempt invented.
Targets (issue 11): recognised >= 98%, exact >= 95%, plain = 100%.

Then the safety net for syntax no family knows (issue 23): on the held-out file (--heldout, default
benchmarks/data/callsyntax_heldout.jsonl; skipped with a line when absent), call attempts seen, calls
recovered and prose kept plain, each reply scored as a run scores it; and where the net fires on the
stored replies (every round) of the runs under reports/measured, each listed for review.
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
from evalkit.errors import EvalkitError
from evalkit.testing import callsyntax_heldout
from evalkit.testing.callsyntax_fixtures import CALL_KINDS, load, judge_with, run

RESULTS = Path(__file__).parent / "results" / "callsyntax.json"
ROOT = Path(__file__).resolve().parents[1]
HELDOUT = Path(__file__).parent / "data" / "callsyntax_heldout.jsonl"
MEASURED = ROOT / "reports" / "measured"
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
        "prose naming tools and parameters": ("I could use get_weather with the location: a city you name. "
                                              * (mb // 60 + 1))[:mb],
        "calls in an unknown syntax": ('CALL get_weather WITH location="Paris", unit="celsius"\n' * 20000)[:mb],
        "Harmony final-channel JSON objects": ('<|start|>assistant<|channel|>final<|message|>{"name": "get_weather", '
                                               '"arguments": {"location": "Paris"}}<|end|>' * 9000)[:mb],
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


def _shown(path: Path) -> str:
    """The path relative to the repository when it is inside it (results files stay portable)."""
    try:
        return str(path.resolve().relative_to(Path(__file__).resolve().parent.parent))
    except ValueError:
        return str(path)


def heldout(path: Path) -> dict | None:
    """The held-out figures, printed; None when the file is absent."""
    if not path.exists():
        print(f"\nheld-out check: {path} not found, skipped (it is written apart from the scanner's development)")
        return None
    try:
        lines = callsyntax_heldout.load(path)
    except EvalkitError as exc:
        sys.exit(f"held-out check: {exc}")
    calls = [h for h in lines if h.kind == "call"]
    prose = [h for h in lines if h.kind == "prose"]
    expecting = [h for h in calls if h.expected]
    figures = {"file": _shown(path), "call_seen": [sum(h.seen for h in calls), len(calls)],
               "recovered_correct": [sum(h.recovered for h in expecting), len(expecting)],
               "prose_plain": [sum(h.plain for h in prose), len(prose)],
               "misses": [f"{h.id} ({h.kind}): syntax {h.verdict.syntax}, {h.verdict.failure_kind}: "
                          f"{h.verdict.failure_detail}" for h in lines
                          if (h.kind == "call" and not h.seen) or (h.kind == "prose" and not h.plain)]}
    print(f"\nheld-out check ({path}):\n")
    print("| held-out | count |\n|---|---|")
    print(f"| call attempts seen (malformed or recovered) | {pct(*figures['call_seen'])} |")
    print(f"| calls recovered correctly (replies with expected calls) | {pct(*figures['recovered_correct'])} |")
    print(f"| prose kept plain | {pct(*figures['prose_plain'])} |")
    for miss in figures["misses"]:
        print(f"- missed: {miss}")
    return figures


def net_on_measured(root: Path = MEASURED) -> dict:
    """Where the net fires on the stored replies (each agent round too) of the measured runs, with the
    tools each request offered (its `tools`, or the tool list the format wrote into the system prompt)."""
    decoder = json.JSONDecoder()

    def offered(request: dict):
        if request.get("tools"):
            return {t["function"]["name"]: t["function"].get("parameters") for t in request["tools"]}
        system = " ".join(m.get("content") or "" for m in request.get("messages", []) if m.get("role") == "system")
        for phrase in ("in JSON format that you can invoke.\n", "AVAILABLE TOOLS:\n"):
            if (at := system.find(phrase)) >= 0:
                value, _ = decoder.raw_decode(system[at + len(phrase):])
                items = value["tools"] if isinstance(value, dict) else value
                return {(t.get("function") or t)["name"]: (t.get("function") or t).get("parameters") for t in items}
        return None

    replies, fired = 0, []
    for path in sorted(root.glob("**/samples.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            sample = json.loads(line)
            for round_ in sample.get("trajectory") or [sample]:
                text = (round_.get("raw") or {}).get("content")
                if not text:
                    continue
                replies += 1
                found = [a for a in scan(text, offered(round_.get("request") or {})).attempts if a.family == "unknown"]
                if found:
                    a = found[0]
                    fired.append(f"{path.parent.name} {sample['case_id']} ({sample['format']}): {a.broken}: "
                                 f"{json.dumps(text[a.span[0]:a.span[1]][:120], ensure_ascii=False)}")
    print(f"\nsafety net on the stored replies of {root.relative_to(ROOT)}: fired on {len(fired)} of {replies}")
    for line in fired:
        print(f"- {line}")
    return {"replies": replies, "fired": fired}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed scans per 1 MB reply (median reported)")
    parser.add_argument("--before", default=BEFORE, help="git revision whose evalkit/recovery.py is 'before'")
    parser.add_argument("--heldout", type=Path, default=HELDOUT, help="the held-out file of the safety net")
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
    net_fixtures = [f.id for f in fixtures if any(a.family == "unknown" for a in scan(f.text, f.tools).attempts)]
    print(f"\nsafety net on the fixtures: fired on {len(net_fixtures)} of {len(fixtures)} "
          f"({sum(f.kind == 'plain' for f in fixtures)} plain){': ' + ', '.join(net_fixtures) if net_fixtures else ''}")
    held = heldout(args.heldout)
    measured = net_on_measured()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"fixtures": len(fixtures), "families": report, "scan_1mb_ms": times,
                                   "misses": misses, "net_on_fixtures": net_fixtures, "heldout": held,
                                   "net_on_measured": measured}, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
