"""THE metric table: every number of results.json, how it is computed from the samples, and
how reports, the terminal summary and leaderboard.csv show it.

`aggregate.py` computes each metric with `compute`; the terminal summary, the report's
leaderboard and metric notes, and the CSV all loop over `METRICS` in this order. A new metric
is one `Metric` entry here plus its (optional) field on `schema.Aggregate`, the file contract.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterable, Mapping, Sequence

from .schema import Interval

# ---------------------------------------------------------------- how values read


def pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def per_second(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def count(value: int | None) -> str:
    return "-" if value is None else str(value)


def amount(value: float | None) -> str:
    """A mean of counts (tools, tokens): one decimal below 100, whole above."""
    if value is None:
        return "-"
    return f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"


def interval(value: Interval | None) -> str:
    return "-" if value is None else f"{value.low * 100:.1f}-{value.high * 100:.1f}%"


def best_k(value: dict[str, float] | None) -> int | None:
    """The largest k of a pass^k table (the strictest repeat count measured)."""
    return max(map(int, value)) if value else None


def pass_k(value: dict[str, float] | None) -> str:
    k = best_k(value)
    return "-" if value is None or k is None else f"{value[str(k)] * 100:.1f}% (k={k})"


# ---------------------------------------------------------------- statistics


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


def _present(values: Iterable[Any]) -> list[Any]:
    """The values that were measured: None (and NaN) left out."""
    return [v for v in values if v is not None and v == v]


def mean(values: Iterable[Any]) -> float | None:
    """The mean of the measured values (booleans count 1 and 0); None when none was measured."""
    present = _present(values)
    return sum(present) / len(present) if present else None


def quantile(values: Iterable[Any], q: float) -> float | None:
    """The q-quantile of the measured values, interpolated linearly between the two nearest
    ranks: the default method of numpy and pandas, with numpy's arithmetic (so that results.json
    files written when pandas computed them are reproduced to the last bit)."""
    ranked = sorted(_present(values))
    if not ranked:
        return None
    position = (len(ranked) - 1) * q
    if position >= len(ranked) - 1:
        return float(ranked[-1])
    below = math.floor(position)
    low, high = float(ranked[below]), float(ranked[below + 1])
    weight = position - below
    step = high - low
    return high - step * (1 - weight) if weight >= 0.5 else low + step * weight


class Rows:
    """Samples as columns: `rows["latency_s"]` is that field's value for every sample, in order.

    A row is a tuple of a sample's metric columns (`aggregate.sample_rows`); `at` maps a column's
    name to its place in the tuple."""

    __slots__ = ("rows", "at")

    def __init__(self, rows: Sequence[tuple], at: Mapping[str, int]):
        self.rows, self.at = rows, at

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, column: str) -> list[Any]:
        i = self.at[column]
        return [row[i] for row in self.rows]

    def where(self, column: str, keep: Callable[[Any], bool]) -> "Rows":
        """The rows whose value in `column` passes `keep`."""
        i = self.at[column]
        return Rows([row for row in self.rows if keep(row[i])], self.at)


class Group:
    """The samples behind one aggregate, one row per sample (columns: the Sample fields)."""

    def __init__(self, rows: Sequence[tuple], at: Mapping[str, int]):
        self.all = Rows(rows, at)

    @cached_property
    def ok(self) -> Rows:
        """Scored samples: transport errors are counted apart and excluded from every rate."""
        return self.all.where("error", lambda error: error is None)

    @cached_property
    def no_call(self) -> Rows:
        """Scored samples of cases whose right reply is plain text."""
        return self.ok.where("expected_calls", lambda expected: expected == 0)

    @cached_property
    def correct(self) -> int:
        return sum(self.ok["call_correct"])

    @cached_property
    def from_cache(self) -> list[bool]:
        """Per scored sample: was its reply (any round of it) answered from the response cache."""
        return [bool(cached) for cached in self.ok["cached"]]

    @cached_property
    def case_counts(self) -> list[tuple[int, int]]:
        """(samples, correct) per question: a case's repeats. With --distractors a case is asked
        once per count: those are different questions, not repeats. In the order of (suite, case,
        count), no count last: pass^k sums over it."""
        per_case: dict[tuple[Any, ...], list[int]] = {}
        ok = self.ok
        for key, correct in zip(zip(ok["suite"], ok["case_id"], ok["distractors"]), ok["call_correct"]):
            counts = per_case.setdefault(key, [0, 0])
            counts[0] += 1
            counts[1] += correct
        order = sorted(per_case, key=lambda key: (key[0], key[1], key[2] is None, key[2] or 0))
        return [(per_case[key][0], per_case[key][1]) for key in order]

    @cached_property
    def live(self) -> Rows:
        """Scored samples answered by the server in this run. A cached reply keeps its verdict, but
        its timings were measured in another run, under another load: no timing metric reads it."""
        return self.ok.where("cached", lambda cached: not cached)


def _per_case(g: Group) -> dict[str, float] | None:
    return pass_hat_k(g.case_counts)


def flip_rate(per_case: Iterable[tuple[int, int]]) -> float | None:
    """The share of repeated cases whose verdict differs between repeats (some pass, some fail).
    None when no case was scored twice."""
    repeated = [(n, c) for n, c in per_case if n >= 2]
    if not repeated:
        return None
    return sum(1 for n, c in repeated if 0 < c < n) / len(repeated)


def _flips(g: Group) -> float | None:
    return flip_rate(g.case_counts)


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Metric:
    key: str  # the field of schema.Aggregate (and results.json)
    header: str  # the column header in reports
    note: str | None  # what it means, under the report's leaderboard (None: no note)
    fmt: Callable[[Any], str]  # the value as a report cell
    compute: Callable[[Group], Any]  # the value from the samples
    higher_is_better: bool | None = None  # None: neither (a count)
    summary: str | None = None  # the column header of `evalkit run`'s summary table (<= 100 columns); None: not there
    leaderboard: bool = True  # a column of the report's leaderboard
    csv: tuple[str, ...] | None = None  # leaderboard.csv columns (default: the key)
    cells: Callable[[Any], tuple[Any, ...]] = lambda value: (value,)  # the value as those CSV cells
    of_n: bool = False  # a count out of the aggregate's n: report cells read "count/n"
    over_parsed: bool = False  # a share of the calls that parsed: unreliable when most attempts did not

    @property
    def csv_columns(self) -> tuple[str, ...]:
        return self.csv if self.csv is not None else (self.key,)

    @property
    def is_rate(self) -> bool:
        """A share in [0, 1] that is better one way: reports shade it."""
        return self.fmt is pct and self.higher_is_better is not None


METRICS: tuple[Metric, ...] = (
    Metric("n", "n", None, count, lambda g: len(g.ok), summary="n"),
    Metric("errors", "errors", "server or transport failures, excluded from every rate",
           count, lambda g: sum(error is not None for error in g.all["error"]), summary="err"),
    Metric("call_accuracy", "call acc",
           "strict: exactly the expected calls, parsed by the format, arguments valid (agent cases: and the right "
           "final answer); 95% CI is the Wilson interval",
           pct, lambda g: g.correct / len(g.ok) if len(g.ok) else None, True, summary="call acc"),
    Metric("call_accuracy_ci95", "95% CI", None, interval, lambda g: wilson(g.correct, len(g.ok)),
           csv=("call_accuracy_ci95_low", "call_accuracy_ci95_high"),
           cells=lambda v: (v.low, v.high) if v is not None else (None, None)),
    Metric("intent_accuracy", "intent acc", "lenient: call accuracy after recovering malformed calls from the text",
           pct, lambda g: mean(g.ok["intent_correct"]), True, summary="intent"),
    Metric("args_validity", "args valid",
           "share of replies with calls whose arguments all validate against the tool's JSON Schema",
           pct, lambda g: mean(g.ok["args_valid"]), True, over_parsed=True),
    Metric("malformed_rate", "malformed", "share of replies with a call attempt that could not be parsed",
           pct, lambda g: mean(g.ok["malformed"]), False, summary="malformed"),
    Metric("server_parse_lost", "lost by server",
           "replies whose clean call, in the model's own call syntax, the server's parser did not return as "
           "tool_calls (native; failure kind server_parse_lost)",
           count, lambda g: sum(kind == "server_parse_lost" for kind in g.ok["failure_kind"]), leaderboard=False),
    Metric("clean_calls", "clean calls",
           "replies with a call the model wrote cleanly: returned parsed, or lost by the server's parser",
           count, lambda g: sum(g.ok["clean_call"]), leaderboard=False),
    Metric("hallucination_rate", "halluc.", "share of replies calling a tool that was not offered",
           pct, lambda g: mean(g.ok["hallucinated_tool"]), False, summary="halluc.", over_parsed=True),
    Metric("no_call_accuracy", "no-call acc",
           "accuracy on cases where the right reply is plain text, no call; a malformed attempt is wrong",
           pct, lambda g: mean(g.no_call["call_correct"]), True, summary="no-call"),
    Metric("no_call_accuracy_bfcl", "no-call, BFCL rule",
           "the same, but a reply whose call attempt did not parse counts as abstaining, as the Berkeley Function "
           "Calling Leaderboard counts it on its irrelevance categories",
           pct, lambda g: mean(c or a for c, a in zip(g.no_call["call_correct"], g.no_call["bfcl_abstained"])),
           True),
    Metric("from_cache", "from cache",
           "scored samples answered from the response cache (of n): they keep their verdicts, but latency, "
           "TTFT and tok/s are over the live samples only",
           count, lambda g: sum(g.from_cache), summary="cache", of_n=True),
    Metric("latency_p50_s", "lat p50", "median of the whole reply time (agent cases: all rounds), over live samples",
           secs, lambda g: quantile(g.live["latency_s"], 0.5), False, summary="p50"),
    Metric("latency_p95_s", "lat p95", "95th percentile of the whole reply time",
           secs, lambda g: quantile(g.live["latency_s"], 0.95), False, summary="p95"),
    Metric("ttft_p50_s", "TTFT p50", "median time to the first streamed token",
           secs, lambda g: quantile(g.live["ttft_s"], 0.5), False),
    Metric("tokens_per_s", "tok/s", "median decode speed (the server's own figure when it reports one)",
           per_second, lambda g: quantile(g.live["tokens_per_s"], 0.5), True, summary="tok/s"),
    Metric("pass_hat_k", "pass^k", "the chance that all k repeats of a case pass", pass_k, _per_case, True,
           leaderboard=False, csv=("pass_hat_k", "pass_hat_k_k"),
           cells=lambda v: (v[str(best_k(v))], best_k(v)) if v else (None, None)),
    Metric("flip_rate", "flip rate",
           "with repeats: the share of cases whose verdict differs between repeats of the same request",
           pct, _flips, False, leaderboard=False),
    Metric("tools_offered", "tools", "mean number of tools offered (the case's own plus --distractors)",
           amount, lambda g: mean(g.ok["tools_offered"]), None, leaderboard=False),
    Metric("prompt_tokens", "prompt tok", "mean prompt tokens of the (first) request, as the server counted them",
           amount, lambda g: mean(g.ok["prompt_tokens"]), False, leaderboard=False),
    Metric("tool_tokens", "tool tok",
           "mean prompt tokens the tools cost: prompt tokens minus those of the same messages sent without tools "
           "(--tool-cost)", amount, lambda g: mean(g.ok["tool_tokens"]), False, leaderboard=False),
)

BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}

# Above this malformed rate, the metrics marked `over_parsed` rest on a minority of the replies.
MOSTLY_UNPARSED = 0.5


def cell(metric: Metric, agg: Any) -> str:
    """A metric of one aggregate as a report cell: "64/64" for counts out of n."""
    value = getattr(agg, metric.key, None)
    text = metric.fmt(value)
    return f"{text}/{agg.n}" if metric.of_n and value is not None else text


def unreliable(metric: Metric, agg: Any) -> bool:
    """The metric rests on the few calls that parsed: reports grey it out."""
    malformed = getattr(agg, "malformed_rate", None)
    measured = getattr(agg, metric.key, None) is not None
    return metric.over_parsed and measured and malformed is not None and malformed > MOSTLY_UNPARSED
