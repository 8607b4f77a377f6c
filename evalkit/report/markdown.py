"""report.md: plain Markdown that reads well in a terminal (aligned pipe tables, no HTML)."""

from __future__ import annotations

import re
import unicodedata
from typing import Sequence

from .. import __version__, failures
from ..metrics import BY_KEY, METRICS, MOSTLY_UNPARSED, cell, pct, unreliable
from .build import (
    LEADERBOARD_ORDER, MAX_FAILURES, SIGNIFICANCE_NOTE, STRICT_VS_LENIENT, FailureList, FigureFile, Report,
    leaderboard_order,
)
from .explain import clip, describe_failure, expected_text, explain, failure_kind, prompt_of, reply_lines, trajectory_text
from .model import Entry, ranked
from . import support
from .serving import PROBE_NOTE, identity, probe_meanings
from .toolcount import (
    CURVE_HEADERS, CURVE_NOTE, TOOL_COST_HEADERS, TOOL_COST_NOTE, curve_rows, curves, tool_cost_rows,
)

LEADERBOARD = [m for m in METRICS if m.leaderboard]
FAILURES_FILE = "failures.md"


def display_width(text: str) -> int:
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _cell(value: str) -> str:
    return str(value).replace("\n", " ").replace("|", "\\|")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None) -> str:
    """An aligned pipe table: a Markdown table on GitHub and a readable grid in a terminal."""
    cells = [[_cell(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(3, *(display_width(r[i]) for r in cells)) for i in range(len(headers))]
    right = list(right) if right is not None else [False] * len(headers)

    def line(row: Sequence[str]) -> str:
        out = []
        for i, value in enumerate(row):
            pad = " " * (widths[i] - display_width(value))
            out.append(pad + value if right[i] else value + pad)
        return "| " + " | ".join(out) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right)) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def fence(text: str, info: str = "text") -> str:
    """A fenced block longer than any backtick run inside, so model output cannot break out of it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{text}\n{ticks}"


def quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.splitlines() or [""])


# ---------------------------------------------------------------- sections


def runs_section(report: Report) -> list[str]:
    rows = []
    for run in report.runs:
        h = run.header
        suites = ", ".join(f"{s.name} ({s.cases})" for s in h.suites)
        who = identity(run)
        rows.append([h.run_id, h.model, h.backend, h.started_at, ", ".join(h.formats), suites,
                     str(h.settings.repeats), f"{h.settings.temperature:g}", str(len(run.samples)), run.from_cache,
                     who.server, who.model, who.machine])
    return ["## Runs", "",
            table(["run", "model", "backend", "started", "formats", "suites (cases)", "repeats", "temp.", "samples",
                   "from cache", "server", "model as served", "machine"],
                  rows, [False] * 6 + [True] * 4 + [False] * 3), ""]


def probe_section(report: Report) -> list[str]:
    if not report.probes:
        return []
    lines = ["## Server probe", "", PROBE_NOTE, ""]
    for view in report.probes:
        lines += [view.line, "", table(["check", "status", "detail"], view.rows), ""]
    lines += [f"- {name}: {meaning}" for name, meaning in probe_meanings(report.probes)]
    lines.append("")
    return lines


def recommendation_section(report: Report) -> list[str]:
    rec = report.recommendation
    lines = ["## Which to deploy", "", f"**{rec.headline}**", ""]
    lines += [f"- **{title}:** {text}" for title, text in rec.bullets()] + [""]
    if rec.refused:
        lines += [f"Compared on nothing: {rec.reason}.", ""]
    if rec.scope is not None and not rec.refused:
        lines += [f"Compared on {rec.scope.text()}.", ""]
    if rec.ruled_out:
        lines.append("Ruled out:")
        lines.append("")
        lines += [f"- {line}" for line in rec.ruled_out_lines()]
        lines.append("")
    lines += ["Constraints (the defaults unless set; change them with `evalkit recommend RUN_DIR... --min-accuracy 0.9 "
              "--max-latency-p95 2`):", "", table(["constraint", "flag"], rec.constraints.rows()), ""]
    return lines


def leaderboard_section(report: Report) -> list[str]:
    entries = leaderboard_order(report)
    rows = [[str(i), e.model, e.format] + [cell(m, e.overall) + (" †" if unreliable(m, e.overall) else "")
                                           for m in LEADERBOARD]
            for i, e in enumerate(entries, 1)]
    right = [True, False, False] + [True] * len(LEADERBOARD)
    lines = ["## Leaderboard", "", f"{LEADERBOARD_ORDER} Also in `leaderboard.csv`.", "",
             table(["#", "model", "format"] + [m.header for m in LEADERBOARD], rows, right), ""]
    if any(unreliable(m, e.overall) for e in entries for m in LEADERBOARD):
        lines += [f"† Most call attempts did not parse (malformed above {pct(MOSTLY_UNPARSED, 0)}): this rate rests on "
                  "the few calls that did.", ""]
    if any(e.overall.pass_hat_k for e in entries):
        pass_k, flips = BY_KEY["pass_hat_k"], BY_KEY["flip_rate"]
        lines += [f"{pass_k.header} ({pass_k.note}) and {flips.header} ({flips.note}): "
                  + ", ".join(f"{e.label} {pass_k.fmt(e.overall.pass_hat_k)}, flip rate {flips.fmt(e.overall.flip_rate)}"
                              for e in entries), ""]
    lines += [f"- {m.header}: {m.note}" for m in LEADERBOARD if m.note]
    lines.append("")
    return lines


def differences_section(report: Report) -> list[str]:
    if not report.differences:
        return []
    pairs = {(d.reference.format, d.other.format) for d in report.differences}
    title = "Native vs default" if pairs == {("native", "default")} else "Format differences"
    lines = [f"## {title}", ""]
    for d in report.differences:
        lines.append(f"- {d.model_label}: {d.sentence()}")
    lines += ["", SIGNIFICANCE_NOTE, ""]
    return lines


def support_section(report: Report) -> list[str]:
    """Native, default and constrained side by side (only when a run used a constrained format)."""
    if not support.shown(report.entries):
        return []
    lines = ["## Kinds of tool support", "", support.SUPPORT_NOTE, ""]
    lines += [f"- {line}" for line in support.support_sentences(report.entries)] + [""]
    lines += [table(support.SUPPORT_HEADERS, support.support_rows(report.entries), [False, False] + [True] * 5), ""]
    return lines


def tool_count_sections(report: Report) -> list[str]:
    """The accuracy-vs-tool-count curve (--distractors) and what the tools cost (--tool-cost)."""
    entries = ranked(report.entries)
    found = curves(entries)
    lines: list[str] = []
    if found:
        lines += ["## Accuracy by tool count", "", CURVE_NOTE, ""]
        lines += [f"- {c.entry.label}: {c.sentence()}" for c in found] + [""]
        lines += [table(CURVE_HEADERS, curve_rows(found), [False] + [True] * (len(CURVE_HEADERS) - 1)), ""]
    cost = tool_cost_rows(entries)
    if cost:
        lines += ["## Tool cost", "", TOOL_COST_NOTE, "",
                  table(TOOL_COST_HEADERS, cost, [False] + [True] * (len(TOOL_COST_HEADERS) - 1)), ""]
    return lines


def figures_section(figures: Sequence[FigureFile]) -> list[str]:
    if not figures:
        return []
    lines = ["## Figures", ""]
    for f in figures:
        lines += [f"![{f.title}]({f.filename})", "", f"{f.caption} (`{f.filename}`)", ""]
    return lines


def _breakdown(entries: Sequence[Entry], keys: Sequence[str], pick: str) -> str:
    rows = []
    for key in keys:
        row = [key]
        for e in entries:
            agg = (e.suites if pick == "suite" else e.tags).get(key)
            row.append("-" if agg is None or not agg.n else f"{pct(agg.call_accuracy)} ({agg.n})")
        rows.append(row)
    return table([pick] + [e.label for e in entries], rows, [False] + [True] * len(entries))


def breakdown_sections(report: Report) -> list[str]:
    entries = ranked(report.entries)
    lines = ["## By suite", "", "Call accuracy (scored samples) per suite.", "",
             _breakdown(entries, report.suites, "suite"), ""]
    if report.tags:
        lines += ["## By tag", "", "Call accuracy (scored samples) per case tag.", "",
                  _breakdown(entries, report.tags, "tag"), ""]
    return lines


def failure_kinds_section(report: Report) -> list[str]:
    kinds = [k for k in failures.KEYS if any(k in f.counts for f in report.failures)]
    with_errors = any(f.errors for f in report.failures)
    if not kinds and not with_errors:
        return ["## Failure kinds", "", "No sample failed.", ""]
    headers = ["option", "scored", "failing"] + [failures.label(k) for k in kinds]
    headers += ["server errors"] if with_errors else []
    rows = []
    for f in report.failures:
        row = [f.entry.label, str(f.entry.overall.n), str(f.total)] + [str(f.counts.get(k, 0)) for k in kinds]
        rows.append(row + ([str(len(f.errors))] if with_errors else []))
    lines = ["## Failure kinds", "", "Failing scored samples per kind; server errors are not scored.", "",
             table(headers, rows, [False] + [True] * (len(headers) - 1)), ""]
    lines += [f"- {failures.label(k)}: {failures.meaning(k)}" for k in kinds + (["error"] if with_errors else [])]
    lines.append("")
    return lines


def flips_section(report: Report, limit: int = 50) -> list[str]:
    if not report.flipsets:
        return []
    lines = ["## Flipped cases", "",
             f"Cases whose verdict changed against the baseline run ({report.runs[0].run_id}), per format, "
             "over the cases both runs answered (with repeats, a case passes when most repeats pass).", ""]
    for fs in report.flipsets:
        lines.append(f"### {fs.label_before} -> {fs.label_after}")
        lines.append("")
        lines.append(f"{len(fs.fixed)} fixed, {len(fs.broken)} broken, of {fs.common_cases} cases in common.")
        if fs.suites_changed:
            lines.append(f"Note: suite file(s) changed between the runs: {', '.join(fs.suites_changed)}.")
        lines.append("")
        groups = (("Fixed (failed before, pass now)", fs.fixed), ("Broken (passed before, fail now)", fs.broken))
        for name, items in groups:
            if not items:
                continue
            rows = [[f.suite, f.case_id, describe_failure(f.kind, f.detail)] for f in items[:limit]]
            header = "failure before" if items is fs.fixed else "failure now"
            lines += [f"{name}:", "", table(["suite", "case", header], rows), ""]
            if len(items) > limit:
                lines += [f"... and {len(items) - limit} more.", ""]
    return lines


def errors_section(report: Report, limit: int = MAX_FAILURES) -> list[str]:
    failing = [f for f in report.failures if f.errors]
    if not failing:
        return []
    lines = ["## Server errors", "",
             "Samples that failed at the server after retries; they are excluded from accuracy.", "",
             table(["option", "errors", "first error"],
                       [[f.entry.label, str(len(f.errors)), clip(f.errors[0].error or "", 160)] for f in failing],
                       [False, True, False]), ""]
    for f in failing:
        names = [f"{s.suite}/{s.case_id}" + (f"#{s.repeat}" if s.repeat else "") for s in f.errors]
        more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
        lines += [f"- {f.entry.label}: {', '.join(names[:limit])}{more}"]
    lines.append("")
    return lines


def failing_case(number: int, sample, case, repeats: str = "") -> list[str]:
    kind = failures.label(failure_kind(sample))
    repeat = repeats or (f" (repeat {sample.repeat})" if sample.repeat else "")
    lines = [f"#### {number}. {sample.suite} / {sample.case_id}{repeat}: {kind}", "", f"Why: {explain(sample)}", "",
             "Prompt:", "", quote(clip(prompt_of(sample, case), 800)), ""]
    expect = expected_text(case)
    if expect:
        lines += [f"Expected: {expect}", ""]
    if sample.error is not None:
        return lines
    if sample.trajectory:
        lines += [f"Trajectory ({sample.rounds} round(s), ended by {sample.ended_by or '?'}):", "",
                  fence(trajectory_text(sample)), ""]
    else:
        content, calls = reply_lines(sample.raw)
        body = []
        if content.strip():
            body.append(clip(content))
        body += [f"[tool call] {c}" for c in calls]
        lines += ["Reply:", "", fence("\n".join(body) if body else "(empty reply)"), ""]
    return lines


def failing_pointer(report: Report) -> list[str]:
    """report.md names the failing cases' count; the cases themselves are in failures.md."""
    total = sum(f.cases for f in report.failures)
    per = ", ".join(f"{f.entry.label} {f.cases}" for f in report.failures if f.cases)
    if not total:
        return ["## Failing cases", "", "Every scored sample passed.", ""]
    return ["## Failing cases", "",
            f"{total} failing cases ({per}) are listed with the prompt, the raw reply and why each failed in "
            f"[{FAILURES_FILE}]({FAILURES_FILE}).", ""]


