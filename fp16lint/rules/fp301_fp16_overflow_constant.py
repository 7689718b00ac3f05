"""FP301 fp16-overflow-constant: ``scores.masked_fill(mask, -1e9)`` and friends."""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from fp16lint.analysis.constants import Constant
from fp16lint.analysis.context import NodeEdit
from fp16lint.analysis.exposure import ORIGIN_TOKENS, ExposureTracker, judged
from fp16lint.analysis.index import ModelFacts
from fp16lint.analysis.mask_use import mask_use, masks_whole_rows
from fp16lint.analysis.names import dotted
from fp16lint.analysis.sinks import CLAMP_METHODS, ConstantSinks, Sink
from fp16lint.data.mask_fills import ADDITIVE_FP16_FILL_TEXT, DTYPE_MAX, MaskUse
from fp16lint.findings import Applicability, Severity
from fp16lint.rules.base import Invalid, Rule

OVERFLOW_ERROR = "RuntimeError: value cannot be converted to type c10::Half without overflow"
# Sinks kept as 0-dim tensors: they meet float16 tensors anywhere, not as one mask.
_HELD = ("register_buffer", "a module attribute")
TOKENS = ("torch", "fill", "full", "where", "clamp", "clip", "tensor", "Tensor")


def quoted_value(sink: Sink, code: Callable[[cst.CSTNode], str]) -> str:
    """The constant as the message shows it: `` `-1e9` `` or `` `NEG_INF` (-1e9) ``."""
    written = code(sink.node)
    shown = sink.constant.shown
    return f"`{written}`" if written == shown else f"`{written}` ({shown})"


def finfo_text(sink: Sink, code: Callable[[cst.CSTNode], str], torch: str = "torch") -> str:
    """``torch.finfo(scores.dtype).min`` for the tensor the sink writes, as advice."""
    bound = "min" if sink.constant.value < 0 else "max"
    target = sink.target_text(code)
    dtype = sink.dtype_expr or (f"{target}.dtype" if target else "<tensor>.dtype")
    return f"{torch}.finfo({dtype}).{bound}"


def outcome(sink: Sink, code: Callable[[cst.CSTNode], str]) -> str:
    """What happens to the value in float16 at this sink, as a clause."""
    target = sink.target_text(code)
    who = f"`{target}`" if target else "the tensor"
    if sink.raises:
        when = f"`{sink.dtype_expr}`" if sink.dtype_expr and not target else who
        return f"`{sink.operation}` raises `{OVERFLOW_ERROR}` when {when} is float16"
    sign = "-inf" if sink.constant.value < 0 else "inf"
    if sink.operation == "register_buffer":
        return f"`model.half()` converts the buffer to float16, where it becomes {sign}"
    if sink.operation == "a module attribute":
        return (
            f"a 0-dim tensor takes the dtype of the tensors it meets, so it becomes {sign} "
            "next to float16 tensors"
        )
    nan = ", and a fully masked softmax row then gives NaN" if sink.constant.value < 0 else ""
    if sink.operation == "a cast":
        dtype = f"`{sink.dtype_expr}`" if sink.dtype_expr else "that dtype"
        return f"casting the tensor made from it to {dtype} gives {sign} when that is float16{nan}"
    if sink.operation in ("torch.where", "where"):
        return f"`{sink.operation}` turns it into {sign} when {who} is float16{nan}"
    if sink.operation == "a subscript assignment":
        return f"assigning it into {who} stores {sign} when {who} is float16{nan}"
    return f"`{sink.operation}` with {who} gives {sign} when {who} is float16{nan}"


def noted_fix(rule: Rule, sink: Sink, rows: bool = True) -> tuple[list[NodeEdit], str]:
    """``sink``'s fix edits and the value advised for it; notes the site for the exposure join
    (the project pass keeps it only where float16 reaches it, outside library mode).
    ``rows=False``: a silent ``-inf`` needs evidence that a whole row can be masked."""
    sinks = rule.ctx.get(ConstantSinks)
    subject = sink.target if sink.target is not None else sink.subject
    rows = rows or sink.raises or sink.operation in _HELD
    rows = rows or masks_whole_rows(rule.ctx.stack, _written(sink), subject)
    rule.ctx.get(ExposureTracker).note(
        rule.code,
        sink.node,
        subject,
        sinks.only_by_exposure(sink),
        default=sink.default,
        rows=rows,
    )
    edits = fix_edits(rule, sink)
    return edits, edits[0].content if edits else finfo_text(sink, rule.ctx.code)


def _written(sink: Sink) -> str | None:
    return dotted(sink.target) if sink.target is not None else None


