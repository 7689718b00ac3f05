"""FP108 fp16-training-without-master-weights: an optimizer over float16 parameters, an fp16
EMA copy, or an fp16 autocast loss stepped without loss scaling."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.casts import cast_of, constructor_of, short_code
from fp16lint.analysis.dtypes import when_maybe
from fp16lint.analysis.pipelines import PipelineTracker, Recast
from fp16lint.analysis.receivers import ReceiverTracker
from fp16lint.analysis.training import Frame, TrainingTracker
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

# Averaged copies of a model (EMA / SWA): their update adds tiny increments to the weights.
EMA_CLASSES = frozenset(
    {
        "torch.optim.swa_utils.AveragedModel",
        "timm.utils.ModelEma",
        "timm.utils.ModelEmaV2",
        "timm.utils.ModelEmaV3",
        "timm.utils.model_ema.ModelEma",
        "timm.utils.model_ema.ModelEmaV2",
        "timm.utils.model_ema.ModelEmaV3",
        "diffusers.training_utils.EMAModel",
    }
)
_RECOMMEND = (
    "Keep float32 weights and train under `torch.autocast(..., dtype=torch.float16)` with a "
    "`GradScaler`, or use bfloat16."
)


class Fp16TrainingWithoutMasterWeights(Rule):
    code = "FP108"
    name = "fp16-training-without-master-weights"
    severity = Severity.ERROR
    severities = (Severity.ERROR, Severity.WARNING)  # warning: fp16 autocast without a scaler
    tokens = ("optim", "Ema", "EMA", "Averaged", "backward")
    requires = (ReceiverTracker, AutocastTracker, TrainingTracker, PipelineTracker)

    summary = "Training float16 weights directly: updates are lost and gradients underflow."
    what = (
        "Finds an optimizer built over the parameters of a model that the function cast to "
        "float16 or loaded in float16 — `model.parameters()`, a `filter(...)` or list of them, "
        "param groups, a name bound to those — including a model cast to a dtype that may be "
        "float16 (`unet.to(device, dtype=weight_dtype)`). It stays quiet when the trainable "
        "parameters are upcast before the optimizer is built (`cast_training_params(model, "
        "dtype=torch.float32)`, a loop casting `model.parameters()` to float32). Also finds an "
        "EMA/SWA copy cast to float16 (`AveragedModel`, timm's `ModelEma*`, diffusers' "
        "`EMAModel`), and a validation pipeline cast to float16 before or inside the training "
        "loop while it holds the trained module (`pipeline = StableDiffusionPipeline.from_pretrained"
        "(..., unet=accelerator.unwrap_model(unet))`, then `pipeline.to(device, dtype="
        "weight_dtype)`): a diffusers pipeline's `.to` converts the modules it was given in "
        "place, while `from_pretrained`'s own `dtype=` leaves them alone. These are errors. "
        "It also warns (severity warning) about `loss.backward()` of a loss computed under an "
        "fp16 autocast region in a function with no GradScaler."
    )
    why = (
        "Pure-fp16 training has no float32 master weights: an update smaller than half the "
        "float16 spacing at the weight's value (about 5e-4 of the weight) rounds away, small gradients "
        "underflow to 0, and Adam's squared-gradient state underflows. With a GradScaler (accelerate's fp16 mode "
        'uses one) it fails outright: "Attempting to unscale FP16 gradients". An EMA kept in '
        "float16 loses every update below float16 resolution, so it stops moving. A validation "
        "pipeline cast to float16 does the same to the trained module it holds: training "
        "resumes on float16 weights. Under fp16 "
        "autocast the weights are float32 but the activation gradients are float16: without "
        "loss scaling the small ones underflow to 0."
    )
    example = """\
model = Net().cuda().half()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
"""
    use_instead = """\
model = Net().cuda()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
scaler = torch.amp.GradScaler("cuda")
with torch.autocast("cuda", dtype=torch.float16):
    loss = model(x).mean()
