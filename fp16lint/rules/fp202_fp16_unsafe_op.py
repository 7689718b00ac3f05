"""FP202 fp16-unsafe-op: an op from autocast's float32 list running on float16 data."""

from __future__ import annotations

from fp16lint.analysis.exposure import related, with_chain
from fp16lint.analysis.index import ModelFacts, index_of
from fp16lint.data.amp_ops import OPS_BY_MODULE, RISKS
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule
from fp16lint.rules.fp2xx_common import (
    INHERITANCE_PROJECT,
    LIBRARY_PROJECT,
    MODEL_HEADER,
    hint,
    op_sites,
    quiet,
    risk_of,
    where,
)


def _model(forward: str, cast: str = "model = Net().half()\n") -> str:
    """A one-class model whose ``forward(self, x)`` body starts on line 11."""
    return (
        MODEL_HEADER + "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n\n"
        "    def forward(self, x):\n" + forward + "\n\n" + cast
    )


def _listed_only(project, risk: str, full: bool) -> bool:
    """Sites listed only with ``library-info``, in both modes: a loss that reduces in float32
    (``loss``: it returns a float16 value of about 3 significant digits, which no read of real
    code found harmful; float16 on the CPU, where the summed loss can reach inf, is FP104's),
    and a norm or a sum along a given dimension (a row of features or of weights: both
    accumulate in float32, so only a row total past 65504 is inf, and every one read in real
    code was far below it; tests/facts/test_sum_along_dim.py; a row of squares is FP203's), or
    a sum only used as a divisor (a total weight); a full norm or sum is kept."""
    listed = risk == "loss" or (risk in ("norm", "sum") and not full)
    return listed and not getattr(project.settings, "library_info", False)


