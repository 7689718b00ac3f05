"""Joining static findings to runtime observations."""

from __future__ import annotations

import hazards as hz
import planted
import pytest
from runtime_support import marker_line

import fp16lint.runtime as rt
from fp16lint.runtime.join import join, layer_of_line
from fp16lint.runtime.text import format_join


@pytest.fixture(scope="module")
def planted_report():
    return rt.check_target(
        planted.make_planted, planted.example_inputs, name="planted", runs=("fp16",)
    )


def _line(path, text):
    return marker_line(path, text)


def test_fp201_joins_by_class_and_attribute(planted_report, planted_path, make_finding):
    # `self.norm = self.norm_class(dim)` in PlantedModel: the layer that silently zeroes rows
    line = _line(planted_path, "self.norm = self.norm_class(dim)")
    assert layer_of_line(str(planted_path), line) == ("PlantedModel", "norm")
    up_line = _line(planted_path, "self.up = nn.Linear(dim, dim)")
    result = join(
        [make_finding("FP201", planted_path, line), make_finding("FP201", planted_path, up_line)],
        [planted_report],
    )
    by_line = {j.finding.span.start.line: j for j in result.joined}
    assert by_line[line].verdict == "confirmed"
    assert "all-zero rows" in by_line[line].evidence
    assert by_line[up_line].verdict == "not-observed"
    assert "headroom" in by_line[up_line].evidence


def test_unreached_line_and_unjoined_codes(planted_report, hazards_path, make_finding):
    line = _line(hazards_path, "# NAN-LINE")
    result = join(
        [make_finding("FP202", hazards_path, line), make_finding("FP401", hazards_path, line)],
        [planted_report],
    )
    assert len(result.joined) == 1  # FP401 is not a runtime-checkable code
    assert result.joined[0].verdict == "not-reached"
    assert "planted" in result.joined[0].evidence


def test_model_level_codes(planted_report, planted_path, make_finding):
    line = _line(planted_path, "def make_planted")
    result = join([make_finding("FP101", planted_path, line)], [planted_report])
    (j,) = result.joined
    assert j.verdict == "confirmed"
    assert j.targets == ["planted"]
    assert "params float16" in j.evidence


def test_missed_places_are_listed(planted_report, planted_path, make_finding):
    # no finding on the pow line: the overflow is something the linter missed
    other = _line(planted_path, "# TWIN")
    result = join(
        [make_finding("FP203", planted_path, other)],
        [planted_report],
        linted_paths=[str(planted_path.parent)],
    )
    line = _line(planted_path, "# PLANTED")
    missed = [m for m in result.missed if m.line == line]
    assert missed and missed[0].what == "pow"
    assert missed[0].in_linted_paths is True
    assert "inf created" in " ".join(missed[0].reasons)
    text = format_join(result)
    assert "missed" in text and f"planted.py:{line}" in text


def test_raise_without_finding_is_missed(hazards_path):
    r = rt.check_target(hz.MaskFillModel, hz.mask_fill_inputs, runs=("fp16",))
    result = join([], [r])
    line = _line(hazards_path, "# RAISE-LINE")
    assert any(m.line == line and m.what == "masked_fill" for m in result.missed)


def test_relative_paths_resolve_against_root(planted_report, planted_path, make_finding):
    root = planted_path.parents[2]
    rel = planted_path.relative_to(root)
    line = _line(planted_path, "# PLANTED")
    result = join([make_finding("FP203", rel, line)], [planted_report], root=str(root))
    assert result.joined[0].verdict == "confirmed"
    data = result.to_dict()
    assert data["findings"][0]["verdict"] == "confirmed"


def test_error_targets_leave_findings_not_reached(planted_path, make_finding):
    broken = rt.check_target(hz.broken_factory, hz.good_inputs, name="broken")
    line = _line(planted_path, "# PLANTED")
    result = join(
        [make_finding("FP203", planted_path, line), make_finding("FP101", planted_path, line)],
        [broken],
    )
    assert {j.verdict for j in result.joined} == {"not-reached"}
