"""report.html: one self-contained file (CSS inline, figures as base64 PNG, no script, no fetches)."""

from __future__ import annotations

import base64
import struct
from html import escape
from typing import Sequence

from .. import __version__, failures
from ..metrics import BY_KEY, METRICS, MOSTLY_UNPARSED, cell, pct, per_second, secs, unreliable
from ..view.links import case_url, samples_url
from .build import (
    LEADERBOARD_ORDER, MAX_FAILURES, SIGNIFICANCE_NOTE, STRICT_VS_LENIENT, FailureList, FigureFile, Report,
    leaderboard_order,
)
from .explain import (
    clip, describe_failure, expected_text, explain, failure_detail, failure_kind, prompt_of, reply_lines,
    trajectory_text,
)
from . import support
from .model import Entry, ranked
from .serving import PROBE_NOTE, identity, probe_meanings
from .toolcount import (
    CURVE_HEADERS, CURVE_NOTE, TOOL_COST_HEADERS, TOOL_COST_NOTE, curve_rows, curves, tool_cost_rows,
)

LEADERBOARD = [m for m in METRICS if m.leaderboard]

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff; --soft: #f6f8fa; --accent: #0969da;
        --good: #1a7f37; --bad: #cf222e; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, "Noto Sans CJK SC", "PingFang SC",
             "Microsoft YaHei", "WenQuanYi Zen Hei", sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 8px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 24px 0 8px; }
