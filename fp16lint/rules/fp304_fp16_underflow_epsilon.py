"""FP304 fp16-underflow-epsilon: ``x / (norm + 1e-8)`` adds 0 in float16."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.exposure import ORIGIN_TOKENS, ExposureTracker, judged
from fp16lint.analysis.index import ModelFacts
from fp16lint.analysis.sinks import ConstantSinks, Sink
from fp16lint.data.amp_ops import AUTOCAST_FP32_OPS
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule
from fp16lint.rules.fp301_fp16_overflow_constant import quoted_value, related

_CONSEQUENCES = {
    "a denominator": "a zero denominator gives inf or NaN",
    "a negative power": "0 to a negative power is inf",
    "log": "log(0) is -inf",
    "log2": "log2(0) is -inf",
    "log10": "log10(0) is -inf",
    "sqrt": "the gradient of sqrt at 0 is inf",
    "rsqrt": "rsqrt(0) is inf",
    "reciprocal": "1/0 is inf",
    "normalize": "a zero vector is divided by 0 and gives NaN",
    "cosine_similarity": "a zero vector gives NaN",
}

# Helpers that apply their eps inside an op on CUDA autocast's float32 list: under fp16
# autocast they compute in float32, so only float16 from outside autocast reaches the eps.
_AUTOCAST_FP32_HELPERS = frozenset({"normalize", "cosine_similarity"}) & AUTOCAST_FP32_OPS


class Fp16UnderflowEpsilon(Rule):
    code = "FP304"
    name = "fp16-underflow-epsilon"
    severity = Severity.WARNING
    tokens = (
        "torch",
        "Tensor",
        "tensor",
        "clamp",
        "clip",
        "sqrt",
        "log",
        "normalize",
        *ORIGIN_TOKENS,
    )
    requires = (ConstantSinks, ExposureTracker, ModelFacts)

    summary = "An epsilon float16 rounds to 0 (at most 2.98e-08) keeps nothing away from zero."
    what = (
        "Finds positive constants float16 rounds to 0 (at most 2**-25 ≈ 2.98e-08) — literals, module constants, class "
        "attributes and parameter defaults (reported at the use, with the definition as a "
        "related location) — used to keep a tensor away from zero: added to a tensor in a "
        "denominator or inside `log`, `sqrt` or `rsqrt`, a `clamp(min=...)`/`clamp_min` bound, "
        "or the `eps` of `F.normalize` and `F.cosine_similarity`, which compute in the input's "
        "dtype. Not raised for the `eps` of norm layers (LayerNorm, GroupNorm, BatchNorm, "
        "RMSNorm: their kernels keep it in float32), for tolerances (`atol`, `rtol`), learning "
        "rates, or optimizer `eps` (FP109), nor where the tensor is evidently float32 "
        "(`x.float().pow(2).mean()`), nor on a learned positive scale (`exp` of a parameter, a "
        "parameter initialised to ones: `1 / (alpha + 1e-9)` in a Snake activation). "
        "In default mode a site on a tensor is reported only where float16 can reach it — "
        "made float16 in the function, a model's output in an fp16 autocast region, or passed "
        "in from such a place through calls across functions and files (a loss object's "
        "`__call__`, a helper) — and the message ends with where it comes from, the chain "
        "listed as related locations; "
        "`assume-fp16` keeps a site on a tensor where the value it guards can be 0 — a "
        "probability (a sigmoid or softmax output underflows to 0, `1 - sigmoid(x)` rounds "
        "to 0), a one-hot average, a spectrum (`stft`) or a raw model input (`input_values`, "
        "`input_features`, `pixel_values`: silence, padding), or a helper's parameter some "
        "call in the project fills with one — and drops it where the project shows float32: "
        "a site that float16 reaches only through parameters every caller in the project "
        "fills with float32 values, and a site in a constructor (`__init__` runs on "
        "hyperparameters, before any cast). Norms of activations, counts and sums of top-k "
        "scores are not 0 in practice: `library-info = true` (`--library-info`) reports "
        "those too, and a real float16 origin reports them in either mode. In both modes a constant taken from a parameter default is not reported when every call in the project passes that parameter."
    )
    why = (
        "float16's smallest subnormal is 2**-24 ≈ 5.96e-08 and anything up to 2**-25 ≈ 2.98e-08 "
        "rounds to 0 (a larger eps becomes a subnormal and still guards): `var + 1e-12` is "
        "`var`, so a constant row "
        "divides 0 by 0 and gives NaN, `log(p + 1e-8)` is -inf at p = 0, and "
        "`x.clamp(min=1e-12)` lets zeros through."
    )
    example = """\
