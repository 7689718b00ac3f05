"""The constant evaluator (analysis.constants) on module-level expressions."""

from __future__ import annotations

import math

import libcst as cst
import pytest

from fp16lint.analysis.constants import Constant, ConstantEvaluator
from fp16lint.analysis.dtypes import DType
from fp16lint.analysis.names import NameResolver


def evaluate(source: str) -> Constant | None:
    """The value of the last line of ``source`` (an expression statement)."""
    module = cst.parse_module(source)
    last = module.body[-1].body[0]
    assert isinstance(last, cst.Expr)
    return ConstantEvaluator(module, NameResolver(module)).value_of(last.value)


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("-1e9\n", -1e9),
        ("1_000_000\n", 1e6),
        ("0x10\n", 16.0),
        ("-1e4 * 10\n", -1e5),
        ("10 ** 10\n", 1e10),
        ("+(2.0 / 4)\n", 0.5),
        ("float('1e30')\n", 1e30),
        ("float(' -inf ')\n", -math.inf),
        ("import math\n-math.inf\n", -math.inf),
        ("import numpy as np\nnp.inf\n", math.inf),
        ("NEG = -1e9\nNEG\n", -1e9),
        ("BIG = 1e4\nNEG = -BIG * 10\nNEG\n", -1e5),
        ("import sys\n-sys.float_info.max\n", -1.7976931348623157e308),
        ("import sys\nsys.float_info.min\n", 2.2250738585072014e-308),
    ],
)
def test_values(source, value):
    found = evaluate(source)
    assert found is not None and found.value == value


@pytest.mark.parametrize(
    ("source", "dtype", "value"),
    [
        ("import torch\ntorch.finfo(torch.float32).min\n", DType.FP32, -3.4028234663852886e38),
        ("import torch as th\nth.finfo(th.float).max\n", DType.FP32, 3.4028234663852886e38),
        ("from torch import finfo, float32\nfinfo(float32).min\n", DType.FP32, None),
        ("import torch\nDT = torch.float32\ntorch.finfo(DT).min\n", DType.FP32, None),
        ("import torch\nfi = torch.finfo(torch.float32)\nfi.min\n", DType.FP32, None),
        ("import numpy as np\nnp.finfo(np.float32).min\n", DType.FP32, None),
        ("import numpy as np\nnp.finfo(float).max\n", DType.FP64, None),
        ("import torch\ntorch.finfo(torch.bfloat16).min\n", DType.BF16, None),
        ("import torch\ntorch.finfo(torch.float64).min\n", DType.FP64, None),
        ("import sys\nsys.float_info.max\n", DType.FP64, None),
    ],
)
def test_dtype_limits(source, dtype, value):
    found = evaluate(source)
    assert found is not None and found.limit is dtype
    if value is not None:
        assert found.value == value


def test_fp16_limits_are_values_not_limits():
    found = evaluate("import torch\ntorch.finfo(torch.float16).min - 100\n")
    assert found is not None and found.value == -65604.0 and found.limit is None
    tiny = evaluate("import torch\ntorch.finfo(torch.float32).tiny\n")
    assert tiny is not None and tiny.limit is None and tiny.underflows


@pytest.mark.parametrize(
    "source",
    [
        "x\n",  # unbound
        "import torch\ntorch.finfo(x.dtype).min\n",  # the tensor's own dtype
        "import torch\ndef f(dtype=torch.float32):\n    pass\ntorch.finfo(dtype).min\n",
        "V = -1e4\nV = -1e9\nV\n",  # bound twice to different values
        "a, b = -1e9, 0\na\n",  # unpacking is opaque
        "-1e9 if cond else -1e4\n",  # not a dtype test
        "float(s)\n",
        "1 / 0\n",
        "'-1e9'\n",
    ],
)
def test_unknown_stays_unknown(source):
    assert evaluate(source) is None


def test_dtype_guard_picks_the_branch_that_can_run_in_fp16():
    found = evaluate("import torch\n-1e9 if x.dtype == torch.float32 else -1e4\n")
    assert found is not None and found.value == -1e4
    found = evaluate("import torch\n-1e4 if x.dtype == torch.float16 else -1e9\n")
    assert found is not None and found.value == -1e4  # -1e9 only runs when not fp16
    found = evaluate("import torch\n-1e9 if x.dtype != torch.float32 else -1e4\n")
    assert found is not None and found.value == -1e9


def test_origin_names_each_binding():
    found = evaluate("EPS = 1e-15\nE = EPS\nE\n")
    assert found is not None and found.value == 1e-15
    assert [message for _, message in found.origin] == [
        "`E` is set to 1e-15 here.",
        "`EPS` is set to 1e-15 here.",
    ]


def test_integral_and_tensor_flags():
    assert evaluate("151675\n").integral
    assert not evaluate("151675.0\n").integral
    assert not evaluate("10 / 2\n").integral
    wrapped = evaluate("import torch\ntorch.tensor(-1e9)\n")
    assert wrapped is not None and wrapped.tensor and wrapped.value == -1e9
    assert evaluate("import torch\ntorch.tensor(-1e9, dtype=torch.long)\n") is None


def test_thresholds():
    assert evaluate("-65504.0\n").overflows_fill is False
    assert evaluate("-65505.0\n").overflows_fill is True
    assert evaluate("-65519.0\n").overflows is False
    assert evaluate("-65520.0\n").overflows is True
    assert evaluate("float('-inf')\n").overflows_fill is False
    assert evaluate("1e-8\n").underflows and not evaluate("1e-7\n").underflows
    assert not evaluate("-1e-12\n").underflows
