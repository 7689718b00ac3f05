"""FP201 fp16-unsafe-layer: a normalisation or loss layer inside a model that runs in float16."""

from __future__ import annotations

from fp16lint.analysis.index import ModelFacts, index_of
from fp16lint.data.amp_ops import (
    FP32_ACCUMULATING_NORMS,
    LOSS_LAYERS,
    UNSAFE_LAYERS,
    UnsafeLayer,
)
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule
from fp16lint.rules.fp2xx_common import INHERITANCE_PROJECT, LIBRARY_PROJECT, MODEL_HEADER

_NET = (
    MODEL_HEADER + "class Net(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.proj = nn.Linear(8, 8)\n"
    "        self.loss = nn.MSELoss()\n"
    "\n"
    "    def forward(self, x):\n"
    "        return self.loss(self.proj(x), x)\n"
    "\n"
    "\n"
)  # the MSELoss is on line 10
_NORMS = (
    MODEL_HEADER + "class Net(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.ln = nn.LayerNorm(8)\n"
    "        self.gn = nn.GroupNorm(2, 8)\n"
    "        self.rms = nn.RMSNorm(8)\n"
    "        self.bn = nn.BatchNorm1d(8)\n"
    "        self.inorm = nn.InstanceNorm1d(8)\n"
    "\n"
    "\n"
)


def _quiet(project, reason, layer: str) -> bool:
    """Left out unless ``library-info`` asks for them: the norm layers whose kernels accumulate
    in float32, in every mode (a trained model's BatchNorm statistics are FP101's to list), and
    the loss layers where only library mode's assumption makes them float16."""
    if getattr(project.settings, "library_info", False):
        return False
    return layer in FP32_ACCUMULATING_NORMS or (reason.cast is None and layer in LOSS_LAYERS)


