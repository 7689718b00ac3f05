"""What the FP1xx rules and FP501 claim, checked against the installed torch (CPU).

Each test names the rule whose message or docs rely on it.
"""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from torch import nn

from fp16lint.analysis.constants import FP16_ZERO_UP_TO
from fp16lint.data.optimizers import EPS_OPTIMIZERS

HALF = torch.float16


def test_fp103_fp16_layers_refuse_fp32_inputs():
    """FP103: the two messages it quotes."""
    with pytest.raises(RuntimeError, match="mat1 and mat2 must have the same dtype"):
        nn.Linear(4, 4).half()(torch.randn(2, 4))
    with pytest.raises(RuntimeError, match=r"Input type \(float\) and bias type \(c10::Half\)"):
        nn.Conv2d(3, 4, 3).half()(torch.randn(1, 3, 8, 8))


def test_fp105_default_dtype_fp16_makes_tensors_and_layers_fp16():
    """FP105: after set_default_dtype(float16), factories and new layers are float16."""
    previous = torch.get_default_dtype()
    try:
        torch.set_default_dtype(HALF)
        assert torch.tensor([1.0]).dtype == HALF
        assert torch.randn(2).dtype == HALF
        assert nn.Linear(2, 2).weight.dtype == HALF
    finally:
        torch.set_default_dtype(previous)


def test_fp105_set_default_tensor_type_is_deprecated_and_sets_fp16():
    """FP105: the legacy setter still works and warns."""
    previous = torch.get_default_dtype()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.set_default_tensor_type("torch.HalfTensor")
        assert torch.tensor([1.0]).dtype == HALF
        assert any("deprecated" in str(w.message) for w in caught)
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture
def legacy():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_fp106_fix_keeps_sizes_data_and_empty(legacy):
    """FP106's fix: sizes → torch.empty, a list or tuple → torch.tensor, nothing → empty(0)."""
    sized = torch.HalfTensor(2, 3)
    assert sized.shape == torch.empty(2, 3, dtype=HALF).shape and sized.dtype == HALF
    for data in ([1.0, 2.0], (2, 3)):
        assert torch.equal(torch.HalfTensor(data), torch.tensor(data, dtype=HALF))
    assert torch.HalfTensor().shape == torch.empty(0, dtype=HALF).shape


def test_fp106_type_with_a_cuda_type_changes_the_device(legacy):
    """FP106: `.type(torch.cuda.HalfTensor)` is a device move too (it fails on a CPU-only
    build), unlike `.to(torch.float16)`."""
    x = torch.ones(2)
    assert x.type(torch.HalfTensor).dtype == HALF
    if not torch.cuda.is_available():
        with pytest.raises((RuntimeError, AssertionError, TypeError)):
            x.type(torch.cuda.HalfTensor)


@pytest.mark.parametrize(
    "name", ["Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad"]
)
def test_fp109_table_matches_the_signatures(name):
    """data/optimizers.py: default eps and its position."""
    spec = EPS_OPTIMIZERS[f"torch.optim.{name}"]
    parameters = list(inspect.signature(getattr(torch.optim, name).__init__).parameters)[1:]
    assert parameters.index("eps") == spec.position
    assert (
        inspect.signature(getattr(torch.optim, name).__init__).parameters["eps"].default
        == spec.default
    )
    assert torch.tensor(spec.default, dtype=HALF).item() == 0.0


@pytest.mark.parametrize(
    "name", ["Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad"]
)
def test_fp109_default_eps_gives_nan_where_a_gradient_is_zero(name):
    """FP109: with fp16 parameters and the default eps, a zero gradient gives NaN; eps=1e-4
    stays finite."""

    def run(**kwargs):
        p = nn.Parameter(torch.ones(3, dtype=HALF))
        optimizer = getattr(torch.optim, name)([p], **kwargs)
        for _ in range(10):
            p.grad = torch.tensor([0.0, 1e-3, 0.0], dtype=HALF)
            optimizer.step()
        return p.detach()

    assert torch.isnan(run()[0])
    assert torch.isfinite(run(eps=1e-4)).all()


def test_fp109_zero_threshold():
    """FP109 reports eps up to 2**-25, the largest value that rounds to 0 in float16."""
    assert torch.tensor(FP16_ZERO_UP_TO, dtype=HALF).item() == 0.0
    assert torch.tensor(FP16_ZERO_UP_TO * 1.01, dtype=HALF).item() > 0.0


def test_fp107_fp108_gradscaler_refuses_fp16_parameters():
    """FP107/FP108: a GradScaler stepping fp16 parameters raises."""
    model = nn.Linear(2, 2).half()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    loss = model(torch.randn(1, 2, dtype=HALF)).float().sum()
    scaler.scale(loss).backward()
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        scaler.step(optimizer)


def test_fp108_fp16_weights_lose_small_updates():
    """FP108: an update below half the float16 spacing leaves the weight unchanged."""
    w = torch.tensor(1.0, dtype=HALF)
    assert (w + torch.tensor(4e-4, dtype=HALF)).item() == 1.0
    assert (torch.tensor(1.0) + 4e-4).item() != 1.0


def test_fp102_tensor_conversion_is_not_in_place():
    """FP102: `x.half()` and `x.to(...)` return new tensors."""
    x = torch.ones(2)
    x.half()
    x.to(torch.float64)
    assert x.dtype == torch.float32
