"""The wrong fixes issue 18 found, each run in torch (the third, FP401's re-indented calls, is
tests/test_fp401_fix.py::test_fix_keeps_the_layout)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fix_harness import fixed_source
from torch import nn

pytestmark = pytest.mark.fix_execution
BLOCKS = Path(__file__).resolve().parents[2] / "fixtures/demo/demo_models/blocks.py"


def _load(source: str) -> dict:
    namespace: dict = {"__name__": "fixed"}
    exec(compile(source, "fixed.py", "exec"), namespace)
    return namespace


def test_fp203_fix_of_the_demo_norm_keeps_a_float16_linear_working(tmp_path):
    """The fixed demo RMSNorm feeds a float16 Linear (it returned float32 and the Linear raised
    ``mat1 and mat2 must have the same dtype``) and no longer zeroes rows of large values."""
    source = BLOCKS.read_text() + "\nnorm = RMSNorm(8).half()\n"
    fixed = fixed_source(source, "FP203", tmp_path)
    assert "x.float().pow(2)" in fixed
    rms = _load(fixed)["RMSNorm"]
    model = nn.Sequential(rms(8), nn.Linear(8, 8)).half()
    x = torch.full((2, 8), 300.0, dtype=torch.float16)
    out = model(x)
    assert out.dtype == torch.float16
    assert torch.allclose(model[0](x).float(), torch.ones(2, 8), atol=1e-2)  # 300 / rms(300)


def test_fp301_fix_of_an_additive_mask_keeps_fully_masked_rows_finite(tmp_path):
    """An additive mask's fix survives the addition in float16: no ``-inf`` and no NaN row
    (``finfo(float16).min`` plus a score of -20 is ``-inf``, and the masked row was NaN)."""
    source = (
        "import torch\n\n"
        "def attend(scores, attn_mask, key_padding):\n"
        "    attn_mask = attn_mask.masked_fill(key_padding, -1e8)\n"
        "    scores += attn_mask\n"
        "    return torch.softmax(scores, dim=-1)\n"
    )
    fixed = fixed_source(source, "FP301", tmp_path)
    attend = _load(fixed)["attend"]
    scores = torch.full((2, 3), -20.0, dtype=torch.float16)
    padding = torch.tensor([[True, True, True], [False, True, False]])
    probs = attend(scores, torch.zeros(2, 3, dtype=torch.float16), padding)
    assert not torch.isnan(probs).any()
    assert probs[1, 1].item() == 0.0
    assert probs[1, 0].item() == pytest.approx(0.5)
