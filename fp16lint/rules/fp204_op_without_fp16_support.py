"""FP204 op-without-fp16-support: ops that raise (or only partly work) on float16 tensors."""

from __future__ import annotations

from fp16lint.analysis.exposure import related, with_chain
from fp16lint.analysis.index import ModelFacts
from fp16lint.analysis.recasts import RecastTracker
from fp16lint.data.amp_ops import NO_FP16_SUPPORT
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule
from fp16lint.rules.fp2xx_common import (
    INHERITANCE_PROJECT,
    LIBRARY_PROJECT,
    MODEL_HEADER,
    fed_float32,
    front_end,
    library_quiet,
    op_sites,
    where,
)

_NET = (
    MODEL_HEADER + "class Net(nn.Module):\n    def forward(self, x):\n        return {op}\n\n\n"
)  # the op is on line 8


class OpWithoutFp16Support(Rule):
    code = "FP204"
    name = "op-without-fp16-support"
    severity = Severity.WARNING
    runtime_confirmable = "no: the fp16 run fails at that op"
    requires = (ModelFacts, RecastTracker)

    summary = "An op that has no float16 kernel (or only a partial one) runs on float16 data."
    what = (
        "Finds `torch.quantile`/`nanquantile`, `torch.fft.*` transforms, `torch.stft`/`istft`, "
        "`torch.linalg` solves and decompositions (and their `torch.inverse`/`det`/`svd`/... "
        "forms) and `torch.cdist`/`F.pdist`, as functions or tensor methods, when their input "
        "is float16: a tensor made float16 in the same function (autocast's `matmul`/`linear` "
        "outputs included: autocast does not cover these ops), or an activation in the "
        "`forward` (and the methods it calls) of a model class that a pure float16 cast "
        "reaches, or of any module class with `assume-fp16` — its own parameters and buffers "
        "(`self.weight`, `self.lora_A.weight`) included, since the cast converts them too. "
        "An upcast protects them. `cdist` is reported only where the call shows that it "
        'takes its direct kernel (`p` other than 2, `compute_mode="donot_use_mm_for_euclid_'
        'dist"`): with p=2 and over 25 rows it computes through a matrix multiply, which runs '
        "in float16. Library mode (`assume-fp16`) leaves out `cdist`/`pdist`, whose only "
        "failure checked here is CPU's (`library-info = true` shows them)."
        " In helpers outside a model (losses, utilities, schedulers), an op is "
        "reported when float16 is passed to it through calls (with the chain)."
    )
    why = (
        "These ops raise on float16 input instead of computing: `quantile` rejects it "
        '("input tensor must be either float or double dtype"), and on CPU the FFTs, '
        "`stft`, the linalg decompositions and `cdist`'s direct kernel have no float16 "
        "kernel. On CUDA the "
        "FFTs accept float16 only for power-of-two sizes. Every entry was checked on this "
        "torch build's CPU (tests/facts/test_amp_ops_table.py)."
    )
    example = """\
def forward(self, x):                 # in a model cast with .half()
    return torch.fft.rfft(x, dim=-1)
"""
    use_instead = """\
def forward(self, x):
    return torch.fft.rfft(x.float(), dim=-1)
"""
    references = ("https://pytorch.org/docs/stable/amp.html#autocast-op-reference",)

    valid = (
        # The same utility given float32.
        "import torch\n\n\ndef clip_outliers(x, q=0.99):\n"
        "    limit = torch.quantile(x.abs(), q)\n    return x.clamp(-limit, limit)\n\n\n"
        "def sample(latents):\n    return clip_outliers(latents.half().float())\n",
        # Never cast.
        _NET.format(op="torch.quantile(x, 0.5)") + "model = Net()\n",
        # Upcast first.
        _NET.format(op="torch.fft.rfft(x.float()) + x.float().quantile(0.5)")
        + "model = Net().half()\n",
        # The model is only run under autocast.
        _NET.format(op="torch.quantile(x, 0.5)")
        + "model = Net().cuda()\nwith torch.autocast('cuda'):\n    y = model(x)\n",
        # Under autocast, with an upcast where autocast makes float16.
        "import torch\n\ndef spectrum(x, w):\n    with torch.autocast('cuda'):\n        h = x @ w\n"
        "        with torch.autocast('cuda', enabled=False):\n"
        "            return torch.fft.rfft(h.float())\n",
        # cdist with p=2: over 25 rows it computes through a matmul that runs in float16.
        _NET.format(
            op="torch.cdist(x, x) + torch.cdist(x, x, compute_mode='use_mm_for_euclid_dist')"
        )
        + "model = Net().half()\n",
        # Not float16: the default dtype.
        "import torch\n\nx = torch.randn(16)\ninv = torch.linalg.inv(x.view(4, 4))\n",
    )
    invalid = (
        # A utility reached by float16 latents, outside any module's forward.
        Invalid(
            "import torch\n\n\ndef clip_outliers(x, q=0.99):\n"
            "    limit = torch.quantile(x.abs(), q)\n    return x.clamp(-limit, limit)\n\n\n"
            "def sample(latents):\n    latents = latents.half()\n"
            "    return clip_outliers(latents)\n",
            (("FP204", 5),),
        ),
        Invalid(LIBRARY_PROJECT, (("FP204", "lib/mylib/models/blocks.py", 15),)),
        Invalid(INHERITANCE_PROJECT, (("FP204", "models.py", 15),)),
        Invalid(_NET.format(op="x.quantile(0.5)") + "model = Net().half()\n", (("FP204", 8),)),
        # autocast(enabled=False) without an upcast; autocast itself does not cover FFTs.
        Invalid(
            "import torch\n\ndef spectrum(x, w):\n    with torch.autocast('cuda'):\n        h = x @ w\n"
            "        s = torch.fft.rfft(h)\n        with torch.autocast('cuda', enabled=False):\n"
            "            return torch.stft(h, 16, return_complex=True), s\n",
            (("FP204", 6), ("FP204", 8)),
        ),
        # Local flow; ModuleList comprehension.
        Invalid(
            "import torch\n\nm = torch.randn(4, 4).half()\ninv = torch.linalg.inv(m)\n",
            (("FP204", 4),),
        ),
        Invalid(
            _NET.format(op="torch.cdist(x, x, p=1)")
            + "class Stack(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.nets = nn.ModuleList([Net() for _ in range(2)])\n\n\n"
            "stack = Stack().half()\n",
            (("FP204", 8),),
        ),
        # cdist told not to use the matmul path takes its direct kernel at any size.
        Invalid(
            "import torch\n\nx = torch.randn(64, 8).half()\n"
            "d = torch.cdist(x, x, compute_mode='donot_use_mm_for_euclid_dist')\n",
            (("FP204", 4),),
        ),
        # The module's own weights: `.half()` converts them with the class.
        Invalid(
            MODEL_HEADER + "class Adapter(nn.Module):\n    def __init__(self, d):\n"
            "        super().__init__()\n        self.base = nn.Linear(d, d)\n\n"
            "    def forward(self, x):\n        w = self.base.weight\n"
            "        u, s, v = torch.linalg.svd(self.base.weight.float())\n"
            "        return x @ torch.linalg.qr(w)[0] + u\n\n\nmodel = Adapter(8).half()\n",
            (("FP204", 14),),
        ),
    )

    @classmethod
    def check_project(cls, project, report) -> None:
        for path, record, reason, chain in op_sites(project, cls.code):
            entry = NO_FP16_SUPPORT[record["op"]]
            if (
                (entry.cpu_only and library_quiet(project, reason, chain))
                or fed_float32(project, record, reason)
                or front_end(project, record, reason, chain)
            ):
                continue
            behaviour = entry.behaviour.format(why=record.get("kernel", ""))
            report.add(
                cls,
                path,
                record["span"],
                with_chain(
                    f"`{record['text']}` {where(record, reason)}: `{record['op']}` {behaviour}.",
                    chain,
                ),
                related=[*(reason.related() if reason else ()), *related(chain)],
                help="Upcast its input with `.float()` first.",
            )
