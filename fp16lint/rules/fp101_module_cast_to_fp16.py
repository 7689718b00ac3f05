"""FP101 module-cast-to-fp16: a whole model converted to float16 (pure fp16, no master weights)."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.casts import (
    CastFacts,
    CastSite,
    ProjectClasses,
    cast_of,
    hf_load_of,
    short_code,
)
from fp16lint.analysis.dtypes import MAYBE_WORDING
from fp16lint.analysis.guards import follows_fp16_data
from fp16lint.analysis.index import unsafe_contents, with_unsafe_contents
from fp16lint.analysis.receivers import Kind, ReceiverTracker
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

HELP = (
    "Keep the weights in float32 and run the forward pass under "
    '`torch.autocast(device_type="cuda", dtype=torch.float16)`, or use bfloat16.'
)


def message(call_text: str, maybe: bool, what: str = "the whole model") -> str:
    when = MAYBE_WORDING if maybe else ""
    return f"`{call_text}` casts {what} to float16{when}: pure fp16, no float32 master weights."


def is_model_cast(site: CastSite, ctx) -> bool:
    """An fp16 cast of a known module that FP501 does not cover (not a data-following cast)."""
    if not site.to_fp16 or ctx.get(ReceiverTracker).kind_of(site.receiver) is not Kind.MODULE:
        return False
    load = hf_load_of(site.receiver, ctx)
    if load is not None and load.loses_fp32_modules:
        return False
    return not follows_fp16_data(ctx.stack, ctx.names)


class ModuleCastToFp16(Rule):
    code = "FP101"
    name = "module-cast-to-fp16"
    severity = Severity.WARNING
    # Class and re-export facts feed the project pass, so files with classes or imports count.
    tokens = ("half", "float16", "fp16", "HalfTensor", "class ", "import ")
    requires = (ReceiverTracker, AutocastTracker, CastFacts)

    summary = "A model converted to float16 runs in pure fp16: use autocast or bfloat16."
    what = (
        "Finds a module (a model or layer) converted to float16 in any spelling: `.half()`, "
        "`.to(torch.float16)`, `.to(dtype=torch.half)`, `.to(device, torch.float16)`, "
        "`.to(device=..., dtype=...)`, `.type(torch.HalfTensor)`, with the dtype through "
        "aliases and constants. A dtype chosen at run time (`weight_dtype` set to "
        '`torch.float16` on one branch) counts, and the message says "when mixed precision is '
        'fp16". The receiver must be known to be a module: an `nn.Module` subclass of the '
        "project (in any file), a `torch.nn` layer, a model loader (`timm.create_model`, "
        "`torchvision.models.*`, `torch.hub.load`), `self` in a module, or a name the code "
        "uses as a module (`model.eval()`, `model.parameters()`)."
    )
    why = (
        "`Module.half()` and `.to(torch.float16)` convert every floating-point parameter and "
        "buffer in place, BatchNorm's running mean and variance included (the popular claim "
        "that `half()` spares the buffers is false). The model then runs in pure float16: "
        "softmax, norms and losses see float16 inputs, values above 65504 overflow to inf, and "
        "training has no float32 master weights. Autocast runs the matmuls in float16 but "
        "keeps the weights in float32 and the sensitive ops in float32. Casts of bfloat16 and "
        "float32, of tensors, and casts that only run on data already float16 "
        "(`if x.dtype == torch.float16:`) are not reported; a Hugging Face model from "
        "`from_pretrained` is FP501's."
    )
    example = """\
model = Net().cuda().half()
out = model(images.half())
"""
    use_instead = """\
model = Net().cuda()
with torch.autocast(device_type="cuda", dtype=torch.float16):
    out = model(images)
