"""float16's range in numbers, and the constants it cannot hold."""

from __future__ import annotations

import math

import pytest
import torch

HALF = torch.float16


def fp16(value: float) -> float:
    return torch.tensor(value, dtype=HALF).item()


def test_fp16_finfo():
    """float16's largest value is 65504, its smallest normal 2**-14 and its machine epsilon 2**-10."""
    info = torch.finfo(HALF)
    assert info.max == 65504.0
    assert info.min == -65504.0
    assert info.smallest_normal == 2.0**-14
    assert info.eps == 2.0**-10


def test_bfloat16_range_for_contrast():
    """bfloat16 reaches about 3.39e38 (float32's range) but has a coarser epsilon of 2**-7."""
    info = torch.finfo(torch.bfloat16)
    assert info.max == pytest.approx(3.3895e38, rel=1e-4)
    assert info.eps == 2.0**-7


def test_values_from_65520_round_to_inf():
    """Values up to 65519 round to 65504; 65520 and above round to inf."""
    assert fp16(65504.0) == 65504.0
    assert fp16(65519.0) == 65504.0
    assert fp16(65520.0) == math.inf
    assert fp16(-65520.0) == -math.inf


def test_smallest_subnormal_and_flush_to_zero():
    """The smallest positive float16 is 2**-24 (about 5.96e-8); anything at or below 2**-25 (about 2.98e-8) becomes 0."""
    assert fp16(2.0**-24) == 2.0**-24
    assert fp16(2.0**-25) == 0.0
    assert fp16(2.99e-8) == 2.0**-24


@pytest.mark.parametrize("value", [1e-8, 1e-12])
def test_tiny_epsilons_become_zero(value):
    """Epsilons such as 1e-8 and 1e-12 are exactly 0 in float16."""
    assert fp16(value) == 0.0


def test_minus_1e9_becomes_minus_inf():
    """``-1e9`` (a popular mask value) becomes ``-inf`` in float16."""
    assert fp16(-1e9) == -math.inf


def test_square_overflows_from_256():
    """``x.pow(2)`` in float16 overflows for ``|x| >= 256``; 255.875, the float16 just below 256, still squares to 65472."""
    x = torch.tensor([255.875, 256.0, -256.0], dtype=HALF)
    squared = x.pow(2)
    assert squared[0].item() == 65472.0
    assert torch.isinf(squared[1:]).all()


def test_exp_overflows_above_11_09():
    """``exp(x)`` in float16 overflows for x above about 11.09 (ln 65504 = 11.0899)."""
    x = torch.tensor([11.0859375, 11.09375], dtype=HALF)  # neighbouring float16 values
    result = x.exp()
    assert torch.isfinite(result[0])
    assert torch.isinf(result[1])
    assert math.log(65504) == pytest.approx(11.0899, abs=1e-4)


def test_ones_sum_of_100000_is_inf():
    """``torch.ones(100000, dtype=torch.float16).sum()`` is inf: the sum is accumulated in float32 but written as float16."""
    total = torch.ones(100000, dtype=HALF).sum()
    assert total.dtype == HALF
    assert torch.isinf(total)
    assert torch.ones(100000, dtype=HALF).sum(dtype=torch.float32).item() == 100000.0


def test_long_dot_product_overflows():
    """A float16 dot product of 4096 tens (409600) overflows to inf."""
    a = torch.full((4096,), 10.0, dtype=HALF)
    assert torch.isinf(a @ a)
    assert torch.isinf(torch.dot(a, a))
