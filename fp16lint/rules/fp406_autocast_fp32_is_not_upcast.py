"""FP406 autocast-fp32-is-not-upcast: ``torch.autocast(..., dtype=torch.float32)`` used to
force float32 where autocast rejects that dtype."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.autocast import AUTOCAST_CALLS, autocast_region
from fp16lint.analysis.casts import cast_of
from fp16lint.analysis.dtypes import DType
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

_WIDE = (DType.FP32, DType.FP64)


class AutocastFp32IsNotUpcast(Rule):
    code = "FP406"
    name = "autocast-fp32-is-not-upcast"
    severity = Severity.WARNING
    runtime_confirmable = "no"
    tokens = ("autocast",)

    summary = (
        "`torch.autocast(dtype=torch.float32)` off CUDA disables autocast; it upcasts nothing."
    )
    what = (
        "Finds autocast calls (every spelling, as a `with` item, a decorator or a value) whose "
        "`dtype` is surely `torch.float32` (or float64), that are not `enabled=False`, and "
        'whose device is not CUDA: `"cpu"` (or another device) written out, or a device '
        "taken from the data (`x.device.type`), as device-generic code does. A block whose "
        "statements only call torch functions on upcast inputs (`a.float()`, "
        "`b.to(torch.float32)`) computes in float32 either way and is not reported."
    )
    why = (
        "Autocast only lowers precision. On CPU, MPS, XPU and the other non-CUDA devices it "
        'accepts only bfloat16 and float16; `dtype=torch.float32` makes it warn "In CPU '
        'autocast, but the target dtype is not supported. Disabling autocast." on every '
        "entry, and ops in the block then run in their inputs' dtype: bfloat16 or float16 "
        "tensors stay so, nothing is upcast. (CUDA does accept float32 — it casts the ops on "
        "autocast's lists, matmul, linear, conv, softmax..., to float32 and runs every other "
        'op in its inputs\' dtype — so `torch.autocast("cuda", dtype=torch.float32)` is not '
        "reported.) PyTorch's documented way to force a dtype is a nested "
        "`autocast(enabled=False)` region with explicit `.float()` casts."
    )
    example = """\
with torch.autocast("cpu", dtype=torch.bfloat16):
    h = encoder(x)
    with torch.autocast("cpu", dtype=torch.float32):
        scores = head(h)  # still bfloat16
"""
    use_instead = """\
with torch.autocast("cpu", dtype=torch.bfloat16):
    h = encoder(x)
    with torch.autocast("cpu", enabled=False):
        scores = head(h.float())
