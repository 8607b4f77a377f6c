"""From samples to the aggregates of results.json (per model x format x suite, per tag, and per
--distractors count), by computing every metric of `metrics.METRICS` over each group of samples."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import pandas as pd

from .metrics import METRICS, Group
from .schema import Aggregate, Interval, Results, Sample, SampleKey
from .scoring import abstains_by_bfcl_rule

ALL = "*"

# Sample fields too bulky for a frame and read by no metric: the request, the reply, the calls.
_BULKY = {"request", "raw", "calls", "trajectory"}
COLUMNS = [name for name in Sample.model_fields if name not in _BULKY]


def clean_call(sample: Sample) -> bool:
    """The reply holds a call the model wrote cleanly: parsed (by the server or the format) with
    nothing malformed, or a clean call in its own syntax that the server's parser lost."""
    return sample.failure_kind == "server_parse_lost" or (bool(sample.calls) and not sample.malformed)


def samples_frame(samples: Iterable[Sample], latest: bool = False) -> pd.DataFrame:
    """One row per sample: its scalar fields, whether BFCL's rule counts it as abstaining, and
    whether it holds a clean call.

    Rows are tuples of those fields only, never whole samples, so `samples` may be a stream of
    any length. `latest`: one row per key, the last one read (a resumed run's redone samples).
    """
    rows: dict[SampleKey, tuple] | list[tuple] = {} if latest else []
    for s in samples:
        row = tuple(getattr(s, c) for c in COLUMNS) + (abstains_by_bfcl_rule(s.malformed, s.calls), clean_call(s))
        if isinstance(rows, dict):
            rows[s.key()] = row
        else:
            rows.append(row)
    records = list(rows.values()) if isinstance(rows, dict) else rows
    frame = pd.DataFrame.from_records(records, columns=COLUMNS + ["bfcl_abstained", "clean_call"])
    # Object dtype keeps None as None (not NaN) for the boolean verdicts until we take means.
    return frame.astype({"args_valid": "object", "error": "object"})


def _aggregate(
    frame: pd.DataFrame, model: str, fmt: str, suite: str, tag: str | None, distractors: int | None = None
) -> Aggregate:
    group = Group(frame)
    values = {m.key: m.compute(group) for m in METRICS}
    return Aggregate(model=model, format=fmt, suite=suite, tag=tag, distractors=distractors, **values)


def is_breakdown(agg: Aggregate) -> bool:
    """A row of the --distractors breakdown, which the per-suite and per-tag views leave out."""
    return agg.distractors is not None


def aggregate(samples: Iterable[Sample], run_id: str, model: str, latest: bool = False) -> Results:
    """`latest`: a later sample of the same key replaces an earlier one (see samples_frame)."""
    frame = samples_frame(samples, latest)
    aggregates: list[Aggregate] = []
    if len(frame):
        for (mdl, fmt), by_format in frame.groupby(["model", "format"], sort=True):
            aggregates.append(_aggregate(by_format, mdl, fmt, ALL, None))
            for suite, by_suite in by_format.groupby("suite", sort=True):
                aggregates.append(_aggregate(by_suite, mdl, fmt, suite, None))
            tagged: dict[str, list[int]] = defaultdict(list)
            for index, tags in by_format["tags"].items():
                for tag in tags or []:
                    tagged[tag].append(index)
            for tag in sorted(tagged):
                aggregates.append(_aggregate(by_format.loc[tagged[tag]], mdl, fmt, ALL, tag))
            # The accuracy-vs-tool-count curve: every suite together, once per distractor count.
            for count, by_count in by_format[by_format["distractors"].notna()].groupby("distractors", sort=True):
                aggregates.append(_aggregate(by_count, mdl, fmt, ALL, None, int(count)))
    return Results(run_id=run_id, model=model, aggregates=aggregates)


def _plain(value: object) -> object:
    return f"{value.low:.2f}-{value.high:.2f}" if isinstance(value, Interval) else value


def summary_table(results: Results) -> pd.DataFrame:
    """One row per model x format over all suites: what `evalkit run` prints at the end."""
    rows = [
        {"model": agg.model, "format": agg.format}
        | {m.summary: _plain(getattr(agg, m.key)) for m in METRICS if m.summary}
        for agg in results.aggregates
        if agg.suite == ALL and agg.tag is None and not is_breakdown(agg)
    ]
    # NaN, not None, so pandas prints "-" for a metric with no samples behind it.
    return pd.DataFrame(rows).fillna(value=float("nan"))


def server_lost_lines(aggregates: Iterable[Aggregate], family: str | None) -> list[str]:
    """One line per model x format whose server's parser lost calls (nothing when none was lost):
    what the report and the terminal summary say. `family`: the model's own call syntax
    (rundir.own_family), the syntax every lost call was written in."""
    lines = []
    for agg in aggregates:
        if agg.suite != ALL or agg.tag is not None or is_breakdown(agg) or not agg.server_parse_lost:
            continue
        syntax = f"in {family} syntax" if family else "in its own call syntax"
        lines.append(f"{agg.model} [{agg.format}]: the server's parser lost {agg.server_parse_lost} of "
                     f"{agg.clean_calls} calls that the model wrote correctly {syntax}: check the chat template, "
                     "or use --format default")
    return lines


def cache_note(results: Results) -> str | None:
    """What the terminal says about the response cache, or None when every sample was live."""
    overall = [a for a in results.aggregates if a.suite == ALL and a.tag is None and not is_breakdown(a)]
    scored = sum(a.n for a in overall)
    cached = sum(a.from_cache or 0 for a in overall)
    if not cached:
        return None
    if cached == scored:
        return (f"from cache {cached}/{scored}: every reply came from the response cache, so this run measured no "
                "latency, TTFT or tokens/s (the verdicts stand); rerun with --no-cache to time the model")
    return (f"from cache {cached}/{scored}: latency, TTFT and tokens/s are over the {scored - cached} live samples "
            "only")


def format_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(no samples)"
    return frame.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")
