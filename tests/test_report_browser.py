"""report.html opens in headless Chromium: tables and figures render, no console errors, not blank.

Needs Debian's `chromium` (`apt-get install -y chromium`); skipped, with the reason, when absent.
"""

from __future__ import annotations

import base64
import json
import importlib.util
import io
import os
import re
import shutil
import subprocess
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from evalkit.report.write import write_comparison

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install -y chromium)")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fakes():
    """The fake models of test_report.py, loaded by path (works under any pytest import mode)."""
    spec = importlib.util.spec_from_file_location("_report_fakes", Path(__file__).with_name("test_report.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def chromium(*args: str, profile: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    fakes = _fakes()
    out = tmp_path_factory.mktemp("browser")
    suites = ("arithmetic", "no_tool", "agent_math")
    runs = [fakes.make_run(out / "runs", "alpha-7b", fakes.alpha, suites=suites),
            fakes.make_run(out / "runs", "beta-3b", fakes.beta, suites=suites)]
    _md, html = write_comparison(runs, out / "compare")
    return html


class Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.images: list[dict[str, str]] = []
        self.section_ids: list[str] = []
        self.rows_in_tables: list[int] = []
        # rows of each table by the section holding it: a section that gains a table above the
        # leaderboard (the deploy card did) must not shift what the assertions look at
        self.rows_by_section: dict[str, list[int]] = {}
        self._section = ""
        self._rows = 0

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "section" and attrs.get("id"):
            self.section_ids.append(attrs["id"])
            self._section = attrs["id"]
        if tag == "table":
            self._rows = 0
        if tag == "tr":
            self._rows += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self.rows_in_tables.append(self._rows)
            self.rows_by_section.setdefault(self._section, []).append(self._rows)


def console_problems(stderr: str) -> list[str]:
    """Chromium's log lines for page console messages and failed loads (the page has no script)."""
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line or "Uncaught" in line or "net::ERR" in line or "Not allowed to load" in line]


def test_dom_has_tables_and_decodable_figures(report_html, tmp_path):
    result = chromium("--dump-dom", report_html.as_uri(), profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert "<html" in dom and "Leaderboard" in dom
    parsed = Dom()
    parsed.feed(dom)
    assert {"runs", "deploy", "leaderboard", "formats", "figures", "suites", "tags", "failure-kinds", "flips",
            "failing"} <= set(parsed.section_ids)
    assert parsed.tags.get("table", 0) >= 7
    # the leaderboard: a header row and one row per model x format (2 models x 2 formats)
    # (quality, then speed: one table of every metric ran past an 800 px window)
    assert parsed.rows_by_section["leaderboard"] == [1 + 4, 1 + 4]
    assert parsed.tags.get("details", 0) > 10  # failing cases
    assert len(parsed.images) == 4
    from PIL import Image

    for img in parsed.images:
        src = img["src"]
        assert src.startswith("data:image/png;base64,"), src[:60]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data[:8] == PNG_MAGIC
        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
            assert picture.width > 300 and picture.height > 150
        assert img.get("alt")
    assert not console_problems(result.stderr), console_problems(result.stderr)


def test_screenshot_is_a_rendered_page(report_html, tmp_path):
    shot = tmp_path / "report.png"
    result = chromium("--screenshot=" + str(shot), "--window-size=1400,3000", report_html.as_uri(),
                      profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file() and shot.read_bytes()[:8] == PNG_MAGIC
    assert not console_problems(result.stderr), console_problems(result.stderr)
    from PIL import Image

    with Image.open(shot) as picture:
        image = picture.convert("RGB")
    assert image.size == (1400, 3000)
    import numpy as np

    small = np.asarray(image.resize((350, 750)), dtype=np.int16)
    pixels = small.reshape(-1, 3)
    colours = len(np.unique(pixels, axis=0))
    assert colours > 200, f"only {colours} colours: a blank or unstyled page"
    not_white = float((pixels.min(axis=1) < 235).mean())
    assert not_white > 0.05, f"only {not_white:.1%} of the page is not white"
    # the figures hold saturated colour (the bars' palette), not just black text on white
    saturated = float((pixels.max(axis=1) - pixels.min(axis=1) > 80).mean())
    assert saturated > 0.01, f"only {saturated:.2%} saturated pixels: figures missing?"


def test_report_html_is_self_contained(report_html):
    html = report_html.read_text(encoding="utf-8")
    # links into `evalkit view` on the loopback interface load nothing; nothing else may point outside
    assert not re.search(r'(src|href)="(?!data:|#|http://127\.0\.0\.1:8765/#)', html), \
        "the page must not load anything from outside"
    assert re.search(r'<a class="view" href="http://127\.0\.0\.1:8765/#case=', html)
    assert "<script" not in html


# A probe added to a copy of the page (the report itself has no script): after load, every element
# that reaches past the window or scrolls sideways is listed in an attribute --dump-dom shows.
OVERFLOW_PROBE = """<script>
addEventListener("load", () => {
  const page = document.documentElement.clientWidth, bad = [];
  for (const el of document.querySelectorAll("main *")) {
    const box = el.getBoundingClientRect();
    const scrolls = getComputedStyle(el).overflowX !== "visible" && el.scrollWidth > el.clientWidth + 1;
    if (box.right > page + 0.5 || scrolls)
      bad.push(el.tagName + " in #" + ((el.closest("section") || {}).id || "top") + ": " + el.textContent.slice(0, 50));
  }
  document.body.setAttribute("data-overflow", JSON.stringify(bad));
  document.body.setAttribute("data-page", String(page));
});
</script>"""


@pytest.mark.parametrize("width", [1400, 800])
def test_nothing_overflows_at_1400_and_800_px(report_html, tmp_path, width):
    probed = tmp_path / "probed.html"
    probed.write_text(report_html.read_text(encoding="utf-8").replace("</body>", OVERFLOW_PROBE + "</body>"),
                      encoding="utf-8")
    result = chromium("--dump-dom", f"--window-size={width},3000", probed.as_uri(), profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'data-overflow="([^"]*)" data-page="(\d+)"', result.stdout)
    assert found, result.stdout[-500:]
    assert width - 30 <= int(found.group(2)) <= width  # the window's width, less a scrollbar
    overflowing = json.loads(unescape(found.group(1)))
    assert overflowing == [], overflowing
    shot = tmp_path / f"report-{width}.png"
    result = chromium(f"--screenshot={shot}", f"--window-size={width},2400", report_html.as_uri(),
                      profile=tmp_path / "profile")
    assert result.returncode == 0 and shot.read_bytes()[:8] == PNG_MAGIC


def test_the_overflow_probe_sees_a_table_too_wide(tmp_path):
    # The probe can fail: a table wider than the window is listed.
    page = tmp_path / "wide.html"
    page.write_text('<!DOCTYPE html><html><body><main><section id="wide"><table><tr><td style="white-space: nowrap">'
                    + "x" * 400 + "</td></tr></table></section></main>" + OVERFLOW_PROBE + "</body></html>",
                    encoding="utf-8")
    result = chromium("--dump-dom", "--window-size=800,600", page.as_uri(), profile=tmp_path / "profile")
    found = re.search(r'data-overflow="([^"]*)"', result.stdout)
    assert found and "in #wide" in unescape(found.group(1))


def test_the_leaderboards_highlighted_first_row_is_the_cards_pick(report_html):
    html = report_html.read_text(encoding="utf-8")
    headline = re.search(r'<div class="pick">([^<]*)</div>', html).group(1)
    board = html[html.index('<section id="leaderboard">'):]
    first = re.search(r'<tbody><tr class="best"><td class="text">1</td><td class="text">([^<]*)</td><td class="text">([^<]*)</td>',
                      board)
    assert first, board[:800]
    assert f"{first.group(1)} [{first.group(2)}]" in unescape(headline)
    assert board.count('class="best"') == 2  # row 1 of the quality and of the speed table, nothing else
