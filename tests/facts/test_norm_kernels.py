"""The built-in norm layers' kernels accumulate in float32 (``acc_type<Half>`` is float), so
float16 activations far beyond what a hand-written float16 norm survives come out finite. This
is why library mode (``assume-fp16``) does not report them (FP201); BatchNorm's running
variance, updated in training, is the exception a real cast still reports."""

from __future__ import annotations

import pytest
import torch
from torch import nn

HALF = torch.float16


@pytest.fixture
def big() -> torch.Tensor:
    """float16 activations near 1000: their squares (1e6) overflow float16."""
    return (torch.randn(8, 4, 64) * 1000).to(HALF)


@pytest.mark.parametrize(
    "layer",
    [
        nn.LayerNorm(64),
        nn.GroupNorm(2, 4),
        nn.RMSNorm(64),
        nn.BatchNorm1d(4).eval(),
        nn.BatchNorm1d(4).train(),
        nn.InstanceNorm1d(4),
    ],
    ids=lambda m: f"{type(m).__name__}{'' if m.training else '-eval'}",
)
def test_norm_kernel_is_finite_where_float16_squares_overflow(layer, big):
    """The layer cast to float16 gives finite output on inputs whose float16 squares are inf."""
    assert torch.isinf(big.pow(2).mean(-1)).all()
    out = layer.to(HALF)(big)
    assert out.dtype == HALF
    assert torch.isfinite(out).all()


def test_batch_norm_running_variance_overflows_in_training(big):
    """In training, a float16 BatchNorm's running variance (a float16 buffer) becomes inf."""
    layer = nn.BatchNorm1d(4).to(HALF).train()
    layer(big)
    assert torch.isinf(layer.running_var).any()