def fix_edits(rule: Rule, sink: Sink) -> list[NodeEdit]:
    """Replace the constant with a value safe for the target's use, when the target is evident:
    its ``finfo`` limit for a mask filled into the scores before a softmax (and for bounds),
    ``-1e4`` in float16 (the constant elsewhere) for a mask added to the scores later or
    whose use is not seen (``data.mask_fills``)."""
    torch = rule.ctx.names.local_name_for("torch")
    if not sink.dtype_expr or torch is None:
        return []
    if sink.constant.value < 0 and sink.operation not in CLAMP_METHODS:
        written = _written(sink)
        if mask_use(rule.ctx.stack, rule.ctx.names, written) is not MaskUse.FILL:
            return [NodeEdit(sink.node, additive_text(sink, rule.ctx.code, torch))]
    return [NodeEdit(sink.node, finfo_text(sink, rule.ctx.code, torch))]


def additive_text(sink: Sink, code: Callable[[cst.CSTNode], str], torch: str) -> str:
    """``-1e4 if mask.dtype == torch.float16 else -1e9``: a value that survives being added to
    float16 scores, and the constant as written for every other dtype (the tensor's own limit
    when the constant is beyond float32's range too)."""
    dtype = sink.dtype_expr or ""
    if dtype.rsplit(".", 1)[-1] in ("float16", "half"):
        return ADDITIVE_FP16_FILL_TEXT
    other = code(sink.node)
    if abs(sink.constant.value) > DTYPE_MAX["float32"]:  # float64's limit: float32 raises too
        other = finfo_text(sink, code, torch)
    return f"{ADDITIVE_FP16_FILL_TEXT} if {dtype} == {torch}.float16 else {other}"


def related(rule: Rule, constant: Constant) -> list[tuple[str, cst.CSTNode, str]]:
    return [(rule.ctx.path, node, message) for node, message in constant.origin]


