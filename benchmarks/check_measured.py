"""Does today's code give the verdicts and aggregates stored in measured run directories?

For each run directory:
* aggregates: results.json recomputed from samples.jsonl (as `finalize` does) against the committed
  results.json, field by field over the fields the committed file has (new fields aside);
* verdicts: every scored sample scored again from its stored reply, exactly as `evalkit rescore`
  does it (evalkit/rescore.py), against every verdict field stored in samples.jsonl (failure kind,
  detail and call syntax included).

The suites must be the files the run used (same SHA-256): the built-in ones are found in suites/,
imported BFCL suites in the directories given with --suites (e.g. after `evalkit import bfcl`).
When scoring changes on purpose, `evalkit rescore reports/measured --suites DIR` brings the stored
verdicts up to date and says what moved.

    python benchmarks/check_measured.py [RUN_DIR...] [--suites DIR]...
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evalkit.aggregate import aggregate  # noqa: E402
from evalkit.rescore import run_scorer  # noqa: E402
from evalkit.scoring import VERDICT_FIELDS  # noqa: E402
from evalkit.rundir import latest_samples, read_header  # noqa: E402


@dataclass
class RunCheck:
    run: str
    aggregates: int = 0
    aggregate_diffs: list[str] = field(default_factory=list)
    rescored: int = 0
    verdict_diffs: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the run could not be checked

    @property
    def ok(self) -> bool:
        return self.skipped is None and not (self.aggregate_diffs or self.verdict_diffs)


def check_run(run_dir: Path, suite_dirs: list[Path]) -> RunCheck:
    result = RunCheck(run_dir.name)
    header = read_header(run_dir)
    samples = latest_samples(run_dir)

    committed = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    fresh = aggregate(samples, header.run_id, header.model).model_dump(mode="json")
    if len(fresh["aggregates"]) != len(committed["aggregates"]):
        result.aggregate_diffs.append(f"{len(fresh['aggregates'])} aggregates, committed {len(committed['aggregates'])}")
    for old, new in zip(committed["aggregates"], fresh["aggregates"]):
        result.aggregates += 1
        where = f"{old['model']}/{old['format']}/{old['suite']}/{old['tag']}"
        result.aggregate_diffs += [f"{where}: {k} {new.get(k)!r} != {v!r}" for k, v in old.items() if new.get(k) != v]

    scorer = run_scorer(run_dir, suite_dirs)
    if isinstance(scorer, str):
        result.skipped = scorer
        return result
    for sample in samples:
        if sample.error is not None:
            continue
        verdict = scorer.verdict(sample)
        result.rescored += 1
        where = "/".join(map(str, sample.key()))
        for name in VERDICT_FIELDS:
            if getattr(verdict, name) != getattr(sample, name):
                result.verdict_diffs.append(f"{where}: {name} {getattr(verdict, name)!r} != {getattr(sample, name)!r}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="*", type=Path)
    parser.add_argument("--suites", action="append", default=[], type=Path, help="a folder of imported suites")
    args = parser.parse_args(argv)
    # Run directories, also those inside sweep directories (reports/measured/sweep-*/RUN_ID).
    run_dirs = args.run_dirs or sorted(p.parent for p in (ROOT / "reports" / "measured").rglob("header.json"))
    failed = False
    for run_dir in run_dirs:
        r = check_run(run_dir, args.suites)
        status = "SKIPPED" if r.skipped else ("same" if r.ok else "DIFFERENT")
        print(f"{r.run}: {status}: {r.aggregates} aggregates, {len(r.aggregate_diffs)} differ; "
              f"{r.rescored} samples re-scored, {len(r.verdict_diffs)} verdict fields differ"
              + (f" ({r.skipped})" if r.skipped else ""))
        for line in (r.aggregate_diffs + r.verdict_diffs)[:10]:
            print("   ", line)
        failed = failed or not r.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