scaler.scale(loss).backward()
scaler.step(optimizer)
scaler.update()
"""
    references = (
        "https://pytorch.org/docs/stable/amp.html#gradient-scaling",
        "https://arxiv.org/abs/1710.03740",
    )
    runtime_confirmable = "yes: parameter dtypes at the optimizer"

    valid = (
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2)\n"
        "opt = torch.optim.AdamW(model.parameters())\n",
        # The frozen fp16 model is not optimized.
        "import torch\nimport torch.nn as nn\n\ndef f():\n    vae = nn.Linear(2, 2).half()\n"
        "    unet = nn.Linear(2, 2)\n    return torch.optim.AdamW(unet.parameters())\n",
        # Upcast back before the optimizer.
        "import torch\nfrom diffusers.training_utils import cast_training_params\n\n"
        "def f(unet, weight_dtype):\n    unet.train()\n    unet.to('cuda', dtype=weight_dtype)\n"
        "    cast_training_params(unet, dtype=torch.float32)\n"
        "    return torch.optim.AdamW(filter(lambda p: p.requires_grad, unet.parameters()))\n",
        "import torch\nfrom diffusers.training_utils import cast_training_params\n\n"
        "def g(unet, args):\n    weight_dtype = torch.float16 if args.fp16 else torch.float32\n"
        "    unet.train()\n    unet.to('cuda', dtype=weight_dtype)\n"
        "    if args.mixed_precision == 'fp16':\n        models = [unet]\n"
        "        cast_training_params(models, dtype=torch.float32)\n"
        "    params = list(filter(lambda p: p.requires_grad, unet.parameters()))\n"
        "    return torch.optim.AdamW(params)\n",
        "import torch\nimport torch.nn as nn\n\ndef f():\n    m = nn.Linear(2, 2).half()\n"
        "    for p in m.parameters():\n        p.data = p.data.float()\n"
        "    return torch.optim.SGD(m.parameters(), lr=0.1)\n",
        # bf16.
        "import torch\nimport torch.nn as nn\nm = nn.Linear(2, 2).to(torch.bfloat16)\n"
        "opt = torch.optim.SGD(m.parameters(), lr=0.1)\n",
        # Autocast with a GradScaler; and bf16 autocast without one.
        "import torch\n\ndef step(model, x, opt):\n    scaler = torch.amp.GradScaler('cuda')\n"
        "    with torch.autocast('cuda', dtype=torch.float16):\n        loss = model(x).mean()\n"
        "    scaler.scale(loss).backward()\n\n"
        "def step_bf16(model, x):\n    with torch.autocast('cuda', dtype=torch.bfloat16):\n"
        "        loss = model(x).mean()\n    loss.backward()\n",
        # EMA moved, not cast.
        "import torch\nfrom torch.optim.swa_utils import AveragedModel\n\ndef f(model):\n"
        "    ema = AveragedModel(model)\n    ema.to('cuda')\n",
        # A validation pipeline given a copy of the trained module.
        """\
import copy
import torch
from diffusers import DDPMPipeline

def train(unet, scheduler, loader):
    optimizer = torch.optim.AdamW(unet.parameters())
    for batch in loader:
        unet(batch).sample.mean().backward()
        optimizer.step()
        pipe = DDPMPipeline(unet=copy.deepcopy(unet), scheduler=scheduler)
        pipe.to("cuda", torch.float16)
""",
        # from_pretrained's dtype leaves a passed module alone; a move; a bfloat16 cast.
        """\
import torch
from diffusers import StableDiffusionPipeline

def train(args, unet, loader):
    optimizer = torch.optim.AdamW(unet.parameters())
    for batch in loader:
        unet(batch).sample.mean().backward()
        optimizer.step()
        pipeline = StableDiffusionPipeline.from_pretrained(
            args.model, unet=unet, torch_dtype=torch.float16
        )
        pipeline.to("cuda")
        pipeline.to("cuda", torch_dtype=torch.float16)  # `to` ignores `torch_dtype`
        StableDiffusionPipeline.from_pretrained(args.model, unet=unet).to(dtype=torch.bfloat16)