p.lead { color: var(--muted); max-width: 980px; }
p.alert { border-left: 4px solid #c60; padding: .4em .8em; max-width: 980px; }
nav { display: flex; flex-wrap: wrap; gap: 6px 14px; margin: 14px 0 4px; font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
.table-wrap { overflow-x: auto; margin: 8px 0 12px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: right; white-space: nowrap; }
/* Headers and names wrap, numbers do not: tables fit a 1400 px and an 800 px window. */
th { white-space: normal; vertical-align: bottom; }
td.text { white-space: normal; overflow-wrap: break-word; }
td.serving { color: var(--muted); font-size: 12px; background: var(--soft); }
p code { overflow-wrap: anywhere; }
@media (max-width: 900px) { main { padding: 16px 14px 36px; } th, td { padding: 3px 5px; } table { font-size: 12px; } }
th { background: var(--soft); font-weight: 600; }
td.text, th.text { text-align: left; }
tr.best td { font-weight: 600; background: #dafbe1; }
tr.best td:first-child { box-shadow: inset 4px 0 0 var(--good); }
ul.why { margin: 6px 0 0; padding-left: 20px; }
ul.why li { margin: 3px 0; max-width: 1100px; }
td.unreliable { color: #8c959f; background: #eef0f2; }
.card { border: 1px solid var(--line); border-left: 4px solid var(--good); border-radius: 6px; padding: 12px 16px;
        background: #f3faf5; margin: 8px 0 12px; }
.card.none { border-left-color: var(--bad); background: #fff5f5; }
.card .pick { font-size: 17px; font-weight: 600; }
ul.ruled li { margin: 2px 0; }
.badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600; }
.badge.sig { background: #eaeef2; color: var(--fg); border: 1px solid #afb8c1; }
.badge.noise { background: #fff; color: var(--muted); border: 1px dashed #afb8c1; }
.note { color: var(--muted); font-size: 13px; }
dl.metrics { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 13px;
             color: var(--muted); }
dl.metrics dt { font-weight: 600; color: var(--fg); }
dl.metrics dd { margin: 0; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 560px), 1fr)); gap: 18px; }
@media (max-width: 600px) { main { padding: 12px 10px 32px; } h1 { font-size: 21px; } figure { padding: 4px; } }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 10px; background: #fff; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { font-size: 13px; color: var(--muted); margin-top: 6px; }
details { border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; background: #fff; }
details > summary { cursor: pointer; padding: 6px 10px; list-style-position: inside; }
details[open] > summary { border-bottom: 1px solid var(--line); background: var(--soft); }
details .body { padding: 8px 12px; }
.kind { display: inline-block; min-width: 190px; font-weight: 600; color: var(--bad); }
.detail { color: var(--muted); margin-left: 12px; font-size: 13px; }
.case { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
blockquote { margin: 4px 0 8px; padding: 4px 12px; border-left: 3px solid var(--line); color: #333;
             white-space: pre-wrap; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; overflow-x: auto;
      font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, "Noto Sans Mono CJK SC", monospace;
      white-space: pre-wrap; word-break: break-word; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
td.probe-fail { color: var(--bad); font-weight: 600; }
td.probe-pass { color: var(--good); }
"""


# Fixed bands, not a linear scale: a cell's colour says "good enough", "doubtful" or "poor" the
# same way in every report. (good at or above, poor below) for rates where higher is better; for
# rates where lower is better (malformed, hallucinated) the bands apply to 1 - rate.
GOOD, POOR = 0.90, 0.70
BANDS = {"good": "#d7f2dd", "fair": "#fcefc7", "poor": "#fbd9d7"}
BAND_NOTE = (f"Cells are coloured by fixed bands: green at {pct(GOOD, 0)} or more, amber from {pct(POOR, 0)}, red "
             f"below (for malformed and hallucinated: green at {pct(1 - GOOD, 0)} or less, red above "
             f"{pct(1 - POOR, 0)}); grey: the rate rests on the few calls that parsed (malformed above "
             f"{pct(MOSTLY_UNPARSED, 0)}).")


def _heat(value: float | None) -> str:
    """The band's background for a rate where higher is better."""
    if value is None:
        return ""
    band = "good" if value >= GOOD else "fair" if value >= POOR else "poor"
    return f' style="background: {BANDS[band]}" data-band="{band}"'


GREY = ' class="unreliable" title="most call attempts did not parse: this rate rests on the few that did"'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], text_cols: int | set[int] = 1,
           row_classes: Sequence[str] | None = None) -> str:
    """Rows hold ready HTML cells' inner markup; a cell may be (markup, attrs). `text_cols`: the
    left-aligned columns (the first N, or a set of indices)."""
    left = set(range(text_cols)) if isinstance(text_cols, int) else set(text_cols)
    head = "".join(f'<th class="text">{escape(h)}</th>' if i in left else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            markup, attrs = cell if isinstance(cell, tuple) else (cell, "")
            cls = ' class="text"' if i in left and not attrs else ""
            cells.append(f"<td{cls}{attrs}>{markup}</td>")
        cls = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _section(anchor: str, title: str, inner: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{inner}</section>'


def _runs(report: Report) -> str:
    rows = []
    for run in report.runs:
        h = run.header
        suites = ", ".join(f"{s.name} ({s.cases})" for s in h.suites)
        who = identity(run)
        rows.append([escape(h.run_id), escape(h.model), escape(h.backend), escape(h.started_at),
                     escape(", ".join(h.formats)), escape(suites), str(h.settings.repeats),
                     f"{h.settings.temperature:g}", str(len(run.samples)), escape(run.from_cache)])
        # What served the run in a row of its own: as columns they pushed the table past the page.
        serving = (f"<b>server</b> {escape(who.server)} &middot; <b>model as served</b> {escape(who.model)} "
                   f"&middot; <b>machine</b> {escape(who.machine)}")
        rows.append([(serving, ' class="text serving" colspan="10"')])
    return _table(["run", "model", "backend", "started", "formats", "suites (cases)", "repeats", "temp.", "samples",
                   "from cache"], rows, text_cols={0, 1, 2, 3, 4, 5})


def _probe(report: Report) -> str:
    parts = [f'<p class="note">{escape(PROBE_NOTE)}</p>']
    for view in report.probes:
        rows = [[escape(name), (escape(status), f' class="text probe-{status}"'),
                 (escape(detail), ' class="text" style="white-space: normal; min-width: min(420px, 45vw)"')]
                for name, status, detail in view.rows]
        parts.append(f"<p>{escape(view.line)}</p>" + _table(["check", "status", "detail"], rows, text_cols=3))
    parts.append('<dl class="metrics">' + "".join(f"<dt>{escape(n)}</dt><dd>{escape(meaning)}</dd>"
                                                  for n, meaning in probe_meanings(report.probes)) + "</dl>")
    return "".join(parts)


def _recommendation(report: Report) -> str:
    rec = report.recommendation
    items = "".join(f"<li><b>{escape(title)}:</b> {escape(text)}</li>" for title, text in rec.bullets())
    if rec.refused:
        items += f"<li>{escape(rec.reason)}.</li>"
    kind = "card" if rec.best is not None else "card none"
    card = f'<div class="{kind}"><div class="pick">{escape(rec.headline)}</div><ul class="why">{items}</ul></div>'
    scope = f'<p class="note">Compared on {escape(rec.scope.text())}.</p>' if rec.scope and not rec.refused else ""
    ruled = ""
    if rec.ruled_out:
        items = "".join(f"<li>{escape(line)}</li>" for line in rec.ruled_out_lines())
        ruled = f'<p>Ruled out:</p><ul class="ruled">{items}</ul>'
    constraints = _table(["constraint", "flag"], [[escape(a), f"<code>{escape(b)}</code>"]
                                                  for a, b in rec.constraints.rows()], text_cols=2)
    hint = ('<p class="note">Constraints (the defaults unless set); change them with <code>evalkit recommend '
            "RUN_DIR... --min-accuracy 0.9 --max-latency-p95 2</code>.</p>")
    return card + scope + ruled + hint + constraints


# The leaderboard's timing columns, in a table of their own: one table of every metric ran past
# an 800 px page.
TIMING = [m for m in LEADERBOARD if m.fmt in (secs, per_second) or m.key == "from_cache"]
QUALITY = [m for m in LEADERBOARD if m not in TIMING]


def _leaderboard(report: Report) -> str:
    entries = leaderboard_order(report)
    pick = report.recommendation.pick
    classes = ["best" if pick is not None and i == 0 and e.key == pick.key else "" for i, e in enumerate(entries)]

    def table(metrics: Sequence) -> str:
        rows = []
        for i, e in enumerate(entries, 1):
            row: list = [str(i), escape(e.model), escape(e.format)]
            for m in metrics:
                value = getattr(e.overall, m.key)
                text = escape(cell(m, e.overall))
                if unreliable(m, e.overall):
                    row.append((text, GREY))
                elif m.is_rate and value is not None:
                    row.append((text, _heat(value if m.higher_is_better else 1 - value)))
                else:
                    row.append(text)
            rows.append(row)
        return _table(["#", "model", "format"] + [m.header for m in metrics], rows, text_cols=3, row_classes=classes)

    extra = ""
    if any(e.overall.pass_hat_k for e in entries):
        pass_k, flips = BY_KEY["pass_hat_k"], BY_KEY["flip_rate"]
        extra = (f'<p class="note">{escape(pass_k.header)} ({escape(pass_k.note or "")}) and {escape(flips.header)} '
                 f'({escape(flips.note or "")}): '
                 + escape(", ".join(f"{e.label} {pass_k.fmt(e.overall.pass_hat_k)}, flip rate "
                                    f"{flips.fmt(e.overall.flip_rate)}" for e in entries)) + "</p>")
    notes = "".join(f"<dt>{escape(m.header)}</dt><dd>{escape(m.note)}</dd>" for m in LEADERBOARD if m.note)
    return (f'<p class="note">{escape(LEADERBOARD_ORDER)} '
            f"Also in <code>leaderboard.csv</code>. {escape(BAND_NOTE)}</p>{table(QUALITY)}"
            f'<p class="note">Speed, over live samples (a reply from the cache has no timing of this run):</p>'
            f'{table(TIMING)}{extra}<dl class="metrics">{notes}</dl>')


def _differences(report: Report) -> tuple[str, str]:
    pairs = {(d.reference.format, d.other.format) for d in report.differences}
    title = "Native vs default" if pairs == {("native", "default")} else "Format differences"
    items = []
    for d in report.differences:
        badge = ('<span class="badge sig">larger than the noise</span>' if d.result.significant
                 else '<span class="badge noise">within the noise</span>')
        items.append(f"<li><b>{escape(d.model_label)}</b> {badge} {escape(d.sentence())}</li>")
    return title, f"<ul>{''.join(items)}</ul><p class=\"note\">{escape(SIGNIFICANCE_NOTE)}</p>"


def _tool_count(report: Report) -> list[tuple[str, str, str]]:
    """The accuracy-vs-tool-count curve (--distractors) and what the tools cost (--tool-cost)."""
    entries = ranked(report.entries)
    found = curves(entries)
    sections = []
    if found:
        items = "".join(f"<li><b>{escape(c.entry.label)}</b>: {escape(c.sentence())}</li>" for c in found)
        rows = [[escape(cell) for cell in row] for row in curve_rows(found)]
        sections.append(("tool-count", "Accuracy by tool count",
                         f'<p class="note">{escape(CURVE_NOTE)}</p><ul>{items}</ul>' + _table(CURVE_HEADERS, rows)))
    cost = tool_cost_rows(entries)
    if cost:
        rows = [[escape(cell) for cell in row] for row in cost]
        sections.append(("tool-cost", "Tool cost",
                         f'<p class="note">{escape(TOOL_COST_NOTE)}</p>' + _table(TOOL_COST_HEADERS, rows)))
    return sections


def _figures(figures: Sequence[FigureFile]) -> str:
    parts = []
    for f in figures:
        data = base64.b64encode(f.png).decode("ascii")
        # Drawn at 2x: shown at half its pixel width, and never wider than its box.
        width = struct.unpack(">I", f.png[16:20])[0] // 2
        parts.append(f'<figure><img src="data:image/png;base64,{data}" width="{width}" alt="{escape(f.title)}">'
                     f"<figcaption>{escape(f.caption)} ({escape(f.filename)})</figcaption></figure>")
    return f'<div class="figures">{"".join(parts)}</div>'


def _breakdown(entries: Sequence[Entry], keys: Sequence[str], pick: str) -> str:
    rows = []
    for key in keys:
        row: list = [escape(key)]
        for e in entries:
            agg = (e.suites if pick == "suite" else e.tags).get(key)
            if agg is None or not agg.n:
                row.append("-")
            else:
                cell = f'{pct(agg.call_accuracy)} <span class="note">({agg.n})</span>'
                row.append((cell, _heat(agg.call_accuracy)))
        rows.append(row)
    return _table([pick] + [e.label for e in entries], rows)


def _failure_kinds(report: Report) -> str:
    kinds = [k for k in failures.KEYS if any(k in f.counts for f in report.failures)]
    with_errors = any(f.errors for f in report.failures)
    if not kinds and not with_errors:
        return "<p>No sample failed.</p>"
    headers = ["option", "scored", "failing"] + [failures.label(k) for k in kinds]
    headers += ["server errors"] if with_errors else []
    rows = []
    for f in report.failures:
        row = [escape(f.entry.label), str(f.entry.overall.n), str(f.total)]
        row += [str(f.counts.get(k, 0)) if f.counts.get(k) else '<span class="note">0</span>' for k in kinds]
        rows.append(row + ([str(len(f.errors))] if with_errors else []))
    shown = kinds + (["error"] if with_errors else [])
    notes = "".join(f"<dt>{escape(failures.label(k))}</dt><dd>{escape(failures.meaning(k))}</dd>" for k in shown)
    return ('<p class="note">Failing scored samples per kind; server errors are not scored.</p>'
            + _table(headers, rows) + f'<dl class="metrics">{notes}</dl>')


def _flips(report: Report, limit: int = 50) -> str:
    parts = [f'<p class="note">Cases whose verdict changed against the baseline run '
             f"<code>{escape(report.runs[0].run_id)}</code>, per format, over the cases both runs answered.</p>"]
    for fs in report.flipsets:
        parts.append(f"<h3>{escape(fs.label_before)} &rarr; {escape(fs.label_after)}</h3>")
        parts.append(f"<p>{len(fs.fixed)} fixed, {len(fs.broken)} broken, of {fs.common_cases} cases in common.</p>")
        if fs.suites_changed:
            changed = escape(", ".join(fs.suites_changed))
            parts.append(f'<p class="note">Suite file(s) changed between the runs: {changed}.</p>')
        for name, items, header in (("Fixed (failed before, pass now)", fs.fixed, "failure before"),
                                    ("Broken (passed before, fail now)", fs.broken, "failure now")):
            if items:
                rows = [[escape(f.suite), escape(f.case_id), escape(describe_failure(f.kind, f.detail))] for f in items[:limit]]
                parts.append(f"<p>{name}:</p>" + _table(["suite", "case", header], rows, text_cols=3))
                if len(items) > limit:
                    parts.append(f"<p class=\"note\">... and {len(items) - limit} more.</p>")
    return "".join(parts)


def _errors(report: Report) -> str:
    failing = [f for f in report.failures if f.errors]
    if not failing:
        return ""
    rows = []
    for f in failing:
        names = [f"{s.suite}/{s.case_id}" + (f"#{s.repeat}" if s.repeat else "") for s in f.errors]
        more = f" ... and {len(names) - MAX_FAILURES} more" if len(names) > MAX_FAILURES else ""
        rows.append([escape(f.entry.label), str(len(f.errors)),
                     escape(clip(f.errors[0].error or "", 160)),
                     (f'<span class="case">{escape(", ".join(names[:MAX_FAILURES]) + more)}</span>',
                      ' class="text" style="white-space: normal; min-width: min(420px, 45vw)"')])
    return ('<p class="note">Samples that failed at the server after retries; excluded from accuracy.</p>'
            + _table(["option", "errors", "first error", "cases"], rows, text_cols={0, 2, 3}))


def _failing_case(number: int, sample, case, repeats: str = "", run_id: str | None = None) -> str:
    kind = failures.label(failure_kind(sample))
    repeat = repeats or (f" (repeat {sample.repeat})" if sample.repeat else "")
    why = explain(sample)
    detail = failure_detail(sample)
    detail = f' <span class="detail">{escape(clip(detail, 110).splitlines()[0])}</span>' if detail else ""
    summary = (f'<summary>{number}. <span class="kind">{escape(kind)}</span> '
               f'<span class="case">{escape(sample.suite)} / {escape(sample.case_id)}{repeat}</span>{detail}</summary>')
    body = [f"<p><b>Why:</b> {escape(why)}</p>",
            f"<p><b>Prompt:</b></p><blockquote>{escape(clip(prompt_of(sample, case), 800))}</blockquote>"]
    expect = expected_text(case)
    if expect:
        body.append(f"<p><b>Expected:</b> <code>{escape(expect)}</code></p>")
    if sample.error is None:
        if sample.trajectory:
            ended = escape(sample.ended_by or "?")
            body.append(f"<p><b>Trajectory</b> ({sample.rounds} round(s), ended by {ended}):</p>"
                        f"<pre>{escape(trajectory_text(sample))}</pre>")
        else:
            content, calls = reply_lines(sample.raw)
            lines = ([clip(content)] if content.strip() else []) + [f"[tool call] {c}" for c in calls]
            body.append(f"<p><b>Reply:</b></p><pre>{escape(chr(10).join(lines) or '(empty reply)')}</pre>")
    if run_id:  # a plain link (nothing loads): it works while `evalkit view` serves this run
        body.append(f'<p><a class="view" href="{escape(case_url(run_id, sample.suite, sample.case_id))}">'
                    "This case across every option in <code>evalkit view</code></a></p>")
    return f'<details>{summary}<div class="body">{"".join(body)}</div></details>'


def _failing(report: Report) -> str:
    parts = [f'<p class="note">At most {report.max_failures} failing cases per model x format; '
             "click one to see the prompt, the raw reply (or an agent case's whole trajectory) and why it failed.</p>"]
    for fl in report.failures:
        parts.append(_failing_for(fl))
    return "".join(parts)


def _failing_for(fl: FailureList) -> str:
    entry = fl.entry
    errors = f", plus {len(fl.errors)} server errors" if fl.errors else ""
    out = [f"<h3>{escape(entry.label)}: {fl.total} failing of {entry.overall.n} scored{errors}</h3>"]
    if not fl.total:
        return out[0] + "<p>Every scored sample passed.</p>"
    every = samples_url(run=entry.run.run_id, model=entry.model, format=entry.format, verdict="fail")
    if fl.rest:
        out.append(f'<p class="note">Showing the first {len(fl.failing)} failing cases; {fl.rest} more are in '
                   f"<code>{escape(str(entry.run.path / 'samples.jsonl'))}</code>, and "
                   f'<a class="view" href="{escape(every)}">all of them in <code>evalkit view</code></a>.</p>')
    cases = entry.run.cases
    out += [_failing_case(i, s, cases.get((s.suite, s.case_id)), fl.repeat_note(s), entry.run.run_id)
            for i, s in enumerate(fl.failing, 1)]
    return "".join(out)


def _support(report: Report) -> str:
    """Native, default and constrained side by side (report/support.py holds the rates and words)."""
    said = "".join(f"<li>{escape(line)}</li>" for line in support.support_sentences(report.entries))
    rows = [[escape(cell) for cell in row] for row in support.support_rows(report.entries)]
    return (f'<p class="note">{escape(support.SUPPORT_NOTE)}</p>' + (f"<ul>{said}</ul>" if said else "")
            + _table(support.SUPPORT_HEADERS, rows, text_cols=2))


def render_html(report: Report, figures: Sequence[FigureFile]) -> str:
    entries = ranked(report.entries)
    sections: list[tuple[str, str, str]] = [
        ("runs", "Runs", _runs(report)),
        *([("probe", "Server probe", _probe(report))] if report.probes else []),
        ("deploy", "Which to deploy", _recommendation(report)),
        ("leaderboard", "Leaderboard", _leaderboard(report)),
    ]
    if report.differences:
        title, inner = _differences(report)
        sections.append(("formats", title, inner))
    if support.shown(report.entries):
        sections.append(("support", "Kinds of tool support", _support(report)))
    sections += _tool_count(report)
    if figures:
        sections.append(("figures", "Figures", _figures(figures)))
    sections.append(("suites", "By suite", '<p class="note">Call accuracy (scored samples) per suite.</p>'
                     + _breakdown(entries, report.suites, "suite")))
    if report.tags:
        sections.append(("tags", "By tag", '<p class="note">Call accuracy (scored samples) per case tag.</p>'
                         + _breakdown(entries, report.tags, "tag")))
    sections.append(("failure-kinds", "Failure kinds", _failure_kinds(report)))
    if report.flipsets:
        sections.append(("flips", "Flipped cases", _flips(report)))
    errors = _errors(report)
    if errors:
        sections.append(("errors", "Server errors", errors))
    sections.append(("failing", "Failing cases", _failing(report)))
    nav = "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t, _ in sections)
    body = "".join(_section(a, t, inner) for a, t, inner in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{escape(report.title)}</title><style>{CSS}</style></head>"
        f'<body><main><h1>{escape(report.title)}</h1><p class="lead">{escape(STRICT_VS_LENIENT)}</p>'
        + "".join(f'<p class="alert"><strong>Note:</strong> {escape(note)}</p>' for note in report.notes) +
        f"<nav>{nav}</nav>{body}"
        f"<footer>Generated by evalkit {escape(__version__)} at {escape(report.generated_at)}.</footer>"
        "</main></body></html>\n"
    )
