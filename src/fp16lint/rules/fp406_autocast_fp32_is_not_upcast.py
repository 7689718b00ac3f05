"""FP406 autocast-fp32-is-not-upcast: ``torch.autocast(..., dtype=torch.float32)`` used to
force float32."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.autocast import AUTOCAST_CALLS, autocast_region
from fp16lint.analysis.dtypes import DType
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

_WIDE = (DType.FP32, DType.FP64)


class AutocastFp32IsNotUpcast(Rule):
    code = "FP406"
    name = "autocast-fp32-is-not-upcast"
    severity = Severity.WARNING
    tokens = ("autocast",)

    summary = "`torch.autocast(dtype=torch.float32)` does not make a float32 region."
    what = (
        "Finds autocast calls (every spelling, as a `with` item, a decorator or a value) whose "
        "`dtype` is surely `torch.float32` (or float64) and that are not `enabled=False`: "
        'code that means "run this block in float32".'
    )
    why = (
        "Autocast only lowers precision. On CPU and every other non-CUDA device it accepts "
        'only bfloat16 and float16: any other dtype makes it warn "the target dtype is not '
        "supported. Disabling autocast.\", so ops in the block run in their inputs' dtype and "
        "float16 or bfloat16 tensors stay so. CUDA accepts float32 but only casts the ops on "
        "autocast's lists (matmul, linear, conv, softmax, ...); every other op, elementwise "
        "arithmetic included, still runs in its inputs' dtype. PyTorch's documented way to "
        "force a dtype is a nested `autocast(enabled=False)` region with explicit casts."
    )
    example = """\
with torch.autocast("cuda", dtype=torch.float16):
    h = encoder(x)
    with torch.autocast("cuda", dtype=torch.float32):
        scores = (h * scale).softmax(-1)  # `h * scale` still runs in float16
"""
    use_instead = """\
with torch.autocast("cuda", dtype=torch.float16):
    h = encoder(x)
    with torch.autocast("cuda", enabled=False):
        scores = (h.float() * scale).softmax(-1)
"""
    references = (
        "https://pytorch.org/docs/stable/amp.html#torch.autocast",
        "https://github.com/pytorch/pytorch/blob/main/torch/amp/autocast_mode.py",
    )

    valid = (
        "import torch\nwith torch.autocast('cuda', enabled=False):\n    y = head(x.float())\n",
        "import torch\nwith torch.autocast('cuda', dtype=torch.bfloat16):\n    y = model(x)\n",
        # Explicitly disabled: the dtype is irrelevant.
        "import torch\nwith torch.autocast('cpu', dtype=torch.float32, enabled=False):\n"
        "    y = head(x)\n",
        # Chosen at run time, float16 on some configurations.
        "import torch\n\ndef run(model, x, fp16):\n"
        "    dtype = torch.float16 if fp16 else torch.float32\n"
        "    with torch.autocast('cuda', dtype=dtype):\n        return model(x)\n",
        # accelerate's autocast takes no dtype.
        "from accelerate import Accelerator\naccelerator = Accelerator(mixed_precision='fp16')\n"
        "with accelerator.autocast():\n    y = model(x)\n",
        # Not torch's autocast.
        "def autocast(device, dtype=None):\n    return nullcontext()\n"
        "with autocast('cuda', dtype=torch.float32):\n    pass\n",
    )
    invalid = (
        Invalid(
            "import torch\nwith torch.autocast('cuda', dtype=torch.float16):\n"
            "    h = encoder(x)\n    with torch.autocast('cuda', dtype=torch.float32):\n"
            "        scores = (h * scale).softmax(-1)\n",
            (("FP406", 4),),
        ),
        Invalid(
            "import torch\nfrom torch.amp import autocast as ac\n\nclass Head(torch.nn.Module):\n"
            "    @ac('cpu', dtype=torch.float32)\n    def forward(self, x):\n"
            "        return self.proj(x)\n",
            (("FP406", 5),),
        ),
        Invalid(
            "import torch\nFP32 = torch.float\n\ndef loss_fn(logits, labels):\n"
            "    for chunk in logits.split(1024):\n"
            "        with torch.cuda.amp.autocast(dtype=FP32):\n"
            "            yield torch.nn.functional.cross_entropy(chunk, labels)\n",
            (("FP406", 6),),
        ),
        Invalid(
            "import torch\n\ndef attention(q, k, device_type):\n"
            "    with torch.autocast(device_type=device_type, dtype=torch.float32):\n"
            "        return (q @ k.transpose(-1, -2)).softmax(-1)\n",
            (("FP406", 4),),
        ),
        Invalid(
            "import torch\nupcast = torch.autocast('cuda', dtype=torch.float32, enabled=True)\n"
            "with upcast:\n    y = head(x)\n",
            (("FP406", 2),),
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        if self.ctx.names.qualname(node.func) not in AUTOCAST_CALLS:
            return
        region = autocast_region(node, self.ctx)
        if region is None or region.dtype is None or region.dtype.maybe:
            return
        if region.dtype.dtype not in _WIDE:
            return
        if region.enabled is False and not region.unsupported_dtype:
            return  # enabled=False: the dtype does not matter
        dtype = f"torch.{region.dtype.dtype.value}"
        instead = (
            f'use `torch.autocast("{region.device}", enabled=False)`'
            if region.device
            else "use `torch.autocast(device_type, enabled=False)`"
        )
        if region.device == "cuda":
            what = (
                f"CUDA autocast with dtype={dtype} casts only the ops on autocast's lists "
                "(matmul, linear, conv, softmax, ...) and runs every other op in its inputs' "
                "dtype, so float16 tensors entering the block stay float16"
            )
        elif region.device is not None:
            what = (
                f"{region.device.upper()} autocast supports only bfloat16 and float16, so with "
                f"dtype={dtype} it warns and disables itself and ops in the block run in their "
                "inputs' dtype"
            )
        else:
            what = (
                f"autocast with dtype={dtype} is not a float32 region: off CUDA it warns and "
                "disables itself, on CUDA it casts only the ops on autocast's lists, and other "
                "ops run in their inputs' dtype"
            )
        self.report(node, f"{what}; {instead} and call `.float()` on the inputs.")