"""
    references = (
        "https://pytorch.org/docs/stable/amp.html#torch.autocast",
        "https://github.com/pytorch/pytorch/blob/main/torch/amp/autocast_mode.py",
    )

    valid = (
        "import torch\nwith torch.autocast('cpu', enabled=False):\n    y = head(x.float())\n",
        "import torch\nwith torch.autocast('cpu', dtype=torch.bfloat16):\n    y = model(x)\n",
        # CUDA accepts float32 and casts autocast's listed ops to it.
        "import torch\nwith torch.autocast('cuda', dtype=torch.float16):\n    h = encoder(x)\n"
        "    with torch.autocast('cuda', dtype=torch.float32):\n        y = head(h)\n",
        "import torch\nwith torch.cuda.amp.autocast(dtype=torch.float32):\n    y = head(x)\n",
        # Explicitly disabled: the dtype is irrelevant.
        "import torch\nwith torch.autocast('cpu', dtype=torch.float32, enabled=False):\n"
        "    y = head(x)\n",
        # Chosen at run time, float16 on some configurations.
        "import torch\n\ndef run(model, x, fp16):\n"
        "    dtype = torch.float16 if fp16 else torch.float32\n"
        "    with torch.autocast(x.device.type, dtype=dtype):\n        return model(x)\n",
        # The block upcasts every input of the torch functions it calls: nothing depends on
        # the region.
        "import torch\n\ndef rope(freqs, pos):\n"
        "    with torch.autocast(freqs.device.type, torch.float32):\n"
        "        freqs = torch.einsum('nd,dhf->nhf', pos.to(torch.float32), freqs.float())\n"
        "    return torch.cos(freqs)\n",
        # accelerate's autocast takes no dtype.
        "from accelerate import Accelerator\naccelerator = Accelerator(mixed_precision='fp16')\n"
        "with accelerator.autocast():\n    y = model(x)\n",
        # Not torch's autocast.
        "def autocast(device, dtype=None):\n    return nullcontext()\n"
        "with autocast('cpu', dtype=torch.float32):\n    pass\n",
    )
    invalid = (
        Invalid(
            "import torch\nwith torch.autocast('cpu', dtype=torch.bfloat16):\n"
            "    h = encoder(x)\n    with torch.autocast('cpu', dtype=torch.float32):\n"
            "        scores = head(h)\n",
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
            "        with torch.cpu.amp.autocast(dtype=FP32):\n"
            "            yield torch.nn.functional.cross_entropy(chunk, labels)\n",
            (("FP406", 6),),
        ),
        # Device-generic code: off CUDA the region disables itself.
        Invalid(
            "import torch\n\ndef rope(freqs, pos):\n"
            "    with torch.autocast(freqs.device.type, torch.float32):\n"
            "        return torch.einsum('nd,dhf->nhf', pos, freqs)\n",
            (("FP406", 4),),
        ),
        Invalid(
            "import torch\nupcast = torch.autocast(device_type='mps', dtype=torch.float32, enabled=True)\n"
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
        if region.dtype.dtype not in _WIDE or region.device == "cuda":
            return
        if region.enabled is False and not region.unsupported_dtype:
            return  # enabled=False: the dtype does not matter
        if self._block_upcasts_itself(node):
            return
        dtype = f"torch.{region.dtype.dtype.value}"
        if region.device is not None:
            what = (
                f"{region.device.upper()} autocast with dtype={dtype} disables itself: 16-bit "
                "tensors stay 16-bit"
            )
            instead = f'Use `torch.autocast("{region.device}", enabled=False)`'
        else:
            what = (
                f"autocast with dtype={dtype} is not a float32 region: off CUDA it disables itself"
            )
            instead = "Use `torch.autocast(device_type, enabled=False)`"
        self.report(node, f"{what}.", help=f"{instead} and call `.float()` on the inputs.")

    def _block_upcasts_itself(self, call: cst.Call) -> bool:
        """``with autocast(..., float32): y = torch.einsum(s, a.float(), b.to(torch.float32))``:
        each statement calls a torch function on literals and upcast tensors only, so the
        block computes in float32 whether or not the region disables itself."""
        stack = self.ctx.stack
        if len(stack) < 3 or type(stack[-2]) is not cst.WithItem or type(stack[-3]) is not cst.With:
            return False
        body = stack[-3].body
        if type(body) is not cst.IndentedBlock:
            return False
        for line in body.body:
            if type(line) is not cst.SimpleStatementLine:
                return False
            for statement in line.body:
                value = getattr(statement, "value", None)
                if type(statement) not in (cst.Assign, cst.Return, cst.Expr) or not (
                    self._upcast_torch_call(value)
                ):
                    return False
        return True

    def _upcast_torch_call(self, value: cst.BaseExpression | None) -> bool:
        if type(value) is not cst.Call:
            return False
        if not (self.ctx.names.qualname(value.func) or "").startswith("torch."):
            return False
        for arg in value.args:
            if type(arg.value) in (cst.SimpleString, cst.Integer, cst.Float):
                continue
            site = cast_of(arg.value, self.ctx.names) if type(arg.value) is cst.Call else None
            if site is None or site.dtype is None or site.dtype.maybe:
                return False
            if site.dtype.dtype not in _WIDE:
                return False
        return True
