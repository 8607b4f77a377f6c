"""The call-syntax scanner on adversarial replies: for every family's opening markers, and for the
unmarked forms, inputs built to make a reader or a search go back over text it already passed (a
marker repeated, a marker then a megabyte of blanks, a key or string that never ends, brackets
that never close). Reports seconds per MB at two sizes (a linear scanner has the same figure at
both; a quadratic one doubles it when the size doubles). Target (issue 26): no input above 0.1 s
per MB at the 1 MB reply limit.

    python benchmarks/bench_scanner_worst.py [--size 1000000] [--repeat 3]

Prints a Markdown table (the worst inputs first) and writes benchmarks/results/scanner_worst.json.
The figures are wall-clock times of one process: on a shared machine, quote them with its load.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from evalkit.callsyntax import FAMILIES, scan

RESULTS = Path(__file__).parent / "results" / "scanner_worst.json"
TARGET_S_PER_MB = 0.1

# What follows a marker, to `size` characters: each stands for a way to make a reader rescan.
TAILS = {
    "marker repeated": lambda marker, size: marker * (size // len(marker) + 1),
    "marker, then blanks": lambda marker, size: marker + " " * size,
    "marker, JSON key never ends": lambda marker, size: marker + '{"name": "f", "arguments": {"a' + " " * size,
    "marker, string never ends": lambda marker, size: marker + '{"name": "' + "a" * size,
    "marker, brackets never close": lambda marker, size: marker + "[{" * (size // 2),
    "marker and newline repeated": lambda marker, size: (marker + "a\n") * (size // (len(marker) + 2) + 1),
    "marker, call:f{ key never ends": lambda marker, size: marker + "call:f{a" + " " * size,
    "marker, XML parameter never ends": lambda marker, size: marker + "<function=f>\n<parameter=a>" + "x" * size,
}

# Inputs with no marker of their own: the unmarked readers (bare JSON, Python lists) and reasoning.
UNMARKED = {
    "bare JSON call opener repeated": lambda size: '{"name":' * (size // 8 + 1),
    "bare JSON list opener repeated": lambda size: '[{"name":' * (size // 9 + 1),
    "Python call list repeated": lambda size: "[f(a=1)] " * (size // 9 + 1),
    "Python list opener repeated": lambda size: "[f(" * (size // 3 + 1),
    "unoffered Python lists": lambda size: "[see(above)] " * (size // 13 + 1),
    "reasoning opener repeated": lambda size: "<think>" * (size // 7 + 1),
    "reasoning closer repeated": lambda size: "</think>" * (size // 8 + 1),
    "backticked markers": lambda size: "`<tool_call>` " * (size // 14 + 1),
}


def inputs(size: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for family in FAMILIES:
        for marker, _reader in family.markers:
            for tail, make in TAILS.items():
                out.setdefault(f"{family.name} {marker!r}: {tail}", make(marker, size)[:size])
    for name, make in UNMARKED.items():
        out[name] = make(size)[:size]
    return out


def timed(text: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        scan(text)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1_000_000, help="characters of the larger input (default: the reply limit)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N per input")
    args = ap.parse_args()
    small, large = inputs(args.size // 4), inputs(args.size)
    rows = []
    for name, text in large.items():
        t_large = timed(text, args.repeat)
        t_small = timed(small[name], args.repeat)
        rows.append({"input": name, "chars": len(text), "s": round(t_large, 4),
                     "s_per_mb": round(t_large / len(text) * 1e6, 4),
                     "s_per_mb_at_quarter_size": round(t_small / max(1, len(small[name])) * 1e6, 4)})
    rows.sort(key=lambda row: -row["s_per_mb"])
    worst = rows[0]
    print(f"load average {os.getloadavg()[0]:.2f}; {len(rows)} inputs; target <= {TARGET_S_PER_MB} s/MB\n")
    print("| input | chars | s | s/MB | s/MB at 1/4 size |\n|---|---:|---:|---:|---:|")
    for row in rows[:15]:
        print(f"| {row['input']} | {row['chars']:,} | {row['s']:.4f} | {row['s_per_mb']:.4f} | {row['s_per_mb_at_quarter_size']:.4f} |")
    print(f"\nworst: {worst['input']}: {worst['s_per_mb']:.4f} s/MB "
          f"({'within' if worst['s_per_mb'] <= TARGET_S_PER_MB else 'OVER'} the {TARGET_S_PER_MB} s/MB target)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"size": args.size, "repeat": args.repeat, "load_average": os.getloadavg()[0],
                                   "target_s_per_mb": TARGET_S_PER_MB, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