"""
    references = (
        "https://pytorch.org/docs/stable/amp.html",
        "https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.half",
    )
    runtime_confirmable = "yes: the dtype inventory after the cast"

    valid = (
        # bfloat16 and float32 casts.
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(4, 4).to(torch.bfloat16)\n"
        "model.float()\n",
        # A tensor, not a module.
        "import torch\nx = torch.randn(2, 3)\ny = x.half()\nz = x.to('cuda', torch.float16)\n",
        # Unknown receiver: quiet.
        "import torch\n\ndef f(thing):\n    return thing.half()\n",
        # The cast follows data that is already fp16.
        "import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n"
        "    def forward(self, x):\n        if x.dtype == torch.float16:\n"
        "            self.half()\n        return x\n",
        # Restoring fp16 after an upcast, through a flag.
        "import torch\nimport torch.nn as nn\n\nclass Pipe:\n    def __init__(self):\n"
        "        self.vae = nn.Conv2d(4, 3, 1)\n\n    def decode(self, z):\n"
        "        needs_upcast = self.vae.weight.dtype == torch.float16 and z.numel() > 1\n"
        "        if needs_upcast:\n            self.vae.float()\n        out = self.vae(z.float())\n"
        "        if needs_upcast:\n            self.vae.half()\n        return out\n",
        # A dtype variable that is never fp16.
        "import torch\nimport torch.nn as nn\nDTYPE = torch.bfloat16\n"
        "model = nn.Sequential(nn.Linear(2, 2)).to(dtype=DTYPE)\n",
        # A Hugging Face load is FP501's.
        "import torch\nfrom transformers import AutoModel\n"
        "model = AutoModel.from_pretrained('x').half()\n",
        # Parameters of a model are tensors.
        "import torch\n\ndef f(model):\n    for p in model.parameters():\n"
        "        p.data = p.data.half()\n",
    )
    invalid = (
        Invalid(
            "import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n    pass\n\n"
            "model = Net().cuda().half()\n",
            (("FP101", 7),),
        ),
        # Aliases and dtype constants, multi-line call.
        Invalid(
            "import torch as th\nfrom torch import nn\nHALF = th.half\n"
            "net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))\n"
            "net.to(\n    'cuda',\n    HALF,\n)\n",
            (("FP101", 5),),
        ),
        # A dtype chosen at run time: may-be fp16.
        Invalid(
            "import torch\n\ndef main(args, accelerator, unet):\n    weight_dtype = torch.float32\n"
            "    if accelerator.mixed_precision == 'fp16':\n        weight_dtype = torch.float16\n"
            "    elif accelerator.mixed_precision == 'bf16':\n        weight_dtype = torch.bfloat16\n"
            "    unet.requires_grad_(False)\n    unet.train()\n"
            "    unet.to(accelerator.device, dtype=weight_dtype)\n",
            (("FP101", 11),),
        ),
        # A parameter used as a module; .type(torch.HalfTensor).
        Invalid(
            "import torch\n\ndef convert(model):\n    model.eval()\n"
            "    model.type(torch.cuda.HalfTensor)\n    return model\n",
            (("FP101", 5),),
        ),
        # torchvision / timm loaders, and self in a module.
        Invalid(
            "import timm\nimport torch\nimport torchvision\nimport torch.nn as nn\n"
            "a = torchvision.models.resnet50().half()\n"
            "b = timm.create_model('vit_base_patch16_224').to(dtype=torch.float16)\n\n"
            "class Net(nn.Module):\n    def to_fp16(self):\n        return self.half()\n",
            (("FP101", 5), ("FP101", 6), ("FP101", 10)),
        ),
        # A project class defined in another file.
        Invalid(
            {
                "pkg/__init__.py": "from .encoder import Encoder\n",
                "pkg/encoder.py": "import torch.nn as nn\n\nclass Base(nn.Module):\n    pass\n\n"
                "class Encoder(Base):\n    pass\n",
                "train.py": "import torch\nfrom pkg import Encoder\nfrom pkg.encoder import Base\n\n"
                "enc = Encoder().to('cuda', torch.float16)\nbase = Base()\nbase.half()\n",
            },
            (("FP101", "train.py", 5), ("FP101", "train.py", 7)),
        ),
        # self.<attribute> assigned an nn layer in __init__.
        Invalid(
            "import torch\nimport torch.nn as nn\n\nclass Head:\n    def __init__(self):\n"
            "        self.proj = nn.Linear(8, 8)\n\n    def fp16(self):\n"
            "        self.proj.half()\n",
            (("FP101", 9),),
        ),
    )

    @classmethod
    def amend(cls, project, finding):
        return with_unsafe_contents(project, finding)

    def visit_Call(self, node: cst.Call) -> None:
        site = cast_of(node, self.ctx.names)
        if site is None or not is_model_cast(site, self.ctx):
            return
        self.report(node, message(short_code(self.ctx, node), site.dtype.maybe), help=HELP)

    @classmethod
    def check_project(cls, project, report) -> None:
        classes = project.derived(
            "fp1.classes",
            lambda p: ProjectClasses(p.facts("classes"), p.facts("reexports")),
        )
        for path, casts in project.facts("casts"):
            for cast in casts:
                if cast["receiver"] != "unknown" or cast["loader"] or not cast["ctor"]:
                    continue
                if not classes.is_module(cast["ctor"]):
                    continue
                qualname = classes.resolve(cast["ctor"])
                where = classes.where[qualname]
                name = qualname.rsplit(".", 1)[-1]
                text = message(cast["call"], cast["maybe"], f"the whole `{name}` model")
                inside = unsafe_contents(project, path, cast["span"])
                if inside:
                    text = f"{text[:-1]}; fp16-unsafe inside it: {inside}."
                report.add(
                    cls,
                    path,
                    cast["span"],
                    text,
                    related=[(where[0], where[1], f"`{name}` is an nn.Module defined here")],
                    help=HELP,
                )
