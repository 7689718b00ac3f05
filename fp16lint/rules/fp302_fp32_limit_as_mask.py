"""FP302 fp32-limit-as-mask: ``torch.finfo(torch.float32).min`` as a mask or fill value."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.dtypes import DType
from fp16lint.analysis.exposure import ORIGIN_TOKENS, ExposureTracker, judged
from fp16lint.analysis.index import ModelFacts
from fp16lint.analysis.sinks import ConstantSinks
from fp16lint.findings import Applicability, Severity
from fp16lint.rules.base import Invalid, Rule
from fp16lint.rules.fp301_fp16_overflow_constant import (
    TOKENS,
    noted_fix,
    outcome,
    quoted_value,
    related,
)


class Fp32LimitAsMask(Rule):
    code = "FP302"
    name = "fp32-limit-as-mask"
    severity = Severity.WARNING
    fix = Applicability.SAFE
    tokens = (*TOKENS, *ORIGIN_TOKENS)
    requires = (ConstantSinks, ExposureTracker, ModelFacts)

    summary = "A float32 (or float64) limit is used as a mask value; use the tensor's own `finfo`."
    what = (
        "Finds `torch.finfo(torch.float32).min`/`.max` (any spelling of the dtype, also "
        "float64 and bfloat16), `np.finfo(np.float32).min` and `sys.float_info.max`, directly "
        "or through a name, class attribute or parameter default, where they are written into "
        "or combined with a tensor — the same places as FP301. When FP301 would fire on the "
        "same expression, only FP302 is raised. In default mode only where float16 can reach the tensor (the "
        "message ends with the chain from its origin); "
        "`assume-fp16` keeps every site except where the project shows float32: a site that float16 reaches only through parameters every caller in the project fills with float32 values, and a site in a constructor (`__init__` runs on hyperparameters, before any cast). In both modes a constant taken from a parameter default is not reported when every call in the project passes that parameter."
    )
    why = (
        'The limit of a fixed dtype is meant as "the most negative number", but it is only '
        "that for float32 tensors: it is far outside float16's range (±65504), so "
        "`masked_fill` raises `RuntimeError: value cannot be converted to type c10::Half "
        "without overflow` and additive masks become -inf (NaN after a softmax over a fully "
        "masked row) as soon as the tensor is float16. "
        "`torch.finfo(<tensor>.dtype).min` is the most negative number in every dtype."
    )
    example = """\
scores = scores.masked_fill(mask, torch.finfo(torch.float32).min)
"""
    use_instead = """\
scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
"""
    fix_docs = (
        "Safe for a float32 limit written by a fill, `torch.where`, `clamp` or assignment into "
        "a tensor that is a plain name or attribute: the value written is the same number for "
        "float32 tensors. As FP301's fix, it is `torch.finfo(<tensor>.dtype).min` when the "
        "tensor is filled and then goes to a softmax, and "
        "`-1e4 if <tensor>.dtype == torch.float16 else <the limit>` (float64's limits, which "
        "float32 cannot hold either: the tensor's own limit) when it is added to the "
        "scores later or its use is not seen (`finfo(float16).min` plus a score below -16 "
        "is `-inf`). Unsafe for float64 and bfloat16 limits (the value may change for "
        "float32 tensors). Arithmetic masks are not fixed automatically."
    )
    references = ("https://pytorch.org/docs/stable/type_info.html#torch.finfo",)
    runtime_confirmable = "yes"

    valid = (
        # Scores this code builds in float32.
        "import torch\n\n\ndef band(n, keep):\n    scores = torch.zeros(n, n, dtype=torch.float32)\n"
        "    return scores.masked_fill(~keep, torch.finfo(torch.float32).min)\n",
        "import torch\ndef f(scores, mask):\n"
        "    return scores.masked_fill(mask, torch.finfo(scores.dtype).min)\n",
        "import torch\ndef f(scores, mask):\n    return scores.masked_fill(mask, float('-inf'))\n",
        "import torch\ndef f(scores, mask):\n"
        "    return scores.masked_fill(mask, torch.finfo(torch.float16).min)\n",
        # numpy arrays and Python numbers are not tensors.
        "import numpy as np\ndef f(x, mask):\n    return np.where(mask, x, np.finfo(np.float32).min)\n",
        "import sys\nbest = sys.float_info.max\nfor loss in [1.0, 2.0]:\n    best = min(best, loss)\n",
        # float32 scores, and a dtype guard.
        "import torch\ndef f(scores, mask):\n    scores = scores.float()\n"
        "    return scores.masked_fill(mask, torch.finfo(torch.float32).min)\n",
        "import torch\ndef f(x, mask):\n"
        "    value = torch.finfo(torch.float32).min if x.dtype == torch.float32 else -1e4\n"
        "    return x.masked_fill(mask, value)\n",
        # A limit of an unknown dtype variable.
        "import torch\ndef f(x, mask, dtype=torch.float32):\n"
        "    return x.masked_fill(mask, torch.finfo(dtype).min)\n",
    )
    invalid = (
        # Filled into the scores, then softmax: the tensor's own limit.
        Invalid(
            "import torch\ndef f(scores, mask):\n"
            "    return torch.softmax(scores.masked_fill(mask, torch.finfo(torch.float32).min), -1)\n",
            (("FP302", 3),),
            fixed="import torch\ndef f(scores, mask):\n"
            "    return torch.softmax(scores.masked_fill(mask, torch.finfo(scores.dtype).min), -1)\n",
            assume_fp16=True,
        ),
        # Returned (perhaps added to scores later): -1e4 in float16, unchanged otherwise.
        Invalid(
            "import torch\ndef f(scores, mask):\n"
            "    return scores.masked_fill(mask, torch.finfo(torch.float32).min)\n",
            (("FP302", 3),),
            fixed="import torch\ndef f(scores, mask):\n    return scores.masked_fill(mask, "
            "-1e4 if scores.dtype == torch.float16 else torch.finfo(torch.float32).min)\n",
            assume_fp16=True,
        ),
        # Another spelling of float32, through a module constant.
        Invalid(
            "import torch as th\nMASK = th.finfo(th.float).min\n\ndef f(scores, mask):\n"
            "    return th.where(mask, MASK, scores)\n",
            (("FP302", 5),),
            fixed="import torch as th\nMASK = th.finfo(th.float).min\n\ndef f(scores, mask):\n"
            "    return th.where(mask, -1e4 if scores.dtype == th.float16 else MASK, scores)\n",
            assume_fp16=True,
        ),
        # numpy's and sys's limits: the value changes for float32, so the fix is unsafe.
        Invalid(
            "import numpy as np\nimport torch\ndef f(scores, mask):\n"
            "    return scores.masked_fill(mask, np.finfo(np.float32).min)\n",
            (("FP302", 4),),
            fixed="import numpy as np\nimport torch\ndef f(scores, mask):\n"
            "    return scores.masked_fill(mask, -1e4 if scores.dtype == torch.float16 "
            "else np.finfo(np.float32).min)\n",
            assume_fp16=True,
        ),
        Invalid(
            "import sys\nimport torch\ndef f(logits: torch.Tensor, banned):\n"
            "    logits[:, banned] = -sys.float_info.max\n",
            (("FP302", 4),),
            fixed="import sys\nimport torch\ndef f(logits: torch.Tensor, banned):\n"
            "    logits[:, banned] = -1e4 if logits.dtype == torch.float16 "
            "else torch.finfo(logits.dtype).min\n",
            assume_fp16=True,
        ),
        # An additive mask built from the limit: silent -inf, no automatic fix.
        Invalid(
            "import torch\ndef f(mask: torch.Tensor):\n"
            "    return (1.0 - mask) * torch.finfo(torch.float32).min\n",
            (("FP302", 3),),
            assume_fp16=True,
        ),
        # A class attribute and a parameter default.
        Invalid(
            "import torch\nfrom torch import nn\n\nclass Attn(nn.Module):\n"
            "    def __init__(self, fill=torch.finfo(torch.float32).min):\n"
            "        super().__init__()\n        self.fill = fill\n\n"
            "    def forward(self, scores, mask):\n"
            "        return scores.masked_fill(mask, self.fill)\n",
            (("FP302", 10),),
            fixed="import torch\nfrom torch import nn\n\nclass Attn(nn.Module):\n"
            "    def __init__(self, fill=torch.finfo(torch.float32).min):\n"
            "        super().__init__()\n        self.fill = fill\n\n"
            "    def forward(self, scores, mask):\n"
            "        return scores.masked_fill(mask, -1e4 if scores.dtype == torch.float16 "
            "else self.fill)\n",
            assume_fp16=True,
        ),
        # Kept as a 0-dim mask buffer.
        Invalid(
            "import torch\nfrom torch import nn\n\nclass Attn(nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n"
            "        self.register_buffer('neg', torch.tensor(torch.finfo(torch.float32).min))\n",
            (("FP302", 7),),
        ),
        # float32's minimum written into scores of a variable dtype that an fp16 autocast
        # region passes in.
        Invalid(
            "import torch\n\n\ndef mask_scores(scores, keep):\n"
            "    return scores.masked_fill(~keep, torch.finfo(torch.float32).min)\n\n\n"
            "def step(model, x, keep):\n    with torch.autocast('cuda', dtype=torch.float16):\n"
            "        return mask_scores(model(x), keep)\n",
            (("FP302", 5),),
        ),
    )

    def _check(self, node: cst.CSTNode) -> None:
        for sink in self.ctx.get(ConstantSinks).values(node):
            constant = sink.constant
            if constant.limit is None:
                continue
            edits, finfo = noted_fix(self, sink)
            safe = constant.limit is DType.FP32
            self.report(
                sink.node,
                f"{quoted_value(sink, self.ctx.code)} is {constant.limit.value}'s limit, outside "
                f"float16's range (±65504): {outcome(sink, self.ctx.code)}.",
                help=f"Use `{finfo}`.",
                edits=edits,
                fix_message=f"Use `{finfo}`",
                applicability=Applicability.SAFE if safe else Applicability.UNSAFE,
                related=related(self, constant),
            )

    visit_Call = visit_BinaryOperation = visit_AugAssign = visit_Assign = _check

    @classmethod
    def amend(cls, project, finding):
        return judged(project, finding)
