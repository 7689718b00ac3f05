"""FP404 backward-under-autocast: ``.backward()`` inside an autocast region."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

_AUTOGRAD_BACKWARD = "torch.autograd.backward"


class BackwardUnderAutocast(Rule):
    code = "FP404"
    name = "backward-under-autocast"
    severity = Severity.WARNING
    runtime_confirmable = "no"
    tokens = ("autocast",)
    requires = (AutocastTracker,)

    summary = "`.backward()` called inside an autocast region; exit the region first."
    what = (
        "Finds `.backward()` calls (`loss.backward()`, `scaler.scale(loss).backward()`, "
        "`accelerator.backward(loss)`, `torch.autograd.backward(...)`) lexically inside an "
        "enabled autocast region: a `with torch.autocast(...)` block (every spelling, "
        "`accelerator.autocast()` and a name bound to an autocast call too) or a function "
        "decorated with one. A nested `autocast(enabled=False)` block is outside the region."
    )
    why = (
        "PyTorch's autocast documentation: autocast should wrap only the forward pass(es) "
        "and the loss computation; backward passes under autocast are not recommended. "
        "Backward ops already run in the dtype autocast chose for their forward ops, so the "
        "region buys nothing there and only makes the code's precision harder to follow."
    )
    example = """\
with torch.autocast("cuda", dtype=torch.float16):
    loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
"""
    use_instead = """\
with torch.autocast("cuda", dtype=torch.float16):
    loss = loss_fn(model(x), y)
scaler.scale(loss).backward()
"""
    references = (
        "https://pytorch.org/docs/stable/amp.html#torch.autocast",
        "https://pytorch.org/docs/stable/notes/amp_examples.html",
    )

    valid = (
        "import torch\nfor x, y in loader:\n    with torch.autocast('cuda'):\n"
        "        loss = model(x, y)\n    scaler.scale(loss).backward()\n",
        # A nested enabled=False block switches autocast off.
        "import torch\nwith torch.autocast('cuda'):\n    loss = model(x)\n"
        "    with torch.autocast('cuda', enabled=False):\n        loss.float().backward()\n",
        # accelerate: backward outside accelerator.autocast().
        "from accelerate import Accelerator\naccelerator = Accelerator(mixed_precision='fp16')\n"
        "for batch in loader:\n    with accelerator.accumulate(model):\n"
        "        with accelerator.autocast():\n            loss = model(**batch).loss\n"
        "        accelerator.backward(loss)\n",
        # Not autocast: no_grad and a user context.
        "import torch\nwith torch.no_grad():\n    out = model(x)\nwith profiler():\n"
        "    loss.backward()\n",
        # CPU autocast with float32 disables itself: no region.
        "import torch\nwith torch.autocast('cpu', dtype=torch.float32):\n    loss.backward()\n",
        "import torch\n\ndef step(loss):\n    loss.backward()\n\nwith torch.autocast('cuda'):\n"
        "    out = model(x)\n",
    )
    invalid = (
        Invalid(
            "import torch\nfor x, y in loader:\n    with torch.autocast('cuda'):\n"
            "        loss = model(x, y)\n        scaler.scale(loss).backward()\n",
            (("FP404", 5),),
        ),
        Invalid(
            "from torch.amp import autocast as ac\n\ndef train(model, loader, opt):\n"
            "    for batch in loader:\n        with ac('cuda', dtype=torch.bfloat16):\n"
            "            with torch.no_grad():\n                teacher = model(batch)\n"
            "            loss = (model(batch) - teacher).pow(2).mean()\n"
            "            loss.backward()\n        opt.step()\n",
            (("FP404", 9),),
        ),
        Invalid(
            "from accelerate import Accelerator\naccelerator = Accelerator(mixed_precision='fp16')\n"
            "with accelerator.autocast():\n    loss = model(**batch).loss\n"
            "    accelerator.backward(loss)\n",
            (("FP404", 5),),
        ),
        Invalid(
            "import torch\n\n@torch.autocast('cuda')\ndef training_step(model, x):\n"
            "    loss = model(x).mean()\n    torch.autograd.backward(loss)\n    return loss\n",
            (("FP404", 6),),
        ),
        Invalid(
            "import torch\nfrom contextlib import nullcontext\n\n"
            "ctx = nullcontext() if device == 'cpu' else torch.amp.autocast('cuda')\n"
            "with ctx:\n    loss = model(x)\n    loss.backward()\n",
            (("FP404", 7),),
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        is_method = type(func) is cst.Attribute and func.attr.value == "backward"
        if not is_method and self.ctx.names.qualname(func) != _AUTOGRAD_BACKWARD:
            return
        region = self.ctx.get(AutocastTracker).current
        if region is None or not region.lowers_precision:
            return
        self.report(
            node,
            f"`{self.ctx.code(func)}(...)` runs inside an autocast region.",
            help="Call it after the autocast block ends: PyTorch recommends autocast around the "
            "forward pass and loss only (backward ops run in their forward ops' dtype).",
            related=[(self.ctx.path, region.node, "the autocast region")],
        )