def failing_section(report: Report) -> list[str]:
    lines = ["## Failing cases", "",
             f"Each option's failing cases (at most {report.max_failures} per model x format; with repeats, a "
             "case once, with how many repeats failed), with the prompt, the raw reply (or an agent case's whole "
             "trajectory) and why it failed.", ""]
    for fl in report.failures:
        lines += _failing_for(fl)
    return lines


def _failing_for(fl: FailureList) -> list[str]:
    entry = fl.entry
    errors = f", plus {len(fl.errors)} server errors (see Server errors)" if fl.errors else ""
    lines = [f"### {entry.label}: {fl.total} failing of {entry.overall.n} scored{errors}", ""]
    if not fl.total:
        return lines + ["Every scored sample passed.", ""]
    if fl.rest:
        lines += [f"Showing the first {len(fl.failing)} failing cases; {fl.rest} more are in samples.jsonl "
                  f"({entry.run.path / 'samples.jsonl'}).", ""]
    cases = entry.run.cases
    for number, sample in enumerate(fl.failing, 1):
        lines += failing_case(number, sample, cases.get((sample.suite, sample.case_id)), fl.repeat_note(sample))
    return lines


def render_markdown(report: Report, figures: Sequence[FigureFile]) -> str:
    lines = [f"# {report.title}", "", STRICT_VS_LENIENT, ""]
    lines += [f"**Note:** {note}" for note in report.notes] + ([""] if report.notes else [])
    lines += runs_section(report)
    lines += probe_section(report)
    lines += recommendation_section(report)
    lines += leaderboard_section(report)
    lines += differences_section(report)
    lines += support_section(report)
    lines += tool_count_sections(report)
    lines += figures_section(figures)
    lines += breakdown_sections(report)
    lines += failure_kinds_section(report)
    lines += flips_section(report)
    lines += errors_section(report)
    lines += failing_pointer(report)
    return _finish(lines, report)


