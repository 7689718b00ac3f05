"""Magnitude facts (analysis.magnitude) on module-level expressions."""

from __future__ import annotations

import math

import libcst as cst
import pytest

from fp16lint.analysis.magnitude import Magnitudes, finite_in_float16, power
from fp16lint.analysis.names import NameResolver

HEAD = "import torch\nimport torch.nn.functional as F\n"


def bound(source: str):
    """The bound of the last line of ``source`` (an expression statement)."""
    module = cst.parse_module(HEAD + source)
    last = module.body[-1].body[0]
    assert isinstance(last, cst.Expr)
    return Magnitudes(NameResolver(module)).bound(last.value)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("torch.sigmoid(x)\n", (0.0, 1.0)),
        ("x.softmax(-1)\n", (0.0, 1.0)),
        ("F.normalize(x, dim=-1)\n", (-1.0, 1.0)),
        ("torch.tanh(x) * 3\n", (-3.0, 3.0)),
        ("(x.sigmoid() * 2) ** 2\n", (0.0, 4.0)),
        ("x.clamp(-10, 10)\n", (-10.0, 10.0)),
        ("torch.clamp(x, min=0, max=6) + 1\n", (1.0, 7.0)),
        ("torch.log(x.sigmoid() + 1)\n", (0.0, math.log(2.0))),
        ("torch.log1p(x.relu().clamp(max=100))\n", (0.0, math.log(101.0))),
        ("x > 0\n", (0.0, 1.0)),
        ("(x > 0) * x.cos()\n", (-1.0, 1.0)),
        ("p = x.sigmoid()\nq = p.float().view(-1)\nq / 2\n", (0.0, 0.5)),
        ("a, b = x.sigmoid().split(2, -1)\nb * 2\n", (0.0, 2.0)),
        ("torch.stack([x.sigmoid(), y.tanh(), z.cos()]).sum(0)\n", (-3.0, 3.0)),
        ("torch.cos(x).abs().mean(-1)\n", (0.0, 1.0)),
        ("-torch.sigmoid(x)\n", (-1.0, 0.0)),
        ("F.normalize(x, dim=-1).pow(2).mean(-1)\n", (0.0, 1.0)),
        ("torch.square(x.tanh() * 3)\n", (0.0, 9.0)),
    ],
)
def test_bounded(source, expected):
    found = bound(source)
    assert found is not None
    assert found == pytest.approx(expected)


@pytest.mark.parametrize(
    "source",
    [
        "x\n",
        "x * 2\n",
        "x.sigmoid() * y\n",  # an unbounded factor
        "torch.log(x.sigmoid())\n",  # log(0) is -inf: no bound
        "x.sigmoid().sum(-1)\n",  # how many terms is not known
        "F.hardtanh(x, -5.0, 5.0)\n",  # not its default range; limits not read here
        "p = x.sigmoid()\np = p * y\np\n",  # one binding unbounded
        "torch.stack([x.sigmoid(), y]).sum(0)\n",
    ],
)
def test_unbounded(source):
    assert bound(source) is None


@pytest.mark.parametrize("source", ["torch.relu(x)\n", "torch.exp(x)\n", "x.abs()\n"])
def test_only_nonnegative(source):
    assert bound(source) == (0.0, math.inf)
    assert not finite_in_float16(bound(source))


def test_power_and_float16_limit():
    assert power((-2.0, 3.0), 2) == (0.0, 9.0)
    assert power((-2.0, 3.0), 3) == (-8.0, 27.0)
    assert power((0.0, 4.0), 0.5) == (0.0, 2.0)
    assert power((-1.0, 1.0), 0.5) is None
    assert finite_in_float16((0.0, 65504.0))
    assert not finite_in_float16((-70000.0, 0.0))
    assert not finite_in_float16(None)
