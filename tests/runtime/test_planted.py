"""The planted overflow comes out confirmed at its line; its upcast twin does not."""

from __future__ import annotations

import json

import planted
import pytest
from runtime_support import marker_line

import fp16lint.runtime as rt
from fp16lint.runtime.join import join
from fp16lint.runtime.report import Report
from fp16lint.runtime.text import format_report


@pytest.fixture(scope="module")
def reports():
    bad = rt.check_target(planted.make_planted, planted.example_inputs, name="planted")
    twin = rt.check_target(planted.make_upcast, planted.example_inputs, name="twin")
    return bad, twin


def test_probe_had_no_internal_errors(reports):
    for report in reports:
        for run in report.runs.values():
            assert not [n for n in run.notes if n.startswith("probe:")], run.notes


def test_planted_confirmed_at_the_pow_line(reports, planted_path):
    bad, _ = reports
    line = marker_line(planted_path, "# PLANTED")
    places = [p for p in bad.places() if p.kind == "op" and p.line == line and p.op == "pow"]
    assert len(places) == 1
    fig = places[0].runs["fp16"]
    assert fig.verdict == "confirmed"
    assert fig.inf_created > 0
    assert fig.headroom == 0.0
    # the fp32 run saw the values that do not fit
    assert places[0].runs["fp32"].max_abs > 65504
    assert not bad.ok
    assert bad.verdict == "confirmed"


def test_planted_silent_zero_rows_after_the_norm(reports):
    bad, _ = reports
    norm = next(p for p in bad.places() if p.kind == "module" and p.module == "norm")
    fig = norm.runs["fp16"]
    assert fig.new_zero_rows == 4  # every row of the batch became zeros, without NaN
    assert fig.nan_created == 0
    assert fig.verdict == "confirmed"
    assert norm.runs["fp32"].new_zero_rows == 0


def test_twin_is_not_confirmed(reports, planted_path):
    _, twin = reports
    line = marker_line(planted_path, "# TWIN")
    pow_site = next(p for p in twin.places() if p.kind == "op" and p.line == line and p.op == "pow")
    assert pow_site.runs["fp16"].verdict == "not-observed"
    assert pow_site.runs["fp16"].dtypes == ["float32"]
    assert twin.ok
    twin.assert_ok()
    assert twin.run_verdict("fp16")[0] != "confirmed"
    assert twin.runs["fp16"].output.cosine > 0.9999


def test_assert_ok_message_names_the_line(reports, planted_path):
    bad, _ = reports
    line = marker_line(planted_path, "# PLANTED")
    with pytest.raises(AssertionError) as info:
        bad.assert_ok()
    text = str(info.value)
    assert f"planted.py:{line}" in text
    assert "inf created" in text
    assert "recommendation" in text


def test_join_confirms_fp203_on_planted_and_not_on_twin(reports, planted_path, make_finding):
    bad, twin = reports
    planted_line = marker_line(planted_path, "# PLANTED")
    twin_line = marker_line(planted_path, "# TWIN")
    findings = [
        make_finding("FP203", planted_path, planted_line),
        make_finding("FP203", planted_path, twin_line),
    ]
    result = join(findings, [bad, twin])
    verdicts = {j.finding.span.start.line: j.verdict for j in result.joined}
    assert verdicts[planted_line] == "confirmed"
    assert verdicts[twin_line] == "not-observed"
    # the twin's evidence carries the headroom figures
    twin_j = next(j for j in result.joined if j.finding.span.start.line == twin_line)
    assert "headroom" in twin_j.evidence
    assert not result.missed  # the overflow has a finding on its line


def test_recommendations(reports, planted_path):
    bad, twin = reports
    line = marker_line(planted_path, "# PLANTED")
    rec = bad.recommendation()
    assert rec.action == "upcast-lines"
    assert any(f"planted.py:{line}" in x for x in rec.lines)
    # nothing seen, but on random weights: not a blessing (issue 19 item 3)
    assert twin.recommendation().action == "retest-trained"
    assert "weights are random" in twin.recommendation().text
    assert "keep .half()" not in twin.recommendation().text


def test_text_report(reports):
    bad, _ = reports
    text = format_report(bad)
    assert "confirmed" in text and "pow" in text
    assert "fp32 reference" in text and ".half()" in text and "autocast" in text and "bf16" in text
    assert "recommendation:" in text
    assert "CPU float16 kernels differ from CUDA" in text  # the device note on CPU


def test_json_round_trip(reports):
    bad, _ = reports
    data = bad.to_dict()
    text = json.dumps(data, allow_nan=False)  # strict JSON: inf as "inf"
    again = Report.from_dict(json.loads(text))
    assert again.verdict == bad.verdict == "confirmed"
    assert again.ok is False
    assert data["recommendation"]["action"] == "upcast-lines"
    ops = data["runs"]["fp16"]["ops"]
    assert any(o["op"] == "pow" and o["headroom"] == 0.0 for o in ops)
    assert data["places"][0]["runs"]["fp16"]["verdict"] == "confirmed"
