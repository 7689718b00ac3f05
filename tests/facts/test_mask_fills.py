"""The mask-fill facts of ``fp16lint/data/mask_fills.py`` (FP301/FP302 fixes, the runtime)."""

from __future__ import annotations

import pytest
import torch

from fp16lint.data.mask_fills import (
    ADDITIVE_FP16_FILL,
    DTYPE_MAX,
    fp16_sum_is_finite,
    is_limit_fill,
    to_fp16,
)

HALF = torch.float16
DTYPES = {"float16": HALF, "bfloat16": torch.bfloat16, "float32": torch.float32}


@pytest.mark.parametrize("name", [*DTYPES, "float64"])
def test_dtype_max_is_finfo_max(name):
    """``DTYPE_MAX`` holds ``torch.finfo(dtype).max`` for each floating dtype."""
    assert DTYPE_MAX[name] == torch.finfo(getattr(torch, name)).max


def test_to_fp16_rounds_as_torch():
    """``to_fp16`` rounds like ``torch.tensor(v, dtype=float16)``, inf from 65520 on."""
    values = [0.1, -1e-8, 3e-8, 65504.0, 65519.0, 65520.0, -65536.0, -65520.0, 1e4, -1e4 - 17]
    values += torch.linspace(-70000, 70000, 997).tolist()
    for value in values:
        assert to_fp16(value) == torch.tensor(value, dtype=HALF).item(), value


def test_fp16_sum_is_finite_as_torch():
    """``fp16_sum_is_finite`` agrees with the float16 sum torch computes."""
    scores = [*torch.linspace(-60000, 60000, 401).tolist(), -17.0, -16.0, -15.0]
    for fill in (ADDITIVE_FP16_FILL, -65504.0, -32752.0):
        for score in scores:
            total = torch.tensor(fill, dtype=HALF) + torch.tensor(score, dtype=HALF)
            assert fp16_sum_is_finite(fill, score) == bool(torch.isfinite(total)), (fill, score)


def test_finfo_min_in_an_additive_mask_gives_nan():
    """An additive mask filled with ``finfo(float16).min`` turns a fully masked row of scores
    below -16 into ``-inf`` and NaN: the dtype's limit is not safe for additive masks."""
    scores = torch.full((1, 4), -20.0, dtype=HALF)
    mask = torch.zeros(1, 4, dtype=HALF).masked_fill(
        torch.ones(1, 4, dtype=torch.bool), torch.finfo(HALF).min
    )
    assert torch.isinf(scores + mask).all()
    assert torch.isnan(torch.softmax(scores + mask, -1)).all()
    assert not fp16_sum_is_finite(-65504.0, -17.0)


@pytest.mark.parametrize("name", DTYPES)
def test_additive_fill_survives_and_masks(name):
    """``-1e4`` added to scores stays finite in float16 for scores above -55504, a fully masked
    row stays a number, and a masked position gets weight 0 next to unmasked ones."""
    dtype = DTYPES[name]
    scores = torch.tensor([[-20.0, 5.0, -50000.0, 60000.0]], dtype=dtype)
    mask = torch.full((1, 4), ADDITIVE_FP16_FILL, dtype=dtype)
    assert torch.isfinite(scores + mask).all()
    assert not torch.isnan(torch.softmax(scores + mask, -1)).any()
    partly = torch.tensor([[0.0, ADDITIVE_FP16_FILL]], dtype=dtype)
    probs = torch.softmax(torch.tensor([[3.0, 7.0]], dtype=dtype) + partly, -1)
    assert probs[0, 1].item() == 0.0
    assert fp16_sum_is_finite(ADDITIVE_FP16_FILL, -55000.0)


@pytest.mark.parametrize("name", DTYPES)
def test_dtype_guarded_fill_works_in_every_dtype(name):
    """The fix's ``-1e4 if t.dtype == torch.float16 else -1e9`` fills without raising in every
    dtype and keeps ``-1e9`` outside float16."""
    t = torch.zeros(2, 2, dtype=DTYPES[name])
    mask = torch.tensor([[True, False], [False, True]])
    filled = t.masked_fill(mask, -1e4 if t.dtype == torch.float16 else -1e9)
    assert torch.isfinite(filled).all()
    expected = -1e4 if name == "float16" else torch.tensor(-1e9, dtype=DTYPES[name]).item()
    assert filled[0, 0].item() == expected


@pytest.mark.parametrize("name", DTYPES)
def test_finfo_fill_then_softmax_is_safe(name):
    """``scores.masked_fill(m, finfo(scores.dtype).min)`` then softmax: a fully masked row is
    uniform, a partly masked row gives the masked place 0, and the value written is exactly
    the dtype's limit (``is_limit_fill``)."""
    dtype = DTYPES[name]
    scores = torch.tensor([[1.0, -30.0], [2.0, 3.0]], dtype=dtype)
    mask = torch.tensor([[True, True], [False, True]])
    filled = scores.masked_fill(mask, torch.finfo(dtype).min)
    probs = torch.softmax(filled, -1)
    assert torch.allclose(probs[0].float(), torch.tensor([0.5, 0.5]))
    assert probs[1, 1].item() == 0.0
    assert is_limit_fill(filled[0, 0].item(), name)
    assert not is_limit_fill(64512.0, "float16")
