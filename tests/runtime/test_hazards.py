"""Clamped overflow, NaN from a manual norm, a raising masked_fill, weights that overflow on the
cast, and gradients that need loss scaling."""

from __future__ import annotations

import hazards as hz
import pytest
from runtime_support import marker_line

import fp16lint.runtime as rt
from fp16lint.runtime.text import format_report


def test_clamped_overflow_is_confirmed():
    r = rt.check_target(hz.make_clamped, hz.good_inputs, runs=("fp16",))
    block = next(p for p in r.places() if p.kind == "module" and p.module == "block")
    fig = block.runs["fp16"]
    assert fig.clamped > 0
    assert fig.verdict == "confirmed"
    assert any("clamped" in x for x in fig.reasons)
    assert not r.ok


def test_nan_from_manual_norm_is_confirmed_at_its_line(hazards_path):
    line = marker_line(hazards_path, "# NAN-LINE")
    r = rt.check_target(hz.NanModel, hz.nan_inputs, runs=("fp16",))
    div = next(p for p in r.places() if p.kind == "op" and p.line == line and p.op == "div")
    assert div.runs["fp16"].nan_created > 0
    assert div.runs["fp16"].verdict == "confirmed"
    # the eps underflow that causes it is flagged too
    add = next(p for p in r.places() if p.kind == "op" and p.line == line and p.op == "add")
    assert add.runs["fp16"].local_underflow > 0
    assert r.runs["fp32"].output.n_nan == 0


def test_masked_fill_raising_in_fp16(hazards_path):
    line = marker_line(hazards_path, "# RAISE-LINE")
    r = rt.check_target(hz.MaskFillModel, hz.mask_fill_inputs, runs=("fp16",))
    assert r.error is None  # fp32 ran: it is the fp16 run that failed
    run = r.runs["fp16"]
    assert run.error and "c10::Half" in run.error
    assert run.error_site[1] == line and run.error_site[2] == "masked_fill"
    assert r.run_verdict("fp16")[0] == "confirmed"
    assert not r.ok


def test_weights_overflowing_on_cast():
    r = rt.check_target(hz.make_overflowing_weights, hz.good_inputs, runs=("fp16",))
    assert r.runs["fp16"].nonfinite_params == {"weight": 1}
    verdict, reasons = r.run_verdict("fp16")
    assert verdict == "confirmed"
    assert any("the cast made parameters inf/NaN" in x for x in reasons)


def test_backward_gradient_underflow_needs_gradscaler():
    r = rt.check_target(
        hz.TinyGradModel, hz.good_inputs, backward=True, runs=("fp16", "autocast-fp16")
    )
    g32 = r.runs["fp32"].grads
    g16 = r.runs["fp16"].grads
    assert g32 is not None and g32.gradscaler_needed  # predicted from fp32 magnitudes
    assert g16.underflow == pytest.approx(1.0)
    assert g16.gradscaler_needed
    assert "master weights" in g16.note
    assert r.runs["autocast-fp16"].grads.underflow > 0.5
    text = format_report(r)
    assert "GradScaler needed" in text


def test_backward_healthy_model_no_gradscaler():
    r = rt.check_target(hz.linear_model, hz.good_inputs, backward=True, runs=("fp16",))
    g16 = r.runs["fp16"].grads
    assert g16.n_params == 4
    assert g16.underflow == 0.0
    assert not g16.gradscaler_needed
