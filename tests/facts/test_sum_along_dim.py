"""A sum along a given dimension of float16 values accumulates in float32 and writes float16:
why FP202 lists such sums (a row of features, a row of weights) only with ``library-info``, as
it lists norms along a dimension (``rules/fp202_fp16_unsafe_op._listed_only``). Its total
overflows only when the row's total passes 65504, which needs thousands of entries of a
magnitude above 10 all of one sign; what fails in real rows, sums of squares, is FP203's.

Run on this build's CPU, and on CUDA where a device is present (the CUDA reduction kernels
accumulate in ``acc_type<Half>`` = float too: ATen/native/cuda/ReduceSumProdKernel.cu).
"""

from __future__ import annotations

import pytest
import torch

HALF = torch.float16
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ],
    ),
]


@pytest.mark.parametrize("device", DEVICES)
def test_sum_along_a_dim_accumulates_in_float32_and_writes_float16(device):
    """10000 ones sum to exactly 10000 (float16 partial sums stall at 2048, where 2048 + 1
    rounds back to 2048), and the result is float16."""
    ones = torch.ones(3, 10000, dtype=HALF, device=device)
    total = ones.sum(1, keepdim=True)
    assert total.dtype is HALF
    assert (total == 10000).all()
    stalled = torch.tensor(2048.0, dtype=HALF) + torch.tensor(1.0, dtype=HALF)
    assert stalled.item() == 2048.0  # what float16 accumulation would have given


@pytest.mark.parametrize("device", DEVICES)
def test_a_row_total_overflows_only_past_65504(device):
    """A row of 3000 weights in [0, 1] (a box-merging weight matrix) sums finitely; a row
    whose total passes 65504 (70000 ones, or 4096 entries of 20) is inf in float16 while
    float32 holds it."""
    torch.manual_seed(0)
    weights = torch.rand(8, 3000, device=device).to(HALF)
    assert torch.isfinite(weights.sum(1)).all()
    assert torch.isinf(torch.ones(70000, dtype=HALF, device=device).sum(0))
    wide = torch.full((4096,), 20.0, dtype=HALF, device=device)
    assert torch.isinf(wide.sum(-1)) and wide.float().sum(-1).item() == 81920.0
    mixed = (torch.randn(16, 4096, device=device) * 20).to(HALF)  # signs cancel
    assert torch.isfinite(mixed.sum(-1)).all()


@pytest.mark.parametrize("device", DEVICES)
def test_cumsum_along_a_dim_writes_float16(device):
    """``cumsum`` of float16 accumulates in float32 (4096 ones reach 4096, past float16's
    2048 stall), writes float16, and overflows once a running total passes 65504."""
    running = torch.ones(70000, dtype=HALF, device=device).cumsum(0)
    assert running.dtype is HALF and running[4095].item() == 4096.0
    assert torch.isfinite(running[:65000]).all() and torch.isinf(running[-1])