""",
        # The shared module is not the trained one; the final pipeline runs after training.
        """\
import torch
from diffusers import StableDiffusionPipeline

def train(unet, text_encoder, loader):
    optimizer = torch.optim.AdamW(text_encoder.parameters())
    for batch in loader:
        text_encoder(batch).mean().backward()
        optimizer.step()
        StableDiffusionPipeline(unet=unet, text_encoder=None).to(dtype=torch.float16)
    final = StableDiffusionPipeline(unet=unet, text_encoder=text_encoder)
    final.to(dtype=torch.float16)
""",
    )
    invalid = (
        Invalid(
            "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).cuda().half()\n"
            "optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)\n",
            (("FP108", 4),),
        ),
        # The diffusers pattern: a may-be-fp16 cast of the trained model, params through a name.
        Invalid(
            "import torch\n\ndef main(accelerator, unet):\n    weight_dtype = torch.float32\n"
            "    if accelerator.mixed_precision == 'fp16':\n        weight_dtype = torch.float16\n"
            "    unet.train()\n    unet.to(accelerator.device, dtype=weight_dtype)\n"
            "    params = list(filter(lambda p: p.requires_grad, unet.parameters()))\n"
            "    optimizer = torch.optim.AdamW(\n        params,\n        lr=1e-4,\n    )\n",
            (("FP108", 10),),
        ),
        # Loaded in fp16; param groups.
        Invalid(
            "import torch\nfrom transformers import AutoModelForCausalLM\n"
            "model = AutoModelForCausalLM.from_pretrained('gpt2', dtype=torch.float16)\n"
            "opt = torch.optim.SGD([{'params': model.parameters(), 'lr': 1e-5}], momentum=0.9)\n",
            (("FP108", 4),),
        ),
        # An EMA in fp16.
        Invalid(
            "import torch\nfrom timm.utils import ModelEmaV3\n\ndef f(model):\n"
            "    ema = ModelEmaV3(model, decay=0.999)\n    ema.half()\n",
            (("FP108", 6),),
        ),
        # fp16 autocast loss, no GradScaler.
        Invalid(
            "import torch\n\ndef step(model, x, optimizer):\n"
            "    with torch.autocast(device_type='cuda'):\n        loss = model(x).mean()\n"
            "    loss.backward()\n    optimizer.step()\n",
            (("FP108", 6),),
        ),
        # A validation pipeline sharing the trained module, cast to a may-be-fp16 dtype.
        Invalid(
            """\
import torch
from accelerate import Accelerator
from diffusers import StableDiffusionPipeline

def main(args, unet, loader):
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    weight_dtype = torch.float16 if accelerator.mixed_precision == "fp16" else torch.float32
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-5)
    unet, optimizer = accelerator.prepare(unet, optimizer)
    for epoch in range(args.epochs):
        for batch in loader:
            accelerator.backward(unet(batch).sample.mean())
            optimizer.step()
        pipeline = StableDiffusionPipeline.from_pretrained(
            args.model, unet=accelerator.unwrap_model(unet)
        )
        pipeline.to(accelerator.device, dtype=weight_dtype)
""",
            (("FP108", 17),),
        ),
        # Through the scripts' own unwrap helper; a chained, multi-line cast.
        Invalid(
            """\
import torch
from accelerate import Accelerator
from diffusers import DDPMPipeline

def train(unet, scheduler, loader):
    accelerator = Accelerator()
    optimizer = torch.optim.AdamW(unet.parameters())

    def unwrap_model(model):
        model = accelerator.unwrap_model(model)
        return model._orig_mod if hasattr(model, "_orig_mod") else model

    for step, batch in enumerate(loader):
        accelerator.backward(unet(batch).sample.mean())
        optimizer.step()
        if step % 100 == 0:
            pipe = DDPMPipeline(unet=unwrap_model(unet), scheduler=scheduler).to(
                "cuda", torch.float16
            )