class Fp16UnsafeOp(Rule):
    code = "FP202"
    name = "fp16-unsafe-op"
    severity = Severity.WARNING
    severities = tuple({risk.severity for risk in RISKS.values()})
    runtime_confirmable = "yes: overflow, inf/NaN and error at that line"
    requires = (ModelFacts,)

    summary = "An op that autocast would run in float32 runs on float16 data."
    what = (
        "Finds ops from CUDA autocast's float32 list — `softmax`, `log_softmax`, `exp`, `log`, "
        "`pow`/`**`, `reciprocal`, `rsqrt`, `sum`, `prod`, `cumsum`, `cumprod`, `norm`, "
        "`layer_norm`/`group_norm` functional forms, losses such as `cross_entropy` and "
        "`mse_loss`... — as `torch.x(...)`, `F.x(...)`, tensor methods, loss-module calls and "
        "`nn.Softmax`-style submodules, when their input is float16: a tensor made float16 in "
        "the same function (`.half()`, `dtype=torch.float16`, a call of a float16 model, "
        "`matmul` under fp16 autocast), or an activation — the inputs of `forward` and of the "
        "methods it calls, and what is computed from them — in a model class that a pure "
        "float16 cast reaches (FP201's analysis; every module class with `assume-fp16`). Norm "
        "layers' own `F.layer_norm`-style calls are FP201's (whose float32-accumulating "
        "norms are not reported). An op is "
        "protected when it runs under an enabled autocast region that puts it on its float32 "
        "list (CUDA's, or CPU's much shorter one), when its input is upcast, when it is given "
        "`dtype=torch.float32`, or under a dtype guard."
        " In helpers outside a model (losses, utilities, schedulers), an op is reported when "
        "float16 is passed to it through calls (with the chain), and protected when every "
        "such call sits in an autocast region that runs the op in float32. Values computed "
        "only from parameters named as masks, ids, indices, lengths or counts "
        "(`attention_mask`, `input_ids`, `image_grid_thw`, `num_tokens`) are not float16 data; "
        "nor is a Hugging Face model's `outputs.loss`, which transformers computes in float32."
        " Library mode (`assume-fp16`), where float16 is assumed rather than seen, reports "
        "the `warning` sites (exp, powers, log, rsqrt, reciprocal, products) and reductions "
        "of every element (`loss.sum()`, but not of row statistics — a full sum of row "
        "means, dice ratios, values divided by a sum or a diagonal (`logits.diag()`, "
        "`logits[rows, rows]` with `rows = torch.arange(n)`) adds one value per row, of its "
        "elements' scale — nor sums only used as a divisor, counts and total weights, nor "
        'the `if self.reduction == "sum":` arm of a loss, the total a caller asks for as '
        "torch's own losses give it) — "
        "an exp only of a dot product of activations "
        "(`q @ k.T`, `einsum`, `bmm`, `cdist`: attention and similarity scores), a power "
        "also of a projection layer's output (`nn.Linear`, `F.conv2d`) and a negative power "
        "(`x ** -2`) only of a value shown to come near 0, since their "
        "overflow needs a large argument and learned log-scales, noise levels and decays "
        "show none; a log, rsqrt or reciprocal only of a value shown to come near 0 (a "
        "sigmoid or softmax probability, a clamp floor or a guard such as `+ 1e-8` that "
        "float16 rounds to 0, also where a submodule class of the file returns it: a scaler's "
        "`clamp(scale, min=1e-10)`; a guard written at the op only where the guarded value "
        "can be 0: a probability, a parameter named as one, or a function whose callers are "
        "not all seen — a `log(t.clamp(min=1e-20))` helper that every project call gives a "
        "noise level is left out), not of noise levels, scales or counts — and leaves out the "
        "`info` ones: softmax, "
        "log_softmax, the norm and `normalize` kernels (they accumulate in float32), the "
        "losses (autocast runs them in float32; on CPU, though, `cross_entropy` of float16 "
        "logits is inf once the summed per-token loss passes 65504; tests/facts/"
        "test_fp32_kernels.py, run on CPU only), reductions along given "
        "dimensions (whose extent it cannot see), powers of an unknown exponent and squared "
        "differences (`(logits - target) ** 2`, a hand-written `mse_loss`). "
        "`library-info = true` (`--library-info`) reports those too; a real cast reports them "
        "in either mode, except the losses that reduce in float32 (`cross_entropy`, "
        "`nll_loss`, `kl_div`, ...: a float16 loss of about 3 significant digits, which no "
        "read of real code found harmful), and norms and sums along a given dimension (a row "
        "of features or weights; `cumsum`) or only used as a divisor, which accumulate in "
        "float32 and overflow only where a row's total passes 65504: only `library-info` "
        "lists them (squares summed along a row are FP203's); float16 on the CPU is FP104's."
    )
    why = (
        "Autocast keeps these ops in float32 because float16's range (max 65504, nothing "
        "below 6e-8) breaks them: `exp` overflows above 11.09, squares above 255.97, `log` and "
        "`rsqrt` of values float16 rounds to 0 give -inf/inf, and reductions write a float16 "
        "result that overflows above 65504. The built-in softmax, log_softmax and norm kernels "
        "accumulate in float32, so for softmax only inputs that already overflowed (inf gives "
        "NaN) and the float16 rounding of the result are at risk; a norm, like a sum, writes "
        "float16, so a norm above 65504 is inf (10**6 entries of 70 are): those findings are "
        "`info`, since small reductions of bounded values never overflow — except the full "
        "norm of float16 gradients (`torch.norm(p.grad)` in a `.half()` model), a `warning`: "
        "loss-scaled gradients sit near the top of the range, so their norm passes 65504. Values that cannot "
        "reach the limit are not reported: outputs of sigmoid, softmax, tanh, cos, "
        "`F.normalize`, `clamp` with limits (numbers, or names of one such as a parameter's "
        "default `eps=1e-4`), and arithmetic on them (`(sigmoid(x) * 2) ** 2` is at most 4; "
        "`x.clamp(min=eps) / (1 - x).clamp(min=eps)` is at least eps for x in [0, 1], so its "
        "log is finite), sums whose only use is `.backward()` or `torch.autograd.grad` (their "
        "gradient is ones whatever their value) or a comparison with 0, and results thrown "
        "away."
    )
    example = """\
def forward(self, logits):          # in a model cast with .half()
    weights = logits.exp()          # inf for logits above 11.09
    return weights / weights.sum(-1, keepdim=True)
"""
    use_instead = """\
def forward(self, logits):
    return torch.softmax(logits, dim=-1, dtype=torch.float32).to(logits.dtype)
"""
    references = ("https://pytorch.org/docs/stable/amp.html#autocast-op-reference",)

    valid = (
        # A helper called only inside an fp16 autocast region: autocast runs its exp in float32.
        {
            "helpers.py": "def scores(logits):\n    return logits.exp()\n",
            "infer.py": "import torch\nfrom helpers import scores\n\n\ndef run(model, x):\n"
            "    with torch.autocast('cuda', dtype=torch.float16):\n"
            "        return scores(model(x))\n",
        },
        # Never cast.
        _model("        return torch.softmax(x, -1).exp()", "model = Net()\n"),
        # Only run under autocast.
        _model(
            "        return torch.softmax(x, -1).exp()",
            "model = Net().cuda()\nwith torch.autocast('cuda', dtype=torch.float16):\n"
            "    y = model(x)\n",
        ),
        # Upcast with .float() or told to compute in float32.
        _model(
            "        p = F.softmax(x, dim=-1, dtype=torch.float32)\n"
            "        s = x.float().exp().sum(-1)\n"
            "        return torch.log_softmax(x.to(torch.float32), -1) + p + s"
        ),
        # autocast(enabled=False) with an upcast inside.
        "import torch\n\ndef attend(q, k):\n    with torch.autocast('cuda'):\n"
        "        s = q @ k.transpose(-1, -2)\n"
        "        with torch.autocast('cuda', enabled=False):\n"
        "            return s.float().softmax(-1)\n",
        # bfloat16 autocast makes bfloat16, not float16.
        "import torch\n\ndef attend(q, k):\n"
        "    with torch.autocast('cuda', dtype=torch.bfloat16):\n        s = q @ k.T\n"
        "    return s.softmax(-1)\n",
        # custom_fwd casts the inputs to float32; an autocast decorator protects the method.
        MODEL_HEADER + "class Net(nn.Module):\n"
        "    @torch.amp.custom_fwd(device_type='cuda', cast_inputs=torch.float32)\n"
        "    def forward(self, x):\n        return x.exp() + self.head(x)\n\n"
        "    @torch.autocast('cuda')\n    def head(self, x):\n        return x.softmax(-1)\n\n\n"
        "model = Net().half()\n",
        # A dtype guard that clamps first.
        _model(
            "        if x.dtype == torch.float16:\n            x = torch.clamp(x, -10, 10)\n"
            "            return x.exp()\n        else:\n            return x.exp()"
        ),
        # Bounded inputs: exp(x - max), a power inside tanh (GELU), a sum of booleans.
        "import math\nimport torch\n\nx = torch.randn(8, dtype=torch.float16)\n"
        "p = torch.exp(x - x.amax(-1, keepdim=True))\n"
        "g = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))\n"
        "n = (x > 0).sum()\n",
        # Bounded values (analysis.magnitude): powers of sigmoids, a log of at least 1, a sum of
        # a written-out count of bounded terms, the log of a ratio of two clamps at eps; a sum
        # that only feeds backward() (its gradient is ones whatever its value).
        "import torch\n\nx = torch.randn(8, dtype=torch.float16)\n"
        "wh = (x.sigmoid() * 2) ** 2\nxy, rest = x.sigmoid().split(4)\nb = (rest * 2) ** 2\n"
        "p = torch.log(x.sigmoid() + 1)\ns = torch.stack([x.sigmoid(), x.tanh()]).sum(0)\n"
        "eps = 1e-5\nr = x.sigmoid().clamp(min=eps) / (1 - x.sigmoid()).clamp(min=eps)\n"
        "q = torch.log(r)\n"
        "x.requires_grad_()\n(x * 3).sum().backward()\n",
        # A forward run under fp16 autocast: its float16 matmul output goes through ops on
        # autocast's float32 list.
        _model(
            "        h = x @ x.transpose(-2, -1)\n        return torch.softmax(h, -1).log()",
            "model = Net()\n\ndef step(x):\n    with torch.autocast('cuda', dtype=torch.float16):\n        return model(x)\n",
        ),
        # Under CUDA autocast these run in float32 even on float16 inputs.
        "import torch\n\nx = torch.randn(8, dtype=torch.float16)\n"
        "with torch.autocast('cuda'):\n    y = x.softmax(-1).log()\n",
    )
    invalid = (
        # A forward run under fp16 autocast: the matmul's output is float16 there, and
        # `torch.square` is not on autocast's float32 list.
        Invalid(
            _model(
                "        h = x @ x.transpose(-2, -1)\n        return torch.square(h)",
                "model = Net()\n\ndef step(x):\n    with torch.autocast('cuda', dtype=torch.float16):\n        return model(x)\n",
            ),
            (("FP202", 12),),
        ),
        # The same helper called on the region's output after it ends.
        Invalid(
            {
                "helpers.py": "def scores(logits):\n    return logits.exp()\n",
                "infer.py": "import torch\nfrom helpers import scores\n\n\ndef run(model, x):\n"
                "    with torch.autocast('cuda', dtype=torch.float16):\n"
                "        out = model(x)\n    return scores(out)\n",
            },
            (("FP202", "helpers.py", 2),),
        ),
        Invalid(LIBRARY_PROJECT, (("FP202", "lib/mylib/models/blocks.py", 16),)),
        Invalid(INHERITANCE_PROJECT, (("FP202", "models.py", 15),)),
        # Local flow: float16 by construction, then unprotected (sums along a dimension,
        # accumulated in float32, are listed only with library-info).
        Invalid(
            "import torch\n\nx = torch.randn(8, dtype=torch.float16)\ny = x.exp()\n"
            "z = torch.log(y) + x ** 3\nc = (y * 2).sum()\n"
            "rows = (y * 2).cumsum(0) + (y * 2).sum(-1, keepdim=True)\n",
            (("FP202", 4), ("FP202", 5), ("FP202", 5), ("FP202", 6)),
        ),
        # A bound too wide for the op: exp of up to 20, a sum of sigmoids of unknown count.
        Invalid(
            "import torch\n\nx = torch.randn(8, dtype=torch.float16)\n"
            "y = (x.tanh() * 20).exp()\nt = x.sigmoid().sum()\n",
            (("FP202", 4), ("FP202", 5)),
        ),
        # autocast(enabled=False) without an upcast inside: matmul made float16 under autocast.
        Invalid(
            "import torch\n\ndef attend(q, k):\n    with torch.autocast('cuda'):\n"
            "        s = q @ k.transpose(-1, -2)\n"
            "        with torch.autocast('cuda', enabled=False):\n"
            "            return s.softmax(-1)\n",
            (("FP202", 7),),
        ),
        # The full norm of a pure float16 model's gradients (loss-scaled: near the top of the
        # range) is a warning; a norm along a dimension is listed only with library-info.
        Invalid(
            "import torch\nfrom torch import nn\n\nmodel = nn.Linear(4, 4).half()\n"
            "for p in model.parameters():\n    total = torch.norm(p.grad)\n"
            "    rows = p.grad.norm(2, dim=1)\n",
            (("FP202", 6),),
        ),
        # CPU fp16 autocast has no float32 policy for softmax.
        Invalid(
            "import torch\n\nwith torch.autocast('cpu', dtype=torch.float16):\n"
            "    p = torch.matmul(a, b).softmax(-1)\n",
            (("FP202", 4),),
        ),
        # Op modules in a ModuleList comprehension; losses on a float16 model's output: the
        # squared differences of `mse_loss` (cross_entropy reduces in float32: library-info).
        Invalid(
            MODEL_HEADER + "class Head(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.act = nn.Softmax(dim=-1)\n\n\n"
            "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.heads = nn.ModuleList([Head() for _ in range(2)])\n\n\n"
            "model = Net().half()\nlogits = model(x)\ncriterion = nn.CrossEntropyLoss()\n"
            "loss = criterion(logits, y) + F.mse_loss(logits, y)\n",
            (("FP202", 9), ("FP202", 21)),
        ),
        # In the model's forward: inputs are float16; pow, reductions, exp (not the loss).
        Invalid(
            _model(
                "        z = torch.pow(x, 3).prod(-1)\n"
                "        return F.cross_entropy(z, x.argmax(-1)) + torch.exp(z).log1p()"
            ),
            (("FP202", 11), ("FP202", 11), ("FP202", 12)),
        ),
    )

    @classmethod
    def check_project(cls, project, report) -> None:
        for layer, module, reason in index_of(project).layers():
            if not isinstance(module, str):
                continue  # a layer: FP201's
            op = OPS_BY_MODULE[module]
            if quiet(project, op, reason, None) or _listed_only(project, op.risk, True):
                continue
            risk = RISKS[op.risk]
            report.add(
                cls,
                layer.path,
                list(layer.span),
                f"{layer.label} runs in float16 because {reason.because()}: {risk.what}.",
                related=reason.related(),
                help=hint(op.name),
                severity=risk.severity,
            )
        for path, record, reason, chain in op_sites(project, cls.code):
            if _listed_only(project, record["risk"], record.get("full", False)):
                continue
            severity, what = risk_of(record)
            report.add(
                cls,
                path,
                record["span"],
                with_chain(f"`{record['text']}` {where(record, reason)}: {what}.", chain),
                related=[*(reason.related() if reason else ()), *related(chain)],
                help=hint(record["op"]),
                severity=severity,
            )