def render_failures(report: Report) -> str:
    """failures.md: every option's failing cases, with prompt, reply and reason (report.md links it)."""
    lines = [f"# Failing cases: {report.title.removeprefix('evalkit ')}", "",
             "Back to the [report](report.md).", ""]
    lines += failing_section(report)
    return _finish(lines, report)


def _finish(lines: list[str], report: Report) -> str:
    lines += ["---", "", f"Generated by evalkit {__version__} at {report.generated_at}."]
    text = no_html("\n".join(lines))
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


_FENCE = re.compile(r"^(`{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # what can open HTML; `p < 0.001` stays as it is


def no_html(text: str) -> str:
    """Markdown in which no `<` outside code starts HTML: a tool name or a model id the model or
    the server chose (`<img src=x onerror=...>`) is shown as text, not rendered by a Markdown
    viewer. Fenced blocks and code spans show `<` as it is already."""
    out, fence = [], None
    for line in text.split("\n"):
        opening = _FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is None and "<" in line:
            pieces, pos = [], 0
            for span in _CODE_SPAN.finditer(line):
                pieces += [_TAG_START.sub("&lt;", line[pos:span.start()]), span.group()]
                pos = span.end()
            line = "".join(pieces) + _TAG_START.sub("&lt;", line[pos:])
        out.append(line)
    return "\n".join(out)
