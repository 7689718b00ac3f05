"""The HTML report in a real headless Chromium: the verdict banner first, no page-wide
horizontal scroll (charts and tables scroll inside themselves), and a screenshot whose top
shows the banner. Skipped only where Chromium is not installed (`apt-get install chromium`)."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import hazards as hz
import planted
import pytest

import fp16lint.runtime as rt
from fp16lint.runtime.html import render_html
from fp16lint.runtime.join import join

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")

WIDTH = 1024
MEASURE = """<script>
window.addEventListener('load', () => {
  const root = document.documentElement;
  const charts = [...document.querySelectorAll('.chart')].map(c => ({
    client: c.clientWidth, scroll: c.scrollWidth, right: c.getBoundingClientRect().right,
    overflow: getComputedStyle(c).overflowX}));
  const tables = [...document.querySelectorAll('table')].map(t => {
    const box = t.closest('.scroll');
    return {wide: t.scrollWidth, inScroll: !!box,
            overflow: box ? getComputedStyle(box).overflowX : null,
            right: (box || t).getBoundingClientRect().right};
  });
  const out = {page: root.scrollWidth, view: window.innerWidth,
               first: document.body.firstElementChild.className, charts, tables};
  const pre = document.createElement('pre'); pre.id = 'measure';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _png_rows(path: Path) -> tuple[int, int, int, list[bytes]]:
    """Width, height, bytes per pixel and the unfiltered rows of an 8-bit RGB(A) PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    bad = rt.check_target(planted.make_planted, planted.example_inputs, name="planted")
    twin = rt.check_target(planted.make_upcast, planted.example_inputs, name="twin")
    broken = rt.check_target(hz.broken_factory, hz.good_inputs, name="broken")
    line = next(
        i
        for i, t in enumerate(Path(planted.__file__).read_text().splitlines(), 1)
        if "# PLANTED" in t
    )
    from fp16lint.findings import Finding, Position, Severity, Span

    finding = Finding(
        "FP203",
        "x",
        Severity.WARNING,
        "m",
        planted.__file__,
        Span(Position(line, 1), Position(line, 9)),
    )
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render_html([bad, twin, broken], join([finding], [bad, twin])), "utf-8")
    return path


def test_layout_in_chromium(page, tmp_path):
    probe = tmp_path / "measure.html"
    probe.write_text(page.read_text("utf-8").replace("</body>", MEASURE + "</body>"), "utf-8")
    run = _chromium(
        f"--window-size={WIDTH},900", "--virtual-time-budget=3000", "--dump-dom", probe.as_uri()
    )
    m = re.search(r'<pre id="measure">(.*?)</pre>', run.stdout, re.S)
    assert m, run.stderr[-2000:]
    got = json.loads(m.group(1).replace("&quot;", '"'))
    assert got["first"] == "banner"  # the verdict banner comes first
    assert got["page"] <= got["view"]  # nothing makes the page itself scroll sideways
    assert got["charts"]
    for chart in got["charts"]:
        assert chart["overflow"] == "auto" and chart["right"] <= got["view"]
    wide = [t for t in got["tables"] if t["wide"] > got["view"] - 80]
    assert wide  # the places table is wider than the page...
    for t in wide:  # ...and every column is reachable by scrolling inside its box
        assert t["inScroll"] and t["overflow"] == "auto" and t["right"] <= got["view"]


def test_screenshot_shows_the_banner(page, tmp_path):
    shot = tmp_path / "shot.png"
    run = _chromium(f"--window-size={WIDTH},700", f"--screenshot={shot}", page.as_uri())
    assert shot.is_file(), run.stderr[-2000:]
    width, height, bpp, rows = _png_rows(shot)
    assert (width, height) == (WIDTH, 700)
    # the UNSAFE badge's red (#fee2e2) and the safe/at-risk ones are in the top 160 pixels
    top = b"".join(rows[:160])
    pixels = {tuple(top[i : i + 3]) for i in range(0, len(top), bpp)}
    assert (0xFE, 0xE2, 0xE2) in pixels  # unsafe (planted)
    assert (0xFE, 0xF3, 0xC7) in pixels  # not cleared: random weights (twin)
