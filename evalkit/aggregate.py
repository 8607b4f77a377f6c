"""From samples to the aggregates of results.json (per model x format x suite, per tag, and per
--distractors count), by computing every metric of `metrics.METRICS` over each group of samples.

Plain Python, no pandas: `evalkit run` writes results.json at its end, and importing pandas
for it cost more CPU than a run of hundreds of samples (issue 17)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from .metrics import METRICS, Group, cell
from .schema import Aggregate, Results, Sample, SampleKey
from .scoring import abstains_by_bfcl_rule

ALL = "*"

# Sample fields too bulky for a row and read by no metric: the request, the reply, the calls.
_BULKY = {"request", "raw", "calls", "trajectory"}
COLUMNS = [name for name in Sample.model_fields if name not in _BULKY]


def clean_call(sample: Sample) -> bool:
    """The reply holds a call the model wrote cleanly: parsed (by the server or the format) with
    nothing malformed, or a clean call in its own syntax that the server's parser lost."""
    return sample.failure_kind == "server_parse_lost" or (bool(sample.calls) and not sample.malformed)


ROW = COLUMNS + ["bfcl_abstained", "clean_call"]
"""The columns of a row of a `metrics.Group`: a sample's scalar fields, whether BFCL's rule counts
it as abstaining, and whether it holds a clean call."""


def sample_rows(samples: Iterable[Sample], latest: bool = False) -> list[tuple]:
    """One row (a tuple of the `ROW` columns) per sample.

    Rows hold those fields only, never whole samples, so `samples` may be a stream of any length.
    `latest`: one row per key, the last one read (a resumed run's redone samples).
    """
    rows: dict[SampleKey, tuple] | list[tuple] = {} if latest else []
    for s in samples:
        row = tuple(getattr(s, c) for c in COLUMNS) + (abstains_by_bfcl_rule(s.malformed, s.calls), clean_call(s))
        if isinstance(rows, dict):
            rows[s.key()] = row
        else:
            rows.append(row)
    return list(rows.values()) if isinstance(rows, dict) else rows


AT = {column: i for i, column in enumerate(ROW)}  # a column's place in a row


def _aggregate(rows: list[tuple], model: str, fmt: str, suite: str, tag: str | None, distractors: int | None = None) -> Aggregate:
    group = Group(rows, AT)
    values = {m.key: m.compute(group) for m in METRICS}
    return Aggregate(model=model, format=fmt, suite=suite, tag=tag, distractors=distractors, **values)


def _by(rows: Iterable[tuple], *columns: str) -> dict[Any, list[tuple]]:
    """Rows grouped by the value of one column (or a tuple of several), in the order of the values."""
    places = [AT[c] for c in columns]
    groups: dict[Any, list[tuple]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[i] for i in places) if len(places) > 1 else row[places[0]]].append(row)
    return {key: groups[key] for key in sorted(groups)}


def is_breakdown(agg: Aggregate) -> bool:
    """A row of the --distractors breakdown, which the per-suite and per-tag views leave out."""
    return agg.distractors is not None


def is_overall(agg: Aggregate) -> bool:
    """The row of one model x format over all suites and tags (not a per-suite, per-tag or breakdown row)."""
    return agg.suite == ALL and agg.tag is None and not is_breakdown(agg)


def aggregate(samples: Iterable[Sample], run_id: str, model: str, latest: bool = False) -> Results:
    """`latest`: a later sample of the same key replaces an earlier one (see sample_rows)."""
    rows = sample_rows(samples, latest)
    aggregates: list[Aggregate] = []
    tags_at, distractors_at = AT["tags"], AT["distractors"]
    for (mdl, fmt), by_format in _by(rows, "model", "format").items():
        aggregates.append(_aggregate(by_format, mdl, fmt, ALL, None))
        for suite, by_suite in _by(by_format, "suite").items():
            aggregates.append(_aggregate(by_suite, mdl, fmt, suite, None))
        tagged: dict[str, list[tuple]] = defaultdict(list)
        for row in by_format:
            for tag in row[tags_at] or []:
                tagged[tag].append(row)
        for tag in sorted(tagged):
            aggregates.append(_aggregate(tagged[tag], mdl, fmt, ALL, tag))
        # The accuracy-vs-tool-count curve: every suite together, once per distractor count.
        counted = [row for row in by_format if row[distractors_at] is not None]
        for count, by_count in _by(counted, "distractors").items():
            aggregates.append(_aggregate(by_count, mdl, fmt, ALL, None, count))
    return Results(run_id=run_id, model=model, aggregates=aggregates)


SUMMARY_WIDTH = 100  # the terminal summary fits a 100-column terminal
_OPTIONAL = ("errors", "from_cache")  # summary columns shown only when some row has a non-zero value


def summary_table(results: Results) -> list[dict[str, Any]]:
    """One row per model x format over all suites: what `evalkit run` prints at the end, each
    value as the report shows it (percentages, seconds, "12/39" from cache). The model is said
    once above the table (`summary_text`), not in every row."""
    rows = [a for a in results.aggregates if is_overall(a)]
    shown = [m for m in METRICS if m.summary and (m.key not in _OPTIONAL or any(getattr(a, m.key) for a in rows))]
    return [{"model": agg.model, "format": agg.format} | {m.summary: cell(m, agg) for m in shown} for agg in rows]


def summary_text(results: Results) -> str:
    """The summary table under a line naming each model."""
    rows = summary_table(results)
    out = []
    for model in dict.fromkeys(row["model"] for row in rows):
        mine = [{k: v for k, v in row.items() if k != "model"} for row in rows if row["model"] == model]
        out += [f"model {model}:", format_table(mine)]
    return "\n".join(out) if out else "(no samples)"


def server_lost_lines(aggregates: Iterable[Aggregate], family: str | None) -> list[str]:
    """One line per model x format whose server's parser lost calls (nothing when none was lost):
    what the report and the terminal summary say. `family`: the model's own call syntax
    (rundir.own_family), the syntax every lost call was written in."""
    lines = []
    for agg in aggregates:
        if not is_overall(agg) or not agg.server_parse_lost:
            continue
        syntax = f"in {family} syntax" if family else "in its own call syntax"
        lines.append(f"{agg.model} [{agg.format}]: the server's parser lost {agg.server_parse_lost} of "
                     f"{agg.clean_calls} calls that the model wrote correctly {syntax}: check the chat template, "
                     "or use --format default")
    return lines


def cache_note(results: Results) -> str | None:
    """What the terminal says about the response cache, or None when every sample was live."""
    overall = [a for a in results.aggregates if is_overall(a)]
    scored = sum(a.n for a in overall)
    cached = sum(a.from_cache or 0 for a in overall)
    if not cached:
        return None
    if cached == scored:
        return (f"from cache {cached}/{scored}: every reply came from the response cache, so this run measured no "
                "latency, TTFT or tokens/s (the verdicts stand); rerun with --no-cache to time the model")
    return (f"from cache {cached}/{scored}: latency, TTFT and tokens/s are over the {scored - cached} live samples "
            "only")


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows as right-aligned text columns: numbers to 3 decimals, "-" for a metric with no
    samples behind it; the first column (a name) left-aligned."""
    if not rows:
        return "(no samples)"

    def text(value: object) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    columns = list(rows[0])
    cells = [[text(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = [columns, *cells]
    return "\n".join("  ".join(value.ljust(width) if i == 0 else value.rjust(width)
                                for i, (value, width) in enumerate(zip(line, widths))).rstrip() for line in lines)
