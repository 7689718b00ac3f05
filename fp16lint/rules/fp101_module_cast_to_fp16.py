"""FP101 module-cast-to-fp16: a whole model converted to float16 (pure fp16, no master weights)."""

from __future__ import annotations

from dataclasses import replace

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.call_guards import unreached_cast
from fp16lint.analysis.cast_use import CastUse, Verdict
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
from fp16lint.analysis.index import ModelFacts, unsafe_contents, with_unsafe_contents
from fp16lint.analysis.receivers import Kind, ReceiverTracker
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

HELP = (
    "Keep the weights in float32 and run the forward pass under "
    '`torch.autocast(device_type="cuda", dtype=torch.float16)`, or use bfloat16.'
)

# A validation helper called by training code: the cast is on line 8.
_VALIDATE = (
    "import torch\n\n\ndef run(half=False, model=None):\n    training = model is not None\n"
    "    if training:\n        device = next(model.parameters()).device\n"
    "        model.half() if half else model.float()\n\n\n"
    "def train(net, amp):\n    return run({args})\n"
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
    # ModelFacts: the project index looks inside the cast model (``amend``).
    requires = (ReceiverTracker, AutocastTracker, CastFacts, CastUse, ModelFacts)

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
        "uses as a module (`model.eval()`, `model.parameters()`). A cast is reported only "
        "where it is a defect: the model is trained (an optimizer steps its parameters, it "
        "gets adapters, `requires_grad_(True)`, `.train()` unless frozen), it is cast on a training path (`if training:`), it runs on "
        "the CPU, or it holds something that fails in float16 inference (hand-written norms, "
        "`exp`, attention logits... listed in the message). A deliberate fp16 inference or "
        "export cast of a model with nothing unsafe inside, a frozen sub-model of a training "
        "script, a `.half().float()` round trip and casts of submodules of a model already "
        "cast are not reported; nor is a cast under tests of the function's parameters "
        "(`if training:` with `training = model is not None`, `if half:`) that every caller "
        "in the project leaves false (`run(model=m)` with `half=False` by default; "
        "`run(**vars(args))` whose options hold no `model`)."
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
        # Deliberate fp16 inference and export of a model with nothing unsafe inside.
        "import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n    pass\n\n"
        "model = Net().cuda().half().eval()\n\ndef export(path):\n    net = Net()\n"
        "    net.half()\n    torch.onnx.export(net, torch.ones(1), path)\n",
        # A round trip, and redundant casts of submodules of a model cast already.
        "import torch.nn as nn\n\ndef f(model, x):\n    model.eval()\n    model.half().float()\n"
        "    model.half()\n    model.encoder.half()\n    return model(x)\n",
        # Frozen sub-models of a training script (the VAE only encodes inputs).
        "import torch\n\ndef main(args, accelerator, unet, vae, text_encoder):\n"
        "    vae.requires_grad_(False)\n    unet.train()\n"
        "    opt = torch.optim.AdamW(unet.parameters())\n"
        "    vae.to(accelerator.device, dtype=torch.float16)\n"
        "    if not args.train_text_encoder:\n"
        "        text_encoder.to(accelerator.device, dtype=torch.float16)\n",
        # Under `if not args.train_text_encoder:`, though adapters are added when it is set;
        # a converter that adds adapters, casts and saves (no optimizer).
        "import torch\nfrom peft import get_peft_model\n\ndef main(args, te, opt_cls):\n"
        "    if args.train_text_encoder:\n        te = get_peft_model(te, args.cfg)\n"
        "    opt = torch.optim.AdamW(args.params)\n    te.eval()\n"
        "    if not args.train_text_encoder:\n        te.to('cuda', dtype=torch.float16)\n\n"
        "def convert(args, model):\n    model.eval()\n    model = get_peft_model(model, args.cfg)\n"
        "    if args.half:\n        model.half()\n    model.save_pretrained(args.out)\n",
        # Parameters of a model are tensors.
        "import torch\n\ndef f(model):\n    for p in model.parameters():\n"
        "        p.data = p.data.half()\n",
        # Cast only for a caller that passes a model and a true `half`; the one caller does not.
        _VALIDATE.format(args="model=net"),
    )
    invalid = (
        # Trained: an optimizer steps its parameters.
        Invalid(
            "import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n    pass\n\n"
            "model = Net().cuda().half()\nopt = torch.optim.Adam(model.parameters())\n",
            (("FP101", 7),),
        ),
        # Aliases and dtype constants, multi-line call.
        Invalid(
            "import torch as th\nfrom torch import nn\nHALF = th.half\n"
            "net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))\n"
            "net.to(\n    'cuda',\n    HALF,\n)\nopt = th.optim.SGD(net.parameters(), lr=0.1)\n",
            (("FP101", 5),),
        ),
        # A dtype chosen at run time: may-be fp16; LoRA adapters added to the model are trained.
        Invalid(
            "import torch\n\ndef main(args, accelerator, unet, lora_config):\n"
            "    weight_dtype = torch.float32\n"
            "    if accelerator.mixed_precision == 'fp16':\n        weight_dtype = torch.float16\n"
            "    elif accelerator.mixed_precision == 'bf16':\n        weight_dtype = torch.bfloat16\n"
            "    unet.requires_grad_(False)\n    unet.train()\n    unet.add_adapter(lora_config)\n"
            "    unet.to(accelerator.device, dtype=weight_dtype)\n"
            "    return torch.optim.AdamW(args.lora_layers)\n",
            (("FP101", 12),),
        ),
        # A parameter used as a module, moved to the CPU; .type(torch.HalfTensor).
        Invalid(
            "import torch\n\ndef convert(model):\n    model.eval()\n"
            "    model.cpu().type(torch.HalfTensor)\n    return model\n",
            (("FP101", 5),),
        ),
        # torchvision / timm loaders, and self in a module, all trained.
        Invalid(
            "import timm\nimport torch\nimport torchvision\nimport torch.nn as nn\n"
            "a = torchvision.models.resnet50().half()\n"
            "b = timm.create_model('vit_base_patch16_224').to(dtype=torch.float16)\n"
            "opt = torch.optim.SGD([*a.parameters(), *b.parameters()], lr=0.1)\n\n"
            "class Net(nn.Module):\n    def to_fp16(self):\n        self.half()\n"
            "        return torch.optim.SGD(self.parameters(), lr=0.1)\n",
            (("FP101", 5), ("FP101", 6), ("FP101", 11)),
        ),
        # A project class defined in another file, cast on a training path.
        Invalid(
            {
                "pkg/__init__.py": "from .encoder import Encoder\n",
                "pkg/encoder.py": "import torch.nn as nn\n\nclass Base(nn.Module):\n    pass\n\n"
                "class Encoder(Base):\n    pass\n",
                "train.py": "import torch\nfrom pkg import Encoder\nfrom pkg.encoder import Base\n\n"
                "enc = Encoder().to('cuda', torch.float16)\nbase = Base()\nbase.half()\n"
                "opt = torch.optim.Adam([*enc.parameters(), *base.parameters()])\n",
            },
            (("FP101", "train.py", 5), ("FP101", "train.py", 7)),
        ),
        # self.<attribute> assigned an nn layer in __init__, cast under a training flag.
        Invalid(
            "import torch\nimport torch.nn as nn\n\nclass Head:\n    def __init__(self):\n"
            "        self.proj = nn.Linear(8, 8)\n\n    def fp16(self, training):\n"
            "        if training:\n            self.proj.half()\n",
            (("FP101", 10),),
        ),
        # ... and here one does.
        Invalid(_VALIDATE.format(args="model=net, half=amp"), (("FP101", 8),)),
        # Deliberate inference, but the model holds a hand-written norm that overflows.
        Invalid(
            "import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n"
            "    def forward(self, x):\n        return x * torch.rsqrt(x.pow(2).mean(-1) + 1e-6)\n\n"
            "model = Net().cuda().half().eval()\n",
            (("FP101", 8),),
        ),
    )

    def __init__(self, ctx):
        super().__init__(ctx)
        self._pending: list[list[tuple[cst.Call, str]]] = [[]]  # per function, module first

    @classmethod
    def amend(cls, project, finding):
        """A cast with no defect of its own (``info`` here) stays only when the model holds
        something that fails in float16 inference; then it is a warning."""
        start = finding.span.start
        if unreached_cast(project, finding.path, start.line, start.column):
            return None
        if finding.severity is not Severity.INFO:
            return with_unsafe_contents(project, finding)
        inside = unsafe_contents(project, finding.path, [start.line, start.column], inference=True)
        if not inside:
            return None
        message = f"{finding.message.rstrip('.')}; fp16-unsafe inside it: {inside}."
        return replace(finding, message=message, severity=Severity.WARNING)

    def visit_Call(self, node: cst.Call) -> None:
        site = cast_of(node, self.ctx.names)
        if site is None or not is_model_cast(site, self.ctx):
            return
        self._pending[-1].append((node, message(short_code(self.ctx, node), site.dtype.maybe)))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._pending.append([])

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._decide(node, self._pending.pop())

    def leave_Module(self, node: cst.Module) -> None:
        self._decide(node, self._pending.pop())

    def _decide(self, scope: cst.CSTNode, pending: list[tuple[cst.Call, str]]) -> None:
        """Report the casts of ``scope`` by their verdict: a defect is a warning saying why; a
        deliberate cast is ``info`` until the project pass looks inside the model (``amend``)."""
        verdicts = self.ctx.get(CastUse).verdicts(scope)  # also marks the project's cast facts
        for node, text in pending:
            verdict = verdicts.get(id(node))
            if verdict is None or verdict.silent:
                continue
            if verdict.defect:
                self.report(node, f"{text[:-1]}; {verdict.why}.", help=HELP)
            else:
                self.report(node, text, severity=Severity.INFO, help=HELP)

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
                if cast.get("silent") or unreached_cast(project, path, *cast["span"][:2]):
                    continue
                if not classes.is_module(cast["ctor"]):
                    continue
                qualname = classes.resolve(cast["ctor"])
                where = classes.where[qualname]
                name = qualname.rsplit(".", 1)[-1]
                text = message(cast["call"], cast["maybe"], f"the whole `{name}` model")
                defect = cast.get("defect")
                inside = unsafe_contents(project, path, cast["span"], inference=not defect)
                if not defect and not inside:
                    continue  # a deliberate fp16 inference or export cast
                if defect:
                    text = f"{text[:-1]}; {Verdict(defect).why}."
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
