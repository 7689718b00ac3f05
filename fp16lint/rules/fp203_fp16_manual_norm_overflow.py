"""FP203 fp16-manual-norm-overflow: a hand-written variance / RMS / L2 norm squared in float16."""

from __future__ import annotations

from fp16lint.analysis.context import span_of
from fp16lint.analysis.exposure import related, with_chain
from fp16lint.analysis.index import ModelFacts
from fp16lint.findings import Applicability, Edit, Fix, Severity, Span
from fp16lint.rules.base import Invalid, Rule
from fp16lint.rules.fp2xx_common import (
    INHERITANCE_PROJECT,
    LIBRARY_PROJECT,
    MODEL_HEADER,
    fed_float32,
    op_sites,
    place,
)

_RMS = (
    MODEL_HEADER + "class RMSNorm(nn.Module):\n"
    "    def __init__(self, d):\n"
    "        super().__init__()\n"
    "        self.weight = nn.Parameter(torch.ones(d))\n"
    "\n"
    "    def forward(self, x):\n"
    "        var = {square}.mean(-1, keepdim=True)\n"
    "        return self.weight * x * torch.rsqrt(var + 1e-6)\n"
    "\n"
    "\n"
)  # the reduction is on line 12


def _edit(span: list[int], text: str, where: str = "replace") -> Edit:
    """An edit of the fix record: replace the span, or insert ``text`` after it."""
    found = span_of(span)
    return Edit(Span(found.end, found.end), text) if where == "after" else Edit(found, text)


