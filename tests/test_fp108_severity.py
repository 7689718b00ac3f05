"""FP108 grades its cases: an fp16 autocast loss stepped without a GradScaler is a warning, the
rest (pure-fp16 optimizers, fp16 EMAs, validation re-casts) errors; every output format shows
the finding's own severity, not the rule's."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from fp16lint.api import lint_text
from fp16lint.findings import Severity
from fp16lint.formatters import FormatContext, get_formatter
from fp16lint.rules.fp108_fp16_training_without_master_weights import (
    Fp16TrainingWithoutMasterWeights as FP108,
)
from fp16lint.settings import Settings

UNSCALED = """\
import torch

def step(model, x, optimizer):
    with torch.autocast(device_type="cuda"):
        loss = model(x).mean()
    loss.backward()
    optimizer.step()
"""
PURE_FP16 = """\
import torch
import torch.nn as nn
model = nn.Linear(2, 2).cuda().half()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
"""
EMA = """\
import torch
from timm.utils import ModelEmaV3

def f(model):
    ema = ModelEmaV3(model, decay=0.999)
    ema.half()
"""
RECAST = """\
import torch
from diffusers import DiffusionPipeline

def fit(model_id, transformer, loader):
    pipeline = DiffusionPipeline.from_pretrained(model_id, transformer=transformer)
    optimizer = torch.optim.AdamW(transformer.parameters())
    for batch in loader:
        transformer(batch).mean().backward()
        optimizer.step()
        pipeline.to(torch.float16)
"""

CASES = {
    "unscaled_autocast_loss": (UNSCALED, 6, Severity.WARNING),
    "pure_fp16_optimizer": (PURE_FP16, 4, Severity.ERROR),
    "fp16_ema": (EMA, 6, Severity.ERROR),
    "validation_recast": (RECAST, 10, Severity.ERROR),
}


def _fp108(text: str):
    return [
        f for f in lint_text(text, "train.py", Settings(select=("FP108",))) if f.code == "FP108"
    ]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_case_has_its_severity(case):
    text, line, severity = case
    [finding] = _fp108(text)
    assert (finding.span.start.line, finding.severity) == (line, severity)


def test_the_rule_itself_stays_an_error():
    assert FP108.severity is Severity.ERROR


@pytest.fixture
def graded():
    """One FP108 warning and one FP108 error, in that order."""
    findings = _fp108(UNSCALED) + _fp108(PURE_FP16)
    assert [f.severity for f in findings] == [Severity.WARNING, Severity.ERROR]
    return findings


def _render(name: str, findings) -> str:
    return get_formatter(name)(findings, FormatContext())


def test_machine_formats_carry_the_findings_severity(graded):
    assert [f["severity"] for f in json.loads(_render("json", graded))] == ["warning", "error"]
    lines = [json.loads(line) for line in _render("json-lines", graded).splitlines()]
    assert [f["severity"] for f in lines] == ["warning", "error"]
    sarif = json.loads(_render("sarif", graded))["runs"][0]
    assert [r["level"] for r in sarif["results"]] == ["warning", "error"]
    [rule] = [r for r in sarif["tool"]["driver"]["rules"] if r["id"] == "FP108"]
    assert rule["defaultConfiguration"]["level"] == "error"  # the rule's default
    assert [line.split(" ", 1)[0] for line in _render("github", graded).splitlines()] == [
        "::warning",
        "::error",
    ]
    assert [i["severity"] for i in json.loads(_render("gitlab", graded))] == ["minor", "major"]
    [entry] = json.loads(_render("lsp", graded))
    assert [d["severity"] for d in entry["diagnostics"]] == [2, 1]


def test_text_formats_show_both_findings(graded):
    """full, concise and junit print no severity; both findings are there."""
    for name in ("full", "concise"):
        assert _render(name, graded).count("FP108") >= 2
    root = ET.fromstring(_render("junit", graded))
    assert root.get("failures") == "2"
