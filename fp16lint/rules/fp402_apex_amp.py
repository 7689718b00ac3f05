"""FP402 apex-amp: NVIDIA apex's ``amp`` / ``fp16_utils`` instead of ``torch.amp``."""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst

from fp16lint.analysis.calls import argument
from fp16lint.analysis.dtypes import string_value
from fp16lint.analysis.guards import caught
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
_MISSING_MODULE = frozenset({"ImportError", "ModuleNotFoundError"})
_NATIVE_AMP = ("torch.amp.", "torch.cuda.amp.", "torch.cpu.amp.", "torch.autocast")
# An availability probe for apex: `is_apex_available()` (transformers), `APEX_AVAILABLE`,
# `HAS_APEX`, `_apex_installed`: the `if` it guards imports apex only when it is installed.
_APEX_PROBE = re.compile(r"apex.*(avail|install)|(avail|has|install).*apex", re.IGNORECASE)


@dataclass
class _Site:
    """A finding waiting for the end of the file (whether apex is an option is known then)."""

    node: cst.CSTNode
    message: str
    help: str
    in_class: bool = False  # a use inside a class (a choice a user makes by building it)
    registered: bool = False  # ... decorated: registered for selection by configuration


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
        "equivalent) and `amp.scale_loss(...)`, in every spelling. An optional apex — "
        "imported in `try: ... except ImportError` or under an availability probe "
        "(`if is_apex_available():`) and used only by classes that offer it as "
        "one choice (registered for selection by configuration, or defined next to torch's "
        "own AMP in the same file) — is the user's opt-in and is not reported; unconditional "
        "reliance on apex is."
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
        # An optional dependency offered as one choice: apex is imported only if installed and
        # used by a class that sits next to a native-AMP alternative (or is registered for
        # selection by configuration); the user picks it.
        "import torch\ntry:\n    from apex import amp\nexcept ImportError:\n    amp = None\n\n\n"
        "class ApexScaler:\n    def __call__(self, loss, optimizer):\n"
        "        with amp.scale_loss(loss, optimizer) as scaled:\n            scaled.backward()\n\n\n"
        "class NativeScaler:\n    def __init__(self):\n"
        "        self.scaler = torch.amp.GradScaler('cuda')\n",
        "try:\n    import apex.amp as apex_amp\nexcept ImportError:\n    apex_amp = None\n\n\n"
        "@WRAPPERS.register_module()\nclass ApexWrapper(Wrapper):\n"
        "    def setup(self, model, optimizer):\n"
        "        return apex_amp.initialize(model, optimizer, opt_level='O1')\n",
        # The same, imported behind an availability probe (a copied HF Trainer) instead of try.
        "import torch\nfrom transformers.utils import is_apex_available\n\n"
        "if is_apex_available():\n    from apex import amp\n"
        "from torch.cuda.amp import autocast\n\n\n"
        "class MyTrainer(Trainer):\n    def train(self, model, optimizer, args):\n"
        "        if args.use_apex:\n"
        "            model, optimizer = amp.initialize(model, optimizer, opt_level='O1')\n",
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
        # Behind an availability probe, but used unconditionally outside any class.
        Invalid(
            "if is_apex_available():\n    from apex import amp\n\n"
            "model, optimizer = amp.initialize(model, optimizer, opt_level='O1')\n",
            (("FP402", 2), ("FP402", 4)),
        ),
        # Optional, but the class is the only training path: nothing else is offered.
        Invalid(
            "try:\n    from apex import amp\nexcept ImportError:\n    amp = None\n\n\n"
            "class Trainer:\n    def step(self, loss, optimizer):\n"
            "        with amp.scale_loss(loss, optimizer) as scaled:\n"
            "            scaled.backward()\n",
            (("FP402", 2), ("FP402", 9)),
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

    def __init__(self, ctx):
        super().__init__(ctx)
        self._imports: list[_Site] = []
        self._calls: list[_Site] = []
        self._all_optional = True  # every apex import sits in ``try: ... except ImportError``
        self._native = False  # the file also offers torch's own AMP

    # --- imports --------------------------------------------------------------------------
    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            module = _apex_module(dotted(alias.name))
            if module is not None:
                self._import(alias, module)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None or type(node.names) is cst.ImportStar:
            return
        base = dotted(node.module)
        if f"{base}.".startswith(_NATIVE_AMP[:3]):
            self._native = True  # `from torch.cuda.amp import autocast`: native AMP offered here
        module = _apex_module(base)
        if module is not None:
            self._import(node, module)
            return
        if base == "apex":
            for alias in node.names:
                module = _apex_module(f"apex.{dotted(alias.name)}")
                if module is not None:
                    self._import(alias, module)

    def _import(self, node: cst.CSTNode, module: str) -> None:
        if module == "apex.fp16_utils":
            instead = (
                "Keep the model and optimizer in float32 and use `torch.autocast` with "
                '`torch.amp.GradScaler("cuda")`.'
            )
        else:
            instead = f"Use {NATIVE_AMP}."
        self._all_optional = self._all_optional and self._in_optional_import()
        self._imports.append(_Site(node, f"`{module}` is {_UNMAINTAINED}.", instead))

    def _in_optional_import(self) -> bool:
        """In the body of a ``try`` whose handler catches a missing module, or of an ``if``
        that probes whether apex is installed (``if is_apex_available():``)."""
        stack = self.ctx.stack
        for index, node in enumerate(stack[:-1]):
            if type(node) is cst.Try and stack[index + 1] is node.body:
                return any(caught(h) & _MISSING_MODULE for h in node.handlers)
            if type(node) is cst.If and stack[index + 1] is node.body:
                test = node.test.func if type(node.test) is cst.Call else node.test
                if _APEX_PROBE.search(dotted(test) or ""):
                    return True
        return False

    # --- calls ----------------------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        qualname = self.ctx.names.qualname(node.func)
        if qualname is None:
            return
        if qualname.startswith(_NATIVE_AMP):
            self._native = True
        elif qualname in INITIALIZE:
            level = self._opt_level(node)
            if level is None:
                self._call(
                    node,
                    f"`amp.initialize` is {_UNMAINTAINED}.",
                    'Its `opt_level` is computed here, so map it by hand: "O1" is autocast '
                    'plus GradScaler, "O2" and "O3" cast the model to float16 and are better '
                    "replaced by a float32 model under autocast.",
                )
            else:
                self._call(
                    node,
                    f'`amp.initialize` (opt_level "{level}") is {_UNMAINTAINED}.',
                    f'"{level}" is {OPT_LEVELS[level]}.',
                )
        elif qualname in SCALE_LOSS:
            self._call(
                node,
                f"`amp.scale_loss` is {_UNMAINTAINED}.",
                "Scale with `torch.amp.GradScaler`: `scaler.scale(loss).backward()`, then "
                "`scaler.step(optimizer)` and `scaler.update()`.",
            )

    def _call(self, node: cst.Call, message: str, instead: str) -> None:
        classes = [n for n in self.ctx.stack if type(n) is cst.ClassDef]
        registered = any(c.decorators for c in classes)
        self._calls.append(_Site(node, message, instead, bool(classes), registered))

    def leave_Module(self, node: cst.Module) -> None:
        """An optional apex (imported only if installed) used only by classes offered as one
        choice — registered for selection by configuration, or next to torch's own AMP — is
        the user's opt-in, not a defect; any other use reports every site."""
        optional = self._all_optional and all(
            site.in_class and (site.registered or self._native) for site in self._calls
        )
        if optional:
            return
        for site in (*self._imports, *self._calls):
            self.report(site.node, site.message, help=site.help)

    def _opt_level(self, call: cst.Call) -> str | None:
        """The literal opt_level (apex's default when absent), None when computed."""
        if any(arg.star for arg in call.args):
            return None
        value = argument(call, "opt_level", 3)  # initialize(models, optimizers, enabled, opt_level)
        if value is None:
            return DEFAULT_OPT_LEVEL
        text = string_value(value)
        return text if text in OPT_LEVELS else None
