"""FP106 legacy-half-tensor-type: ``torch.HalfTensor(...)``, ``.type(torch.cuda.HalfTensor)``."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.context import NodeEdit
from fp16lint.analysis.dtypes import LEGACY_TYPES, DType, string_value
from fp16lint.analysis.names import dotted
from fp16lint.findings import Applicability, Severity
from fp16lint.rules.base import Invalid, Rule

HALF_TYPES = frozenset(name for name, dtype in LEGACY_TYPES.items() if dtype is DType.FP16)


class LegacyHalfTensorType(Rule):
    code = "FP106"
    name = "legacy-half-tensor-type"
    severity = Severity.WARNING
    runtime_confirmable = "no"
    fix = Applicability.SAFE
    tokens = ("HalfTensor",)

    summary = "Legacy `torch.HalfTensor` types: use `dtype=torch.float16` and `.to()`."
    what = (
        "Finds the legacy half tensor types used to make or convert tensors: "
        "`torch.HalfTensor(...)`, `torch.cuda.HalfTensor(...)`, `.type(torch.HalfTensor)`, "
        '`.type("torch.cuda.HalfTensor")`, in any import spelling.'
    )
    why = (
        "The legacy constructors mix up sizes and data (`torch.HalfTensor(2, 3)` is an "
        "uninitialised 2x3 tensor, `torch.HalfTensor([2, 3])` holds the values 2 and 3) and "
        "tie the dtype to a device. `.type(...)` with a tensor type is the legacy conversion "
        "API; on a module it converts everything, integer buffers included "
        "(`num_batches_tracked` becomes float16 and stops counting at 2048), unlike "
        "`.to(torch.float16)`."
    )
    example = """\
buf = torch.cuda.HalfTensor(4, 8)
x = x.type(torch.HalfTensor)
"""
    use_instead = """\
buf = torch.empty(4, 8, dtype=torch.float16, device="cuda")
x = x.to(torch.float16)
"""
    fix_docs = (
        "Safe, for constructor calls whose arguments are integer literals (sizes) or one list "
        "or tuple literal (data): `torch.HalfTensor(2, 3)` → `torch.empty(2, 3, "
        "dtype=torch.float16)`, `torch.cuda.HalfTensor([1.0])` → `torch.tensor([1.0], "
        'dtype=torch.float16, device="cuda")`. `.type(...)` is reported without a fix: '
        "`.type()` also moves a tensor to the type's device and converts a module's integer "
        "buffers, so which `.to()` form keeps the behaviour depends on what the receiver is."
    )
    references = ("https://pytorch.org/docs/stable/tensors.html#data-types",)

    valid = (
        "import torch\nx = torch.empty(2, 3, dtype=torch.float16)\ny = x.to(torch.float16)\n",
        "import torch\nx = torch.ones(2)\ny = x.type(torch.float16)\nz = x.type()\n",
        # Another legacy type is not about float16.
        "import torch\nx = torch.FloatTensor(2, 3)\n",
        # A type check is not a construction.
        "import torch\n\ndef f(x):\n    return isinstance(x, torch.cuda.HalfTensor)\n",
    )
    invalid = (
        Invalid(
            "import torch\nbuf = torch.HalfTensor(2, 3)\n",
            (("FP106", 2),),
            fixed="import torch\nbuf = torch.empty(2, 3, dtype=torch.float16)\n",
        ),
        Invalid(
            "import torch as th\ndata = th.cuda.HalfTensor([1.0, 2.0])\nempty = th.HalfTensor()\n",
            (("FP106", 2), ("FP106", 3)),
            fixed="import torch as th\n"
            'data = th.tensor([1.0, 2.0], dtype=th.float16, device="cuda")\n'
            "empty = th.empty(0, dtype=th.float16)\n",
        ),
        # A size we cannot tell from data: reported, not fixed.
        Invalid(
            "import torch\nfrom torch.cuda import HalfTensor\n\ndef f(n):\n    return HalfTensor(n)\n",
            (("FP106", 5),),
        ),
        Invalid(
            "import torch\n\ndef f(x, model):\n    a = x.type(torch.cuda.HalfTensor)\n"
            "    model.type('torch.HalfTensor')\n    return a\n",
            (("FP106", 4), ("FP106", 5)),
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        qualname = self.ctx.names.qualname(node.func)
        if qualname in HALF_TYPES:
            self._constructor(node, qualname)
            return
        func = node.func
        if type(func) is cst.Attribute and func.attr.value == "type" and node.args:
            legacy = self._legacy_name(node.args[0].value)
            if legacy is not None:
                self.report(
                    node,
                    f"`.type({legacy})` is the legacy tensor-type API: it also moves the device "
                    "and converts a module's integer buffers.",
                    help="Use `.to(torch.float16)` (with the device you mean).",
                )

    def _legacy_name(self, arg: cst.BaseExpression) -> str | None:
        text = string_value(arg)
        if text is not None:
            return f'"{text}"' if text in HALF_TYPES else None
        qualname = self.ctx.names.qualname(arg)
        return qualname if qualname in HALF_TYPES else None

    def _constructor(self, node: cst.Call, qualname: str) -> None:
        cuda = qualname.startswith("torch.cuda.")
        edits = []
        torch_name = self._torch_name(node.func)
        replacement = self._replacement(node, torch_name, cuda) if torch_name else None
        if replacement is not None:
            edits = [NodeEdit(node, replacement)]
        new = "torch.empty(..., dtype=torch.float16" + (', device="cuda")' if cuda else ")")
        self.report(
            node,
            f"`{qualname}(...)` is a legacy constructor that mixes up sizes and data.",
            help=f"Use `{new}` for sizes or `torch.tensor(data, dtype=torch.float16)` for values.",
            edits=edits,
            fix_message="Use `torch.empty` / `torch.tensor` with `dtype=torch.float16`",
        )

    def _torch_name(self, func: cst.BaseExpression) -> str | None:
        """The file's name for ``torch``: the head of ``th.cuda.HalfTensor``, or an import."""
        base = func
        while type(base) is cst.Attribute:
            base = base.value
            if self.ctx.names.qualname(base) == "torch":
                return dotted(base)
        return self.ctx.names.local_name_for("torch")

    def _replacement(self, node: cst.Call, torch_name: str, cuda: bool) -> str | None:
        args = node.args
        if any(a.keyword is not None or a.star for a in args):
            return None
        tail = f"dtype={torch_name}.float16" + (', device="cuda"' if cuda else "")
        if not args:
            return f"{torch_name}.empty(0, {tail})"
        if all(type(a.value) is cst.Integer for a in args):
            sizes = ", ".join(self.ctx.code(a.value) for a in args)
            return f"{torch_name}.empty({sizes}, {tail})"
        if len(args) == 1 and type(args[0].value) in (cst.List, cst.Tuple):
            return f"{torch_name}.tensor({self.ctx.code(args[0].value)}, {tail})"
        return None
