"""FP402 apex-amp: NVIDIA apex's ``amp`` / ``fp16_utils`` instead of ``torch.amp``."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.calls import argument
from fp16lint.analysis.dtypes import string_value
from fp16lint.analysis.names import dotted
from fp16lint.data.apex_amp import (
    APEX_MODULES,
    DEFAULT_OPT_LEVEL,
    INITIALIZE,
    NATIVE_AMP,
    OPT_LEVELS,
    SCALE_LOSS,
)
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

_UNMAINTAINED = "NVIDIA apex's mixed precision, deprecated in favour of `torch.amp`"


def _apex_module(name: str | None) -> str | None:
    """``apex.amp`` / ``apex.fp16_utils`` when ``name`` is one of them or inside one."""
    for module in APEX_MODULES:
        if name == module or (name or "").startswith(module + "."):
            return module
    return None


class ApexAmp(Rule):
    code = "FP402"
    name = "apex-amp"
    severity = Severity.WARNING
    runtime_confirmable = "no"
    tokens = ("apex",)

    summary = "NVIDIA apex's `amp` / `fp16_utils`: deprecated and unmaintained; use `torch.amp`."
    what = (
        "Finds imports of `apex.amp` and `apex.fp16_utils` (`from apex import amp`, "
        "`import apex.amp as amp`, `from apex.fp16_utils import FP16_Optimizer`), calls of "
        "`amp.initialize(...)` (the message maps its `opt_level` to the `torch.amp` "
        "equivalent) and `amp.scale_loss(...)`, in every spelling."
    )
    why = (
        "apex's AMP predates PyTorch's native mixed precision and is deprecated in its favour; "
        "it is no longer maintained and often fails to build against current PyTorch. Native "
        "AMP (`torch.autocast` + `torch.amp.GradScaler`) corresponds to apex's recommended "
        '`O1`; `O2` ("almost fp16") has no native equivalent and `O3` is pure float16 '
        "training, both better replaced by float32 weights under autocast."
    )
    example = """\
from apex import amp

model, optimizer = amp.initialize(model, optimizer, opt_level="O1")
with amp.scale_loss(loss, optimizer) as scaled_loss:
    scaled_loss.backward()
optimizer.step()
"""
    use_instead = """\
import torch

scaler = torch.amp.GradScaler("cuda")
with torch.autocast("cuda", dtype=torch.float16):
    loss = loss_fn(model(x), y)
scaler.scale(loss).backward()
scaler.step(optimizer)
scaler.update()
"""
    references = (
        "https://nvidia.github.io/apex/amp.html",
        "https://github.com/NVIDIA/apex/issues/818",
        "https://pytorch.org/docs/stable/notes/amp_examples.html",
    )

    valid = (
        # Native AMP.
        "import torch\nscaler = torch.amp.GradScaler('cuda')\n"
        "with torch.autocast('cuda'):\n    loss = model(x)\n",
        # apex's other packages are not mixed precision.
        "from apex.optimizers import FusedAdam\nfrom apex.normalization import FusedLayerNorm\n",
        "import apex\nopt = apex.optimizers.FusedLAMB(model.parameters())\n",
        # A local `amp` that is not apex's.
        "import torch.amp as amp\nwith amp.autocast('cuda'):\n    pass\n",
        "def initialize(model, opt_level):\n    return model\n"
        "model = initialize(model, opt_level='O2')\n",
        # accelerate does the scaling itself.
        "from accelerate import Accelerator\naccelerator = Accelerator(mixed_precision='fp16')\n"
        "with accelerator.autocast():\n    loss = model(x)\naccelerator.backward(loss)\n",
    )
    invalid = (
        Invalid(
            "from apex import amp\n\n"
            "model, optimizer = amp.initialize(model, optimizer, opt_level='O2')\n"
            "for x, y in loader:\n"
            "    loss = loss_fn(model(x), y)\n"
            "    with amp.scale_loss(loss, optimizer) as scaled_loss:\n"
            "        scaled_loss.backward()\n"
            "    optimizer.step()\n",
            (("FP402", 1), ("FP402", 3), ("FP402", 6)),
        ),
        Invalid(
            "import apex\n\ndef setup(model, optimizer):\n"
            "    return apex.amp.initialize(model, optimizer)\n",
            (("FP402", 4),),
        ),
        Invalid(
            "try:\n    import apex.amp as apex_amp\nexcept ImportError:\n    apex_amp = None\n\n"
            "def train_step(loss, optimizer):\n"
            "    with apex_amp.scale_loss(loss, optimizer) as scaled:\n"
            "        with torch.no_grad():\n            pass\n        scaled.backward()\n",
            (("FP402", 2), ("FP402", 7)),
        ),
        Invalid(
            "from apex.fp16_utils import FP16_Optimizer, network_to_half\n\n"
            "model = network_to_half(model)\n"
            "optimizer = FP16_Optimizer(optimizer, dynamic_loss_scale=True)\n",
            (("FP402", 1),),
        ),
        Invalid(
            "from apex.amp import initialize as amp_init\n\n"
            "model, optimizer = amp_init(model, optimizer, opt_level='O3', loss_scale=128.0)\n",
            (("FP402", 1), ("FP402", 3)),
        ),
    )

    # --- imports --------------------------------------------------------------------------
    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            module = _apex_module(dotted(alias.name))
            if module is not None:
                self._report_import(alias, module)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None or type(node.names) is cst.ImportStar:
            return
        base = dotted(node.module)
        module = _apex_module(base)
        if module is not None:
            self._report_import(node, module)
            return
        if base == "apex":
            for alias in node.names:
                module = _apex_module(f"apex.{dotted(alias.name)}")
                if module is not None:
                    self._report_import(alias, module)

    def _report_import(self, node: cst.CSTNode, module: str) -> None:
        if module == "apex.fp16_utils":
            instead = (
                "Keep the model and optimizer in float32 and use `torch.autocast` with "
                '`torch.amp.GradScaler("cuda")`.'
            )
        else:
            instead = f"Use {NATIVE_AMP}."
        self.report(node, f"`{module}` is {_UNMAINTAINED}.", help=instead)

    # --- calls ----------------------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        qualname = self.ctx.names.qualname(node.func)
        if qualname in INITIALIZE:
            level = self._opt_level(node)
            if level is None:
                self.report(
                    node,
                    f"`amp.initialize` is {_UNMAINTAINED}.",
                    help='Its `opt_level` is computed here, so map it by hand: "O1" is autocast '
                    'plus GradScaler, "O2" and "O3" cast the model to float16 and are better '
                    "replaced by a float32 model under autocast.",
                )
                return
            self.report(
                node,
                f'`amp.initialize` (opt_level "{level}") is {_UNMAINTAINED}.',
                help=f'"{level}" is {OPT_LEVELS[level]}.',
            )
        elif qualname in SCALE_LOSS:
            self.report(
                node,
                f"`amp.scale_loss` is {_UNMAINTAINED}.",
                help="Scale with `torch.amp.GradScaler`: `scaler.scale(loss).backward()`, then "
                "`scaler.step(optimizer)` and `scaler.update()`.",
            )

    def _opt_level(self, call: cst.Call) -> str | None:
        """The literal opt_level (apex's default when absent), None when computed."""
        if any(arg.star for arg in call.args):
            return None
        value = argument(call, "opt_level", 3)  # initialize(models, optimizers, enabled, opt_level)
        if value is None:
            return DEFAULT_OPT_LEVEL
        text = string_value(value)
        return text if text in OPT_LEVELS else None
