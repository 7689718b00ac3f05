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
    return Magnitudes(NameResolver(module), ()).bound(last.value)


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
        # a divisor of known sign (inverse_sigmoid's ratio of two clamps)
        ("x.sigmoid() / (x.sigmoid() + 1)\n", (0.0, 1.0)),
        ("x.clamp(min=1e-5, max=1) / (1 - x).clamp(min=1e-5, max=1)\n", (1e-5, 1e5)),
        ("-x.sigmoid() / x.clamp(min=2, max=4)\n", (-0.5, 0.0)),
        # a clamp limit named by a number
        ("eps = 1e-4\nx.clamp(min=eps, max=1.0)\n", (1e-4, 1.0)),
        # a unit vector's squares, summed along its normalised dimension
        ("F.normalize(x, dim=-1).pow(2).sum(-1)\n", (0.0, 1.0 + 2**-10)),
        ("u = F.normalize(x)\ntorch.sum(u * u, dim=1)\n", (0.0, 1.0 + 2**-10)),
        # ... along dim -1 of a value whose rank is written out: the same dimension
        ("F.normalize(x.view(-1, 8), dim=-1).pow(2).sum(1)\n", (0.0, 1.0 + 2**-10)),
        ("u = x.reshape((n, d))\nF.normalize(u, dim=1).pow(2).sum(-1)\n", (0.0, 1.0 + 2**-10)),
        # sign facts: -exp, -softplus, sums and cumulative sums of non-positive terms
        ("A = -torch.exp(a)\nA * F.softplus(dt)\n", (-math.inf, 0.0)),
        ("torch.cumsum(-F.softplus(a), dim=-1)\n", (-math.inf, 0.0)),
        ("F.logsigmoid(x).sum(-1)\n", (-math.inf, 0.0)),
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
        "x.sigmoid() / x.tanh()\n",  # a divisor that can be 0
        "eps = 1e-4\neps = y\nx.clamp(min=eps, max=1.0) * y\n",
        "F.normalize(x, dim=-1).pow(2).sum(1)\n",  # another dimension
        "F.normalize(x.view(2, -1, 8), dim=-1).pow(2).sum(1)\n",  # another one of three
        "F.normalize(x.view(shape), dim=-1).pow(2).sum(1)\n",  # a rank not written out
        "F.normalize(x, p=1, dim=1).pow(2).sum(1)\n",  # not an L2 norm
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


def _function_bound(source: str, name: str):
    """The bound of ``name`` in function ``f`` right after the statement that assigns it (as
    the analysis sees it: the function's bindings up to that point)."""
    module = cst.parse_module(HEAD + source)
    names = NameResolver(module)
    function = module.body[-1]
    assert isinstance(function, cst.FunctionDef)
    names.push("function", function)
    names.bind_parameters(function.params)
    for statement in function.body.body:
        names.bind_statement(statement)
        if name in names.scope.bindings:
            break
    # the walk's path to the assigning statement: what it binds is looked up before it
    stack = (module, function, function.body, statement)
    return Magnitudes(names, stack).bound(cst.Name(name))


def test_a_reassignment_in_the_body_holds_from_there_on():
    """``x = x.clamp(0, 1)`` in the function's own body replaces the parameter's value; in a
    branch, or with a loop after it that rebinds the name, it does not."""
    inverse_sigmoid = (
        "def f(x, eps=1e-5):\n"
        "    x = x.clamp(min=0, max=1)\n"
        "    x1 = x.clamp(min=eps)\n"
        "    x2 = (1 - x).clamp(min=eps)\n"
        "    r = x1 / x2\n"
    )
    assert _function_bound(inverse_sigmoid, "r") == pytest.approx((1e-5, 1e5))
    branch = "def f(x):\n    if x.any():\n        x = x.clamp(0, 1)\n    r = x\n"
    assert _function_bound(branch, "r") is None
    loop = (
        "def f(x):\n    x = x.clamp(0, 1)\n    r = x\n    for _ in range(2):\n        x = x * 3\n"
    )
    assert _function_bound(loop, "r") is None
    assert _function_bound("def f(x, eps=1e-20):\n    r = x.clamp(min=eps)\n", "r") == (
        1e-20,
        math.inf,
    )
    assert _function_bound("def f(x, eps):\n    r = x.clamp(min=eps)\n", "r") is None


def test_even_powers_negative_exponents_and_class_numbers():
    """``x ** 2`` of anything is at least 0; a negative power of a positive base decreases;
    ``self.s`` that every assignment in its class sets to a number (a literal, a parameter's
    default, a config's ``hasattr`` fallback) is that number, and a clamp limit; ``d.probs`` of
    a ``torch.distributions`` object is a probability."""
    assert bound("x ** 2\n") == (0.0, math.inf)
    assert bound("x.pow(4)\n") == (0.0, math.inf)
    assert bound("x ** 3\n") is None
    assert bound("(x ** 2 + 0.25) ** -0.5\n") == pytest.approx((0.0, 2.0))
    assert power((0.25, 4.0), -0.5) == pytest.approx((0.5, 2.0))
    assert power((-1.0, 4.0), -2) is None
    d = "d = torch.distributions.Categorical(logits=x)\n"
    assert bound(d + "d.probs[:, 1:]\n") == (0.0, 1.0)
    assert bound("d = make(x)\nd.probs\n") is None
    source = (
        "class C:\n    def __init__(self, s=0.5, t=None):\n        self.s = s\n"
        "        self.k = 2\n        self.t = t\n"
        "        self.m = t.m if hasattr(t, 'm') else 1e-10\n"
        "    def set(self):\n        self.k = 3\n"
        "    def f(self, x):\n        return self.s, self.k, self.t\n"
    )
    module = cst.parse_module(source)
    names = NameResolver(module)
    cls = module.body[0]
    names.push("class", cls)
    names.push("function", cls.body.body[-1])
    found = Magnitudes(names, ())
    attr = lambda a: found.bound(cst.Attribute(cst.Name("self"), cst.Name(a)))  # noqa: E731
    assert (attr("s"), attr("k"), attr("t"), attr("u")) == ((0.5, 0.5), (2.0, 3.0), None, None)
    assert attr("m") == (1e-10, 1e-10)  # a config's default where it lacks the field
    assert found.limit(cst.Attribute(cst.Name("self"), cst.Name("m"))) == 1e-10
    assert found.limit(cst.Attribute(cst.Name("self"), cst.Name("k"))) is None
