"""Issue 19: states, places, weights, backward, CPU honesty and mask fills, on planted models."""

from __future__ import annotations

import json

import issue19 as m
import pytest
import torch
from click.testing import CliRunner
from runtime_support import FIXTURES, marker_line

import fp16lint.runtime as rt
from fp16lint.findings import Finding, Position, Severity, Span
from fp16lint.runtime.cli import runtime_command
from fp16lint.runtime.html import render_html
from fp16lint.runtime.join import join
from fp16lint.runtime.report import Report
from fp16lint.runtime.tensors import compare
from fp16lint.runtime.text import format_report

SRC = FIXTURES / "issue19.py"
NUMERIC = {"max_abs", "headroom", "rel_error", "local_rel_error", "underflow", "cosine"}


def finding(code: str, line: int) -> Finding:
    return Finding(
        code,
        "t",
        Severity.WARNING,
        f"{code} t",
        str(SRC),
        Span(Position(line, 1), Position(line, 9)),
    )


def _numbers_only(obj, path=""):
    """No numeric field of the JSON holds a string ("inf"): null plus a _nonfinite flag."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in NUMERIC or k.endswith(("_abs", "_error", "_underflow")):
                assert v is None or isinstance(v, (int, float)), f"{path}.{k} = {v!r}"
            _numbers_only(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _numbers_only(v, f"{path}[{i}]")


@pytest.fixture(scope="module")
def nan_report() -> Report:
    return rt.check_target(m.ExpThenNormalise, m.example_inputs, name="nan")


def test_nan_is_confirmed_where_made_and_poisoned_downstream(nan_report):
    places = {(pl.kind, pl.line, pl.op or pl.module): pl for pl in nan_report.places()}
    exp = places[("op", marker_line(SRC, "# EXP-LINE"), "exp")].runs["fp16"]
    div = places[("op", marker_line(SRC, "# DIV-LINE"), "div")].runs["fp16"]
    head = next(pl for pl in nan_report.places() if pl.module == "head" and pl.kind == "module")
    assert exp.verdict == "confirmed" and "inf created" in "; ".join(exp.reasons)
    assert div.verdict == "confirmed" and div.nan_created
    fig = head.runs["fp16"]
    assert fig.verdict == "poisoned"  # its own state, not "not-observed"
    assert fig.max_text == "NaN" and fig.headroom == 0.0  # never "max |x| 0", "unbounded"
    # the same verdict and figure in text, JSON and HTML
    text = format_report(nan_report)
    row = next(r for r in text.splitlines() if "head (Linear)" in r)
    assert row.startswith("poisoned") and " NaN " in row and "unbounded" not in row
    data = json.loads(json.dumps(nan_report.to_dict(), allow_nan=False))
    jhead = next(p for p in data["places"] if p["module"] == "head" and p["kind"] == "module")
    assert jhead["runs"]["fp16"]["verdict"] == "poisoned"
    assert jhead["runs"]["fp16"]["max_abs"] is None and jhead["runs"]["fp16"]["n_nan"] > 0
    page = render_html([nan_report])
    assert "v-poison" in page and "poisoned: inf/NaN from upstream" in page


def test_json_has_no_inf_strings_and_round_trips(nan_report):
    data = nan_report.to_dict()
    _numbers_only(data)
    ops = data["runs"]["fp16"]["ops"]
    exp = next(o for o in ops if o["op"] == "exp")
    assert exp["rel_error"] is None and exp["rel_error_nonfinite"] == "inf"
    again = Report.from_dict(json.loads(json.dumps(data, allow_nan=False)))
    assert again.runs["fp16"].ops[0].rel_error == nan_report.runs["fp16"].ops[0].rel_error
    assert again.verdict == "confirmed"


def test_cosine_is_never_above_one():
    torch.manual_seed(0)
    y = torch.randn(1 << 20) * 3000 + 10000
    cmp = compare(y.half().float(), y, cosine=True)
    assert cmp.cosine is not None and cmp.cosine <= 1.0
    same = compare(y, y, cosine=True).cosine
    assert same is not None and 1.0 - 1e-9 <= same <= 1.0


def test_subtraction_is_a_place():
    r = rt.check_target(m.Centering, m.example_inputs, name="centering", runs=("fp16",))
    sub = next(pl for pl in r.places() if pl.op == "sub")
    assert sub.line == marker_line(SRC, "# SUB-LINE")
    assert sub.verdict("fp16") == "confirmed"


def test_places_never_point_outside_the_model_call():
    # the ops of a bare torch model: no frame of this test (the check() call) is a place
    r = rt.check(torch.nn.Sequential(torch.nn.Linear(4, 4)), torch.randn(2, 4), runs=("fp16",))
    files = {pl.file for pl in r.places()}
    assert files and not any(f and f.endswith("test_issue19.py") for f in files)


def test_fp101_in_one_factory_joins_only_its_target():
    a = rt.check_target(m.make_half_a, m.example_inputs, name="a", runs=("fp16",))
    b = rt.check_target(m.make_b, m.example_inputs, name="b", runs=("fp16",))
    res = join([finding("FP101", marker_line(SRC, "# FACTORY-A-LINE"))], [a, b])
    (j,) = res.joined
    assert j.targets == ["a"] and j.evidence.startswith("a/")


def test_raise_and_its_finding_are_in_the_join_and_recommendation(tmp_path):
    demo_like = tmp_path / "pool.py"
    demo_like.write_text(
        "import torch\n\n\nclass Pool(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.fc = torch.nn.Linear(8, 8)\n\n"
        "    def forward(self, x):\n"
        "        return self.fc(x).quantile(0.5, dim=1)\n",
        "utf-8",
    )
    import importlib.util

    spec = importlib.util.spec_from_file_location("pool_i19", demo_like)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = rt.check_target(mod.Pool, lambda: (torch.randn(2, 8),), name="pool", runs=("fp16",))
    assert r.runs["fp16"].error_site[:2] == (str(demo_like), 10)
    rec = r.recommendation()
    assert "pool.py:10" in rec.text and "quantile" in rec.text
    f = Finding(
        "FP204", "t", Severity.WARNING, "m", str(demo_like), Span(Position(10, 1), Position(10, 9))
    )
    res = join([f], [r])
    assert [(j.finding.code, j.verdict) for j in res.joined] == [("FP204", "confirmed")]


def test_random_weights_never_keep_trained_weights_may(tmp_path):
    rnd = rt.check_target(m.DataclassOut, m.example_inputs, name="rnd")
    assert rnd.weights == "random" and rnd.recommendation().action == "retest-trained"
    loaded = rt.check_target(m.make_loaded, m.example_inputs, name="loaded")
    assert loaded.weights == "trained" and "load_state_dict" in loaded.weights_source
    assert loaded.recommendation().action == "keep"
    ckpt = tmp_path / "w.pt"
    torch.save(m.DataclassOut().state_dict(), ckpt)
    res = CliRunner().invoke(
        runtime_command,
        [
            "--target",
            f"{SRC}:DataclassOut",
            "--inputs",
            f"{SRC}:example_inputs",
            "--checkpoint",
            str(ckpt),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "weights: trained (checkpoint w.pt)" in res.stdout and "keep .half()" in res.stdout
    bad = CliRunner().invoke(
        runtime_command,
        [
            "--target",
            f"{SRC}:Centering",
            "--inputs",
            f"{SRC}:example_inputs",
            "--checkpoint",
            str(ckpt),
        ],
    )
    assert bad.exit_code == 2 and "does not fit" in bad.stdout


def test_refusing_half_is_a_preparation_error():
    r = rt.check_target(m.RefusesHalf, m.example_inputs, name="refuses")
    assert r.error_kind == "model" and "cannot be cast to float16" in r.error
    assert r.verdict != "confirmed"
    res = CliRunner().invoke(
        runtime_command, ["--target", f"{SRC}:RefusesHalf", "--inputs", f"{SRC}:example_inputs"]
    )
    assert res.exit_code == 2


def test_plain_dataclass_output_is_read():
    r = rt.check_target(m.DataclassOut, m.example_inputs, name="dc")
    assert r.error is None
    assert r.runs["fp16"].output.names == ["logits"]


def test_gradient_underflow_changes_verdict_places_and_exit_code():
    r = rt.check_target(m.TinyGradients, m.example_inputs, name="grads", backward=True)
    v, reasons = r.run_verdict("fp16")
    assert v == "confirmed" and any("gradient underflow" in x for x in reasons)
    fc1 = next(pl for pl in r.places() if pl.kind == "module" and pl.module == "fc1")
    assert fc1.verdict("fp16") == "confirmed"
    assert "gradient underflow" in "; ".join(fc1.runs["fp16"].reasons)
    assert not r.ok
    # under autocast (fp32 weights) the cure is loss scaling: at risk, and the advice says so
    assert fc1.verdict("autocast-fp16") == "at-risk"
    assert "GradScaler" in r.recommendation().text
    fwd = rt.check_target(m.TinyGradients, m.example_inputs, name="fwd")
    assert fwd.run_verdict("fp16")[0] != "confirmed"  # the forward alone is fine
    res = CliRunner().invoke(
        runtime_command,
        ["--target", f"{SRC}:TinyGradients", "--inputs", f"{SRC}:example_inputs", "--backward"],
    )
    assert res.exit_code == 1, res.output


def test_cpu_autocast_only_failures_are_not_confirmed_for_cuda(nan_report):
    assert nan_report.device.startswith("cpu")
    exp = next(pl for pl in nan_report.places() if pl.op == "exp")
    fig = exp.runs["autocast-fp16"]
    assert fig.cpu_only and fig.reasons[0].startswith("CPU-only")
    v, reasons = nan_report.run_verdict("autocast-fp16")
    assert v == "at-risk" and any("CPU only" in x for x in reasons)
    rec = nan_report.recommendation()
    assert any("CUDA autocast runs exp in float32" in a for a in rec.alternatives)
    # the pure fp16 run does not depend on autocast's lists: still confirmed
    assert nan_report.run_verdict("fp16")[0] == "confirmed"


def test_limit_mask_fill_is_not_an_overflow():
    r = rt.check_target(m.LimitMask, m.example_inputs, name="mask", runs=("fp16",))
    fill = next(pl for pl in r.places() if pl.op == "masked_fill")
    assert fill.line == marker_line(SRC, "# FILL-LINE")
    fig = fill.runs["fp16"]
    assert fig.clamped == 0 and fig.verdict != "confirmed", fig.reasons
    assert r.verdict != "confirmed"


def test_output_format_html(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        runtime_command,
        [
            "--target",
            f"{SRC}:Centering",
            "--inputs",
            f"{SRC}:example_inputs",
            "--output-format",
            "html",
        ],
    )
    assert res.exit_code == 1
    assert res.stdout.startswith("<!DOCTYPE html>") and 'class="banner"' in res.stdout
    assert "UNSAFE" in res.stdout
