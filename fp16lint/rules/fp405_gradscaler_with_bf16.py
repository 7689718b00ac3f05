"""FP405 gradscaler-with-bf16: loss scaling where the function's autocast is bfloat16, or a
CUDA GradScaler in a function whose autocast runs on CPU."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from fp16lint.analysis.amp import GradScalerTracker, ScalerSite
from fp16lint.analysis.autocast import Region, autocast_region
from fp16lint.analysis.dtypes import DType
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule


@dataclass
class _Scope:
    regions: list[Region] = field(default_factory=list)
    scales: list[tuple[cst.Call, list[ScalerSite]]] = field(default_factory=list)


def _definite(region: Region, dtype: DType, device: str | None = None) -> bool:
    """An autocast region that is surely on, with exactly ``dtype`` (and ``device``)."""
    return (
        region.enabled is True
        and region.dtype is not None
        and not region.dtype.maybe
        and region.dtype.dtype is dtype
        and (device is None or region.device == device)
    )


class GradScalerWithBf16(Rule):
    code = "FP405"
    name = "gradscaler-with-bf16"
    severity = Severity.WARNING
    runtime_confirmable = "no"
    tokens = ("GradScaler",)
    requires = (GradScalerTracker,)

    summary = "A GradScaler scales a loss that autocast computes in bfloat16, or on CPU only."
    what = (
        "Looks at each function (and the module's top level) that calls `scaler.scale(...)` on "
        "a GradScaler that is surely enabled. Reports it when every autocast region of that "
        "function is surely bfloat16 (`dtype=torch.bfloat16`, or CPU autocast's default), or "
        "when every region runs on CPU in float16 while the scaler is a CUDA one "
        '(`torch.amp.GradScaler()` defaults to `"cuda"`, `torch.cuda.amp.GradScaler`). '
        "A scaler whose `enabled` is computed, or a dtype chosen at run time, is left alone."
    )
    why = (
        "Loss scaling exists because float16 gradients underflow; bfloat16 has float32's "
        "exponent range (max 3.4e38), so with bfloat16 autocast the scaler only adds work and "
        'skipped steps (transformers\' `bf16` option: "no loss scaling required"). A CUDA '
        "GradScaler around CPU-only code is worse: on a machine without CUDA it warns "
        '"CUDA is not available. Disabling." and scales nothing, so CPU float16 gradients '
        "are not protected."
    )
    example = """\
scaler = torch.amp.GradScaler("cuda")
with torch.autocast("cuda", dtype=torch.bfloat16):
    loss = loss_fn(model(x), y)
scaler.scale(loss).backward()
scaler.step(optimizer)
scaler.update()
"""
    use_instead = """\
with torch.autocast("cuda", dtype=torch.bfloat16):
    loss = loss_fn(model(x), y)
