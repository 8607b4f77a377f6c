"""The Python API: run directories as pandas DataFrames, for analysis beyond the report.

    import evalkit
    samples = evalkit.samples_df("reports/runs")          # one row per sample
    results = evalkit.results_df("reports/runs/sweep-*")  # one row per results.json aggregate row

Paths are run directories, sweep directories, folders of either, or globs (evalkit/runpaths.py).
Columns and their types come from the schema's fields (evalkit/schema.py), so a new field of
Sample or Aggregate is a new column with no edit here: booleans as bool (nullable `boolean` where
the field may be unknown), numbers as float64 / Int64, names as categoricals. The heavy fields
(the request, the raw reply, parsed calls, an agent trajectory) are left out; `evalkit view` shows them.

pandas is imported here only, and this module only when the API is used (`evalkit/__init__.py`
imports it lazily), so the command line never pays for pandas.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Iterable, Union

import pandas as pd

from .rundir import latest_samples, read_header, read_results
from .runpaths import find_run_dirs
from .schema import Aggregate, Sample

PathsLike = Union[str, Path, Iterable[Union[str, Path]]]

# Fields held as categoricals: names with few distinct values, which group-bys and filters use.
CATEGORIES = {"run_id", "model", "format", "suite", "tag", "mode", "failure_kind", "syntax", "ended_by", "endpoint"}
# Sample fields too large for a table row (evalkit view shows them, case by case).
HEAVY = {"request", "raw", "calls", "trajectory"}


def _paths(paths: PathsLike) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return find_run_dirs(paths)


def _dtype(annotation: Any) -> str | None:
    """The pandas dtype for a pydantic field's annotation (None: leave it to pandas, e.g. lists)."""
    args = set(typing.get_args(annotation))
    optional = type(None) in args
    origin = typing.get_origin(annotation)
    base = annotation
    if origin in (Union, types.UnionType):
        rest = args - {type(None)}
        base = next(iter(rest)) if len(rest) == 1 else None
    if base is bool:
        return "boolean" if optional else "bool"
    if base is int:
        return "Int64"
    if base is float:
        return "float64"
    if base is str or typing.get_origin(base) is typing.Literal:
        return "string"
    return None


def _typed(frame: pd.DataFrame, fields: dict[str, Any]) -> pd.DataFrame:
    for column in frame.columns:
        if column in CATEGORIES:
            frame[column] = frame[column].astype("category")
            continue
        dtype = _dtype(fields[column].annotation) if column in fields else None
        if dtype is not None:
            frame[column] = frame[column].astype(dtype)
    return frame


def samples_df(paths: PathsLike) -> pd.DataFrame:
    """One row per sample of every run the paths stand for (a resumed run's redone sample replaces
    the first), with `run_id` first. Columns: the fields of `evalkit.schema.Sample` but the heavy ones."""
    fields = {name: f for name, f in Sample.model_fields.items() if name not in HEAVY}
    rows: list[dict[str, Any]] = []
    for run_dir in _paths(paths):
        run_id = read_header(run_dir).run_id
        for sample in latest_samples(run_dir):
            rows.append({"run_id": run_id, **sample.model_dump(include=set(fields))})
    frame = pd.DataFrame(rows, columns=["run_id", *fields])
    return _typed(frame, fields)


def results_df(paths: PathsLike) -> pd.DataFrame:
    """One row per aggregate row of every run's results.json (model x format x suite, tag and
    --distractors breakdowns; suite "*" is all suites together), with `run_id` first. The 95 %
    interval is two columns, `call_accuracy_ci95_low` / `_high`; pass^k is one column per k."""
    fields = dict(Aggregate.model_fields)
    rows: list[dict[str, Any]] = []
    for run_dir in _paths(paths):
        results = read_results(run_dir)
        if results is None:  # an unfinished run: `evalkit rescore` or `run --resume` writes results.json
            continue
        for agg in results.aggregates:
            row: dict[str, Any] = {"run_id": results.run_id}
            for name, value in agg.model_dump().items():
                if name == "call_accuracy_ci95":
                    row["call_accuracy_ci95_low"] = value["low"] if value else None
                    row["call_accuracy_ci95_high"] = value["high"] if value else None
                elif name == "pass_hat_k":
                    for k, share in (value or {}).items():
                        row[f"pass_hat_{k}"] = share
                else:
                    row[name] = value
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for column in frame.columns:
        if column.startswith(("call_accuracy_ci95_", "pass_hat_")):
            frame[column] = frame[column].astype("float64")
    return _typed(frame, fields)