class Fp16OverflowConstant(Rule):
    code = "FP301"
    name = "fp16-overflow-constant"
    severity = Severity.ERROR
    fix = Applicability.UNSAFE
    tokens = (*TOKENS, *ORIGIN_TOKENS)
    requires = (ConstantSinks, ExposureTracker, ModelFacts)

    summary = (
        "A constant beyond float16's range (±65504) is written into or combined with a tensor."
    )
    what = (
        'Finds numbers float16 cannot hold — literals, `float("1e30")`, simple arithmetic, and '
        "names, class attributes and parameter defaults bound once to them — where they meet a "
        "tensor: `masked_fill(_)`, `fill_`, `index_fill(_)`, `new_full`, `torch.full(_like)` "
        "with a float16-capable dtype, `clamp` bounds, the value branches of `torch.where`, "
        "subscript assignment, `+ - *` with a tensor, and 0-dim tensors kept as mask buffers "
        "(`torch.tensor(-1e9)`). A constant from a name is reported at the use, with the "
        "definition as a related location. Values that fit (`-10000.0`, `-65504`), "
        "infinities, `torch.finfo(x.dtype).min`, numpy and plain Python numbers, tensors whose "
        "dtype is evidently not float16 (`x.float()`, integer masks), and branches of a dtype "
        "test that exclude float16 (`-1e9 if x.dtype == torch.float32 else -1e4`) are left "
        "alone. `torch.finfo(torch.float32).min` and its kin are FP302's. "
        "In default mode a site on a tensor is reported only where float16 can reach it — "
        "made float16 in the function, a model's output in an fp16 autocast region, or passed "
        "in from such a place through calls across functions and files (a loss object's "
        "`__call__`, a helper) — and the message ends with where it comes from, the chain "
        "listed as related locations; "
        "`assume-fp16` keeps every site on a tensor except where the project shows float32: a site that float16 reaches only through parameters every caller in the project fills with float32 values, and a site in a constructor (`__init__` runs on hyperparameters, before any cast). "
        "There, a value float16 turns into `-inf` silently (arithmetic, `torch.where`, assignment, a cast) is reported only with evidence that a whole row can be masked — the mask keeps an axis besides the key axis (`(inf * (m - 1))[..., :, None, None, :]`, `m[:, :, None]`), as pair and per-query masks do — since `-inf` masks like the constant unless every entry of a row is masked (`library-info = true` lists the others). In both modes a constant taken from a parameter default is not reported when every call in the project passes that parameter."
    )
    why = (
        "float16's largest finite value is 65504. Fill-style ops check the value and raise "
        f"`{OVERFLOW_ERROR}` as soon as the tensor is float16 — which attention scores are "
        "under autocast too, since matmul runs in float16. Arithmetic, `torch.where` and "
        "assignment do not check: the value silently becomes ±inf, and a softmax over a fully "
        "masked row then gives NaN."
    )
    example = """\
scores = torch.matmul(q, k.transpose(-1, -2))
scores = scores.masked_fill(mask == 0, -1e9)
"""
    use_instead = """\
scores = torch.matmul(q, k.transpose(-1, -2))
scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)  # then softmax(scores)
# a mask added to the scores later needs a value that survives the addition in float16:
attn_mask = attn_mask.masked_fill(m, -1e4 if attn_mask.dtype == torch.float16 else -1e9)
"""
    fix_docs = (
        "Unsafe, when the tensor written into is a plain name or attribute; the value depends "
        "on how that tensor is used (fp16lint/data/mask_fills.py, checked by "
        "tests/facts/test_mask_fills.py):\n\n"
        "- *fill-then-softmax*: the scores themselves are filled and then go to a softmax "
        "(`scores = scores.masked_fill(m, -1e9)` ... `scores.softmax(-1)`): "
        "`torch.finfo(scores.dtype).min`. Nothing is added to it, so it masks in every dtype "
        "and a fully masked row comes out uniform. In float32 the value changes from the "
        "constant to float32's limit.\n"
        "- *additive*: the result is added to the scores later (`scores + attn_mask`, "
        "`attn_weights += attn_mask`, `attn_mask=` of `scaled_dot_product_attention`), or its "
        "use is not seen in the function (returned, stored): "
        "`-1e4 if attn_mask.dtype == torch.float16 else -1e8` (the original constant "
        "outside float16). `finfo(float16).min` would be wrong here: plus any score below -16 "
        "it rounds to `-inf`, and a fully masked row becomes NaN; `-1e4` stays finite for "
        "scores above -55504 and still gives masked places weight 0.\n"
        "- `clamp` bounds and positive values: `torch.finfo(<tensor>.dtype).min`/`.max`.\n\n"
        "Arithmetic masks (`(1.0 - mask) * -1e9`) are not fixed automatically."
    )
    references = ("https://pytorch.org/docs/stable/type_info.html#torch.finfo",)
    runtime_confirmable = "yes"

    valid = (
        # A fill in the dtype of a value the code upcast just above.
        "import torch\ndef f(q, n):\n    q = q.float()\n"
        "    return torch.full((n,), -1e9, dtype=q.dtype, device=q.device)\n",
        # The logits are upcast before the mask is written.
        "import torch\n\n\ndef ban(logits, banned):\n    logits[..., banned] = -1e10\n"
        "    return logits\n\n\ndef generate(model, ids, banned):\n    model = model.half()\n"
        "    return ban(model(ids).float(), banned)\n",
        # Values float16 can hold, and infinities.
        "import torch\ndef f(scores, mask):\n    return scores.masked_fill(mask, -10000.0)\n",
        "import torch\ndef f(scores, mask):\n    return scores.masked_fill(mask, float('-inf'))\n",
        "import torch\ndef f(scores, mask):\n    return scores.masked_fill(mask, -65504)\n",
        # The dtype's own limit.
        "import torch\ndef f(scores, mask):\n"
        "    return scores.masked_fill(mask, torch.finfo(scores.dtype).min)\n",
        # numpy and Python numbers are not tensors.
        "import numpy as np\ndef f(x, mask):\n    return np.where(mask, x, -1e9)\n",
        "import time\nstart = time.perf_counter()\nelapsed = time.perf_counter() - start\n"
        "print(elapsed * 1e9)\n",
        "import numpy as np\ndef f(n):\n    a = np.zeros(n)\n    a[0] = -1e9\n    return a\n",
        # The tensor is float32 by construction: the mask is computed in float32.
        "import torch\ndef f(q, k, mask):\n    scores = torch.matmul(q, k).float()\n"
        "    return scores.masked_fill(mask, -1e9)\n",
        "import torch\ndef f(mask):\n    return mask.long() * -1e9\n",
        # torch.full without dtype= makes float32.
        "import torch\nbias = torch.full((4, 4), -1e9)\n",
        # Dtype guards.
        "import torch\ndef f(x, mask):\n"
        "    value = -1e9 if x.dtype == torch.float32 else -1e4\n"
        "    return x.masked_fill(mask, value)\n",
        "import torch\ndef f(x, mask):\n    if x.dtype == torch.float16:\n"
        "        return x.masked_fill(mask, -1e4)\n    else:\n"
        "        return x.masked_fill(mask, -1e9)\n",
        # Integer constants go with integer tensors (token ids, hashes); `~m` is bool or int.
        "import torch\ndef f(codes: torch.Tensor, ids: torch.Tensor):\n"
        "    ids[:, 0] = 128000\n    return codes + 151675\n",
        "import torch\ndef f(finished: torch.Tensor):\n    return (~finished) * -1e9\n",
        # float32 by construction, through unpacking.
        "import torch\ndef f(masks, h, w):\n"
        "    y = torch.arange(0, h, dtype=torch.float32)\n"
        "    x = torch.arange(0, w, dtype=torch.float32)\n"
        "    y, x = torch.meshgrid(y, x, indexing='ij')\n"
        "    return torch.where(masks, x.unsqueeze(0), torch.tensor(1e8))\n",
        # A name bound to different values is unknown.
        "import torch\ndef f(x, mask, big):\n    value = -1e4\n    if big:\n        value = -1e9\n"
        "    return x.masked_fill(mask, value)\n",
    )
    invalid = (
        # Filled into the scores, then softmax: the dtype's own limit.
        Invalid(
            "import torch\ndef f(scores, mask):\n    scores = scores.masked_fill(mask == 0, -1e9)\n"
            "    return scores.softmax(-1)\n",
            (("FP301", 3),),
            fixed="import torch\ndef f(scores, mask):\n"
            "    scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)\n"
            "    return scores.softmax(-1)\n",
            assume_fp16=True,
        ),
        # An additive mask (added to the scores later): -1e4 in float16, as written elsewhere.
        Invalid(
            "import torch\ndef f(scores, attn_mask, m):\n"
            "    attn_mask = attn_mask.masked_fill(m, -1e8)\n"
            "    return torch.softmax(scores + attn_mask, -1)\n",
            (("FP301", 3),),
            fixed="import torch\ndef f(scores, attn_mask, m):\n"
            "    attn_mask = attn_mask.masked_fill(m, -1e4 if attn_mask.dtype == torch.float16 "
            "else -1e8)\n    return torch.softmax(scores + attn_mask, -1)\n",
            assume_fp16=True,
        ),
        # Returned: its use is not seen, so the value that is safe for both uses.
        Invalid(
            "import torch\ndef f(scores, mask):\n    return scores.masked_fill(mask == 0, -1e9)\n",
            (("FP301", 3),),
            fixed="import torch\ndef f(scores, mask):\n    return scores.masked_fill(mask == 0, "
            "-1e4 if scores.dtype == torch.float16 else -1e9)\n",
            assume_fp16=True,
        ),
        # A module constant, reported at the use.
        Invalid(
            "import torch\nNEG_INF = -1e9\n\ndef f(scores, mask):\n"
            "    scores.masked_fill_(mask, NEG_INF)\n    return scores\n",
            (("FP301", 5),),
            fixed="import torch\nNEG_INF = -1e9\n\ndef f(scores, mask):\n"
            "    scores.masked_fill_(mask, -1e4 if scores.dtype == torch.float16 else NEG_INF)\n"
            "    return scores\n",
            assume_fp16=True,
        ),
        # A class attribute set in __init__.
        Invalid(
            "import torch\nfrom torch import nn\n\nclass Attention(nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n        self.neg = -1e9\n\n"
            "    def forward(self, q, k, mask):\n        scores = torch.matmul(q, k)\n"
            "        return torch.where(mask, scores, self.neg)\n",
            (("FP301", 11),),
            fixed="import torch\nfrom torch import nn\n\nclass Attention(nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n        self.neg = -1e9\n\n"
            "    def forward(self, q, k, mask):\n        scores = torch.matmul(q, k)\n"
            "        return torch.where(mask, scores, -1e4 if scores.dtype == torch.float16 "
            "else self.neg)\n",
            assume_fp16=True,
            library_info=True,  # silent -inf, no row evidence: listed on request
        ),
        # Arithmetic with a tensor: silent -inf.
        Invalid(
            "import torch\ndef f(scores, mask: torch.Tensor):\n"
            "    return scores + (1.0 - mask) * -1e9\n",
            (("FP301", 3),),
            assume_fp16=True,
            library_info=True,
        ),
        # Subscript assignment, with float("1e10") and a parameter default.
        Invalid(
            "import torch\ndef ban(logits: torch.Tensor, banned, value=float('-1e10')):\n"
            "    logits[..., banned] = value\n    return logits\n",
            (("FP301", 3),),
            fixed="import torch\ndef ban(logits: torch.Tensor, banned, value=float('-1e10')):\n"
            "    logits[..., banned] = -1e4 if logits.dtype == torch.float16 else value\n"
            "    return logits\n",
            assume_fp16=True,
            library_info=True,
        ),
        # A 0-dim tensor kept as a mask buffer, and literal arithmetic.
        Invalid(
            "import torch\nfrom torch import nn\n\nclass Block(nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n"
            "        self.register_buffer('masked_bias', torch.tensor(-1e4 * 10))\n"
            "        self.bias = torch.tensor(-1e9)\n",
            (("FP301", 7), ("FP301", 8)),
        ),
        # torch.full with the scores' dtype, clamp bounds, and fp16's own limit gone past.
        Invalid(
            "import torch\ndef f(x, n):\n"
            "    bias = torch.full((n, n), -1e9, dtype=x.dtype)\n"
            "    y = x.clamp(-1e5, 1e5)\n"
            "    return y.masked_fill(bias < 0, torch.finfo(torch.float16).min - 100)\n",
            (("FP301", 3), ("FP301", 4), ("FP301", 4), ("FP301", 5)),
            fixed="import torch\ndef f(x, n):\n"
            "    bias = torch.full((n, n), -1e4 if x.dtype == torch.float16 else -1e9, "
            "dtype=x.dtype)\n"
            "    y = x.clamp(torch.finfo(x.dtype).min, torch.finfo(x.dtype).max)\n"
            "    return y.masked_fill(bias < 0, -1e4 if y.dtype == torch.float16 "
            "else torch.finfo(torch.float16).min - 100)\n",
            assume_fp16=True,
        ),
        # A tensor of constants cast to the activations' dtype (library mode: they may be
        # float16; default mode needs float16 to reach `hidden`, as in the last example).
        Invalid(
            "import torch\ndef f(mask, hidden):\n"
            "    bias = torch.where(mask > 0, 0.0, -1e10).to(hidden.dtype)\n"
            "    return hidden + bias\n",
            (("FP301", 3),),
            fixed="import torch\ndef f(mask, hidden):\n"
            "    bias = torch.where(mask > 0, 0.0, -1e4 if hidden.dtype == torch.float16 "
            "else -1e10).to(hidden.dtype)\n"
            "    return hidden + bias\n",
            assume_fp16=True,
            library_info=True,
        ),
        # Under the float16 branch of a dtype test.
        Invalid(
            "import torch\ndef f(x, mask):\n    if x.dtype == torch.float16:\n"
            "        x = x.masked_fill(mask, -1e5)\n    return x\n",
            (("FP301", 4),),
            fixed="import torch\ndef f(x, mask):\n    if x.dtype == torch.float16:\n"
            "        x = x.masked_fill(mask, -1e4 if x.dtype == torch.float16 else -1e5)\n"
            "    return x\n",
        ),
        # A subscript store on the logits of a half model, in a helper it calls.
        Invalid(
            "import torch\n\n\ndef ban(logits, banned):\n    logits[..., banned] = -1e10\n"
            "    return logits\n\n\ndef generate(model, ids, banned):\n    model = model.half()\n"
            "    return ban(model(ids), banned)\n",
            (("FP301", 5),),
        ),
        # A constant tensor cast to the dtype of a value float16 reaches (default mode).
        Invalid(
            "import torch\n\n\ndef f(mask, hidden):\n"
            "    bias = torch.where(mask > 0, 0.0, -1e10).to(hidden.dtype)\n"
            "    return hidden + bias\n\n\ndef run(mask, x):\n    return f(mask, x.half())\n",
            (("FP301", 5),),
        ),
        # Arithmetic on a pair mask, whose rows differ: a padded position's whole row is masked.
        Invalid(
            "import torch\ndef f(scores, mask: torch.Tensor):\n"
            "    bias = ((1.0 - mask) * -1e9)[..., :, None, :]\n"
            "    return (scores + bias).softmax(-1)\n",
            (("FP301", 3),),
            assume_fp16=True,
        ),
    )

    def _check(self, node: cst.CSTNode) -> None:
        for sink in self.ctx.get(ConstantSinks).values(node):
            constant = sink.constant
            if constant.limit is not None:
                continue  # a dtype's limit: FP302
            if not (constant.overflows_fill if sink.raises else constant.overflows):
                continue
            edits, finfo = noted_fix(self, sink, rows=False)
            self.report(
                sink.node,
                f"{quoted_value(sink, self.ctx.code)} is outside float16's range (±65504): "
                f"{outcome(sink, self.ctx.code)}.",
                help=f"Use `{finfo}`.",
                edits=edits,
                fix_message=f"Use `{finfo}`",
                related=related(self, constant),
            )

    visit_Call = visit_BinaryOperation = visit_AugAssign = visit_Assign = _check

    @classmethod
    def amend(cls, project, finding):
        return judged(project, finding)
