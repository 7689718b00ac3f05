"""FP104 fp16-on-cpu: float16 compute placed on the CPU (a model, or CPU autocast)."""

from __future__ import annotations

import re

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker, autocast_region
from fp16lint.analysis.casts import cast_of, short_code
from fp16lint.analysis.dtypes import DType, when_maybe
from fp16lint.analysis.receivers import ReceiverTracker
from fp16lint.analysis.training import TrainingTracker
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

_MODEL_ADVICE = (
    "Keep the model in float32 or use bfloat16 on the CPU: several ops have no float16 CPU "
    "kernel (`torch.quantile`, `torch.fft`, `torch.linalg` solves and decompositions raise)."
)


def _is_cpu(device: str | None) -> bool:
    return device is not None and device.split(":")[0] == "cpu"


# Words of every way code puts a model or a tensor on an accelerator (a device object or
# string, ``.cuda()``, a rank or GPU index, a framework that places it), as parts of names
# (``local_rank``, ``pytorch_lightning``): a file with none of them runs what it builds on the
# CPU, where PyTorch makes every module and tensor.
_PLACEMENT_WORDS = frozenset({
    "cuda", "device", "devices", "gpu", "gpus", "rank", "mps", "xla", "npu", "xpu", "hpu",
    "accelerator", "accelerate", "fabric", "deepspeed", "lightning", "dist", "distributed",
    "parallel", "ddp", "fsdp",
})  # fmt: skip
_WORD_BREAKS = re.compile(r"[^a-z0-9]+")


def _built_here(cast: cst.Call) -> bool:
    """A cast of a model constructed in the same expression (``Net().half()``)."""
    func = cast.func
    return type(func) is cst.Attribute and type(func.value) is cst.Call


