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
        # torch.where makes the values it picks, not its condition's booleans
        (
            "x = y.half()\nprobe(torch.where(x > 0, x, 0.0))\n"
            "probe(torch.where(m < 1, torch.full((), 0.0, dtype=x.dtype), x))\nprobe(torch.where(x > 0))\n",
            [Dt.F16, Dt.F16, Dt.INT],
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


# Under fp16 autocast (issue 17): float16 ops outside a region make AC16, float32-list ops AC32;
# inside a CUDA region, the float32 list's outputs are float32.
_NET = (
    "class Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.proj = torch.nn.Linear(4, 4)\n        self.norm = torch.nn.LayerNorm(4)\n\n"
    "    def forward(self, x):\n{body}"
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "        h = self.proj(x)\n        probe(h)\n        probe(torch.sigmoid(h) + 1e-8)\n"
            "        probe(h.softmax(-1))\n        probe(self.norm(h))\n        probe(h ** 2)\n"
            "        probe(h.float() @ h.float())\n        probe(h.argmax(-1))\n"
            "        probe(h + torch.softmax(h, -1))\n        probe(h + x)\n",
            [Dt.AC16, Dt.AC16, Dt.AC32, Dt.AC32, Dt.AC32, Dt.AC16, Dt.INT, Dt.AC32, Dt.ACT],
        ),
        (
            "        q, k = self.proj(x).chunk(2, -1)\n        probe(q)\n"
            "        with torch.autocast('cuda', dtype=torch.float16):\n"
            "            h = self.proj(x)\n            probe(h)\n            probe(h.sum(-1))\n"
            "            probe(torch.log(h.softmax(-1) + 1e-8))\n"
            "        with torch.autocast('cpu', dtype=torch.float16):\n"
            "            probe(torch.softmax(x @ x, -1))\n"
            "        with torch.autocast('cuda', enabled=False):\n"
            "            probe(x.float() @ x.float())\n",
            [Dt.AC16, Dt.F16, Dt.WIDE, Dt.WIDE, Dt.F16, Dt.WIDE],
        ),
    ],
)
def test_values_float16_or_float32_under_autocast(body, expected):
    assert dtypes(_NET.format(body=body)) == expected


def test_a_free_function_input_through_a_float32_list_op():
    code = "def f(x):\n    probe(x)\n    probe(F.softmax(x, -1))\n    probe(torch.matmul(x, x))\n"
    assert dtypes(code) == [Dt.UNKNOWN, Dt.AC32, Dt.AC16]


def test_calling_the_module_itself_is_its_output_layer():
    """``self(batch)`` in a LightningModule step runs ``forward``: under fp16 autocast its
    output layer (a Linear, a conv) gives float16, as ``model(x)`` in a region does."""
    body = "        probe(self(x))\n        probe(self.helper(x))\n"
    assert dtypes(_NET.format(body=body)) == [Dt.AC16, Dt.ACT]


def test_custom_fwd_with_cast_inputs_runs_with_autocast_off():
    body = (
        "        return x\n\n    @torch.amp.custom_fwd(device_type='cuda', cast_inputs=torch.float32)\n"
        "    def head(self, x):\n        probe(x @ x)\n        probe(self.proj(x).sum())\n"
    )
    assert dtypes(_NET.format(body=body)) == [Dt.WIDE, Dt.UNKNOWN]


def test_a_factory_dtype_taken_from_another_tensor_follows_it():
    """``torch.eye(n, dtype=q.dtype)`` has q's dtype: float16 when q is, unknown when q is
    unknown (not the default float32, which would hide ``solve(eye - q, ...)`` on fp16 q)."""
    code = (
        "h = torch.randn(4, dtype=torch.float16)\n"
        "probe(torch.eye(4, dtype=h.dtype))\n"
        "probe(torch.eye(4, dtype=q.dtype))\n"
        "probe(torch.eye(4, dtype=q.dtype) - q)\n"
        "dt = h.dtype\nprobe(torch.zeros(4, dtype=dt))\n"
        "probe(torch.eye(4))\n"
    )
    assert dtypes(code) == [Dt.F16, Dt.UNKNOWN, Dt.UNKNOWN, Dt.F16, Dt.WIDE]