class Fp16ManualNormOverflow(Rule):
    code = "FP203"
    name = "fp16-manual-norm-overflow"
    severity = Severity.ERROR
    runtime_confirmable = "yes: inf created and all-zero rows at that line"
    fix = Applicability.UNSAFE
    requires = (ModelFacts,)

    summary = "A hand-written norm squares float16 values, which overflow above 255.97."
    what = (
        "Finds `mean`/`sum` of a square — `x.pow(2).mean(-1)`, `(x * x).mean(-1)`, "
        "`(x ** 2).sum(-1)`, `torch.mean(x.square())`, a name bound to such a square, and "
        "`x.var(...)`/`torch.var(...)` under a `sqrt`/`rsqrt` (directly or through a name) — "
        "whose "
        "input is float16: a tensor made float16 in the same function, or an activation in the "
        "`forward` (and the methods it calls) of a model class that a pure float16 cast "
        "reaches, or of any module class with `assume-fp16`. `torch.rsqrt(var + eps)` "
        "on the result is part of the same finding. An upcast before squaring protects it; "
        "so does CUDA autocast for `pow`/`**` (not for `x * x`, which autocast leaves in "
        "float16). Squares of bounded values (`torch.tanh(x).pow(2).mean(-1)`, at most 1: "
        "`analysis.magnitude`) are not reported. "
        "In library mode (`assume-fp16`), the square of a difference "
        "(`torch.mean((z_q - z) ** 2)`, a hand-written `mse_loss` or distance) and a mean of "
        "every squared element (`logits.logsumexp(-1).pow(2).mean()`, a z-loss or L2 penalty: "
        "it reduces in float32) are left out like the losses, unless a real cast reaches them "
        "or `library-info = true`; so is a method (an override too) whose project callers, all "
        "seen, pass it only float32 (`self._norm(x.float())`)."
    )
    why = (
        "Squares overflow float16 once |x| reaches 255.97; the mean of a row holding one inf "
        "is inf, `rsqrt(inf)` is 0, and the normalised row silently becomes all zeros (a "
        "hand-written `(x - mu) / sqrt(var + 1e-12)` on a constant row gives 0/0 = NaN "
        "instead). Activations of a few hundred are common in large models. The built-in "
        "`F.layer_norm` / `F.rms_norm` kernels accumulate in float32 and do not have this "
        "problem."
    )
    example = """\
def forward(self, x):
    var = x.pow(2).mean(-1, keepdim=True)
    return self.weight * x * torch.rsqrt(var + self.eps)
"""
    use_instead = """\
def forward(self, x):
    var = x.float().pow(2).mean(-1, keepdim=True)
    return self.weight * (x.float() * torch.rsqrt(var + self.eps)).to(x.dtype)
"""
    fix_docs = (
        "Unsafe: squares in float32 (`x.float().pow(2)`) where the squared value is a plain "
        "name or attribute, and casts the `torch.rsqrt(...)`/`torch.sqrt(...)` (or "
        "`.rsqrt()`/`.sqrt()`) built on the reduction back with `.to(x.dtype)` — in the same "
        "expression or, through the variable holding the reduction, later in the same "
        "function. Without that cast the norm's output turns float32 and the next float16 "
        "layer raises `mat1 and mat2 must have the same dtype`. `rsqrt` of a float32 mean "
        "of float16 squares is at least 1/65504, so it fits float16 (only a row of near-zeros "
        "with an `eps` below 2.3e-10 gives more than 65504, as the original did). A norm "
        "whose reduction meets no such root gets no fix. tests/fixes/ runs both versions."
    )
    references = (
        "https://github.com/huggingface/transformers/pull/10956",
        "https://github.com/huggingface/transformers/issues/9295",
    )

    valid = (
        # Never cast.
        _RMS.format(square="x.pow(2)") + "norm = RMSNorm(8)\n",
        # Squares of bounded values (analysis.magnitude): the mean is at most 1.
        _RMS.format(square="torch.tanh(x).pow(2)") + "norm = RMSNorm(8).half()\n",
        # Upcast first (T5LayerNorm).
        _RMS.format(square="x.to(torch.float32).pow(2)") + "norm = RMSNorm(8).half()\n",
        # Only run under autocast.
        _RMS.format(square="x.pow(2)")
        + "norm = RMSNorm(8).cuda()\nwith torch.autocast('cuda'):\n    y = norm(x)\n",
        # CUDA autocast runs pow in float32 even on float16 inputs.
        "import torch\n\nx = torch.randn(8, dtype=torch.float16)\n"
        "with torch.autocast('cuda'):\n    var = x.pow(2).mean(-1)\n",
        # autocast(enabled=False) with an upcast inside.
        "import torch\n\ndef rms(q, w):\n    with torch.autocast('cuda'):\n        h = q @ w\n"
        "        with torch.autocast('cuda', enabled=False):\n"
        "            return torch.rsqrt(h.float().pow(2).mean(-1) + 1e-6)\n",
        # A dtype guard that upcasts.
        _RMS.format(square="x.pow(2)").replace(
            "        var =",
            "        if x.dtype == torch.float16:\n            x = x.float()\n        var =",
        )
        + "norm = RMSNorm(8).half()\n",
    )
    invalid = (
        Invalid(LIBRARY_PROJECT, (("FP203", "lib/mylib/models/blocks.py", 13),)),
        Invalid(INHERITANCE_PROJECT, (("FP203", "models.py", 14),)),
        Invalid(
            _RMS.format(square="x.pow(2)") + "norm = RMSNorm(8).half()\n",
            (("FP203", 12),),
            fixed=_RMS.format(square="x.float().pow(2)").replace(
                "(var + 1e-6)", "(var + 1e-6).to(x.dtype)"
            )
            + "norm = RMSNorm(8).half()\n",
        ),
        # `x * x` is not an autocast op: float16 under autocast too.
        Invalid(
            "import torch\nimport torch.nn.functional as F\n\n"
            "def rms(x, w):\n    with torch.autocast('cuda'):\n        h = F.linear(x, w)\n"
            "        return h * torch.rsqrt((h * h).mean(-1, keepdim=True) + 1e-6)\n",
            (("FP203", 7),),
            fixed="import torch\nimport torch.nn.functional as F\n\n"
            "def rms(x, w):\n    with torch.autocast('cuda'):\n        h = F.linear(x, w)\n"
            "        return h * torch.rsqrt((h.float().pow(2)).mean(-1, keepdim=True) + 1e-6)"
            ".to(h.dtype)\n",
        ),
        # autocast(enabled=False) without an upcast inside.
        Invalid(
            "import torch\n\ndef rms(q, w):\n    with torch.autocast('cuda'):\n        h = q @ w\n"
            "        with torch.autocast('cuda', enabled=False):\n"
            "            return torch.rsqrt(h.pow(2).mean(-1) + 1e-6)\n",
            (("FP203", 7),),
        ),
        # CUDA autocast with dtype=float32 casts only its listed ops: `x * x` stays float16.
        Invalid(
            "import torch\n\nx = torch.randn(8, dtype=torch.float16, device='cuda')\n"
            "with torch.autocast('cuda', dtype=torch.float32):\n    var = (x * x).mean(-1)\n",
            (("FP203", 5),),
        ),
        # A hand-written LayerNorm; a square kept in a name; ModuleList comprehension.
        Invalid(
            MODEL_HEADER + "class Norm(nn.Module):\n    def forward(self, x):\n"
            "        mu = x.mean(-1, keepdim=True)\n"
            "        var = ((x - mu) ** 2).mean(-1, keepdim=True)\n"
            "        sq = x * x\n        l2 = sq.sum(-1).sqrt()\n"
            "        return (x - mu) / torch.sqrt(var + 1e-12) / l2\n\n\n"
            "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.norms = nn.ModuleList([Norm() for _ in range(2)])\n\n\n"
            "net = Net().half()\n",
            (("FP203", 9), ("FP203", 11)),
        ),
        # A LayerNorm written with torch.var: its float16 variance is inf past ±256.
        Invalid(
            MODEL_HEADER + "class ChanNorm(nn.Module):\n    def forward(self, x):\n"
            "        var = torch.var(x, dim=1, unbiased=False, keepdim=True)\n"
            "        mean = torch.mean(x, dim=1, keepdim=True)\n"
            "        y = (x - mean) * torch.rsqrt(x.var(1, keepdim=True) + 1e-5)\n"
            "        return (x - mean) / (var + 1e-5).sqrt() + y\n",
            (("FP203", 10), ("FP203", 11)),
            assume_fp16=True,
        ),
    )

    @classmethod
    def check_project(cls, project, report) -> None:
        for path, record, reason, chain in op_sites(project, cls.code):
            if fed_float32(project, record, reason, chain):
                continue
            fix = None
            suggestion = "Upcast with `.float()` before squaring"
            if "fix" in record:
                fix = Fix(
                    "Square in float32 and cast the root back",
                    Applicability.UNSAFE,
                    tuple(_edit(*edit) for edit in record["fix"]),
                )
                suggestion = f"Square in float32 (`{record['fixed']}`)"
            if reason is not None:
                context = f" in {place(record)} (float16 because {reason.because()})"
            else:
                context = " (when mixed precision is fp16)" if record.get("maybe") else ""
            report.add(
                cls,
                path,
                record["span"],
                with_chain(
                    f"`{record['text']}` squares float16 values{context}: inf once |x| reaches "
                    "255.97, and the norm turns the row into zeros.",
                    chain,
                ),
                related=[*(reason.related() if reason else ()), *related(chain)],
                help=f"{suggestion} and cast the result back.",
                fix=fix,
            )
