"""FP107 half-model-under-autocast: a model cast to fp16 and also run under fp16 autocast or
stepped with a GradScaler, in one function (per file) or across functions, methods and files
(the project pass, from ``analysis.cast_flow``)."""

from __future__ import annotations

from typing import Any

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.cast_flow import FACT, CastFlow
from fp16lint.analysis.casts import CastFacts, short_code
from fp16lint.analysis.dtypes import MAYBE_WORDING, when_maybe
from fp16lint.analysis.index import ModelFacts, index_of, short
from fp16lint.analysis.receivers import ReceiverTracker
from fp16lint.analysis.training import Frame, TrainingTracker
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

_DROP_CAST = (
    "Drop the cast and keep autocast: it expects float32 weights (it runs matmuls in float16 "
    "and keeps softmax, norms and losses in float32)."
)
_KEEP_FP32 = "Keep the model in float32 and run the forward pass under `torch.autocast`."
_WHY_SCALER = '"Attempting to unscale FP16 gradients"'
_HEADER = "import torch\nimport torch.nn as nn\n\n\n"
_NET = _HEADER + "class Net(nn.Module):\n    def forward(self, x):\n        return x\n\n\n"
# A builder in one file, and a training script in another that runs its result under autocast.
_BUILDER = {
    "models.py": _NET + "def build_half():\n    model = Net()\n    model.half()\n"
    "    return model\n\n\ndef build():\n    return Net().cuda()\n",
    "train.py": "import torch\nfrom models import build_half\n\n\ndef train(loader):\n"
    "    model = build_half()\n    opt = torch.optim.AdamW(model.parameters())\n"
    "    scaler = torch.amp.GradScaler('cuda')\n    for x in loader:\n"
    "        with torch.autocast('cuda', dtype=torch.float16):\n"
    "            loss = model(x).sum()\n        scaler.scale(loss).backward()\n"
    "        scaler.step(opt)\n",
}


