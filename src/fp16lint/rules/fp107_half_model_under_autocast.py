"""FP107 half-model-under-autocast: a model cast to fp16 and also run under fp16 autocast or
stepped with a GradScaler."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.casts import short_code
from fp16lint.analysis.dtypes import when_maybe
from fp16lint.analysis.receivers import ReceiverTracker
from fp16lint.analysis.training import Frame, TrainingTracker
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

_WHY_AUTOCAST = (
    "autocast expects float32 weights (it runs matmuls in float16 and keeps softmax, norms and "
    "losses in float32), so float16 weights leave no float32 master copy"
)


class HalfModelUnderAutocast(Rule):
    code = "FP107"
    name = "half-model-under-autocast"
    severity = Severity.WARNING
    tokens = ("autocast", "GradScaler")
    requires = (ReceiverTracker, AutocastTracker, TrainingTracker)

    summary = "A model cast to float16 is also run under fp16 autocast or a GradScaler."
    what = (
        "Finds a model cast to float16 (`.half()`, `.to(torch.float16)`, any spelling) in a "
        "function that also calls it inside an fp16 autocast region, casts it inside one, or "
        "steps the optimizer over its parameters with a GradScaler (`scaler.step(optimizer)`, "
        "`scaler.unscale_(optimizer)`). Reported at the cast, with the autocast call or the "
        "step as a related location."
    )
    why = (
        "Autocast is mixed precision: the weights stay float32 and autocast casts per op, "
        "float16 for matmuls and convolutions, float32 for softmax, norms and losses. A model "
        "already cast to float16 has no float32 weights left: autocast's float32 ops only see "
        "upcast float16 values, training updates float16 weights directly, and "
        '`GradScaler` refuses its gradients with "Attempting to unscale FP16 gradients". '
        "Casting is the pure-fp16 way, autocast the mixed way; use one."
    )
    example = """\
model = Net().cuda().half()
with torch.autocast("cuda", dtype=torch.float16):
    loss = model(x).sum()
"""
    use_instead = """\
model = Net().cuda()
with torch.autocast("cuda", dtype=torch.float16):
    loss = model(x).sum()
"""
    references = ("https://pytorch.org/docs/stable/amp.html",)
    runtime_confirmable = "yes: the dtype inventory and GradScaler's error"

    valid = (
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).cuda()\n"
        "with torch.autocast('cuda', dtype=torch.float16):\n    y = model(torch.randn(1, 2))\n",
        # bf16 autocast region.
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).half()\n"
        "with torch.autocast('cuda', dtype=torch.bfloat16):\n    y = model(torch.randn(1, 2))\n",
        # Autocast disabled.
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).half()\n"
        "with torch.autocast('cuda', enabled=False):\n    y = model(torch.randn(1, 2))\n",
        # Upcast back before the autocast use.
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).half()\nmodel = model.float()\n"
        "with torch.autocast('cuda'):\n    y = model(torch.randn(1, 2))\n",
        # A GradScaler stepping an optimizer over another (fp32) model.
        "import torch\nimport torch.nn as nn\n\ndef train(x):\n    teacher = nn.Linear(2, 2).half()\n"
        "    student = nn.Linear(2, 2)\n    opt = torch.optim.SGD(student.parameters(), lr=0.1)\n"
        "    scaler = torch.amp.GradScaler('cuda')\n    scaler.step(opt)\n",
    )
    invalid = (
        Invalid(
            "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).cuda().half()\n"
            "with torch.autocast('cuda', dtype=torch.float16):\n    y = model(torch.randn(1, 2))\n",
            (("FP107", 3),),
        ),
        # Deprecated spelling, aliases, the cast on its own line; called twice: one finding.
        Invalid(
            "import torch as th\nfrom torch.cuda.amp import autocast\nfrom torch import nn\n\n"
            "def evaluate(batches):\n    net = nn.Sequential(nn.Linear(2, 2))\n    net.to(th.half)\n"
            "    for x in batches:\n        with autocast():\n            a = net(x)\n"
            "            b = net.forward(x)\n",
            (("FP107", 7),),
        ),
        # Stepped with a GradScaler.
        Invalid(
            "import torch\nimport torch.nn as nn\n\ndef train(loader):\n"
            "    model = nn.Linear(4, 2).cuda().half()\n"
            "    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
            "    scaler = torch.amp.GradScaler('cuda')\n    for x, y in loader:\n"
            "        loss = (model(x) - y).pow(2).mean()\n        scaler.scale(loss).backward()\n"
            "        scaler.step(optimizer)\n        scaler.update()\n",
            (("FP107", 5),),
        ),
        # Cast inside the autocast region.
        Invalid(
            "import torch\nimport torch.nn as nn\n\ndef f(x):\n    with torch.autocast('cuda'):\n"
            "        m = nn.Linear(2, 2).half()\n        return x\n",
            (("FP107", 6),),
        ),
    )

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._check(self.ctx.get(TrainingTracker).frame)

    def leave_Module(self, node: cst.Module) -> None:
        self._check(self.ctx.get(TrainingTracker).frame)

    def _check(self, frame: Frame) -> None:
        for cast in frame.casts:
            if cast.how != "cast":
                continue
            name = f"`{cast.key}`" if cast.key else "the model"
            when = when_maybe(cast.dtype)
            uses = [(c, r) for m, c, r in frame.autocast_calls if m.node is cast.node]
            steps = [c for m, c in frame.scaler_steps if m.node is cast.node]
            if cast.under_autocast:
                message = (
                    f"{name} is cast to float16{when} inside an fp16 autocast region: "
                    f"{_WHY_AUTOCAST}; keep the model in float32 and let autocast cast per op."
                )
                related = []
            elif uses:
                call = uses[0][0]
                message = (
                    f"{name} is cast to float16{when} here and run under fp16 autocast "
                    f"(`{short_code(self.ctx, call, 40)}`): {_WHY_AUTOCAST}; drop the cast "
                    "and keep autocast."
                )
                related = [(self.ctx.path, call, "run under fp16 autocast here")]
            elif steps:
                message = (
                    f"{name} is cast to float16{when} here and its optimizer is stepped by a "
                    f"GradScaler (`{short_code(self.ctx, steps[0], 40)}`), which raises "
                    '"Attempting to unscale FP16 gradients"; keep the model in float32 and run '
                    "the forward pass under `torch.autocast`."
                )
                related = [(self.ctx.path, steps[0], "GradScaler step")]
            else:
                continue
            self.report(cast.node, message, related=related)