def normalize(x):
    return x / (x.norm(dim=-1, keepdim=True) + 1e-12)
"""
    use_instead = """\
def normalize(x):
    norm = x.float().norm(dim=-1, keepdim=True)
    return (x.float() / (norm + 1e-12)).to(x.dtype)
"""
    references = ("https://pytorch.org/docs/stable/type_info.html#torch.finfo",)
    runtime_confirmable = "yes"

    valid = (
        # Only ever sees float32: a buffer made at init, an output upcast after autocast.
        "import torch\nfrom torch import nn\n\n\ndef unit(x):\n"
        "    return x / (x.norm(dim=-1, keepdim=True) + 1e-12)\n\n\n"
        "class Head(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.register_buffer('basis', unit(torch.randn(8, 4)))\n\n\n"
        "def embed(model, batch):\n    with torch.autocast('cuda', dtype=torch.float16):\n"
        "        out = model(batch)\n    return unit(out.float())\n",
        # Norm layers keep eps in float32; optimizer eps is FP109's; tolerances are not sinks.
        "import torch\nfrom torch import nn\nnorm = nn.LayerNorm(64, eps=1e-12)\n"
        "y = torch.nn.functional.layer_norm(torch.randn(2, 64), (64,), eps=1e-12)\n",
        "import torch\nopt = torch.optim.Adam([torch.zeros(1)], lr=1e-9, eps=1e-10)\n",
        "import torch\ndef close(a, b):\n    return torch.allclose(a, b, atol=1e-12, rtol=1e-9)\n",
        # An epsilon float16 can hold.
        "import torch\ndef f(x):\n    return x / (x.norm(dim=-1, keepdim=True) + 1e-6)\n",
        # Computed in float32.
        "import torch\ndef rms(x, eps=1e-12):\n    var = x.float().pow(2).mean(-1, keepdim=True)\n"
        "    return x * torch.rsqrt(var + eps)\n",
        # numpy and Python numbers.
        "import numpy as np\ndef f(p):\n    return np.log(p + 1e-12)\n",
        "import math\ndef f(total, count):\n    return total / (count + 1e-12)\n",
        "import numpy as np\ndef f(n, d):\n    return np.where(d > 0, n / (d + 1e-12), 0.0)\n",
        "import time\nstart = time.perf_counter()\nrate = 1.0 / (time.perf_counter() - start + 1e-12)\n",
        # Tensors that cannot be float16: made from Python data, or computed in float64.
        "import torch\ndef f(values, std):\n    return values / (torch.tensor(std) + 1e-08)\n",
        "import torch\ndef f(counts: torch.Tensor, n):\n"
        "    idf = torch.log1p(n / (1 + counts.sum(dim=0).double()))\n"
        "    vectors = (counts * idf).sqrt()\n"
        "    return vectors / vectors.norm(dim=1).clamp(min=1e-8)\n",
        "import torch\ndef f(q, k):\n    q, k = q.float(), k.float()\n"
        "    s = torch.matmul(q, k)\n    return s[:, :-1] / (s[:, -1:] + 1e-15)\n",
        # Routing computed in float32, through an activation and a gather.
        "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
        "from transformers.activations import ACT2FN\n\nclass Router(nn.Module):\n"
        "    def __init__(self, n, d):\n        super().__init__()\n"
        "        self.weight = nn.Parameter(torch.empty(n, d))\n"
        "        self.score_fn = ACT2FN['sigmoid']\n\n"
        "    def forward(self, hidden: torch.Tensor):\n"
        "        logits = F.linear(hidden.float(), self.weight.float())\n"
        "        scores = self.score_fn(logits)\n"
        "        weights = scores.gather(1, scores.topk(2).indices)\n"
        "        return weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)\n",
        # A plain attribute made float32 (model.half() converts parameters and buffers only).
        "import numpy as np\nimport torch\nfrom torch import nn\n\nclass Mel(nn.Module):\n"
        "    def __init__(self, filters):\n        super().__init__()\n"
        "        self.filters = torch.from_numpy(np.asarray(filters, dtype=np.float32))\n\n"
        "    def forward(self, spec: torch.Tensor):\n        mel = self.filters @ spec\n"
        "        return mel.clamp(min=1e-10).log10()\n",
        # F.normalize called only under fp16 autocast runs in float32 (autocast's list).
        "import torch\nimport torch.nn.functional as F\n\n\ndef unit(x):\n"
        "    return F.normalize(x, dim=-1, eps=1e-12)\n\n\n"
        "def embed(model, x):\n    with torch.autocast('cuda', dtype=torch.float16):\n"
        "        return unit(model(x))\n",
        # Under fp16 autocast, softmax (on autocast's float32 list) outputs float32.
        "import torch\nimport torch.nn.functional as F\n\n\ndef nll(logits, target):\n"
        "    return -(torch.log(F.softmax(logits, -1) + 1e-8) * target).sum()\n\n\n"
        "def step(model, x, y):\n    with torch.autocast('cuda', dtype=torch.float16):\n"
        "        return nll(model(x), y)\n",
        # Not keeping anything away from zero.
        "import torch\ndef f(x):\n    return x.norm(dim=-1) + 1e-12\n",
        # A dtype guard.
        "import torch\ndef f(x):\n"
        "    eps = 1e-12 if x.dtype == torch.float32 else 1e-4\n"
        "    return x / (x.norm(dim=-1, keepdim=True) + eps)\n",
        # torch.finfo of the tensor's own dtype is not a constant; float("inf") is no epsilon.
        "import torch\ndef f(x):\n    return x / (x.norm(dim=-1) + torch.finfo(x.dtype).eps)\n",
        "import torch\ndef f(p: torch.Tensor):\n"
        "    return torch.log(p.clamp(min=torch.finfo(p.dtype).tiny, max=float('inf')))\n",
    )
    invalid = (
        # A forward run under fp16 autocast: the Linear's output is float16 there.
        Invalid(
            "import torch\nfrom torch import nn\n\n\nclass Gate(nn.Module):\n"
            "    def __init__(self, d):\n        super().__init__()\n"
            "        self.proj = nn.Linear(d, d)\n\n    def forward(self, x):\n"
            "        h = self.proj(x)\n"
            "        return torch.sigmoid(h) / (h.abs().mean(-1, keepdim=True) + 1e-8)\n\n\n"
            "model = Gate(8)\n\ndef step(x):\n    with torch.autocast('cuda', dtype=torch.float16):\n        return model(x)\n",
            (("FP304", 12),),
        ),
        # An IoU helper in another file, reached from an fp16 autocast region through a loss
        # object's __call__.
        Invalid(
            {
                "loss.py": "import torch\n\n\ndef box_iou(a, b, eps=1e-9):\n"
                "    inter = torch.min(a[..., 2], b[..., 2]) * torch.min(a[..., 3], b[..., 3])\n"
                "    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter + eps\n"
                "    return inter / union\n\n\nclass BoxLoss:\n"
                "    def __call__(self, pred, target):\n"
                "        return (1 - box_iou(pred, target)).mean()\n",
                "train.py": "import torch\nfrom loss import BoxLoss\n\n\n"
                "def fit(model, loader):\n    criterion = BoxLoss()\n"
                "    for images, boxes in loader:\n"
                "        with torch.autocast('cuda', dtype=torch.float16):\n"
                "            loss = criterion(model(images), boxes)\n        loss.backward()\n",
            },
            (("FP304", "loss.py", 6),),
        ),
        # `values, indices = torch.max(...)` keeps float16 in the values.
        Invalid(
            "import torch\n\n\ndef rescale(scores):\n"
            "    high, _ = torch.max(scores, dim=1, keepdim=True)\n"
            "    low, _ = torch.min(scores, dim=1, keepdim=True)\n"
            "    return (scores - low) / (high - low + 1e-8)\n\n\n"
            "def step(model, batch):\n    with torch.autocast('cuda', dtype=torch.float16):\n"
            "        return rescale(model(batch))\n",
            (("FP304", 7),),
        ),
        # A local-variable epsilon on a tensor made float16.
        Invalid(
            "import torch\n\n\ndef pool(model, x):\n    h = model(x).half()\n"
            "    epsilon = 1e-8\n    return h / (h.sum(-1, keepdim=True) + epsilon)\n",
            (("FP304", 7),),
        ),
        # Library mode: values that can be exactly 0 (a raw input: silent audio).
        Invalid(
            "import torch\ndef f(input_values):\n"
            "    return input_values / (input_values.norm(dim=-1, keepdim=True) + 1e-12)\n",
            (("FP304", 3),),
            assume_fp16=True,
        ),
        # A parameter default and a module constant, reported at the use; a helper's parameter
        # that a call fills with probabilities.
        Invalid(
            "import torch\ndef kl(logits: torch.Tensor, prior, eps=1e-12):\n"
            "    q = logits.softmax(-1)\n    return (q * torch.log(q / prior + eps)).sum()\n",
            (("FP304", 4),),
            assume_fp16=True,
        ),
        Invalid(
            "import torch\nEPS = 1e-15\n\ndef entropy(p: torch.Tensor):\n"
            "    return -(p * torch.log(p + EPS)).sum()\n\n\n"
            "def score(logits):\n    return entropy(logits.softmax(-1))\n",
            (("FP304", 5),),
            assume_fp16=True,
        ),
        # A focal loss with eps kept on the module: 1 - sigmoid(x) is 0 once it rounds to 1.
        Invalid(
            "import torch\nfrom torch import nn\n\nclass Focal(nn.Module):\n"
            "    def __init__(self, eps=1e-12):\n        super().__init__()\n        self.eps = eps\n\n"
            "    def forward(self, logits: torch.Tensor):\n"
            "        p = logits.sigmoid()\n"
            "        return -(p ** 2 * torch.log(1 - p + self.eps))\n",
            (("FP304", 11),),
            assume_fp16=True,
        ),
        # clamp bounds and rsqrt on one-hot averages (codes no row uses are 0).
        Invalid(
            "import torch\nimport torch.nn.functional as F\ndef f(z, idx, n):\n"
            "    x = F.one_hot(idx, n).type(z.dtype).mean(0)\n    y = x.clamp(min=1e-10).log()\n"
            "    z = torch.clamp_min(x, 1e-20)\n    return (x.abs() + 1e-9).rsqrt() + y + z\n",
            (("FP304", 5), ("FP304", 6), ("FP304", 7)),
            assume_fp16=True,
        ),
        # The eps of helpers that compute in the input's dtype.
        Invalid(
            "import torch.nn.functional as F\ndef f(input_values, y):\n"
            "    return F.normalize(input_values, dim=-1, eps=1e-12), "
            "F.cosine_similarity(input_values, y, -1, 1e-8)\n",
            (("FP304", 3), ("FP304", 3)),
            assume_fp16=True,
        ),
        # A power, and under the float16 branch of a dtype test.
        Invalid(
            "import torch\ndef f(x: torch.Tensor):\n    if x.dtype == torch.float16:\n"
            "        return x * (x.var(-1) + 1e-10) ** -0.5\n    return x\n",
            (("FP304", 4),),
        ),
    )

    def _check(self, node: cst.CSTNode) -> None:
        exposure, sinks = self.ctx.get(ExposureTracker), self.ctx.get(ConstantSinks)
        for sink in sinks.epsilons(node):
            exposure.note(
                self.code,
                sink.node,
                sink.target,
                sinks.only_by_exposure(sink),
                protected=sink.operation in _AUTOCAST_FP32_HELPERS,
                default=sink.default,
                zero=True,
            )
            self.report(
                sink.node,
                self._message(sink),
                related=related(self, sink.constant),
                help=(
                    "Compute this in float32, or use an eps float16 keeps above 0 (above "
                    "2.98e-08; 6.1e-05 or more stays a normal float16 number)."
                ),
            )

    @classmethod
    def amend(cls, project, finding):
        return judged(project, finding)

    def _message(self, sink: Sink) -> str:
        target = sink.target_text(self.ctx.code)
        value = quoted_value(sink, self.ctx.code)
        written = self.ctx.code(sink.node)
        if sink.operation in ("normalize", "cosine_similarity"):
            effect = f"`{sink.operation}` divides a zero vector by 0 in float16 and gives NaN"
        elif sink.operation in _CONSEQUENCES:
            total = f"`{target} + {written}`" if target else "the sum"
            op = sink.operation
            place = f"in {op}" if op.startswith("a ") else f"under `{op}`"
            effect = f"{total} {place} can still be 0 in float16, and {_CONSEQUENCES[op]}"
        else:
            who = f"`{target}`" if target else "the tensor"
            effect = f"`{sink.operation}` lets zeros of {who} through in float16"
        return f"{value} rounds to 0 in float16, so {effect}."

    visit_Call = visit_BinaryOperation = _check
