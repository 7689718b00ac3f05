"""The HTML report is one self-contained page: inline CSS and SVG, nothing fetched."""

from __future__ import annotations

import re

import hazards as hz
import planted

import fp16lint.runtime as rt
from fp16lint.runtime.html import render_html
from fp16lint.runtime.join import join


def test_html_is_self_contained(make_finding, planted_path):
    bad = rt.check_target(planted.make_planted, planted.example_inputs, name="planted")
    broken = rt.check_target(hz.broken_factory, hz.good_inputs, name="broken")
    joined = join([make_finding("FP203", planted_path, 22)], [bad])
    page = render_html([bad, broken], joined)
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page, re.I)
    assert "url(" not in page and "@import" not in page
    assert page.count("<svg") == 2  # layers and ops
    # the fp16 limit line, a log axis and every run in the legend
    assert "fp16 max 65504" in page
    assert "1e4" in page and "1e5" in page
    for run in ("fp32", "fp16 (as prepared)", "autocast-fp16", "bf16"):
        assert run in page
    assert "confirmed" in page and "checkpoint not found" in page
    assert "Static findings against the runtime" in page
    assert render_html([bad]).count("<svg") == 2


def test_html_escapes_names():
    r = rt.check_target(hz.linear_model, hz.good_inputs, name="<b>x</b>", runs=("fp16",))
    page = render_html([r])
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
