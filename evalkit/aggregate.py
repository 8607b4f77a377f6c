"""From samples to the aggregates of results.json (per model x format x suite, and per tag)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable

import pandas as pd

from .schema import Aggregate, Interval, Results, Sample
from .scoring import abstains_by_bfcl_rule

ALL = "*"


def wilson(successes: int, n: int, z: float = 1.959964) -> Interval | None:
    """Wilson score interval: sane at 0/n and n/n, unlike the normal approximation."""
    if n == 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(low=max(0.0, centre - half), high=min(1.0, centre + half))


def pass_hat_k(per_case: Iterable[tuple[int, int]]) -> dict[str, float] | None:
    """tau-bench's pass^k: the chance that k repeats of a case all succeed, averaged over cases."""
    cases = [(n, c) for n, c in per_case if n > 0]
    if not cases:
        return None
    k_max = min(n for n, _ in cases)
    if k_max < 2:
        return None
    return {
        str(k): sum(math.comb(c, k) / math.comb(n, k) for n, c in cases) / len(cases) for k in range(1, k_max + 1)
    }


def _mean(series: pd.Series) -> float | None:
    series = series.dropna()
    return float(series.astype(float).mean()) if len(series) else None


def _quantile(series: pd.Series, q: float) -> float | None:
    series = series.dropna()
    return float(series.quantile(q)) if len(series) else None


def _aggregate(frame: pd.DataFrame, model: str, fmt: str, suite: str, tag: str | None) -> Aggregate:
    errors = int(frame["error"].notna().sum())
    ok = frame[frame["error"].isna()]
    n = len(ok)
    correct = int(ok["call_correct"].sum())
    no_call = ok[ok["expected_calls"] == 0]
    per_case = ok.groupby(["suite", "case_id"])["call_correct"].agg(["count", "sum"])
    return Aggregate(
        model=model,
        format=fmt,
        suite=suite,
        tag=tag,
        n=n,
        errors=errors,
        call_accuracy=correct / n if n else None,
        call_accuracy_ci95=wilson(correct, n),
        intent_accuracy=_mean(ok["intent_correct"]),
        pass_hat_k=pass_hat_k(zip(per_case["count"], per_case["sum"])),
        args_validity=_mean(ok["args_valid"]),
        malformed_rate=_mean(ok["malformed"]),
        hallucination_rate=_mean(ok["hallucinated_tool"]),
        no_call_accuracy=_mean(no_call["call_correct"]) if len(no_call) else None,
        no_call_accuracy_bfcl=_mean(no_call["call_correct"] | no_call["bfcl_abstained"]) if len(no_call) else None,
        latency_p50_s=_quantile(ok["latency_s"], 0.5),
        latency_p95_s=_quantile(ok["latency_s"], 0.95),
        ttft_p50_s=_quantile(ok["ttft_s"], 0.5),
        tokens_per_s=_quantile(ok["tokens_per_s"], 0.5),
    )


COLUMNS = [
    "suite", "case_id", "format", "repeat", "model", "tags", "expected_calls", "call_correct", "intent_correct",
    "args_valid", "malformed", "hallucinated_tool", "error", "latency_s", "ttft_s", "tokens_per_s", "failure",
    "mode", "rounds", "ended_by", "final_answer_ok",
]


def samples_frame(samples: Iterable[Sample]) -> pd.DataFrame:
    rows = [
        {c: getattr(s, c, None) for c in COLUMNS} | {"bfcl_abstained": abstains_by_bfcl_rule(s.malformed, s.calls)}
        for s in samples
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS + ["bfcl_abstained"])
    # Object dtype keeps None as None (not NaN) for the boolean verdicts until we take means.
    return frame.astype({"args_valid": "object", "error": "object"})


def aggregate(samples: Iterable[Sample], run_id: str, model: str) -> Results:
    frame = samples_frame(samples)
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
    return Results(run_id=run_id, model=model, aggregates=aggregates)


def summary_table(results: Results) -> pd.DataFrame:
    """One row per model x format over all suites: what `evalkit run` prints at the end."""
    rows = []
    for agg in results.aggregates:
        if agg.suite != ALL or agg.tag is not None:
            continue
        rows.append(
            {
                "model": agg.model,
                "format": agg.format,
                "n": agg.n,
                "call_acc": agg.call_accuracy,
                "ci95": f"{agg.call_accuracy_ci95.low:.2f}-{agg.call_accuracy_ci95.high:.2f}" if agg.call_accuracy_ci95 else "",
                "intent_acc": agg.intent_accuracy,
                "args_valid": agg.args_validity,
                "malformed": agg.malformed_rate,
                "no_call_acc": agg.no_call_accuracy,
                "lat_p50_s": agg.latency_p50_s,
                "tok/s": agg.tokens_per_s,
                "errors": agg.errors,
            }
        )
    # NaN, not None, so pandas prints "-" for a metric with no samples behind it.
    return pd.DataFrame(rows).fillna(value=float("nan"))


def format_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(no samples)"
    return frame.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")
