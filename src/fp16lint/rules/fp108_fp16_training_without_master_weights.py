"""FP108 fp16-training-without-master-weights: an optimizer over float16 parameters, an fp16
EMA copy, or an fp16 autocast loss stepped without loss scaling."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.casts import cast_of, constructor_of, short_code
from fp16lint.analysis.dtypes import when_maybe
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
    "keep float32 weights and train under `torch.autocast(..., dtype=torch.float16)` with a "
    "`GradScaler`, or use bfloat16"
)


class Fp16TrainingWithoutMasterWeights(Rule):
    code = "FP108"
    name = "fp16-training-without-master-weights"
    severity = Severity.ERROR
    tokens = ("optim", "Ema", "EMA", "Averaged", "backward")
    requires = (ReceiverTracker, AutocastTracker, TrainingTracker)

    summary = "Training float16 weights directly: updates are lost and gradients underflow."
    what = (
        "Finds an optimizer built over the parameters of a model that the function cast to "
        "float16 or loaded in float16 — `model.parameters()`, a `filter(...)` or list of them, "
        "param groups, a name bound to those — including a model cast to a dtype that may be "
        "float16 (`unet.to(device, dtype=weight_dtype)`). It stays quiet when the trainable "
        "parameters are upcast before the optimizer is built (`cast_training_params(model, "
        "dtype=torch.float32)`, a loop casting `model.parameters()` to float32). Also finds an "
        "EMA/SWA copy cast to float16 (`AveragedModel`, timm's `ModelEma*`, diffusers' "
        "`EMAModel`), and `loss.backward()` of a loss computed under an fp16 autocast region "
        "in a function with no GradScaler."
    )
    why = (
        "Pure-fp16 training has no float32 master weights: an update smaller than half the "
        "float16 spacing at the weight's value (about 5e-4 of the weight) rounds away, small gradients "
        "underflow to 0, and Adam's squared-gradient state underflows. With a GradScaler (accelerate's fp16 mode "
        'uses one) it fails outright: "Attempting to unscale FP16 gradients". An EMA kept in '
        "float16 loses every update below float16 resolution, so it stops moving. Under fp16 "
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
    )

    def visit_Call(self, node: cst.Call) -> None:
        training = self.ctx.get(TrainingTracker)
        models = training.optimizer_models(node)
        if models:
            model = models[0]
            name = f"`{model.key}`" if model.key else "a model"
            self.report(
                node,
                f"`{short_code(self.ctx, node.func)}` optimizes the parameters of {name}, "
                f"{model.spelling}{when_maybe(model.dtype)} "
                f"(`{short_code(self.ctx, model.node, 40)}`): pure-fp16 training loses updates "
                "below float16 resolution, gradients underflow, and a GradScaler raises "
                f'"Attempting to unscale FP16 gradients"; {_RECOMMEND}.',
                related=[(self.ctx.path, model.node, "made float16 here")],
            )
            return
        site = cast_of(node, self.ctx.names)
        if site is None or not site.to_fp16:
            return
        ema = constructor_of(site.receiver, self.ctx)
        if ema in EMA_CLASSES:
            self.report(
                node,
                f"`{short_code(self.ctx, node)}` keeps an EMA copy of the model in float16"
                f"{when_maybe(site.dtype)}: each update adds (1 - decay) times the difference, "
                "which rounds away below float16 resolution, so the average stops moving; keep "
                "the EMA weights in float32.",
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
                f"`{short_code(self.ctx, call)}` backpropagates a loss computed under fp16 "
                "autocast with no GradScaler in this function: float16 gradients below about "
                "3e-8 underflow to 0; scale the loss with `torch.amp.GradScaler` "
                "(`scaler.scale(loss).backward()`, `scaler.step(optimizer)`), or use bfloat16.",
                related=[(self.ctx.path, region.node, "the fp16 autocast region")],
            )
