"""The output ranges in data/op_ranges.py and the magnitude facts built on them, in float16."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fp16lint.data.op_ranges import FLOAT16_MAX, OUTPUT_RANGES

HALF = torch.float16

FUNCTIONS = {
    "sigmoid": torch.sigmoid,
    "expit": torch.special.expit,
    "hardsigmoid": F.hardsigmoid,
    "softmax": lambda x: torch.softmax(x, -1),
    "softmin": lambda x: F.softmin(x, -1),
    "tanh": torch.tanh,
    "hardtanh": F.hardtanh,
    "softsign": F.softsign,
    "erf": torch.erf,
    "sin": torch.sin,
    "cos": torch.cos,
    "normalize": lambda x: F.normalize(x, dim=-1),
    "cosine_similarity": lambda x: F.cosine_similarity(x, x.flip(-1), dim=-1),
    "relu6": F.relu6,
    "atan": torch.atan,
    "log_softmax": lambda x: torch.log_softmax(x, -1),
    "logsigmoid": F.logsigmoid,
}


def extreme_inputs() -> torch.Tensor:
    """Random values of every size float16 holds, its limits, zeros and tiny values."""
    spread = torch.randn(64, 32) * torch.logspace(-6, 4.8, 32)
    edges = torch.tensor([FLOAT16_MAX, -FLOAT16_MAX, 0.0, 6e-8, -6e-8, 11.0, -11.0, 1.0] * 4)
    return torch.cat([spread, edges[None]], 0).clamp(-FLOAT16_MAX, FLOAT16_MAX).to(HALF)


def test_every_range_has_a_check():
    assert set(FUNCTIONS) == set(OUTPUT_RANGES)


@pytest.mark.parametrize("name", sorted(OUTPUT_RANGES))
def test_output_range_holds_in_float16(name):
    """Each listed function's float16 output lies in its listed range for any finite input."""
    low, high = OUTPUT_RANGES[name]
    out = FUNCTIONS[name](extreme_inputs()).float()
    assert torch.isfinite(out).all() or math.isinf(low)
    finite = out[torch.isfinite(out)]
    assert finite.min().item() >= low - 1e-3
    assert finite.max().item() <= high + 1e-3


def test_doubled_sigmoid_squared_is_at_most_four():
    """``(sigmoid(x) * 2) ** 2`` stays within [0, 4] in float16 (YOLO-style box sizes)."""
    out = (torch.sigmoid(extreme_inputs()) * 2) ** 2
    assert out.min().item() >= 0 and out.max().item() <= 4


def test_log1p_of_bounded_nonnegative_is_small():
    """``log(x + 1)`` of values in [0, 65504] is finite and at most log(65505) in float16."""
    x = extreme_inputs().abs()
    out = torch.log(x + 1)
    assert torch.isfinite(out).all() and out.max().item() <= math.log(65505) + 1e-2


def test_sum_of_3000_unit_values_stays_finite():
    """The float16 sum of 3000 values in [0, 1] is finite (at most 3000); 100000 ones are inf."""
    x = torch.rand(3000, dtype=torch.float32).to(HALF)
    x[:10] = 1.0
    assert math.isfinite(x.sum().item()) and x.sum().item() <= 3000
    assert math.isfinite(torch.ones(3000, 3000, dtype=HALF).sum(1).max().item())
    assert torch.ones(100000, dtype=HALF).sum().item() == math.inf


def test_gradient_of_an_overflowed_sum_is_ones():
    """``x.sum().backward()`` gives a gradient of ones even when the float16 sum is inf: the
    value of a sum that only feeds ``backward()`` does not matter."""
    x = torch.full((100000,), 2.0, dtype=HALF, requires_grad=True)
    total = x.sum()
    assert total.item() == math.inf
    total.backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_ratio_of_clamps_stays_above_eps_in_float16():
    """``x.clamp(min=eps) / (1 - x).clamp(min=eps)`` for x in [0, 1] (DETR-style
    inverse_sigmoid, eps = 1e-5) is at least eps in float16, so its log is never -inf (the
    magnitude fact for a divisor of known sign); its top, 1/eps, is past 65504 and inf."""
    x = torch.cat([torch.rand(10000), torch.tensor([0.0, 1.0, 6e-8, 1 - 6e-8])]).to(HALF)
    ratio = x.clamp(min=1e-5) / (1 - x).clamp(min=1e-5)
    assert ratio.min().item() >= 1e-5 * (1 - 1e-3)
    assert torch.isfinite(torch.log(ratio.clamp(max=FLOAT16_MAX))).all()
    assert ratio.max().item() == math.inf


def test_log_of_a_clamp_is_finite_only_above_float16_tiniest():
    """``log(p.clamp(min=1e-4))`` is finite in float16 even for p = 0; a floor of 1e-10 rounds
    to 0 in float16 and the log of it is -inf (what FP202 reports)."""
    p = torch.tensor([0.0, 1e-9, 0.5, 1.0], dtype=HALF)
    assert torch.isfinite(torch.log(p.clamp(min=1e-4))).all()
    assert torch.log(p.clamp(min=1e-10))[0].item() == -math.inf


def test_squares_of_a_normalised_row_sum_to_one_in_float16():
    """``F.normalize(x, dim=d).pow(2).sum(d)`` is at most 1 + 2**-10 in float16 for any finite
    input (its rows are unit vectors; each square is rounded by at most 2**-11 of it)."""
    x = extreme_inputs()
    for dim in (0, 1, -1):
        total = F.normalize(x, dim=dim).pow(2).sum(dim)
        assert total.max().item() <= 1.0 + 2**-10


def test_autograd_grad_of_an_overflowed_sum_is_ones():
    """``torch.autograd.grad(x.sum(), x)`` is ones when the float16 sum is inf, as backward."""
    x = torch.full((100000,), 2.0, dtype=HALF, requires_grad=True)
    total = x.sum()
    assert total.item() == math.inf
    (grad,) = torch.autograd.grad(total, x)
    assert torch.equal(grad, torch.ones_like(x))


def test_exp_of_a_cumsum_of_non_positive_terms_is_at_most_one():
    """A sum or cumsum of non-positive float16 terms (``-exp(A_log) * softplus(dt)``,
    ``logsigmoid``) is non-positive, -inf at worst, so its exp lies in [0, 1]."""
    a, dt = extreme_inputs(), extreme_inputs().flip(0)
    decay = -torch.exp(a.clamp(max=10)) * F.softplus(dt)
    for total in (decay.cumsum(-1), decay.sum(-1), F.logsigmoid(a).sum(-1)):
        assert (total <= 0).all()
        out = torch.exp(total)
        assert out.min().item() >= 0 and out.max().item() <= 1
