"""The report's figures (matplotlib, Agg canvas; pyplot's global state is never touched).

Each figure comes back as PNG bytes with a file name and a caption; the writer saves the PNG
beside the report and embeds the same bytes in the HTML.
"""

from __future__ import annotations

import io
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .build import FigureFile, Report
from .model import Entry, ranked
from .toolcount import FALL_SHARE, curves

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
           "#64B5CD"]
HATCHES = ["", "//", "..", "xx", "\\\\", "oo"]
MARKERS = ["o", "s", "^", "D", "v", "P"]
# Drawn at 2x: a figure of W inches is W * 110 CSS pixels wide on the page (the HTML gives the
# <img> half its pixel width), sharp on a high-density screen.
CSS_DPI = 110
DPI = 2 * CSS_DPI
# Figures are drawn at most this wide (inches): about 900 CSS px with the legend beside the axes.
MAX_WIDTH = 8.2
LEGEND = {"loc": "outside right upper", "frameon": False}  # beside the axes, in every figure
# A bar of 0 is drawn this long (in % of the axis) so that it shows, with its value written beside.
STUB = 1.5
FORMAT_ORDER = ["native", "default", "pythonic", "json"]


class Style:
    """A colour per option (model x format), a hatch and a marker per format, the same in every
    figure: an option is found by its colour alone."""

    def __init__(self, entries: Sequence[Entry]):
        seen = list(dict.fromkeys(e.format for e in entries))
        # native solid, default hatched, the rest after them: the same look in every report
        formats = [f for f in FORMAT_ORDER if f in seen] + [f for f in seen if f not in FORMAT_ORDER]
        self.colour = {e.label: PALETTE[i % len(PALETTE)] for i, e in enumerate(entries)}
        self.hatch = {f: HATCHES[i % len(HATCHES)] for i, f in enumerate(formats)}
        self.marker = {f: MARKERS[i % len(MARKERS)] for i, f in enumerate(formats)}


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _new(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    fig.set_facecolor("white")
    return fig


def _err(agg) -> tuple[float, float]:
    if agg is None or agg.call_accuracy is None or agg.call_accuracy_ci95 is None:
        return (0.0, 0.0)
    acc = agg.call_accuracy
    return (max(0.0, acc - agg.call_accuracy_ci95.low) * 100, max(0.0, agg.call_accuracy_ci95.high - acc) * 100)


def accuracy_by_suite(entries: Sequence[Entry], style: Style) -> FigureFile | None:
    suites = sorted({s for e in entries for s in e.suites})
    if not suites:
        return None
    groups = suites + (["all suites"] if len(suites) > 1 else [])
    count = len(entries)
    width = 0.8 / max(count, 1)
    fig = _new(min(MAX_WIDTH, max(6.4, 3.0 + len(groups) * (0.35 + 0.22 * count))), 4.6)
    ax = fig.add_subplot()
    for i, entry in enumerate(entries):
        aggs = [entry.suites.get(s) for s in suites] + ([entry.overall] if len(suites) > 1 else [])
        xs = [g + (i - (count - 1) / 2) * width for g in range(len(groups))]
        # A measured 0% gets a stub so the bar shows; an option without the suite gets none.
        heights = [max((a.call_accuracy or 0) * 100, STUB) if a is not None and a.n else 0 for a in aggs]
        errs = list(zip(*[_err(a) for a in aggs]))
        ax.bar(xs, heights, width * 0.92, label=entry.label, color=style.colour[entry.label],
               hatch=style.hatch[entry.format], edgecolor="white", linewidth=0.6,
               yerr=errs, error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"})
    crowded = len(groups) > 3
    ax.set_xticks(range(len(groups)), groups, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_ylim(0, 105)
    ax.set_ylabel("call accuracy (%)")
    ax.set_title("Call accuracy by suite\n(bars: 95% Wilson interval)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    # Beside the axes (outside them): a legend inside would sit on the bars.
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, **LEGEND)
    return FigureFile("accuracy_by_suite", "fig_accuracy_by_suite.png", "Accuracy by suite",
                      "Call accuracy per suite for each model x format, with 95% intervals.", _png(fig))


def accuracy_vs_latency(entries: Sequence[Entry], style: Style) -> FigureFile | None:
    points = [e for e in entries if e.overall.call_accuracy is not None and e.overall.latency_p50_s is not None]
    if not points:
        return None
    fig = _new(MAX_WIDTH, 5.2)
    ax = fig.add_subplot()
    for entry in points:
        agg = entry.overall
        low, high = _err(agg)
        ax.errorbar([agg.latency_p50_s], [agg.call_accuracy * 100], yerr=[[low], [high]],
                    fmt=style.marker[entry.format], color=style.colour[entry.label], markersize=8,
                    capsize=3, elinewidth=1, label=entry.label)
    latencies = [e.overall.latency_p50_s for e in points]
    if min(latencies) > 0 and max(latencies) / min(latencies) > 20:
        ax.set_xscale("log")
    else:
        ax.set_xlim(0, max(latencies) * 1.35)
    ax.set_ylim(-3, 105)
    _labels(fig, ax, [(e.overall.latency_p50_s, e.overall.call_accuracy * 100, e.label) for e in points])
    ax.set_xlabel("latency p50 (s) - lower is better")
    ax.set_ylabel("call accuracy (%) - higher is better")
    ax.set_title("Accuracy against latency\n(upper left is best)", fontsize=10)
    ax.grid(alpha=0.3)
    # Outside the axes, beside them: inside, a legend can only be kept off the points by luck.
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, **LEGEND)
    left_out = [e.label for e in entries if e.overall.call_accuracy is not None and e.overall.latency_p50_s is None]
    caption = "Call accuracy (with its 95% interval) against median latency over live samples; upper left is best."
    if left_out:
        caption += f" Not shown, as every reply came from the response cache: {', '.join(left_out)}."
    return FigureFile("accuracy_vs_latency", "fig_accuracy_vs_latency.png", "Accuracy against latency", caption,
                      _png(fig))


def _labels(fig: Figure, ax, points: list[tuple[float, float, str]]) -> None:
    """Label scatter points, nudging a label down when it would sit on one already placed."""
    FigureCanvasAgg(fig)
    placed: list[tuple[float, float]] = []
    to_px = ax.transData.transform
    for x, y, text in sorted(points, key=lambda p: (-p[1], p[0])):
        px, py = to_px((x, y))
        dy = 5.0
        while any(abs(px - qx) < 8 * len(text) * 0.75 and abs(py + dy - qy) < 11 for qx, qy in placed):
            dy -= 11
        placed.append((px, py + dy))
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(7, dy * 72 / fig.dpi), fontsize=8,
                    color="#333333")


def _hbars(entries: Sequence[Entry], values: list[float], style: Style, xlabel: str, title: str, fmt: str) -> Figure:
    fig = _new(MAX_WIDTH, 1.2 + 0.42 * len(entries))
    ax = fig.add_subplot()
    ys = list(range(len(entries)))[::-1]
    top = max(values) if values and max(values) > 0 else 1.0
    # A 0 gets a stub so that it shows (its value is written beside it).
    drawn = [max(v, top * STUB / 100) for v in values]
    ax.barh(ys, drawn, color=[style.colour[e.label] for e in entries], hatch=None, edgecolor="white")
    for bar, entry in zip(ax.patches, entries):
        bar.set_hatch(style.hatch[entry.format])
    for y, value, length in zip(ys, values, drawn):
        ax.text(length, y, " " + fmt.format(value), va="center", fontsize=8)
    ax.set_yticks(ys, [e.label for e in entries], fontsize=8)
    ax.set_xlim(0, top * 1.18)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return fig


def malformed_rate(entries: Sequence[Entry], style: Style) -> FigureFile | None:
    shown = [e for e in entries if e.overall.malformed_rate is not None]
    if not shown:
        return None
    values = [e.overall.malformed_rate * 100 for e in shown]
    fig = _hbars(shown, values, style, "replies with an unparseable call (%)", "Malformed-call rate (lower is better)",
                 "{:.1f}%")
    return FigureFile("malformed_rate", "fig_malformed_rate.png", "Malformed-call rate",
                      "Share of replies that tried to call a tool in a form the format could not parse.", _png(fig))


def tokens_per_s(entries: Sequence[Entry], style: Style) -> FigureFile | None:
    shown = [e for e in entries if e.overall.tokens_per_s is not None]
    if not shown:
        return None
    values = [e.overall.tokens_per_s for e in shown]
    fig = _hbars(shown, values, style, "median tokens per second", "Decode speed (higher is better)", "{:.1f}")
    return FigureFile("tokens_per_s", "fig_tokens_per_s.png", "Tokens per second",
                      "Median decode speed per model x format (the server's own figure when it reports one).",
                      _png(fig))


def tool_count_curve(entries: Sequence[Entry], style: Style) -> FigureFile | None:
    """Strict and intent accuracy, and prompt tokens, against the number of tools offered (--distractors)."""
    found = [c for c in curves(entries) if any(p.tools_offered is not None for p in c.points)]
    if not found:
        return None
    # One above the other, not side by side: side by side they would not fit MAX_WIDTH legibly.
    fig = _new(MAX_WIDTH, 8.4)
    # One legend entry per option (its colour and marker) plus the two line styles, beside both axes.
    acc_ax, tok_ax = fig.subplots(2, 1)
    for curve in found:
        entry = curve.entry
        points = [p for p in curve.points if p.tools_offered is not None]
        xs = [p.tools_offered for p in points]
        look = {"color": style.colour[entry.label], "marker": style.marker[entry.format], "markersize": 6}
        acc_ax.plot(xs, [(p.call_accuracy or 0) * 100 for p in points], linestyle="-", label=entry.label, **look)
        acc_ax.plot(xs, [(p.intent_accuracy or 0) * 100 for p in points], linestyle="--", alpha=0.7, **look)
        base = curve.baseline
        if base is not None and base.call_accuracy:
            acc_ax.axhline(base.call_accuracy * FALL_SHARE * 100, color=look["color"], linestyle=":", linewidth=0.8)
        tokens = [(p.tools_offered, p.prompt_tokens) for p in points if p.prompt_tokens is not None]
        if tokens:
            tok_ax.plot([t for t, _ in tokens], [v for _, v in tokens], **look)
        for p in points:
            acc_ax.annotate(f"+{p.distractors}", (p.tools_offered, (p.call_accuracy or 0) * 100),
                            textcoords="offset points", xytext=(4, 4), fontsize=7, color="#555555")
    acc_ax.set_ylim(-3, 105)
    acc_ax.set_xlabel("tools offered (mean; +N: distractors)")
    acc_ax.set_ylabel("accuracy (%)")
    acc_ax.set_title(f"Accuracy (solid strict, dashed intent;\ndotted: {FALL_SHARE:.0%} of strict at +0)", fontsize=9)
    acc_ax.grid(alpha=0.3)
    tok_ax.set_xlabel("tools offered (mean)")
    tok_ax.set_ylabel("prompt tokens (mean,\nfirst request)")
    tok_ax.set_title("Prompt tokens (colour and marker as above)", fontsize=9)
    tok_ax.grid(alpha=0.3)
    # Beside the axes (outside them), as in every figure: inside, a legend sits on the lines.
    handles, labels = acc_ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="#555555", linestyle="-"), Line2D([], [], color="#555555", linestyle="--")]
    fig.legend(handles, labels + ["strict", "intent"], fontsize=7, **LEGEND)
    return FigureFile("tool_count", "fig_tool_count.png", "Accuracy and prompt tokens by tool count",
                      "Strict and intent accuracy, and mean prompt tokens, against the number of tools offered "
                      "(the cases' own tools plus --distractors N).", _png(fig))


def make_figures(report: Report) -> list[FigureFile]:
    entries = ranked(report.entries)
    style = Style(entries)
    made = [accuracy_by_suite(entries, style), accuracy_vs_latency(entries, style), malformed_rate(entries, style),
            tokens_per_s(entries, style), tool_count_curve(entries, style)]
    return [f for f in made if f is not None]
