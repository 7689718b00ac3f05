"""``Tensor.half()`` and friends return new tensors; they never change the tensor they are called on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

HALF = torch.float16


def test_tensor_half_returns_a_new_tensor():
    """``x.half()`` returns a new float16 tensor and leaves ``x`` float32."""
    x = torch.randn(3)
    y = x.half()
    assert y is not x
    assert y.dtype == HALF
    assert x.dtype == torch.float32


def test_bare_half_statement_does_nothing():
    """A bare ``x.half()`` statement whose result is discarded leaves ``x`` unchanged."""
    x = torch.randn(3)
    before = x.clone()
    x.half()  # result discarded: the bug fp16lint's FP102 reports
    x.to(torch.float16)
    assert x.dtype == torch.float32
    assert torch.equal(x, before)


def test_tensor_half_on_fp16_returns_self():
    """``x.half()`` / ``x.to(torch.float16)`` on a tensor that is already float16 return ``x`` itself."""
    x = torch.randn(3).half()
    assert x.half() is x
    assert x.to(torch.float16) is x


def test_parameter_half_returns_a_plain_tensor():
    """``nn.Parameter(...).half()`` returns a plain ``torch.Tensor``, not a Parameter."""
    p = nn.Parameter(torch.randn(3))
    h = p.half()
    assert type(h) is torch.Tensor
    assert not isinstance(h, nn.Parameter)
    assert h.requires_grad  # it is a differentiable copy of the parameter
    assert h.grad_fn is not None


def test_tensor_half_on_complex_drops_the_imaginary_part():
    """``Tensor.half()`` on a complex tensor returns the float16 real part."""
    z = torch.tensor([1 + 2j, -3 + 4j])
    assert z.half().dtype == HALF
    assert z.half().tolist() == [1.0, -3.0]


def test_tensor_type_accepts_class_and_string():
    """``x.type(torch.HalfTensor)`` and ``x.type("torch.HalfTensor")`` both return a float16 copy."""
    x = torch.randn(2)
    assert x.type(torch.HalfTensor).dtype == HALF
    assert x.type("torch.HalfTensor").dtype == HALF
    assert x.dtype == torch.float32


def test_parameter_half_is_not_registered_as_a_parameter():
    """``self.w = nn.Parameter(t).half()`` registers nothing, and assigning ``w.half()`` over a registered parameter raises TypeError."""

    class Fresh(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(2)).half()

    fresh = Fresh()
    assert list(fresh.parameters()) == []
    assert fresh.w.dtype == HALF

    existing = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign"):
        existing.weight = existing.weight.half()
