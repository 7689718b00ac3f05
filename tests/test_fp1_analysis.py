"""The shared analyses behind the cast rules: dtype facts, dtype guards, receiver kinds, tensor
dtypes and the per-file cast facts, read at ``probe(...)`` calls inside real code."""

from __future__ import annotations

from typing import ClassVar

import libcst as cst
import pytest

from fp16lint.analysis.casts import CastFacts
from fp16lint.analysis.dtypes import DType, dtype_of, tensor_dtype
from fp16lint.analysis.guards import dtype_guard
from fp16lint.analysis.receivers import Kind, ReceiverTracker
from fp16lint.engine import lint_source
from fp16lint.findings import Severity
from fp16lint.rules.base import Rule


class _Probe(Rule):
    """Records, for each ``probe(x)`` call, what the analyses say about ``x``."""

    code = "FP990"
    name = "probe"
    severity = Severity.WARNING
    requires = (ReceiverTracker, CastFacts)
    summary = what = why = example = use_instead = "test"
    seen: ClassVar[list[dict]] = []

    def visit_Call(self, node: cst.Call) -> None:
        if not (isinstance(node.func, cst.Name) and node.func.value == "probe"):
            return
        expr = node.args[0].value
        names = self.ctx.names
        guard = dtype_guard(self.ctx.stack, names, expr)
        self.seen.append(
            {
                "kind": self.ctx.get(ReceiverTracker).kind_of(expr),
                "dtype": dtype_of(expr, names, strings=True),
                "tensor": tensor_dtype(expr, names),
                "guard": guard.known if guard is not None else None,
            }
        )


def probe(code: str, module_name: str = "m") -> dict:
    _Probe.seen = []
    summary = lint_source("m.py", code, [_Probe], module_name=module_name)
    assert [f.code for f in summary.findings] == []
    assert len(_Probe.seen) == 1, _Probe.seen
    return {**_Probe.seen[0], "facts": summary.facts}


# --- dtypes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "dtype", "maybe"),
    [
        ("import torch as th\nprobe(th.half)\n", DType.FP16, False),
        ("from torch import float16 as f16\nprobe(f16)\n", DType.FP16, False),
        ("import torch\nDTYPE = torch.float16\nprobe(DTYPE)\n", DType.FP16, False),
        ("probe('fp16')\n", DType.FP16, False),
        ("import torch\nprobe(torch.cuda.HalfTensor)\n", DType.FP16, False),
        (
            "import torch\n\ndef f(args):\n    d = torch.float32\n    if args.fp16:\n"
            "        d = torch.float16\n    probe(d)\n",
            DType.FP16,
            True,
        ),
        (
            "import torch\n\ndef f(args):\n    d = {'fp16': torch.float16, 'bf16': torch.bfloat16}"
            "[args.p]\n    probe(d)\n",
            DType.FP16,
            True,
        ),
        ("import torch\nprobe(torch.bfloat16)\n", DType.BF16, False),
    ],
)
def test_dtype_facts(code, dtype, maybe):
    fact = probe(code)["dtype"]
    assert fact is not None and (fact.dtype, fact.maybe) == (dtype, maybe)


def test_dtype_unknown_stays_unknown():
    assert probe("def f(d):\n    probe(d)\n")["dtype"] is None


def test_dtype_guard_pins_each_branch():
    code = "import torch\n\ndef f(x):\n    if x.dtype == torch.float16:\n        probe(x)\n"
    assert probe(code)["guard"] is DType.FP16
    code = "import torch\n\ndef f(x):\n    return probe(x) if x.dtype in (torch.float32,) else x\n"
    assert probe(code)["guard"] is DType.FP32
    code = "import torch\n\ndef f(x):\n    if x.dtype != torch.float16:\n        pass\n    else:\n        probe(x)\n"
    assert probe(code)["guard"] is DType.FP16


