"""The local dtype flow (``analysis.flow``): what each ``probe(expr)`` sees, snippet by snippet."""

from __future__ import annotations

import libcst as cst
import pytest

from fp16lint.analysis.flow import Dt, FlowTracker
from fp16lint.engine import lint_source
from fp16lint.findings import Severity
from fp16lint.rules.base import Rule

SEEN: list[Dt] = []


class _Probe(Rule):
    code = "FP000"
    name = "probe"
    severity = Severity.INFO
    requires = (FlowTracker,)

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == "probe":
            SEEN.append(self.ctx.get(FlowTracker).dtype(node.args[0].value))


def dtypes(code: str) -> list[Dt]:
    SEEN.clear()
    summary = lint_source(
        "example.py", "import torch\nimport torch.nn.functional as F\n" + code, [_Probe]
    )
    assert not summary.findings, summary.findings
    return list(SEEN)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "x = torch.randn(4, dtype=torch.float16)\nprobe(x)\nprobe(x * 2)\nprobe(x.exp())\n",
            [Dt.F16] * 3,
        ),
        (
            "x = y.half()\nprobe(x.float())\nprobe(x.to(torch.float32))\nprobe(x.double())\n",
            [Dt.WIDE] * 3,
        ),
        (
            "x = y.to(torch.float16)\nprobe(x.type(torch.float32))\nprobe(x.to('cuda'))\n",
            [Dt.WIDE, Dt.F16],
        ),
        (
            "probe(torch.zeros(3))\nprobe(torch.arange(4))\nprobe(torch.randn(2) > 0)\n",
            [Dt.WIDE, Dt.INT, Dt.INT],
        ),
        (
            "x = y.half()\nprobe(x.softmax(-1, dtype=torch.float32))\nprobe(x.sum(dtype=torch.int32))\n",
            [Dt.WIDE, Dt.INT],
        ),
        ("m = Net().half()\nprobe(m(x))\n", [Dt.F16]),
        (
            "x = y.half()\nd = x.dtype\nz = w.float()\nprobe(z.to(d))\nprobe(z.to(x.dtype))\n",
            [Dt.F16, Dt.F16],
        ),
        # branches: float16 on one branch only is may-be float16
        ("x = y\nif c:\n    x = y.half()\nprobe(x)\n", [Dt.MAYBE16]),
        # a dtype guard pins the name on each branch
        ("x = y.half()\nif x.dtype == torch.float16:\n    x = x.float()\nprobe(x)\n", [Dt.WIDE]),
        # fp16 autocast makes matmul outputs float16 again, even from float32 inputs
        (
            "with torch.autocast('cuda'):\n    probe(a.float() @ b.float())\n    probe(F.linear(a, b))\n",
            [Dt.F16, Dt.F16],
        ),
        ("with torch.autocast('cuda', dtype=torch.bfloat16):\n    probe(a @ b)\n", [Dt.UNKNOWN]),
        ("with torch.autocast('cuda', enabled=False):\n    probe(a.half() @ b.half())\n", [Dt.F16]),
        # unpacking a tuple, or a comprehension over a literal, element by element
        (
            "q, k = y.half(), z.float()\nprobe(q)\nprobe(k)\n"
            "a, b = [t.to(torch.float32) for t in (q, k)]\nprobe(a)\nprobe(b)\n"
            "c, d = (F.pad(t, (0, 1)) for t in (q, k))\nprobe(c)\nprobe(d)\n"
            "probe(F.one_hot(w, 3))\nu, s, vh = torch.linalg.svd(d)\nprobe(u)\n",
            [Dt.F16, Dt.WIDE, Dt.WIDE, Dt.WIDE, Dt.F16, Dt.WIDE, Dt.INT, Dt.WIDE],
        ),
        # unknown stays unknown; an upcast value meeting an unknown one stays wide
        (
            "probe(x)\nprobe(x.float() + eps)\nprobe(x.half() * mask)\n",
            [Dt.UNKNOWN, Dt.WIDE, Dt.UNKNOWN],
        ),
    ],
)
def test_module_level_flow(code, expected):
    assert dtypes(code) == expected


def test_method_inputs_are_activations():
    code = (
        "class Block(torch.nn.Module):\n"
        "    def forward(self, x, size: int, shape: tuple[int, int], mask: torch.Tensor):\n"
        "        h = self.proj(x)\n"
        "        q, k = h.chunk(2, -1)\n"
        "        probe(x); probe(h); probe(q); probe(mask); probe(size); probe(shape)\n"
        "        probe(self.scale); probe(helper(shape)); probe(helper(x)); probe(~mask)\n"
        "        probe(x.float() * self.scale)\n"
        "\n"
        "    @torch.amp.custom_fwd(device_type='cuda', cast_inputs=torch.float32)\n"
        "    def head(self, x):\n"
        "        probe(x)\n"
        "\n"
        "def free(x):\n"
        "    probe(x)\n"
    )
    assert dtypes(code) == [
        Dt.ACT, Dt.ACT, Dt.ACT, Dt.ACT, Dt.SCALAR, Dt.UNKNOWN,
        Dt.UNKNOWN, Dt.UNKNOWN, Dt.ACT, Dt.INT,
        Dt.WIDE,
        Dt.WIDE,
        Dt.UNKNOWN,
    ]  # fmt: skip
