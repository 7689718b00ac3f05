"""FP102 discarded-tensor-conversion: ``x.half()`` as a statement does nothing to a tensor."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.casts import cast_of, short_code
from fp16lint.analysis.context import NodeEdit
from fp16lint.analysis.receivers import PARAMETER_METHODS, Kind, ReceiverTracker
from fp16lint.findings import Applicability, Severity
from fp16lint.rules.base import Invalid, Rule


class DiscardedTensorConversion(Rule):
    code = "FP102"
    name = "discarded-tensor-conversion"
    severity = Severity.ERROR
    runtime_confirmable = "no"
    fix = Applicability.UNSAFE
    tokens = ("half", "float", "double", "to(", "cuda", "cpu", "type(")
    requires = (ReceiverTracker,)

    summary = "A tensor conversion used as a statement: its result is thrown away."
    what = (
        "Finds `x.half()`, `x.to(torch.float16)`, `x.float()`, `x.bfloat16()`, `x.to(device)`, "
        "`x.cuda()`, `x.cpu()` and `x.type(...)` written as a whole statement on a value known "
        "to be a tensor (a tensor factory, tensor arithmetic, a parameter from "
        "`.parameters()`, a registered buffer, a value fed into a model, a `torch.Tensor` "
        "annotation)."
    )
    why = (
        "Tensor conversions return a new tensor and leave the original alone, so the statement "
        "changes nothing: the code goes on with the old dtype or device. Modules are different: "
        "`model.half()` converts in place, so it is never reported, and neither is a value "
        "whose kind the code does not show."
    )
    example = """\
x = torch.randn(8, 16)
x.half()
"""
    use_instead = """\
x = torch.randn(8, 16)
x = x.half()
"""
    fix_docs = (
        "Unsafe, for a plain name: assigns the result back (`x = x.half()`). The rest of the "
        "function then sees the converted tensor, which is what the statement meant but may "
        "change behaviour. Not offered for a parameter of a loop over `.parameters()`, where "
        "rebinding the loop variable changes nothing either (use `p.data = p.data.half()`)."
    )
    references = ("https://pytorch.org/docs/stable/generated/torch.Tensor.to.html",)

    valid = (
        "import torch\nx = torch.randn(2)\nx = x.half()\n",
        # A module converts in place.
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2)\nmodel.half()\nmodel.cuda()\n",
        "import torch\nimport torch.nn as nn\n\ndef f(half):\n    m = nn.Linear(2, 2)\n"
        "    m.half() if half else m.float()\n",
        # Unknown receiver: a BatchEncoding's .to() is in place.
        "from transformers import AutoTokenizer\ntok = AutoTokenizer.from_pretrained('x')\n"
        "batch = tok('hi', return_tensors='pt')\nbatch.to('cuda')\n",
        # Used, not discarded.
        "import torch\nx = torch.ones(3)\nprint(x.half())\ny = [x.cuda()]\n",
        # .type() with no argument returns a string.
        "import torch\nx = torch.ones(3)\nx.type()\n",
    )
    invalid = (
        Invalid(
            "import torch\nx = torch.randn(8, 16)\nx.half()\n",
            (("FP102", 3),),
            fixed="import torch\nx = torch.randn(8, 16)\nx = x.half()\n",
        ),
        Invalid(
            "import torch as th\n\ndef prepare(x: th.Tensor, device):\n    x.to(device)\n"
            "    x.to(th.float16)\n    return x\n",
            (("FP102", 4), ("FP102", 5)),
            fixed="import torch as th\n\ndef prepare(x: th.Tensor, device):\n    x = x.to(device)\n"
            "    x = x.to(th.float16)\n    return x\n",
        ),
        # Loop over a DataLoader; a value fed into a model; a parameter (no fix).
        Invalid(
            "import torch\nfrom torch.utils.data import DataLoader\n\n"
            "def run(model, dataset):\n    loader = DataLoader(dataset)\n"
            "    for images, labels in loader:\n        images.cuda()\n        out = model(images)\n"
            "    for p in model.parameters():\n        p.float()\n",
            (("FP102", 7), ("FP102", 10)),
            fixed="import torch\nfrom torch.utils.data import DataLoader\n\n"
            "def run(model, dataset):\n    loader = DataLoader(dataset)\n"
            "    for images, labels in loader:\n        images = images.cuda()\n"
            "        out = model(images)\n    for p in model.parameters():\n        p.float()\n",
        ),
        # A buffer of a module; tensor arithmetic.
        Invalid(
            "import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.register_buffer('mask', torch.ones(4))\n\n"
            "    def fp16(self, a):\n        self.mask.half()\n        (torch.ones(2) * a).bfloat16()\n",
            (("FP102", 10), ("FP102", 11)),
        ),
        # A value fed into a module called through self.
        Invalid(
            "import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.proj = nn.Linear(4, 4)\n\n"
            "    def forward(self, x):\n        x.type(torch.float16)\n        return self.proj(x)\n",
            (("FP102", 10),),
            fixed="import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.proj = nn.Linear(4, 4)\n\n"
            "    def forward(self, x):\n        x = x.type(torch.float16)\n        return self.proj(x)\n",
        ),
    )

    def visit_Expr(self, node: cst.Expr) -> None:
        call = node.value
        if type(call) is not cst.Call:
            return
        site = cast_of(call, self.ctx.names)
        if site is None or self.ctx.get(ReceiverTracker).kind_of(site.receiver) is not Kind.TENSOR:
            return
        receiver = site.receiver
        text = short_code(self.ctx, call)
        edits = []
        if type(receiver) is cst.Name and not self._is_parameter_loop_target(receiver):
            edits = [NodeEdit(node, f"{receiver.value} = {self.ctx.code(call)}")]
            advice = f"Assign it: `{receiver.value} = {text}`."
        else:
            advice = "Assign the result where it is needed."
        self.report(
            call,
            f"`{text}` returns a new tensor that is thrown away: "
            f"`{short_code(self.ctx, receiver)}` keeps its dtype and device.",
            help=advice,
            edits=edits,
            fix_message="Assign the converted tensor back",
        )

    def _is_parameter_loop_target(self, name: cst.Name) -> bool:
        for binding in self.ctx.names.bindings(name.value) or ():
            loop = binding.node
            if type(loop) is cst.For and type(loop.iter) is cst.Call:
                func = loop.iter.func
                if type(func) is cst.Attribute and func.attr.value in PARAMETER_METHODS:
                    return True
        return False
