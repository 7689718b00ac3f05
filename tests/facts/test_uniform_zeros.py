"""Uniform noise in float16 contains exact zeros: ``log`` of it, as the Gumbel trick's
``-log(-log(u))`` takes, is -inf however small a clamp floor float16 rounds to 0. Gumbel noise
is still no zero evidence for FP202/FP304 (tests/test_zero_evidence.py): the noise ends in an
argmax or top-k, where -inf only excludes a token."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def test_float16_uniform_draws_are_exactly_zero_about_once_in_4000():
    generator = torch.Generator().manual_seed(0)
    for draw in (
        torch.zeros(10**6, dtype=torch.float16).uniform_(0, 1, generator=generator),
        torch.rand(10**6, dtype=torch.float16, generator=generator),
    ):
        zeros = int((draw == 0).sum())
        assert 100 < zeros < 1000  # about 250 in 10**6
        assert torch.isinf(torch.log(draw.clamp(min=1e-20))).any()  # 1e-20 is 0 in float16
        assert not torch.isinf(torch.log(draw.float().clamp(min=1e-20))).any()
