"""Turn the BFCL samples of evalkit runs into recorded outputs for the agreement check.

    python benchmarks/record_bfcl_outputs.py reports/runs/RUN_ID [...]

Writes benchmarks/data/bfcl_recorded_outputs.jsonl (the format `bfcl_agreement.py` reads):
one line per BFCL sample in `pythonic` or `native` format, with the model's raw reply.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evalkit.rundir import read_samples  # noqa: E402

OUT = ROOT / "benchmarks" / "data" / "bfcl_recorded_outputs.jsonl"


def main(run_dirs: list[str]) -> int:
    rows: dict[tuple[str, str, str], dict] = {}  # a case run twice (overlapping runs) counts once
    for run_dir in run_dirs:
        for sample in read_samples(Path(run_dir)):
            if not sample.suite.startswith("bfcl_") or sample.error or sample.format not in ("pythonic", "native"):
                continue
            row = {
                "category": sample.suite.removeprefix("bfcl_"),
                "id": sample.case_id,
                "format": sample.format,
                "raw": sample.raw.get("content") or "",
                "names": "underscored",
                "model": sample.model,
            }
            if sample.format == "native":
                row["tool_calls"] = sample.raw.get("tool_calls") or []
            rows[(sample.model, sample.format, sample.case_id)] = row
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows.values()))
    print(f"{len(rows)} recorded outputs -> {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
