"""Where pure float16 (no autocast) really hurts: hand-written norms, reductions, optimizer epsilons.

The built-in norm and softmax kernels accumulate in float32 (``acc_type<Half>`` is float in
ATen/AccumulateType.h); hand-written versions of the same maths do not.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

HALF = torch.float16


@pytest.fixture
def big_rows() -> torch.Tensor:
    """Two float16 rows with |x| in the thousands: their squares overflow float16."""
    return (torch.randn(2, 64) * 1000).to(HALF)


def test_layer_norm_kernel_is_finite_where_naive_variance_overflows(big_rows):
    """``F.layer_norm`` on large float16 inputs is finite although the naive float16 variance overflows to inf."""
    mean = big_rows.mean(-1, keepdim=True)
    naive_var = (big_rows - mean).pow(2).mean(-1, keepdim=True)
    assert torch.isinf(naive_var).all()
    out = F.layer_norm(big_rows, (64,))
    assert out.dtype == HALF
    assert torch.isfinite(out).all()


def test_layer_norm_eps_1e_12_is_fine_in_the_kernel():
    """``F.layer_norm(x_fp16, eps=1e-12)`` works: the eps stays a float in the kernel although 1e-12 is 0 in float16."""
    assert torch.tensor(1e-12, dtype=HALF).item() == 0.0
    constant = torch.full((1, 8), 3.0, dtype=HALF)
    out = F.layer_norm(constant, (8,), eps=1e-12)
    assert torch.isfinite(out).all()
    assert torch.equal(out, torch.zeros_like(out))
    layer = nn.LayerNorm(8, eps=1e-12).half()
    assert torch.isfinite(layer(torch.randn(4, 8).half())).all()


def test_hand_written_layer_norm_on_constant_row_is_nan():
    """A hand-written ``(x - mu) / sqrt(var + 1e-12)`` on a constant float16 row is 0/0 = NaN."""
    x = torch.full((1, 8), 3.0, dtype=HALF)
    mu = x.mean(-1, keepdim=True)
    var = (x - mu).pow(2).mean(-1, keepdim=True)
    out = (x - mu) / torch.sqrt(var + 1e-12)
    assert torch.isnan(out).all()


def test_group_norm_kernel_is_finite_on_large_inputs():
    """``F.group_norm`` on float16 inputs in the thousands is finite (float32 accumulation)."""
    x = (torch.randn(1, 4, 64) * 1000).to(HALF)
    assert torch.isfinite(F.group_norm(x, 2)).all()


def test_softmax_kernel_is_finite_where_naive_exp_overflows():
    """float16 softmax of [20, 10, 0] is finite although ``exp(20)`` overflows and the naive formula gives NaN."""
    x = torch.tensor([[20.0, 10.0, 0.0]], dtype=HALF)
    assert torch.isinf(x.exp()[0, 0])
    naive = x.exp() / x.exp().sum(-1, keepdim=True)
    assert torch.isnan(naive).any()
    probs = torch.softmax(x, dim=-1)
    assert probs.dtype == HALF
    assert torch.isfinite(probs).all()
    assert probs[0, 0].item() == pytest.approx(1.0, abs=1e-3)


@pytest.fixture
def rms_row() -> torch.Tensor:
    """One float16 row of 300s (300**2 = 90000 > 65504) with a single 1."""
    row = torch.full((1, 8), 300.0, dtype=HALF)
    row[0, 0] = 1.0
    return row


def test_hand_written_rms_norm_gives_an_all_zero_row(rms_row):
    """A hand-written float16 RMS norm ``x * rsqrt(x.pow(2).mean(-1) + eps)`` overflows to inf, rsqrt makes it 0, and the row silently becomes all zeros."""
    mean_square = rms_row.pow(2).mean(-1, keepdim=True)
    assert torch.isinf(mean_square).all()
    scale = torch.rsqrt(mean_square + 1e-6)
    assert scale.item() == 0.0
    out = rms_row * scale
    assert not torch.isnan(out).any()
    assert torch.equal(out, torch.zeros_like(out))


def test_rms_norm_in_float32_then_cast_back_is_correct(rms_row):
    """Computing the RMS norm in float32 and casting back (as T5LayerNorm does) gives the right row, like the built-in ``F.rms_norm``."""
    x32 = rms_row.float()
    fixed = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)).to(HALF)
    assert torch.isfinite(fixed).all()
    assert fixed[0, 1].item() == pytest.approx(1.069, abs=1e-3)
    builtin = F.rms_norm(rms_row, (8,), eps=1e-6)
    assert torch.allclose(builtin.float(), fixed.float(), atol=1e-3)


def test_adam_default_eps_is_zero_in_fp16():
    """Adam's default ``eps=1e-8`` is 0 in float16."""
    eps = torch.optim.Adam([nn.Parameter(torch.zeros(1))]).defaults["eps"]
    assert eps == 1e-8
    assert torch.tensor(eps, dtype=HALF).item() == 0.0


def test_adam_on_fp16_parameters_with_small_gradients_diverges():
    """Adam on float16 parameters with small gradients (1e-4) divides by a zero denominator and writes -inf into the weights."""
    p = nn.Parameter(torch.ones(3, dtype=HALF))
    optimizer = torch.optim.Adam([p], lr=1e-3)
    p.grad = torch.full((3,), 1e-4, dtype=HALF)
    optimizer.step()
    assert torch.isinf(p.detach()).all()


def test_cublas_reduced_precision_reduction_flag_defaults_to_true():
    """``torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction`` is True by default (its effect, fp16 reductions inside cuBLAS GEMMs, is CUDA-only)."""
    assert torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction is True
