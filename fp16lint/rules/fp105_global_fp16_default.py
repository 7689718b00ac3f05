"""FP105 global-fp16-default: ``torch.set_default_dtype(torch.float16)`` and its legacy forms."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.dtypes import dtype_of, when_maybe
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

_SETTERS = {
    "torch.set_default_dtype": False,  # takes a dtype
    "torch.set_default_tensor_type": True,  # takes a tensor type or its name (deprecated)
}


class GlobalFp16Default(Rule):
    code = "FP105"
    name = "global-fp16-default"
    severity = Severity.WARNING
    runtime_confirmable = "no"
    tokens = ("set_default_",)

    summary = "float16 made the default dtype: every new tensor and layer is pure fp16."
    what = (
        "Finds `torch.set_default_dtype(torch.float16)` and "
        "`torch.set_default_tensor_type(torch.cuda.HalfTensor)` (also `torch.HalfTensor` and the "
        'string form `"torch.cuda.HalfTensor"`), with the dtype through aliases and constants, '
        'and a dtype chosen at run time ("when mixed precision is fp16").'
    )
    why = (
        "After it, every floating-point tensor created without an explicit dtype — "
        "`torch.randn`, `torch.tensor([0.5])`, the parameters of every new `nn.Linear` or "
        "`nn.LayerNorm` — is float16, in library code as well as yours: the whole program runs "
        "in pure fp16, including code that relies on float32 for statistics, losses and "
        "optimizer state. `set_default_tensor_type` is deprecated as well (since torch 2.1)."
    )
    example = """\
torch.set_default_dtype(torch.float16)
model = Net()
"""
    use_instead = """\
model = Net()
with torch.autocast(device_type="cuda", dtype=torch.float16):
    out = model(x)
"""
    references = (
        "https://pytorch.org/docs/stable/generated/torch.set_default_dtype.html",
        "https://pytorch.org/docs/stable/generated/torch.set_default_tensor_type.html",
    )

    valid = (
        "import torch\ntorch.set_default_dtype(torch.float32)\n",
        "import torch\ntorch.set_default_dtype(torch.bfloat16)\n",
        "import torch\ntorch.set_default_tensor_type('torch.cuda.FloatTensor')\n",
        "import torch\ntorch.set_default_device('cuda')\n",
        # Restoring a saved default: unknown dtype.
        "import torch\n\ndef f(previous):\n    torch.set_default_dtype(previous)\n",
    )
    invalid = (
        Invalid("import torch\ntorch.set_default_dtype(torch.float16)\n", (("FP105", 2),)),
        Invalid(
            "import torch as th\nfrom torch import set_default_tensor_type\n"
            "set_default_tensor_type(th.cuda.HalfTensor)\nth.set_default_tensor_type(\n"
            "    'torch.HalfTensor'\n)\n",
            (("FP105", 3), ("FP105", 4)),
        ),
        Invalid(
            "import torch\nDTYPE = torch.half\ntorch.set_default_dtype(DTYPE)\n",
            (("FP105", 3),),
        ),
        Invalid(
            "import torch\n\ndef setup(args):\n"
            "    dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16}[args.precision]\n"
            "    torch.set_default_dtype(dtype)\n",
            (("FP105", 5),),
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        qualname = self.ctx.names.qualname(node.func)
        if qualname not in _SETTERS or not node.args:
            return
        fact = dtype_of(node.args[0].value, self.ctx.names, strings=_SETTERS[qualname])
        if fact is None or not fact.is_fp16:
            return
        self.report(
            node,
            f"`{qualname}` makes float16 the default{when_maybe(fact)}: the whole program runs "
            "in pure fp16.",
            help="Keep the float32 default and use `torch.autocast` for float16 compute.",
        )