""",
            (("FP108", 17),),
        ),
        # The trained module assigned to an existing pipeline.
        Invalid(
            """\
import torch
from diffusers import DiffusionPipeline

def fit(model_id, transformer, loader):
    pipeline = DiffusionPipeline.from_pretrained(model_id)
    optimizer = torch.optim.AdamW(transformer.parameters())
    for batch in loader:
        transformer(batch).mean().backward()
        optimizer.step()
        pipeline.transformer = transformer
        pipeline.to(torch.float16)
""",
            (("FP108", 11),),
        ),
        # Cast before the training loop starts.
        Invalid(
            """\
import torch
from diffusers import StableDiffusionControlNetPipeline

def main(unet, controlnet, loader):
    optimizer = torch.optim.AdamW(controlnet.parameters())
    pipeline = StableDiffusionControlNetPipeline(unet=unet, controlnet=controlnet)
    pipeline.to("cuda", dtype=torch.float16)
    for batch in loader:
        controlnet(batch).mean().backward()
        optimizer.step()
""",
            (("FP108", 7),),
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        training = self.ctx.get(TrainingTracker)
        models = training.optimizer_models(node)
        if models:
            model = models[0]
            name = f"`{model.key}`" if model.key else "a model"
            self.report(
                node,
                f"`{short_code(self.ctx, node.func)}` trains {name}, {model.spelling}"
                f"{when_maybe(model.dtype)}: small updates and gradients are lost.",
                related=[
                    (
                        self.ctx.path,
                        model.node,
                        f"made float16 here: `{short_code(self.ctx, model.node, 40)}`",
                    )
                ],
                help=_RECOMMEND,
            )
            return
        recast = self.ctx.get(PipelineTracker).recast(node)
        if recast is not None:
            self._recast(node, recast)
            return
        site = cast_of(node, self.ctx.names)
        if site is None or not site.to_fp16:
            return
        ema = constructor_of(site.receiver, self.ctx)
        if ema in EMA_CLASSES:
            self.report(
                node,
                f"`{short_code(self.ctx, node)}` keeps an EMA copy of the model in float16"
                f"{when_maybe(site.dtype)}: its updates round away and it stops moving.",
                help="Keep the EMA weights in float32.",
            )

    def _recast(self, node: cst.Call, recast: Recast) -> None:
        shared = recast.shared
        self.report(
            node,
            f"`{short_code(self.ctx, node)}` casts the trained `{shared.key}` to float16 in place"
            f"{when_maybe(recast.dtype)}: training resumes on float16 weights.",
            help=f"The pipeline holds that very module (`{shared.keyword}=`): give it a copy, or "
            "only move it (`.to(device)`) and validate under `torch.autocast`.",
            related=[
                (self.ctx.path, shared.value, "the pipeline is given the module here"),
                (self.ctx.path, recast.optimizer, "the optimizer over its parameters"),
            ],
        )

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._unscaled(self.ctx.get(TrainingTracker).frame)

    def leave_Module(self, node: cst.Module) -> None:
        self._unscaled(self.ctx.get(TrainingTracker).frame)

    def _unscaled(self, frame: Frame) -> None:
        if frame.scaled:
            return
        for call, region in frame.backward_calls:
            self.report(
                call,
                f"`{short_code(self.ctx, call)}` backpropagates an fp16 autocast loss with no "
                "GradScaler: small gradients underflow to 0.",
                help="Scale the loss with `torch.amp.GradScaler` (`scaler.scale(loss).backward()`,"
                " `scaler.step(optimizer)`), or use bfloat16.",
                related=[(self.ctx.path, region.node, "the fp16 autocast region")],
                severity=Severity.WARNING,
            )
