"""What FP301, FP302 and FP304 claim about constants meeting float16 tensors, checked on torch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fp16lint.analysis.constants import FP16_INF_FROM, FP16_MAX, FP16_SMALLEST, FP16_ZERO_UP_TO

HALF = torch.float16
OVERFLOW = "value cannot be converted to type c10::Half without overflow"


def _scores() -> torch.Tensor:
    return torch.zeros(2, 3, dtype=HALF)


MASK = torch.tensor([[True, False, False], [False, True, False]])

RAISING = {
    "masked_fill": lambda v: _scores().masked_fill(MASK, v),
    "masked_fill_": lambda v: _scores().masked_fill_(MASK, v),
    "fill_": lambda v: _scores().fill_(v),
    "index_fill": lambda v: _scores().index_fill(1, torch.tensor([0]), v),
    "new_full": lambda v: _scores().new_full((2,), v),
    "torch.full": lambda v: torch.full((2,), v, dtype=HALF),
    "torch.full_like": lambda v: torch.full_like(_scores(), v),
    "clamp min": lambda v: _scores().clamp(min=-abs(v)),
    "clamp max": lambda v: _scores().clamp(max=abs(v)),
    "clamp_min": lambda v: _scores().clamp_min(-abs(v)),
    "masked_fill 0-dim tensor": lambda v: _scores().masked_fill(MASK, torch.tensor(v)),
}


@pytest.mark.parametrize("op", sorted(RAISING))
@pytest.mark.parametrize("value", [-1e9, torch.finfo(torch.float32).min, -65505.0])
def test_fill_style_ops_raise_beyond_fp16_max(op, value):
    """Fill-style ops and clamp bounds raise for any finite value beyond 65504 (FP301/FP302)."""
    assert abs(value) > FP16_MAX
    with pytest.raises(RuntimeError, match=OVERFLOW):
        RAISING[op](value)


@pytest.mark.parametrize("op", sorted(RAISING))
@pytest.mark.parametrize("value", [-65504.0, float("-inf"), torch.finfo(HALF).min])
def test_fill_style_ops_accept_fp16_limits_and_inf(op, value):
    RAISING[op](value)


SILENT = {
    "torch.where": lambda v: torch.where(MASK, _scores(), v),
    "torch.where 0-dim tensor": lambda v: torch.where(MASK, _scores(), torch.tensor(v)),
    "subscript assignment": lambda v: _assign(v),
    "+": lambda v: _scores() + v,
    "*": lambda v: (_scores() + 1) * v,
    "add_": lambda v: _scores().add_(v),
    "+ 0-dim tensor": lambda v: _scores() + torch.tensor(v),
}


def _assign(value):
    scores = _scores()
    scores[MASK] = value
    return scores


@pytest.mark.parametrize("op", sorted(SILENT))
def test_arithmetic_where_and_assignment_give_inf_silently(op):
    """No exception: the value becomes -inf (FP301's "silent" outcome)."""
    result = SILENT[op](-1e9)
    assert result.dtype == HALF
    assert torch.isinf(result).any()


def test_silent_ops_round_below_65520_to_max_and_overflow_from_it():
    assert (_scores() - 65519.0).eq(-65504).all()
    assert torch.isinf(_scores() - FP16_INF_FROM).all()


def test_buffer_of_minus_1e9_becomes_minus_inf_after_half():
    module = torch.nn.Module()
    module.register_buffer("masked_bias", torch.tensor(-1e9))
    module.half()
    assert module.masked_bias.dtype == HALF
    assert module.masked_bias.item() == float("-inf")


def test_integer_and_bool_masks_times_constant_stay_float32():
    """``mask.long() * -1e9`` and ``(mask == 0) * -1e9`` are float32: not a sink."""
    assert (MASK * -1e9).dtype == torch.float32
    assert (MASK.long() * -1e9).dtype == torch.float32
    assert ((MASK == 0) * -1e9).eq(-1e9).any()


def test_fp16_plus_fp32_tensor_is_computed_in_fp32():
    """``fp16 + x.float() * -1e9`` promotes: the float32 operand protects the value."""
    assert (_scores() + torch.full((2, 3), -1e9)).dtype == torch.float32


def test_eps_thresholds_match_fp16():
    assert torch.tensor(FP16_SMALLEST, dtype=HALF).item() == FP16_SMALLEST
    assert torch.tensor(FP16_ZERO_UP_TO, dtype=HALF).item() == 0.0
    assert torch.tensor(4e-8, dtype=HALF).item() == FP16_SMALLEST


@pytest.mark.parametrize("eps", [1e-8, 1e-12, torch.finfo(torch.float32).tiny])
def test_tiny_eps_vanishes_in_each_sink(eps):
    """FP304's sinks: the eps adds 0, the clamp lets 0 through, and normalisation gives NaN."""
    zero = torch.zeros(1, 4, dtype=HALF)
    assert (zero + eps).eq(0).all()
    assert torch.isnan(zero / (zero + eps)).all()
    assert torch.isinf(torch.log(zero + eps)).all()
    assert torch.isinf(torch.rsqrt(zero + eps)).all()
    assert zero.clamp(min=eps).eq(0).all()
    assert zero.clamp_min(eps).eq(0).all()
    assert torch.isnan(F.normalize(zero, dim=-1, eps=eps)).all()
    assert torch.isnan(F.cosine_similarity(zero, zero, dim=-1, eps=eps)).all()


def test_same_eps_works_in_float32():
    zero = torch.zeros(1, 4)
    assert (zero / (zero + 1e-12)).eq(0).all()
    assert not torch.isnan(F.normalize(zero, dim=-1, eps=1e-12)).any()


def test_layer_norm_eps_is_not_a_sink():
    x = torch.ones(2, 8, dtype=HALF)
    assert torch.isfinite(F.layer_norm(x, (8,), eps=1e-12)).all()


@pytest.mark.parametrize("eps", [3e-8, 4e-8, 5e-8, FP16_SMALLEST, 1e-7])
def test_a_subnormal_eps_still_guards_each_sink(eps):
    """An eps above 2**-25 becomes a float16 subnormal, not 0: every FP304 sink stays finite
    (0 / (0 + eps) is 0, log and rsqrt are finite), so FP304 leaves it alone."""
    zero = torch.zeros(1, 4, dtype=HALF)
    assert (zero + eps).gt(0).all()
    assert (zero / (zero + eps)).eq(0).all()
    assert torch.isfinite(torch.log(zero + eps)).all()
    assert torch.isfinite(torch.rsqrt(zero + eps)).all()
    assert zero.clamp(min=eps).gt(0).all()
    assert not torch.isnan(F.normalize(zero, dim=-1, eps=eps)).any()


@pytest.mark.parametrize(
    "eps", [1e-30, 1e-12, 1e-8, 2.5e-8, FP16_ZERO_UP_TO, 2.99e-8, 3e-8, 5e-8, 1e-7, 6.1e-5]
)
def test_fp304_cutoff_is_where_float16_adds_zero(eps):
    """FP304 reports exactly the epsilons that adding to a float16 zero leaves at 0."""
    from fp16lint.analysis.constants import Constant

    vanishes = bool((torch.zeros(1, dtype=HALF) + eps).eq(0).all())
    assert Constant(eps, str(eps)).underflows == vanishes