class Fp16UnsafeLayer(Rule):
    code = "FP201"
    name = "fp16-unsafe-layer"
    severity = Severity.WARNING
    severities = tuple({layer.risk.severity for layer in UNSAFE_LAYERS.values()})
    runtime_confirmable = "yes: max |x|, inf/NaN and error at that layer"
    requires = (ModelFacts,)

    summary = "A layer that fails in float16 (LocalResponseNorm, a loss module) in a model cast to float16."
    what = (
        "Finds `LocalResponseNorm` and loss modules (`MSELoss`, `CTCLoss`, `CrossEntropyLoss`"
        "...) constructed in a model class that a pure float16 cast reaches (`.half()`, "
        "`.to(torch.float16)` not under autocast), directly or as a submodule — across files, "
        "through imports, re-exports, `ModuleList`/`Sequential`, inheritance and builder "
        "functions. The finding is at the construction line; the cast is its related location. "
        "The norm layers whose kernels accumulate in float32 (`LayerNorm`, `GroupNorm`, "
        "`RMSNorm`, `BatchNorm*`, `SyncBatchNorm`, `InstanceNorm*`) are not reported: "
        "hand-written norms (FP203) and float16 maths (FP202) are what fails, and a trained "
        "model's BatchNorm statistics are listed by FP101's finding on the cast. With "
        "`assume-fp16 = true` (library mode) every module class counts as cast, but the loss "
        "layers are reported only where a real cast reaches them. `library-info = true` "
        "(`--library-info`) lists the norms (and library mode's loss layers) as well; a norm "
        "that a wrapper runs on `x.float()` (`self.norm(x.float())`, a LayerNorm subclass whose "
        "`forward` upcasts) is never reported."
    )
    why = (
        "`.half()` converts every floating-point parameter and buffer. `LocalResponseNorm` and "
        "`MSELoss` square their inputs in float16 (a value above 255.9 overflows to inf), and "
        "`CTCLoss` and the margin losses have no float16 CPU kernel: those are `warning`s; the "
        "other losses return a float16 loss with about 3 significant digits (`info`). The "
        "built-in LayerNorm, GroupNorm, RMSNorm, BatchNorm and InstanceNorm kernels accumulate "
        "in float32, so float16 inputs whose squares overflow still come out finite; in "
        "training, BatchNorm's float16 running variance can overflow, which FP101 names in the "
        "cast's finding. Under `torch.autocast` the losses run in float32, so a model that is "
        "only run under autocast is not reported."
    )
    example = """\
# models.py
class Autoencoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, d))
        self.recon = nn.MSELoss()  # squares the residual in float16

    def forward(self, x):
        return self.recon(self.net(x), x)

# train.py
model = Autoencoder(64).half()
"""
    use_instead = """\
model = Autoencoder(64).cuda()
with torch.autocast("cuda", dtype=torch.float16):
    loss = model(x)
"""
    references = (
        "https://pytorch.org/docs/stable/amp.html#autocast-op-reference",
        "https://github.com/NVIDIA/apex/pull/144",
    )

    valid = (
        # Never cast.
        _NET + "model = Net()\n",
        # Run under autocast, not cast.
        _NET + "model = Net().cuda()\nwith torch.autocast('cuda', dtype=torch.float16):\n"
        "    y = model(torch.randn(2, 8, device='cuda'))\n",
        # Cast inside an autocast region, or cast and then only run under autocast: autocast
        # still runs mse_loss in float32 (FP107 reports the mix).
        _NET + "with torch.autocast('cuda'):\n    model = Net().half()\n",
        _NET + "def evaluate(batches):\n    model = Net().cuda()\n    model.half()\n"
        "    with torch.autocast('cuda', dtype=torch.float16):\n        for x in batches:\n"
        "            y = model(x)\n",
        # bfloat16 is not float16.
        _NET + "model = Net().to(torch.bfloat16)\n",
        # Norm layers whose kernels accumulate in float32, in a cast model.
        _NORMS + "model = Net().half()\n",
        # A LayerNorm subclass that upcasts in forward (CLIP's).
        MODEL_HEADER + "class LayerNorm(nn.LayerNorm):\n    def forward(self, x):\n"
        "        return super().forward(x.float()).type(x.dtype)\n\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.ln = LayerNorm(8)\n\n\nmodel = Net().half()\n",
        # A wrapper that runs its norm on x.float().
        MODEL_HEADER
        + "class Fp32Norm(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
        "        self.norm = nn.LocalResponseNorm(2)\n\n    def forward(self, x):\n"
        "        return self.norm(x.float()).type_as(x)\n\n\nmodel = Fp32Norm(8).half()\n",
        # A class from a package outside the linted paths is unknown.
        "from somelib import Encoder\n\nmodel = Encoder().half()\n",
    )
    invalid = (
        # A model split over a library folder and packages, cast in a script.
        Invalid(LIBRARY_PROJECT, (("FP201", "lib/mylib/models/blocks.py", 8),)),
        # Inheritance, a generator-built ModuleList, a builder function, .to(torch.float16).
        Invalid(INHERITANCE_PROJECT, (("FP201", "models.py", 8), ("FP201", "models.py", 21))),
        Invalid(_NET + "model = Net().half()\n", (("FP201", 10),)),
        # autocast(enabled=False) does not make the cast mixed precision.
        Invalid(
            _NET + "with torch.autocast('cuda', enabled=False):\n    model = Net().half()\n",
            (("FP201", 10),),
        ),
        # ModuleList comprehension, Sequential, a local list, add_module, a norm_layer default.
        Invalid(
            MODEL_HEADER + "class Tower(nn.Module):\n"
            "    def __init__(self, d, norm_layer=nn.LocalResponseNorm):\n"
            "        super().__init__()\n"
            "        self.norms = nn.ModuleList([nn.LocalResponseNorm(2) for _ in range(3)])\n"
            "        layers = []\n"
            "        layers.append(nn.LocalResponseNorm(3))\n"
            "        self.seq = nn.Sequential(nn.Linear(d, d), *layers)\n"
            "        self.add_module('lrn', nn.LocalResponseNorm(2))\n"
            "        self.lrn4 = norm_layer(4)\n"
            "        self.loss = nn.CTCLoss()\n\n\n"
            "tower = Tower(16)\ntower.half()\n",
            (("FP201", 9), ("FP201", 11), ("FP201", 13), ("FP201", 14), ("FP201", 15)),
        ),
    )

    @classmethod
    def check_project(cls, project, report) -> None:
        for layer, risk, reason in index_of(project).layers():
            if not isinstance(risk, UnsafeLayer):
                continue  # an op module: FP202's
            if _quiet(project, reason, layer.layer):
                continue
            report.add(
                cls,
                layer.path,
                list(layer.span),
                f"{layer.label} runs in float16 because {reason.because()}: {risk.risk.what}.",
                related=reason.related(),
                help="Keep it in float32, for example by running the model under "
                "`torch.autocast` instead of casting it.",
                severity=risk.risk.severity,
            )
