"""FP109 fp16-optimizer-epsilon: Adam-style ``eps`` that is 0 in float16, over fp16 weights."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.casts import short_code
from fp16lint.analysis.constants import FP16_ZERO_UP_TO, ConstantTracker
from fp16lint.analysis.dtypes import when_maybe
from fp16lint.analysis.receivers import ReceiverTracker
from fp16lint.analysis.training import TrainingTracker
from fp16lint.data.optimizers import EPS_OPTIMIZERS
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule


class Fp16OptimizerEpsilon(Rule):
    code = "FP109"
    name = "fp16-optimizer-epsilon"
    severity = Severity.ERROR
    tokens = ("optim",)
    requires = (ReceiverTracker, AutocastTracker, TrainingTracker, ConstantTracker)

    summary = "An optimizer `eps` that is 0 in float16 over float16 parameters: NaN updates."
    what = (
        "Finds `Adam`, `AdamW`, `Adamax`, `NAdam`, `RAdam`, `RMSprop` and `Adagrad` built over "
        "the parameters of a model cast to (or loaded in) float16, whose `eps` rounds to 0 in "
        "float16 — any value up to 2.98e-8, including the defaults 1e-8 (Adagrad: 1e-10) when "
        "`eps` is not given. Optimizers built with `fused=True` (CUDA kernels that "
        "compute the update in another way) are not checked."
    )
    why = (
        "With float16 parameters the optimizer state is float16 too, and `eps` is added to "
        "`sqrt(v)` in float16, where 1e-8 is 0. Wherever a gradient is 0 (or so small that its "
        "square underflows) the denominator is 0 and the update is 0/0 = NaN or x/0 = inf, "
        "which then spreads through the model."
    )
    example = """\
model = Net().cuda().half()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
"""
    use_instead = """\
model = Net().cuda()  # float32 master weights, autocast for float16 compute
optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
"""
    references = ("https://pytorch.org/docs/stable/generated/torch.optim.Adam.html",)
    runtime_confirmable = "no"

    valid = (
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2)\n"
        "opt = torch.optim.Adam(model.parameters())\n",
        # An eps that float16 can hold.
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).half()\n"
        "opt = torch.optim.AdamW(model.parameters(), eps=1e-4)\n",
        # SGD has no eps.
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).half()\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n",
        # bf16 parameters.
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).to(torch.bfloat16)\n"
        "opt = torch.optim.Adam(model.parameters())\n",
        # eps from the command line: unknown.
        "import torch\nimport torch.nn as nn\n\ndef f(args):\n    m = nn.Linear(2, 2).half()\n"
        "    return torch.optim.Adam(m.parameters(), eps=args.adam_epsilon)\n",
    )
    invalid = (
        Invalid(
            "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).half()\n"
            "opt = torch.optim.Adam(model.parameters(), lr=1e-3)\n",
            (("FP109", 4),),
        ),
        # Positional eps; a constant.
        Invalid(
            "import torch\nfrom torch import nn, optim\nEPS = 1e-10\n"
            "net = nn.Sequential(nn.Linear(2, 2)).to('cuda', torch.float16)\n"
            "a = optim.RMSprop(net.parameters(), 1e-3, 0.99, EPS)\n"
            "b = optim.Adagrad(\n    net.parameters(),\n)\n",
            (("FP109", 5), ("FP109", 6)),
        ),
        # May-be fp16.
        Invalid(
            "import torch\n\ndef main(args, model):\n    model.train()\n"
            "    dtype = torch.float16 if args.fp16 else torch.float32\n    model.to(dtype)\n"
            "    return torch.optim.AdamW(model.parameters(), lr=args.lr, eps=1e-8)\n",
            (("FP109", 7),),
        ),
        # Loaded in fp16.
        Invalid(
            "import torch\nfrom transformers import AutoModel\n"
            "m = AutoModel.from_pretrained('x', torch_dtype='float16')\n"
            "opt = torch.optim.NAdam(m.parameters())\n",
            (("FP109", 4),),
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        spec = EPS_OPTIMIZERS.get(self.ctx.names.qualname(node.func) or "")
        if spec is None:
            return
        models = self.ctx.get(TrainingTracker).optimizer_models(node)
        if not models or self._fused(node):
            return
        eps = self._eps(node, spec.position)
        if eps is None:
            text, value = f"the default eps={spec.default:g}", spec.default
        else:
            constant = self.ctx.get(ConstantTracker).value_of(eps)
            if constant is None:
                return
            text, value = f"eps={constant.shown}", constant.value
        if not 0 < value <= FP16_ZERO_UP_TO:
            return
        model = models[0]
        name = f"`{model.key}`" if model.key else "the model"
        self.report(
            node,
            f"`{short_code(self.ctx, node.func)}` over float16 {name}{when_maybe(model.dtype)} "
            f"uses {text}, which is 0 in float16: NaN or inf updates.",
            help="Keep float32 master weights (autocast) or pass an eps of at least 1e-4.",
            related=[(self.ctx.path, model.node, f"{model.spelling} here")],
        )

    @staticmethod
    def _fused(call: cst.Call) -> bool:
        """``fused=True``: CUDA kernels this rule has not checked, so not reported."""
        return any(
            a.keyword is not None
            and a.keyword.value == "fused"
            and getattr(a.value, "value", "") == "True"
            for a in call.args
        )

    @staticmethod
    def _eps(call: cst.Call, position: int) -> cst.BaseExpression | None:
        positional = [a for a in call.args if a.keyword is None and not a.star]
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == "eps":
                return arg.value
        return positional[position].value if len(positional) > position else None
