"""What a full check holds in memory (issue 19: never two full models at once); the figures are
measured by benchmarks/bench_runtime.py --cost."""

from __future__ import annotations

import torch
from torch import nn

import fp16lint.runtime as rt

SEEN: list[bool] = []


class _Tied(nn.Module):
    """One weight used twice: autocast's cache would keep its fp16 copy between the uses."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 16)

    def forward(self, x):
        if torch.is_autocast_enabled("cpu"):
            SEEN.append(torch.is_autocast_cache_enabled())
        return self.lin(torch.relu(self.lin(x)))


def test_autocast_run_keeps_no_fp16_copy_of_the_weights_and_computes_the_same():
    """The autocast run casts each weight where it is used instead of caching an fp16 copy of
    every weight next to the fp32 model for the whole run; the values are the same."""
    torch.manual_seed(0)
    model = _Tied().eval()
    x = torch.randn(4, 16)
    SEEN.clear()
    report = rt.check(model, x, runs=("autocast-fp16",))
    assert SEEN == [False]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        cached = model(x)
    assert report.runs["autocast-fp16"].output.max_abs == float(cached.abs().max())