class Fp16OnCpu(Rule):
    code = "FP104"
    name = "fp16-on-cpu"
    severity = Severity.WARNING
    runtime_confirmable = "no"
    tokens = ("cpu", "half", "float16")
    requires = (ReceiverTracker, AutocastTracker, TrainingTracker)

    summary = "float16 compute on the CPU: missing kernels, and CPU autocast keeps fp16 ops."
    what = (
        "Finds a float16 model (cast, or loaded with an fp16 dtype) that the same function runs "
        'after placing it on the CPU explicitly — in its cast (`.to("cpu", torch.float16)`), '
        "in the same chain (`.cpu().half()`), or by a move (`model.to(device)` with "
        '`device = "cpu"`, or a load with `device_map="cpu"` / `{"": "cpu"}`) — and '
        '`torch.autocast("cpu", dtype=torch.float16)` in any spelling. The finding is at the '
        "placement, with the call as a related location. A model loaded with "
        '`device_map={"": device}` where `device` may be "cpu" (`"cuda" if '
        'torch.cuda.is_available() else "cpu"`), made float16 and run — also in a closure — is '
        "a CPU path: reported at what made it float16. So is a model built and made float16 "
        "in one expression (`Net().half()`) and run in a file that never names a device, a "
        "GPU or a framework that places models (a test without `.cuda()`). A model parked on "
        "the CPU and not run "
        "there (offloading, saving, merging LoRA weights) and tensors (`.half().numpy()`) are "
        "not reported."
    )
    why = (
        "float16 on the CPU is not what it is on a GPU: ops such as `torch.quantile`, "
        "`torch.fft.*`, `torch.stft` and the `torch.linalg` solvers and decompositions raise "
        "on float16 CPU tensors, and CPU autocast with float16 uses bfloat16's op lists, so "
        "softmax, layer_norm and log_softmax run in float16 instead of float32 as they do under "
        'CUDA autocast. diffusers warns that float16 pipelines moved to the CPU "will fail". '
        "bfloat16 has CPU kernels and autocast support, and float32's range."
    )
    example = """\
model = Net().to("cpu", torch.float16)
with torch.autocast("cpu", dtype=torch.float16):
    out = model(x)
"""
    use_instead = """\
model = Net()
with torch.autocast("cpu", dtype=torch.bfloat16):
    out = model(x)
"""
    references = ("https://pytorch.org/docs/stable/amp.html#cpu-op-specific-behavior",)

    valid = (
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).to('cpu', torch.bfloat16)\n"
        "y = model(torch.ones(1, 2))\nwith torch.autocast('cpu', dtype=torch.bfloat16):\n    pass\n",
        # CUDA.
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).to('cuda', torch.float16)\n"
        "y = model(torch.ones(1, 2))\nwith torch.autocast('cuda', dtype=torch.float16):\n    pass\n",
        # A tensor cast for storage.
        "import torch\nx = torch.randn(3)\narr = x.cpu().half().numpy()\n",
        # Converted on the CPU for storage, or loaded there and then moved to the GPU.
        "import torch\nimport torch.nn as nn\n\ndef export(path):\n"
        "    model = nn.Linear(2, 2).cpu().half()\n    torch.save(model.state_dict(), path)\n\n"
        "def serve(x):\n    model = nn.Linear(2, 2).to('cpu', torch.float16)\n    model.to('cuda')\n"
        "    return model(x)\n",
        # Placed on the GPU only, or loaded on the CPU in fp16 to merge and save, never run.
        "import torch\nfrom transformers import AutoModelForCausalLM\n"
        "device = 'cuda' if torch.cuda.is_available() else 'mps'\n"
        "model = AutoModelForCausalLM.from_pretrained('x', device_map={'': device})\n"
        "model.half()\nout = model.generate(torch.ones(1, 2))\n"
        "base = AutoModelForCausalLM.from_pretrained('x', torch_dtype=torch.float16, "
        "device_map={'': 'cpu'})\nmerged = base.merge_and_unload()\nmerged.save_pretrained('o')\n",
        # CPU autocast with its default (bfloat16).
        "import torch\nwith torch.autocast(device_type='cpu'):\n    pass\n",
        # The file places its work on a GPU somewhere (here through a device argument).
        "import torch\nfrom torch import nn\n\n\ndef check(x):\n"
        "    model = nn.Linear(4, 4).half()\n    return model(x.to(device='cuda'))\n",
        # Offloaded to the CPU between uses, run only on the GPU.
        "import torch\nimport torch.nn as nn\n\ndef f(x):\n    m = nn.Linear(2, 2).cuda().half()\n"
        "    y = m(x)\n    m.to('cpu')\n    return y\n",
    )
    invalid = (
        Invalid(
            "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).to('cpu', torch.float16)\n"
            "y = model(torch.ones(1, 2, dtype=torch.float16))\n",
            (("FP104", 3),),
        ),
        Invalid(
            "import torch as th\nimport torch.nn as nn\n\ndef build(x):\n"
            "    device = th.device('cpu')\n    net = nn.Sequential(nn.Linear(2, 2))\n"
            "    net.to(device=device, dtype=th.half)\n    return net(x)\n",
            (("FP104", 7),),
        ),
        # Chained, and moved to the CPU after the cast.
        Invalid(
            "import torch\nimport torch.nn as nn\n\ndef f(x):\n    a = nn.Linear(2, 2).cpu().half()\n"
            "    b = nn.Linear(2, 2).half()\n    b.to('cpu')\n    return a(x), b.forward(x), b(x)\n",
            (("FP104", 5), ("FP104", 7)),
        ),
        # A module-level device constant (issue 17).
        Invalid(
            "import torch\nimport torch.nn as nn\nDEVICE = 'cpu'\n\ndef main(x):\n"
            "    model = nn.Linear(2, 2).half()\n    model.to(DEVICE)\n    return model(x)\n",
            (("FP104", 7),),
        ),
        # Loaded in fp16, then run on the CPU.
        Invalid(
            "import torch\nfrom diffusers import DiffusionPipeline\n"
            "pipe = DiffusionPipeline.from_pretrained('x', torch_dtype=torch.float16)\n"
            "pipe.to('cpu')\nimage = pipe('a prompt')\n",
            (("FP104", 4),),
        ),
        # Loaded onto the CPU with device_map, cast, run.
        Invalid(
            "import torch\nfrom transformers import AutoModelForCausalLM\n\ndef main(ids):\n"
            "    model = AutoModelForCausalLM.from_pretrained('x', device_map={'': 'cpu'})\n"
            "    model.half()\n    return model.generate(ids)\n",
            (("FP104", 5),),
        ),
        # A device variable with a CPU branch (no CUDA), the model run in a closure.
        Invalid(
            "import torch\nfrom transformers import AutoModelForCausalLM\n"
            "if torch.cuda.is_available():\n    device = 'cuda'\nelse:\n    device = 'cpu'\n\n"
            "def main():\n"
            "    model = AutoModelForCausalLM.from_pretrained('x', device_map={'': device})\n"
            "    model.half()\n    model = torch.compile(model)\n\n"
            "    def evaluate(ids):\n        return model.generate(ids)\n    return evaluate\n",
            (("FP104", 10),),
        ),
        # Built and cast in one expression, run, and never placed on a GPU: the CPU.
        Invalid(
            "import torch\nfrom torch import nn\n\n\ndef test_half():\n"
            "    model = nn.Linear(4, 4).half()\n    inputs = torch.randn(2, 4).half()\n"
            "    assert model(inputs).dtype == torch.float16\n",
            (("FP104", 6),),
        ),
        # CPU autocast with float16, every spelling.
        Invalid(
            "import torch\nfrom torch.cpu.amp import autocast\nHALF = torch.float16\n"
            "with torch.autocast('cpu', dtype=HALF):\n    pass\n"
            "with torch.amp.autocast(\n    device_type='cpu',\n    dtype=torch.float16,\n):\n    pass\n"
            "@autocast(dtype=torch.float16)\ndef f(x):\n    return x\n",
            (("FP104", 4), ("FP104", 6), ("FP104", 11)),
        ),
    )

    def __init__(self, ctx):
        super().__init__(ctx)
        self._reported: set[int] = set()
        self._unplaced = _PLACEMENT_WORDS.isdisjoint(_WORD_BREAKS.split(ctx.text.lower()))

    # --- models ---------------------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        """A call of an fp16 model whose last explicit placement in this function is the CPU:
        reported where it was placed (a model parked on the CPU and never run there is not)."""
        if cast_of(node, self.ctx.names) is not None:
            return
        training = self.ctx.get(TrainingTracker)
        model = training.called_model(node)
        if model is None:
            return
        frame = training.holder(model.key)
        placed = frame.devices.get(model.key) if frame is not None else None
        if placed is None or not _is_cpu(placed[0]):
            path = frame.cpu_paths.get(model.key) if frame is not None else None
            if path is not None:
                self._cpu_path(model, node, *path)
            elif placed is None and self._unplaced and _built_here(model.node):
                self._never_placed(model, node)
            return
        if id(placed[1]) in self._reported:
            return
        self._reported.add(id(placed[1]))
        self.report(
            placed[1],
            f"`{short_code(self.ctx, placed[1])}` puts `{model.key}`, {model.spelling}"
            f"{when_maybe(model.dtype)}, on the CPU, where it runs.",
            related=[
                (self.ctx.path, node, f"run on the CPU here: `{short_code(self.ctx, node, 40)}`")
            ],
            help=_MODEL_ADVICE,
        )

    def _cpu_path(self, model, run: cst.Call, placement: cst.Call, variable: str) -> None:
        """A model placed with a device variable that may be the CPU (``device = "cuda" if
        torch.cuda.is_available() else "cpu"``), made float16 and run: reported at what made
        it float16 (the load itself, or a later cast)."""
        if id(model.node) in self._reported:
            return
        self._reported.add(id(model.node))
        related = [(self.ctx.path, run, f"run here: `{short_code(self.ctx, run, 40)}`")]
        if placement is not model.node:
            where = f"placed by `{short_code(self.ctx, placement, 40)}`"
            related.insert(0, (self.ctx.path, placement, where))
        variable = f"`{variable}`" if variable != "?" else "a device"
        self.report(
            model.node,
            f"`{short_code(self.ctx, model.node)}` leaves `{model.key}` {model.spelling} on a "
            f'CPU path: it is placed with {variable}, which may be "cpu", and run there.',
            related=related,
            help=_MODEL_ADVICE,
        )

    def _never_placed(self, model, run: cst.Call) -> None:
        """A model built and made float16 in one expression (``Net().half()``) and run, in a
        file that never names a device, a GPU or a framework that places models: it runs on
        the CPU (a test or a script without ``.cuda()``)."""
        if id(model.node) in self._reported:
            return
        self._reported.add(id(model.node))
        self.report(
            model.node,
            f"`{short_code(self.ctx, model.node)}` makes `{model.key}` float16, and nothing in "
            "this file puts it (or its inputs) on a GPU: it runs on the CPU.",
            related=[(self.ctx.path, run, f"run here: `{short_code(self.ctx, run, 40)}`")],
            help=_MODEL_ADVICE,
        )

    # --- CPU autocast -----------------------------------------------------------------------
    def visit_With(self, node: cst.With) -> None:
        for item in node.items:
            self._check_autocast(item.item)

    def visit_Decorator(self, node: cst.Decorator) -> None:
        self._check_autocast(node.decorator)

    def _check_autocast(self, expr: cst.BaseExpression) -> None:
        region = autocast_region(expr, self.ctx)
        if region is None or not _is_cpu(region.device) or region.enabled is False:
            return
        if region.dtype is None or region.dtype.dtype is not DType.FP16:
            return
        self.report(
            expr,
            f"CPU autocast with float16{when_maybe(region.dtype)} runs softmax and layer_norm in "
            "float16 (CUDA autocast runs them in float32).",
            help="Use `dtype=torch.bfloat16` on the CPU: CPU autocast uses bfloat16's op lists.",
        )
