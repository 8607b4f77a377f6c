"""Sharding a run across machines: `--shard i/n` picks every n-th job, `evalkit merge` joins
the shards' run directories into one."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping, Sequence, TypeVar

from .errors import EvalkitError
from .rundir import HEADER, SampleLog, finalize, latest_samples, new_run_id, print_summary, read_header, write_model

T = TypeVar("T")


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """`--shard i/n` as (i, n); None when the run is not sharded."""
    if not shard:
        return None
    try:
        index, total = (int(x) for x in shard.split("/"))
    except ValueError:
        raise EvalkitError(f"--shard {shard!r}: expected i/n, e.g. 1/4") from None
    if not 1 <= index <= total:
        raise EvalkitError(f"--shard {shard!r}: i must be between 1 and n")
    return index, total


# Where `--shard auto` reads its place: (index variable, its first value, count variables).
# Kubernetes Indexed Job: JOB_COMPLETION_INDEX counts from 0; the Job does not tell its
# completions, so the count comes from `--shard auto/N` or EVALKIT_SHARD_COUNT. Slurm job array:
# SLURM_ARRAY_TASK_ID counts from the array's first index (SLURM_ARRAY_TASK_MIN, e.g. --array=1-4).
SHARD_COUNT_VARIABLE = "EVALKIT_SHARD_COUNT"
SCHEDULERS = (
    ("JOB_COMPLETION_INDEX", None, (SHARD_COUNT_VARIABLE,)),
    ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", ("SLURM_ARRAY_TASK_COUNT", SHARD_COUNT_VARIABLE)),
)


def resolve_shard(shard: str | None, environ: Mapping[str, str]) -> str | None:
    """`--shard auto` or `auto/N` as `i/n` from the scheduler's variables; anything else as given."""
    if not shard or not shard.startswith("auto"):
        return shard
    _, _, given = shard.partition("/")
    for index_var, first_var, count_vars in SCHEDULERS:
        if index_var not in environ:
            continue
        count_text = given or next((environ[v] for v in count_vars if environ.get(v)), "")
        try:
            index = int(environ[index_var]) - int(environ.get(first_var or "", "0") or 0) + 1
            total = int(count_text)
        except ValueError:
            raise EvalkitError(f"--shard {shard}: ${index_var}={environ[index_var]!r} with count {count_text!r} is "
                               f"not a shard; set the count with --shard auto/N or ${SHARD_COUNT_VARIABLE}") from None
        resolved = f"{index}/{total}"
        parse_shard(resolved)  # an index past the count is one line, as for --shard i/n
        return resolved
    raise EvalkitError(f"--shard {shard}: neither $JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) nor "
                       "$SLURM_ARRAY_TASK_ID (a Slurm job array) is set; pass --shard i/n")


def shard_of(jobs: Sequence[T], shard: str | None) -> list[T]:
    """Shard i of n takes jobs i-1, i-1+n, ...: every shard gets a mix of suites and formats."""
    parsed = parse_shard(shard)
    if parsed is None:
        return list(jobs)
    index, total = parsed
    return [job for i, job in enumerate(jobs) if i % total == index - 1]


def merge(shard_dirs: list[Path], out_parent: Path) -> Path:
    if len(shard_dirs) < 2:
        raise EvalkitError("merge needs at least two run directories")
    headers = [read_header(d) for d in shard_dirs]
    first = headers[0]
    for directory, header in zip(shard_dirs[1:], headers[1:]):
        # Shards are only comparable if they ran the same thing the same way.
        for field in ("model", "formats", "distractors"):
            if getattr(header, field) != getattr(first, field):
                raise EvalkitError(f"{directory}: {field} differs from {shard_dirs[0]} ({getattr(header, field)!r})")
        if [s.sha256 for s in header.suites] != [s.sha256 for s in first.suites]:
            raise EvalkitError(f"{directory}: suite files differ from {shard_dirs[0]}")
        if header.settings.model_dump(exclude={"concurrency"}) != first.settings.model_dump(exclude={"concurrency"}):
            raise EvalkitError(f"{directory}: settings differ from {shard_dirs[0]}")
    samples = latest_samples(*shard_dirs)
    merged = first.model_copy(deep=True)
    merged.run_id = new_run_id(first.model)
    merged.shard = None
    merged.base_urls = sorted({u for h in headers for u in (h.base_urls or [h.base_url])})
    merged.merged_from = [h.run_id for h in headers]  # type: ignore[attr-defined]
    run_dir = out_parent / merged.run_id
    run_dir.mkdir(parents=True)
    write_model(run_dir / HEADER, merged)
    log = SampleLog(run_dir)
    for sample in sorted(samples, key=lambda s: s.key()):
        log.append(sample)
    log.close()
    finalize(run_dir)
    return run_dir


def cmd_merge(args: argparse.Namespace) -> int:
    run_dir = merge(args.run_dirs, args.out)
    print_summary(run_dir)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("merge", help="join the run directories of --shard runs into one")
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path("reports/runs"))
    p.set_defaults(func=cmd_merge)
