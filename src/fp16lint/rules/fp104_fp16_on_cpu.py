"""FP104 fp16-on-cpu: float16 compute placed on the CPU (a model, or CPU autocast)."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker, autocast_region
from fp16lint.analysis.casts import CastSite, cast_of, hf_load_of, short_code
from fp16lint.analysis.dtypes import DType, DTypeFact, when_maybe
from fp16lint.analysis.guards import follows_fp16_data
from fp16lint.analysis.names import dotted
from fp16lint.analysis.receivers import Kind, ReceiverTracker, unwrap_chain
from fp16lint.analysis.training import TrainingTracker, chain_calls
from fp16lint.analysis.tree import walk
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

# Calls that write a model out: a cast to fp16 on the CPU before one is storage, not compute.
_SAVES = frozenset(
    {
        "torch.save",
        "torch.jit.save",
        "torch.onnx.export",
        "safetensors.torch.save_file",
        "safetensors.torch.save_model",
    }
)
_SAVE_METHODS = frozenset({"save_pretrained", "save_model", "push_to_hub"})
_MODEL_ADVICE = (
    "several ops have no float16 CPU kernel (`torch.quantile`, `torch.fft`, `torch.linalg` "
    "solves and decompositions raise), so keep the model in float32 or use bfloat16 on the CPU"
)


def _is_cpu(device: str | None) -> bool:
    return device is not None and device.split(":")[0] == "cpu"


class Fp16OnCpu(Rule):
    code = "FP104"
    name = "fp16-on-cpu"
    severity = Severity.WARNING
    tokens = ("cpu",)
    requires = (ReceiverTracker, AutocastTracker, TrainingTracker)

    summary = "float16 compute on the CPU: missing kernels, and CPU autocast keeps fp16 ops."
    what = (
        "Finds a model converted to float16 with an explicit CPU device — in the same call "
        '(`.to("cpu", torch.float16)`), the same chain (`.cpu().half()`), or the same function '
        '(`device = "cpu"`, a model moved to the CPU before or after its cast) — and '
        '`torch.autocast("cpu", dtype=torch.float16)` in any spelling. A model cast for '
        "storage (the function saves or exports it) and tensors (`.half().numpy()`) are not "
        "reported."
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
        "with torch.autocast('cpu', dtype=torch.bfloat16):\n    pass\n",
        # CUDA.
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).to('cuda', torch.float16)\n"
        "with torch.autocast('cuda', dtype=torch.float16):\n    pass\n",
        # A tensor cast for storage.
        "import torch\nx = torch.randn(3)\narr = x.cpu().half().numpy()\n",
        # A model converted for storage.
        "import torch\nimport torch.nn as nn\n\ndef export(path):\n"
        "    model = nn.Linear(2, 2).cpu().half()\n    torch.save(model.state_dict(), path)\n",
        # CPU autocast with its default (bfloat16).
        "import torch\nwith torch.autocast(device_type='cpu'):\n    pass\n",
        # A model moved back to the CPU after an upcast.
        "import torch\nimport torch.nn as nn\nm = nn.Linear(2, 2).half()\nm.float()\nm.cpu()\n",
    )
    invalid = (
        Invalid(
            "import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2).to('cpu', torch.float16)\n",
            (("FP104", 3),),
        ),
        Invalid(
            "import torch as th\nimport torch.nn as nn\n\ndef build():\n"
            "    device = th.device('cpu')\n    net = nn.Sequential(nn.Linear(2, 2))\n"
            "    net.to(device=device, dtype=th.half)\n    return net\n",
            (("FP104", 7),),
        ),
        # Chained, and moved to the CPU after the cast.
        Invalid(
            "import torch\nimport torch.nn as nn\na = nn.Linear(2, 2).cpu().half()\n"
            "b = nn.Linear(2, 2).half()\nb.to('cpu')\n",
            (("FP104", 3), ("FP104", 5)),
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
        self._saves: dict[int, bool] = {}

    # --- models ---------------------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        site = cast_of(node, self.ctx.names)
        if site is None:
            return
        if site.to_fp16:
            if self._is_model(site) and self._placed_on_cpu(site) and not self._saves_here():
                self._report_model(node, site.dtype)
            return
        if _is_cpu(site.device) and site.dtype is None:
            model = self.ctx.get(TrainingTracker).model(site.receiver)
            if model is not None and model.how == "cast" and not self._saves_here():
                self._report_model(node, model.dtype)
            elif self._casts_model_in_chain(site.receiver) and not self._saves_here():
                self._report_model(node, None)

    def _report_model(self, node: cst.Call, dtype: DTypeFact | None) -> None:
        self.report(
            node,
            f"`{short_code(self.ctx, node)}` puts a float16 model on the CPU{when_maybe(dtype)}: "
            f"{_MODEL_ADVICE}.",
        )

    def _is_model(self, site: CastSite) -> bool:
        if follows_fp16_data(self.ctx.stack, self.ctx.names):
            return False
        kind = self.ctx.get(ReceiverTracker).kind_of(site.receiver)
        return kind is Kind.MODULE or hf_load_of(site.receiver, self.ctx) is not None

    def _placed_on_cpu(self, site: CastSite) -> bool:
        if _is_cpu(site.device):
            return True
        for call in chain_calls(site.receiver):
            inner = cast_of(call, self.ctx.names)
            if inner is not None and inner.device is not None:
                return _is_cpu(inner.device)
        key = dotted(unwrap_chain(site.receiver))
        moved = self.ctx.get(TrainingTracker).frame.devices.get(key or "")
        return moved is not None and _is_cpu(moved[0])

    def _casts_model_in_chain(self, receiver: cst.BaseExpression) -> bool:
        for call in chain_calls(receiver):
            inner = cast_of(call, self.ctx.names)
            if inner is not None and inner.dtype is not None:
                return inner.to_fp16 and self._is_model(inner)
        return False

    def _saves_here(self) -> bool:
        scope = self.ctx.names.scopes[-1].node
        key = id(scope)
        if key not in self._saves:
            self._saves[key] = any(
                isinstance(n, cst.Call)
                and (
                    self.ctx.names.qualname(n.func) in _SAVES
                    or (isinstance(n.func, cst.Attribute) and n.func.attr.value in _SAVE_METHODS)
                )
                for n in walk(scope)
            )
        return self._saves[key]

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
            f"CPU autocast with float16{when_maybe(region.dtype)} uses bfloat16's op lists, so "
            "softmax, layer_norm and log_softmax run in float16 instead of float32 as under "
            "CUDA autocast; use `dtype=torch.bfloat16` on the CPU.",
        )
