"""FP403 clip-scaled-gradients: clipping between ``scaler.scale(loss).backward()`` and
``scaler.step(optimizer)`` without ``scaler.unscale_(optimizer)`` first."""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from fp16lint.analysis import paths
from fp16lint.analysis.amp import GradScalerTracker
from fp16lint.data.amp_api import GRAD_CLIPPING
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

# Facts of the flow state: ("scaled", backward call) after a scaled backward; ("unscaled",)
# once something may have unscaled the gradients. ``scaler.step`` clears both.
_SCALED = "scaled"
_UNSCALED = ("unscaled",)


class ClipScaledGradients(Rule):
    code = "FP403"
    name = "clip-scaled-gradients"
    severity = Severity.ERROR
    runtime_confirmable = "no"
    tokens = ("clip_grad",)
    requires = (GradScalerTracker,)

    summary = "Gradients clipped while still multiplied by the GradScaler's loss scale."
    what = (
        "Follows each function (and the module's top level), through loops and branches, from "
        "`scaler.scale(loss).backward()` to a gradient-clipping call (`clip_grad_norm_`, "
        "`clip_grad_value_`, timm's `dispatch_clip_grad`, in any spelling) that no "
        "`scaler.unscale_(optimizer)` precedes on any path. The scaler is any name or "
        "`self` attribute bound to a GradScaler (`torch.amp.GradScaler`, `from torch.amp "
        "import GradScaler as GS`, the deprecated `torch.cuda.amp.GradScaler`...)."
    )
    why = (
        "`scaler.scale(loss)` multiplies the loss, and so every gradient, by the loss scale "
        "(65536 to start with). Clipping before `unscale_` compares that scaled norm with "
        "your threshold: `max_norm=1.0` cuts the scaled norm to 1, so once `scaler.step` "
        "unscales, the update is tens of thousands of times too small, and the clip that was "
        "meant to be rare happens on every step. `accelerator.clip_grad_norm_` unscales "
        "first and is not reported; neither is a clip that some path reaches after an "
        "`unscale_` (or after a call that is handed the scaler, which may unscale)."
    )
    example = """\
scaler.scale(loss).backward()
torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
scaler.step(optimizer)
scaler.update()
"""
    use_instead = """\
scaler.scale(loss).backward()
scaler.unscale_(optimizer)
torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
scaler.step(optimizer)
scaler.update()
"""
    references = ("https://pytorch.org/docs/stable/notes/amp_examples.html#gradient-clipping",)

    valid = (
        # PyTorch's recipe: unscale_ first.
        "import torch\nscaler = torch.amp.GradScaler('cuda')\nfor x, y in loader:\n"
        "    with torch.autocast('cuda'):\n        loss = model(x, y)\n"
        "    scaler.scale(loss).backward()\n    scaler.unscale_(optimizer)\n"
        "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
        "    scaler.step(optimizer)\n    scaler.update()\n",
        # Gradient accumulation with unscale_ in the step branch; alias spelling.
        "from torch.amp import GradScaler as GS\nfrom torch.nn.utils import clip_grad_norm_\n\n"
        "def train(model, loader, optimizer, accum):\n    scaler = GS()\n"
        "    for i, batch in enumerate(loader):\n"
        "        scaler.scale(model(**batch).loss / accum).backward()\n"
        "        if (i + 1) % accum == 0:\n            scaler.unscale_(optimizer)\n"
        "            clip_grad_norm_(model.parameters(), 1.0)\n"
        "            scaler.step(optimizer)\n            scaler.update()\n"
        "            optimizer.zero_grad()\n",
        # accelerate unscales inside clip_grad_norm_.
        "from accelerate import Accelerator\naccelerator = Accelerator(mixed_precision='fp16')\n"
        "for batch in loader:\n    with accelerator.accumulate(model):\n"
        "        loss = model(**batch).loss\n        accelerator.backward(loss)\n"
        "        if accelerator.sync_gradients:\n"
        "            accelerator.clip_grad_norm_(model.parameters(), 1.0)\n"
        "        optimizer.step()\n",
        # No GradScaler: plain backward.
        "import torch\nloss.backward()\ntorch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
        "optimizer.step()\n",
        # Unscaled on the path where the scaler is enabled.
        "import torch\n\ndef step(model, loss, optimizer, use_amp):\n"
        "    scaler = torch.amp.GradScaler('cuda', enabled=use_amp)\n"
        "    scaler.scale(loss).backward()\n    if use_amp:\n        scaler.unscale_(optimizer)\n"
        "    torch.nn.utils.clip_grad_value_(model.parameters(), 0.5)\n"
        "    scaler.step(optimizer)\n",
        # The scaler is handed to a helper, which may unscale: unknown stays quiet.
        "import torch\n\nclass Loop:\n    def __init__(self):\n"
        "        self.scaler = torch.amp.GradScaler('cuda')\n\n    def step(self, loss):\n"
        "        self.scaler.scale(loss).backward()\n"
        "        unscale_all(self.scaler, self.optimizers)\n"
        "        torch.nn.utils.clip_grad_norm_(self.params, 1.0)\n",
        # A scaler passed in without an annotation is not known to be a GradScaler.
        "import torch\n\ndef step(scaler, loss, model, optimizer):\n"
        "    scaler.scale(loss).backward()\n"
        "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n",
        # timm's NativeScaler: the scaler lives on self, made in a try/except.
        "import torch\nfrom timm.utils import dispatch_clip_grad\n\nclass NativeScaler:\n"
        "    def __init__(self):\n        try:\n"
        "            self._scaler = torch.amp.GradScaler(device='cuda')\n"
        "        except (AttributeError, TypeError):\n"
        "            self._scaler = torch.cuda.amp.GradScaler()\n\n"
        "    def __call__(self, loss, optimizer, clip_grad=None, parameters=None):\n"
        "        self._scaler.scale(loss).backward()\n        if clip_grad is not None:\n"
        "            self._scaler.unscale_(optimizer)\n"
        "            dispatch_clip_grad(parameters, clip_grad)\n"
        "        self._scaler.step(optimizer)\n        self._scaler.update()\n",
        # unscale_ inside a try whose handler skips the batch.
        "import torch\n\ndef fit(model, loader, optimizer):\n"
        "    scaler = torch.amp.GradScaler('cuda')\n    for batch in loader:\n"
        "        scaler.scale(model(batch)).backward()\n        try:\n"
        "            scaler.unscale_(optimizer)\n        except RuntimeError:\n"
        "            continue\n"
        "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
        "        scaler.step(optimizer)\n",
    )
    invalid = (
        Invalid(
            "import torch\nfrom torch.amp import GradScaler, autocast\n\n"
            "scaler = GradScaler('cuda')\nfor x, y in loader:\n    optimizer.zero_grad()\n"
            "    with autocast('cuda'):\n        loss = model(x, y)\n"
            "    scaler.scale(loss).backward()\n"
            "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
            "    scaler.step(optimizer)\n    scaler.update()\n",
            (("FP403", 10),),
        ),
        # Gradient accumulation: the clip sits in the step branch, still before unscale_.
        Invalid(
            "from torch.amp import GradScaler as GS\nfrom torch.nn.utils import clip_grad_value_\n\n"
            "def train(model, loader, optimizer, accum=4):\n    scaler = GS()\n"
            "    for step, batch in enumerate(loader):\n"
            "        loss = model(**batch).loss / accum\n"
            "        scaler.scale(loss).backward()\n        if (step + 1) % accum == 0:\n"
            "            clip_grad_value_(model.parameters(), 0.5)\n"
            "            scaler.step(optimizer)\n            scaler.update()\n"
            "            optimizer.zero_grad()\n",
            (("FP403", 10),),
        ),
        # A deprecated scaler on self, nested with blocks, `from torch import nn` spelling.
        Invalid(
            "import torch\nfrom torch import nn\n\nclass Trainer:\n"
            "    def __init__(self, model):\n        self.model = model\n"
            "        self.scaler = torch.cuda.amp.GradScaler()\n\n"
            "    def step(self, batch, optimizer):\n"
            "        with torch.autocast('cuda'):\n            with torch.no_grad():\n"
            "                target = self.teacher(batch)\n"
            "            loss = self.model(batch, target)\n"
            "        self.scaler.scale(loss).backward()\n"
            "        nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)\n"
            "        self.scaler.step(optimizer)\n        self.scaler.update()\n",
            (("FP403", 15),),
        ),
        # The scaled loss kept in a name; the clip is optional.
        Invalid(
            "import torch\n\ndef step(model, loss, optimizer, clip):\n"
            "    scaler = torch.amp.GradScaler('cuda')\n    scaled = scaler.scale(loss)\n"
            "    scaled.backward()\n    if clip:\n"
            "        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)\n"
            "    scaler.step(optimizer)\n",
            (("FP403", 8),),
        ),
        # Scaled on the AMP path, plain on the other: the clip is wrong on the AMP path.
        Invalid(
            "import torch\n\ndef step(model, loss, optimizer, scaler: torch.amp.GradScaler, amp):\n"
            "    if amp:\n        scaler.scale(loss).backward()\n    else:\n"
            "        loss.backward()\n"
            "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
            "    if amp:\n        scaler.step(optimizer)\n    else:\n        optimizer.step()\n",
            (("FP403", 8),),
        ),
        # while/try/break/continue: still no unscale_ before the clip.
        Invalid(
            "import torch\n\ndef fit(model, batches, optimizer):\n"
            "    scaler = torch.amp.GradScaler('cuda')\n    while True:\n        try:\n"
            "            loss = model(next(batches))\n        except StopIteration:\n"
            "            break\n        if not torch.isfinite(loss):\n            continue\n"
            "        scaler.scale(loss).backward()\n"
            "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
            "        scaler.step(optimizer)\n",
            (("FP403", 13),),
        ),
    )

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._check(node.body.body)

    def leave_Module(self, node: cst.Module) -> None:
        self._check(node.body)

    def _check(self, body: Sequence[cst.CSTNode]) -> None:
        scalers = self.ctx.get(GradScalerTracker)
        clips: dict[int, tuple[cst.Call, set]] = {}

        def step(node: cst.CSTNode, state: frozenset) -> frozenset:
            for call in paths.calls_in_order(node):
                state = self._transfer(call, state, scalers)
                if self.ctx.names.qualname(call.func) in GRAD_CLIPPING:
                    clips.setdefault(id(call), (call, set()))[1].update(state)
            return state

        paths.run(body, frozenset(), step)
        for call, facts in clips.values():
            backward = [f[1] for f in facts if f[0] == _SCALED]
            if backward and _UNSCALED not in facts:
                self._report(call, backward[0])

    def _transfer(self, call: cst.Call, state: frozenset, scalers: GradScalerTracker) -> frozenset:
        func = call.func
        method = func.attr.value if type(func) is cst.Attribute else None
        if method == "backward" and self._scale_call(func.value, scalers) is not None:
            return frozenset({(_SCALED, call)})
        if method is not None and scalers.is_scaler(func.value):
            if method == "unscale_":
                return frozenset({_UNSCALED})
            if method == "step":
                return frozenset()
            return state
        if method is not None and "unscale" in method:
            return frozenset({_UNSCALED})  # accelerator.unscale_gradients(), helpers
        if any(scalers.is_scaler(arg.value) for arg in call.args):
            return frozenset({_UNSCALED})  # a helper handed the scaler may unscale
        return state

    def _scale_call(self, expr: cst.BaseExpression, scalers: GradScalerTracker) -> cst.Call | None:
        """The ``scaler.scale(...)`` call ``expr`` is, or the one a name is always bound to."""
        if type(expr) is cst.Name:
            values = self.ctx.names.values(expr.value)
            calls = [self._scale_call(v, scalers) for v in values if type(v) is not cst.Name]
            return calls[0] if values and len(calls) == len(values) and all(calls) else None
        if (
            type(expr) is cst.Call
            and type(expr.func) is cst.Attribute
            and expr.func.attr.value == "scale"
            and scalers.is_scaler(expr.func.value)
        ):
            return expr
        return None

    def _report(self, clip: cst.Call, backward: cst.Call) -> None:
        scale = self._scale_call(backward.func.value, self.ctx.get(GradScalerTracker))
        scaler = self.ctx.code(scale.func.value) if scale is not None else "scaler"
        self.report(
            clip,
            f"`{self.ctx.code(clip.func)}` clips gradients still multiplied by the loss scale.",
            help=f"Call `{scaler}.unscale_(optimizer)` before clipping: no unscale since the "
            "scaled backward, so the threshold is compared with scaled values.",
            related=[(self.ctx.path, backward, "the scaled backward pass")],
        )