loss.backward()
optimizer.step()
"""
    references = (
        "https://pytorch.org/docs/stable/amp.html#gradient-scaling",
        "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments.bf16",
    )

    valid = (
        # float16 autocast needs the scaler.
        "import torch\nscaler = torch.amp.GradScaler('cuda')\nfor x, y in loader:\n"
        "    with torch.autocast('cuda', dtype=torch.float16):\n        loss = model(x, y)\n"
        "    scaler.scale(loss).backward()\n    scaler.step(opt)\n    scaler.update()\n",
        # The scaler is enabled only for float16.
        "import torch\n\ndef train(model, loader, opt, dtype):\n"
        "    scaler = torch.amp.GradScaler('cuda', enabled=dtype == torch.float16)\n"
        "    for x in loader:\n        with torch.autocast('cuda', dtype=torch.bfloat16):\n"
        "            loss = model(x)\n        scaler.scale(loss).backward()\n"
        "        scaler.step(opt)\n",
        # The autocast dtype is chosen at run time.
        "from torch.amp import GradScaler as GS\nimport torch\n\ndef train(model, x, opt, bf16):\n"
        "    scaler = GS('cuda')\n    dtype = torch.bfloat16 if bf16 else torch.float16\n"
        "    with torch.autocast('cuda', dtype=dtype):\n        loss = model(x)\n"
        "    scaler.scale(loss).backward()\n",
        # A CPU GradScaler with CPU float16 autocast is the right pairing.
        "import torch\nscaler = torch.amp.GradScaler('cpu')\n"
        "with torch.autocast('cpu', dtype=torch.float16):\n    loss = model(x)\n"
        "scaler.scale(loss).backward()\n",
        # bfloat16 autocast without a scaler; accelerate handles scaling itself.
        "from accelerate import Accelerator\nimport torch\n"
        "accelerator = Accelerator(mixed_precision='bf16')\n"
        "with torch.autocast('cuda', dtype=torch.bfloat16):\n    loss = model(x)\n"
        "accelerator.backward(loss)\n",
        # Regions of both dtypes in one function: not all bfloat16.
        "import torch\nscaler = torch.amp.GradScaler('cuda')\n"
        "with torch.autocast('cuda', dtype=torch.bfloat16):\n    a = encoder(x)\n"
        "with torch.autocast('cuda', dtype=torch.float16):\n    loss = head(a)\n"
        "scaler.scale(loss).backward()\n",
    )
    invalid = (
        Invalid(
            "import torch\nscaler = torch.amp.GradScaler('cuda')\nfor x, y in loader:\n"
            "    with torch.autocast('cuda', dtype=torch.bfloat16):\n        loss = model(x, y)\n"
            "    scaler.scale(loss).backward()\n    scaler.step(opt)\n    scaler.update()\n",
            (("FP405", 6),),
        ),
        Invalid(
            "from torch.amp import GradScaler as GS, autocast\nimport torch\n\n"
            "class Trainer:\n    def __init__(self):\n        self.scaler = GS()\n\n"
            "    def step(self, batch):\n"
            "        with autocast('cuda', dtype=torch.bfloat16):\n"
            "            with torch.no_grad():\n                t = self.teacher(batch)\n"
            "            loss = self.model(batch, t)\n"
            "        self.scaler.scale(loss).backward()\n",
            (("FP405", 13),),
        ),
        # CPU autocast defaults to bfloat16.
        Invalid(
            "import torch\n\ndef train(model, loader, opt):\n"
            "    scaler = torch.cpu.amp.GradScaler()\n    for x in loader:\n"
            "        with torch.autocast('cpu'):\n            loss = model(x)\n"
            "        scaler.scale(loss).backward()\n        scaler.step(opt)\n",
            (("FP405", 8),),
        ),
        # A CUDA scaler (the default device) around CPU float16 autocast.
        Invalid(
            "import torch\nscaler = torch.amp.GradScaler()\n"
            "with torch.autocast('cpu', dtype=torch.float16):\n    loss = model(x)\n"
            "scaler.scale(loss).backward()\n",
            (("FP405", 5),),
        ),
        Invalid(
            "import torch\n\n@torch.autocast('cuda', dtype=torch.bfloat16)\n"
            "def step(model, x):\n"
            "    scaler = torch.amp.GradScaler('cuda')\n    loss = model(x)\n"
            "    return scaler.scale(loss)\n",
            (("FP405", 7),),
        ),
    )

    def __init__(self, ctx):
        super().__init__(ctx)
        self.scopes: list[_Scope] = [_Scope()]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        scope = _Scope()
        self.scopes.append(scope)
        self._regions(scope, [d.decorator for d in node.decorators])

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._check(self.scopes.pop())

    def leave_Module(self, node: cst.Module) -> None:
        self._check(self.scopes[0])

    def visit_With(self, node: cst.With) -> None:
        self._regions(self.scopes[-1], [item.item for item in node.items])

    def _regions(self, scope: _Scope, calls: list[cst.BaseExpression]) -> None:
        for call in calls:
            region = autocast_region(call, self.ctx)
            if region is not None:
                scope.regions.append(region)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if type(func) is cst.Attribute and func.attr.value == "scale":
            sites = self.ctx.get(GradScalerTracker).sites(func.value)
            if sites:
                self.scopes[-1].scales.append((node, sites))

    def _check(self, scope: _Scope) -> None:
        regions = [r for r in scope.regions if r.enabled is not False]
        if not regions or not scope.scales:
            return
        call, sites = scope.scales[0]
        if not all(site.enabled is True for site in sites):
            return
        region = regions[0]
        if all(_definite(r, DType.BF16) for r in regions):
            self.report(
                call,
                "This GradScaler scales a bfloat16 autocast loss, which needs no loss scaling.",
                help="Drop the scaler and call `loss.backward()` and `optimizer.step()`: "
                "bfloat16 has float32's exponent range (the scaler only adds skipped steps).",
                related=[(self.ctx.path, region.node, "the bfloat16 autocast region")],
            )
        elif all(_definite(r, DType.FP16, "cpu") for r in regions) and all(
            site.device == "cuda" for site in sites
        ):
            self.report(
                call,
                "A CUDA GradScaler with CPU autocast: without CUDA it disables itself.",
                help='Create it with `torch.amp.GradScaler("cpu")`: the float16 loss is '
                "otherwise left unscaled.",
                related=[(self.ctx.path, region.node, "the CPU autocast region")],
            )
