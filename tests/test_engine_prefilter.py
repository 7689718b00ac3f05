"""The prefilter (rules run only where their ``tokens`` occur; files where none does are not
parsed) never loses a finding: every rule example, the demo project, the project fixtures and a
sample of real sources give the same findings with and without it. The full corpora are
compared by ``benchmarks/sweep.py --compare-prefilter``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fp16lint.rules import all_rules
from fp16lint.runner import Options, lint_paths, lint_text
from fp16lint.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SITE = Path(next(p for p in sys.path if p.endswith("site-packages")))
# Real files dense in what the rules look for (AMP loops, fp16 casts, HF loading, masks).
CORPUS_SAMPLE = [
    "torch/amp/grad_scaler.py",
    "torch/cuda/amp/autocast_mode.py",
    "torch/nn/modules/activation.py",
    "torch/ao/nn/quantized/modules/utils.py",
    "timm/utils/cuda.py",
    "timm/layers/attention.py",
    "timm/layers/norm.py",
    "diffusers/models/attention_dispatch.py",
    "diffusers/training_utils.py",
    "transformers/models/llama/modeling_llama.py",
    "transformers/models/t5/modeling_t5.py",
    "transformers/integrations/bitsandbytes.py",
    "accelerate/utils/operations.py",
]


def _key(findings):
    return sorted(
        (f.path, f.span.start.line, f.span.start.column, f.code, f.message) for f in findings
    )


def _examples():
    for rule in all_rules():
        for index, example in enumerate((*rule.valid, *(i.code for i in rule.invalid))):
            yield pytest.param(example, id=f"{rule.code}-{index}")


@pytest.mark.parametrize("example", list(_examples()))
def test_rule_examples_same_with_and_without_prefilter(example, tmp_path):
    if isinstance(example, str):
        settings = Settings(root=tmp_path)
        with_ = lint_text(example, "example.py", settings, Options(prefilter=True))
        without = lint_text(example, "example.py", settings, Options(prefilter=False))
    else:
        for rel, text in example.items():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(text, encoding="utf-8")
        with_, without = (_lint(tmp_path, prefilter) for prefilter in (True, False))
    assert _key(with_.findings) == _key(without.findings)


def _lint(root: Path, prefilter: bool, paths: list[Path] | None = None):
    options = Options(jobs=1, use_cache=False, prefilter=prefilter)
    return lint_paths(paths or [root], Settings(root=root, select=("ALL",)), options)


@pytest.mark.parametrize("folder", ["fixtures/demo", "tests/fixtures"])
def test_project_fixtures_same_with_and_without_prefilter(folder):
    root = REPO / folder
    assert _key(_lint(root, True).findings) == _key(_lint(root, False).findings)


def test_real_sources_same_with_and_without_prefilter():
    paths = [SITE / rel for rel in CORPUS_SAMPLE if (SITE / rel).exists()]
    assert len(paths) >= 8, "the installed packages moved; update CORPUS_SAMPLE"
    with_ = _lint(SITE, True, paths)
    without = _lint(SITE, False, paths)
    assert _key(with_.findings) == _key(without.findings)
    assert not [f for f in with_.findings if f.code in ("FP000", "FP999")]
