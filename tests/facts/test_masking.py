"""Attention-mask constants in float16: which raise, which overflow, which give NaN."""

from __future__ import annotations

import pytest
import torch

HALF = torch.float16
OVERFLOW = "value cannot be converted to type c10::Half without overflow"


@pytest.mark.parametrize(
    "value",
    [-1e9, torch.finfo(torch.float32).min, -65520.0],
    ids=["minus_1e9", "finfo_float32_min", "minus_65520"],
)
def test_masked_fill_with_out_of_range_value_raises(value):
    """``t.masked_fill(mask, v)`` on a float16 ``t`` raises RuntimeError when ``v`` is outside float16's range (-1e9, finfo(float32).min)."""
    scores = torch.zeros(2, 3, dtype=HALF)
    mask = torch.tensor([[True, False, False], [False, False, True]])
    with pytest.raises(RuntimeError, match=OVERFLOW):
        scores.masked_fill(mask, value)


@pytest.mark.parametrize(
    "value",
    [torch.finfo(torch.float16).min, float("-inf")],
    ids=["finfo_float16_min", "minus_inf"],
)
def test_masked_fill_with_in_range_value_works(value):
    """``masked_fill`` accepts ``torch.finfo(torch.float16).min`` and ``-inf`` on float16 tensors."""
    scores = torch.zeros(1, 2, dtype=HALF)
    filled = scores.masked_fill(torch.tensor([[True, False]]), value)
    assert filled[0, 0].item() == value


@pytest.mark.parametrize(
    "mask_value", [float("-inf"), -1e9], ids=["additive_minus_inf", "additive_minus_1e9"]
)
def test_fully_masked_row_gives_nan(mask_value):
    """A fully masked row after an additive ``-inf`` or ``-1e9`` mask (both ``-inf`` in float16) gives NaN from softmax."""
    scores = torch.zeros(1, 4, dtype=HALF)
    mask = torch.full((1, 4), mask_value).to(HALF)
    probs = torch.softmax(scores + mask, dim=-1)
    assert torch.isnan(probs).all()


def test_fully_masked_row_with_finfo_min_is_uniform():
    """Masking a whole row with ``finfo(float16).min`` gives a uniform softmax row, not NaN."""
    scores = torch.zeros(1, 4, dtype=HALF)
    masked = scores.masked_fill(torch.ones(1, 4, dtype=torch.bool), torch.finfo(HALF).min)
    probs = torch.softmax(masked, dim=-1)
    assert torch.allclose(probs.float(), torch.full((1, 4), 0.25))


def test_finfo_min_minus_100_overflows_again():
    """``finfo(float16).min - 100`` is ``-inf`` in float16, so subtracting from the mask value brings NaN back."""
    at_min = torch.full((3,), torch.finfo(HALF).min, dtype=HALF)
    assert torch.isinf(at_min - 100).all()
    assert torch.tensor(torch.finfo(HALF).min - 100, dtype=HALF).item() == float("-inf")


def test_minus_inf_from_an_overflowed_mask_masks_like_the_constant_where_a_row_keeps_a_key():
    """A ``-1e9`` mask that float16 turns into ``-inf`` (arithmetic, ``torch.where``, a cast)
    gives the same softmax as the float32 ``-1e9`` in every row that keeps one key: the NaN
    needs a whole row masked (FP301 in library mode asks for evidence of that)."""
    torch.manual_seed(0)
    scores = torch.randn(4, 6)
    keep = torch.rand(4, 6) > 0.5
    keep[:, 0] = True  # every row keeps a key (a causal mask, self-loops)
    bias32 = (1.0 - keep.float()) * -1e9
    bias16 = (1.0 - keep.to(HALF)) * -1e9
    assert torch.isinf(bias16).any()
    probs32 = torch.softmax(scores + bias32, dim=-1)
    probs16 = torch.softmax(scores.to(HALF) + bias16, dim=-1).float()
    assert not torch.isnan(probs16).any()
    assert torch.allclose(probs16, probs32, atol=2e-3)


def test_a_pair_mask_masks_the_whole_row_of_a_padded_position_and_gives_nan():
    """A pair mask (``m[..., :, None] * m[..., None, :]``) masks every key of a padded
    position's row, so its ``-inf`` bias in float16 gives a NaN row (float32's ``-1e9``
    gives a finite one); a key-padding mask (``m[:, None, :]``) masks a whole row only when
    every key is padding."""
    seq = torch.tensor([[1.0, 1.0, 0.0]])  # the last position is padding
    pair = seq[..., :, None] * seq[..., None, :]
    scores = torch.zeros(1, 3, 3)
    bias16 = ((pair.to(HALF) - 1) * 1e9)[..., :, :]
    probs16 = torch.softmax(scores.to(HALF) + bias16, dim=-1)
    assert torch.isnan(probs16[0, 2]).all() and not torch.isnan(probs16[0, :2]).any()
    probs32 = torch.softmax(scores + (pair - 1) * 1e9, dim=-1)
    assert not torch.isnan(probs32).any()
    key_padding = ((seq.to(HALF) - 1) * 1e9)[:, None, :]
    assert not torch.isnan(torch.softmax(scores.to(HALF) + key_padding, dim=-1)).any()