# --- receivers ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("import torch.nn as nn\nm = nn.Linear(2, 2)\nprobe(m)\n", Kind.MODULE),
        ("import torch.nn as nn\nclass A(nn.Module):\n    pass\nprobe(A().eval())\n", Kind.MODULE),
        ("import timm\nprobe(timm.create_model('x'))\n", Kind.MODULE),
        ("import torchvision\nprobe(torchvision.models.resnet18())\n", Kind.MODULE),
        ("import torch\nprobe(torch.hub.load('a', 'b'))\n", Kind.MODULE),
        (
            "from transformers import AutoModel\nprobe(AutoModel.from_pretrained('x'))\n",
            Kind.MODULE,
        ),
        (
            "from transformers import AutoTokenizer\nprobe(AutoTokenizer.from_pretrained('x'))\n",
            Kind.UNKNOWN,
        ),
        ("def f(model):\n    model.train()\n    probe(model)\n", Kind.MODULE),
        ("def f(model, x):\n    model.eval()\n    y = model(x)\n    probe(x)\n", Kind.TENSOR),
        (
            "from torch.utils.data import DataLoader\n\ndef f(ds):\n"
            "    for i, (x, y) in enumerate(DataLoader(ds)):\n        probe(y)\n",
            Kind.TENSOR,
        ),
        ("def f(m):\n    for p in m.parameters():\n        probe(p)\n", Kind.TENSOR),
        ("def f(m):\n    for name, sub in m.named_modules():\n        probe(sub)\n", Kind.MODULE),
        ("import torch\nx = torch.randn(2)\nprobe((x * 2 + 1)[0])\n", Kind.TENSOR),
        ("import torch\n\ndef f(x: torch.Tensor):\n    probe(x.detach().float())\n", Kind.TENSOR),
        (
            "import torch.nn as nn\n\ndef f(m):\n    if isinstance(m, nn.LayerNorm):\n        probe(m)\n",
            Kind.MODULE,
        ),
        (
            "import torch.nn as nn\nclass A(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.fc = nn.Linear(2, 2)\n"
            "    def f(self):\n        probe(self.fc)\n",
            Kind.MODULE,
        ),
        (
            "import copy\nimport torch.nn as nn\nprobe(copy.deepcopy(nn.Linear(1, 1)))\n",
            Kind.MODULE,
        ),
        # Unknown stays unknown: a parameter with no evidence, a dict, an optimizer.
        ("def f(thing):\n    probe(thing)\n", Kind.UNKNOWN),
        ("def f(opt):\n    opt.zero_grad()\n    probe(opt)\n", Kind.UNKNOWN),
        ("import torch\nprobe(torch.load('x'))\n", Kind.UNKNOWN),
        ("from torch.nn.utils.rnn import PackedSequence\nprobe(PackedSequence(1))\n", Kind.UNKNOWN),
        # Conflicting evidence.
        (
            "import torch\nimport torch.nn as nn\n\ndef f(a):\n    x = nn.Linear(1, 1) if a else torch.ones(1)\n    probe(x)\n",
            Kind.UNKNOWN,
        ),
    ],
)
def test_receiver_kinds(code, kind):
    assert probe(code)["kind"] is kind


# --- tensor dtypes --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "dtype"),
    [
        ("import torch\nx = torch.randn(2, 3)\nprobe(x)\n", DType.FP32),
        (
            "import torch\n\ndef f(d):\n    x = torch.randn(2)\n    x = x.to(d, non_blocking=True)\n    probe(x)\n",
            None,
        ),
        (
            "import torch\n\ndef f(device):\n    x = torch.ones(2, device=device)\n"
            "    x = x.to(device)\n    probe(x)\n",
            DType.FP32,
        ),
        ("import torch\nx = torch.randn(2).half().cuda()\nprobe(x)\n", DType.FP16),
        ("import torch\nprobe(torch.tensor([1, 2]))\n", None),
        ("import torch\nprobe(torch.tensor([0.5]))\n", DType.FP32),
        ("import torch\nprobe(torch.zeros(2, dtype=torch.bfloat16))\n", DType.BF16),
        (
            "import torch\n\ndef f(y):\n    x = torch.randn(2)\n    x = x.to(y)\n    probe(x)\n",
            None,
        ),
    ],
)
def test_tensor_dtypes(code, dtype):
    fact = probe(code)["tensor"]
    assert (fact.dtype if fact is not None else None) is dtype


# --- per-file facts ---------------------------------------------------------------------------
def test_cast_facts_shape():
    code = (
        "import torch\nfrom pkg.enc import Encoder\nimport torch.nn as nn\n\n"
        "class Local(nn.Module):\n    pass\n\n"
        "def build():\n    return Encoder()\n\n"
        "def main(args):\n    dtype = torch.float16 if args.fp16 else torch.float32\n"
        "    a = Encoder().to('cuda', torch.float16)\n    b = build()\n    b.to(dtype=dtype)\n"
        "    Local().half()\n    x = torch.ones(2).half()\n    probe(a)\n"
    )
    facts = probe(code, module_name="train")["facts"]
    casts = {c["ctor"]: c for c in facts["casts"]}
    assert set(casts) == {"pkg.enc.Encoder", "train.build", "train.Local"}
    assert casts["pkg.enc.Encoder"]["receiver"] == "unknown"
    assert casts["pkg.enc.Encoder"]["device"] == "cuda"
    assert casts["train.build"]["maybe"] is True and casts["train.build"]["method"] == "to"
    assert casts["train.Local"]["receiver"] == "module"
    assert all(c["dtype"] == "float16" and c["loader"] is None for c in facts["casts"])
    assert facts["classes"] == [
        {
            "name": "Local",
            "qualname": "train.Local",
            "bases": ["torch.nn.Module"],
            "module": True,
            "span": [5, 7, 5, 12],
        }
    ]


def test_rebinding_through_itself_keeps_the_kind():
    code = (
        "import torch\nimport torch.nn as nn\n\ndef f(device):\n    m = nn.Linear(2, 2)\n"
        "    m = m.to(device)\n    m = m.half()\n    x = torch.ones(2)\n    x = x * 2\n"
        "    probe(m)\n"
    )
    assert probe(code)["kind"] is Kind.MODULE
    code = "import torch\n\ndef f():\n    x = torch.ones(2)\n    x = x * 2\n    x = x.cuda()\n    probe(x)\n"
    assert probe(code)["kind"] is Kind.TENSOR