class HalfModelUnderAutocast(Rule):
    code = "FP107"
    name = "half-model-under-autocast"
    severity = Severity.WARNING
    # The project part also needs the files that build, define and re-export models.
    tokens = (
        "autocast",
        "GradScaler",
        "half",
        "float16",
        "fp16",
        "HalfTensor",
        "class ",
        "import ",
    )
    requires = (ReceiverTracker, AutocastTracker, TrainingTracker, CastFacts, ModelFacts, CastFlow)

    summary = "A model cast to float16 is also run under fp16 autocast or a GradScaler."
    what = (
        "Finds a model cast to float16 (`.half()`, `.to(torch.float16)`, any spelling) in a "
        "function that also calls it inside an fp16 autocast region, casts it inside one, or "
        "steps the optimizer over its parameters with a GradScaler (`scaler.step(optimizer)`, "
        "`scaler.unscale_(optimizer)`), reported at the cast with the use as a related "
        "location. Also across functions and files, where the same model object flows: an "
        "attribute set in `__init__` (`self.model = Net().half()`) and used in another method, "
        "a module-level global used in a function, or the result of a function that returns a "
        "model cast to float16 (`def build(): return Net().half()`) in the caller, reported at "
        "the use with the cast as a related location. Across functions only an unconditional "
        "cast counts (not one under `if` or in a loop), and an attribute only when no method "
        "but `__init__` casts or assigns it. A project that casts a model for export in one "
        "script and trains the same class under autocast in another is not reported: two "
        "objects."
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
        # Another object of the same class: the teacher is fp16, the student runs under autocast.
        _NET + "class Distiller:\n    def __init__(self):\n        self.teacher = Net().half()\n"
        "        self.student = Net()\n\n    def step(self, x):\n"
        "        with torch.autocast('cuda'):\n            return self.student(x)\n",
        # Cast back to float32 before the autocast use, in __init__ or in the method.
        _NET + "class Runner:\n    def __init__(self):\n        self.model = Net().half()\n"
        "        self.model.float()\n\n    def run(self, x):\n"
        "        with torch.autocast('cuda'):\n            return self.model(x)\n",
        _NET + "model = Net().half()\n\n\ndef run(x):\n    model.float()\n"
        "    with torch.autocast('cuda'):\n        return model(x)\n",
        # A bf16 autocast region; a cast only under `if`.
        _NET + "model = Net().half()\n\n\ndef run(x):\n"
        "    with torch.autocast('cuda', dtype=torch.bfloat16):\n        return model(x)\n",
        _NET + "class Runner:\n    def __init__(self, fp16):\n        self.model = Net()\n"
        "        if fp16:\n            self.model.half()\n\n    def run(self, x):\n"
        "        with torch.autocast('cuda'):\n            return self.model(x)\n",
        # A method other than __init__ casts for export: the export-vs-train split in one class.
        _NET + "class Trainer:\n    def __init__(self):\n        self.model = Net()\n\n"
        "    def export(self, path):\n        self.model.half()\n"
        "        torch.save(self.model.state_dict(), path)\n\n    def train_step(self, x):\n"
        "        with torch.autocast('cuda'):\n            return self.model(x)\n",
        # The export-vs-train split across files: two objects of one class.
        {
            "models.py": _NET + "def build():\n    return Net()\n",
            "export.py": "import torch\nfrom models import build\n\n"
            "model = build().half()\ntorch.save(model.state_dict(), 'model.pt')\n",
            "train.py": "import torch\nfrom models import build\n\n\ndef train(x):\n"
            "    model = build()\n    with torch.autocast('cuda', dtype=torch.float16):\n"
            "        return model(x)\n",
        },
        # The builder's result cast back before use; builders that cast only when asked.
        {
            **_BUILDER,
            "train.py": "import torch\nfrom models import build_half\n\n\ndef train(x):\n"
            "    model = build_half().float()\n    with torch.autocast('cuda'):\n"
            "        return model(x)\n",
        },
        {
            "models.py": _NET + "def build(half=False):\n    model = Net()\n    if half:\n"
            "        model.half()\n    return model\n\n\ndef maybe_half(cuda):\n    model = Net()\n"
            "    if cuda:\n        return model.half()\n    return model\n",
            "train.py": "import torch\nfrom models import build, maybe_half\n\n\n"
            "def train(x):\n    model = build()\n    other = maybe_half(True)\n"
            "    with torch.autocast('cuda'):\n        return model(x) + other(x)\n",
        },
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
        # (a) an attribute cast in __init__, run under autocast in another method and its
        # optimizer stepped by a GradScaler in a third: at the uses.
        Invalid(
            _NET + "class Trainer:\n    def __init__(self):\n"
            "        self.model = Net().cuda().half()\n"
            "        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1)\n"
            "        self.scaler = torch.amp.GradScaler('cuda')\n\n"
            "    def forward_loss(self, x):\n"
            "        with torch.autocast('cuda', dtype=torch.float16):\n"
            "            return self.model(x).sum()\n\n    def update(self):\n"
            "        self.scaler.step(self.opt)\n",
            (("FP107", 18), ("FP107", 21)),
        ),
        # (b) a module-level global cast after the function that runs it is defined.
        Invalid(
            _NET + "def evaluate(batches):\n    for x in batches:\n"
            "        with torch.autocast('cuda'):\n            yield net.forward(x)\n\n\n"
            "if __name__ == '__main__':\n    net = Net()\n    net.to(torch.float16)\n",
            (("FP107", 13),),
        ),
        # (c) a builder in another file: the autocast use and the scaler step in one function,
        # one finding.
        Invalid(_BUILDER, (("FP107", "train.py", 11),)),
        # (c) in one file, through an attribute.
        Invalid(
            _NET + "def make():\n    return Net().half()\n\n\nclass Runner:\n"
            "    def __init__(self):\n        self.net = make()\n\n    def run(self, x):\n"
            "        with torch.autocast('cuda'):\n            return self.net(x)\n",
            (("FP107", 20),),
        ),
    )

    @classmethod
    def check_project(cls, project, report) -> None:
        index = index_of(project)
        returns = {
            name: (path, origin["cast"])
            for path, flow in project.facts(FACT)
            for name, origin in flow["returns"].items()
        }
        for path, flow in project.facts(FACT):
            for use in flow["uses"]:
                via = None
                if "cast" in use:
                    found = (path, use["cast"])
                else:
                    via = index.canonical(use["call"])
                    found = returns.get(via)
                if found is None:
                    continue
                cast_path, cast = found
                if not cast["module"] and not any(
                    index.is_module(t) for t in index.targets(cast["ctor"])
                ):
                    continue
                message, help_text = _flow_message(use, cast_path, cast, via)
                report.add(
                    cls,
                    path,
                    use["span"],
                    message,
                    related=[(cast_path, cast["span"], "cast to float16 here")],
                    help=help_text,
                )

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._check(self.ctx.get(TrainingTracker).frame)

    def leave_Module(self, node: cst.Module) -> None:
        self._check(self.ctx.get(TrainingTracker).frame)

    def _check(self, frame: Frame) -> None:
        for cast in frame.casts:
            if cast.how != "cast":
                continue
            name = f"`{cast.key}`" if cast.key else "The model"
            when = when_maybe(cast.dtype)
            uses = [(c, r) for m, c, r in frame.autocast_calls if m.node is cast.node]
            steps = [c for m, c in frame.scaler_steps if m.node is cast.node]
            if cast.under_autocast:
                message = (
                    f"{name} is cast to float16{when} inside an fp16 autocast region: no "
                    "float32 master weights."
                )
                help_text = _DROP_CAST
                related = []
            elif uses:
                call = uses[0][0]
                message = (
                    f"{name} is cast to float16{when} and run under fp16 autocast: no float32 "
                    "master weights."
                )
                help_text = _DROP_CAST
                related = [
                    (
                        self.ctx.path,
                        call,
                        f"run under fp16 autocast: `{short_code(self.ctx, call, 40)}`",
                    )
                ]
            elif steps:
                message = (
                    f"{name} is cast to float16{when} and stepped by a GradScaler, which raises "
                    f"{_WHY_SCALER}."
                )
                help_text = _KEEP_FP32
                related = [
                    (
                        self.ctx.path,
                        steps[0],
                        f"GradScaler step: `{short_code(self.ctx, steps[0], 40)}`",
                    )
                ]
            else:
                continue
            self.report(cast.node, message, related=related, help=help_text)


def _flow_message(
    use: dict[str, Any], path: str, cast: dict[str, Any], via: str | None
) -> tuple[str, str]:
    """The message and the help of a finding where the cast model is used."""
    when = MAYBE_WORDING if cast["maybe"] else ""
    held = f"a model cast to float16{when} (`{cast['call']}` at {path}:{cast['span'][0]})"
    if via is not None:
        held = f"the result of `{short(via)}()`, {held}"
    holder = use["holder"]
    if use["kind"] == "autocast":
        return f"`{holder}` runs under fp16 autocast but holds {held}.", _DROP_CAST
    return (
        f"`{use['text']}` steps `{holder}`, {held}: the GradScaler raises {_WHY_SCALER}.",
        _KEEP_FP32,
    )
