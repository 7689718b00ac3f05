"""FP205 fp16-attention-logits: q·kᵀ computed in float16 and fed to a softmax, and linear
attention's key·value sums over every token."""

from __future__ import annotations

from fp16lint.analysis.attention import AttentionTracker
from fp16lint.analysis.exposure import related, with_chain
from fp16lint.analysis.index import ModelFacts
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule
from fp16lint.rules.fp2xx_common import (
    MODEL_HEADER,
    library_quiet,
    product_sites,
    where_product,
)

_ATTENTION = (
    MODEL_HEADER + "class Attention(nn.Module):\n"
    "    def __init__(self, d):\n"
    "        super().__init__()\n"
    "        self.qkv = nn.Linear(d, 3 * d)\n"
    "        self.scale = d**-0.5\n"
    "\n"
    "    def forward(self, x):\n"
    "        q, k, v = self.qkv(x).chunk(3, dim=-1)\n"
    "{body}"
    "\n"
    "\n"
)  # the body starts on line 14
_LOGITS = (
    "        attn = (q @ k.transpose(-2, -1)) * self.scale\n        return attn.softmax(-1) @ v\n"
)
_HINT = (
    "Upcast q and k with `.float()` before the product (a float32 softmax after it comes too "
    "late), or use `F.scaled_dot_product_attention`, whose kernels keep the logits in float32."
)


_LINEAR_HINT = (
    "Upcast k and v with `.float()` and run the products under "
    "`torch.autocast(device_type, enabled=False)` (autocast would run them in float16 again), "
    "then cast the result back."
)
_SCALED = (
    " (q or k is scaled first, which leaves 8 to 11 times more headroom but still overflows "
    "with large activations)"
)


def _assumed_only(project, record, reason, chain) -> bool:
    """Library mode without ``library-info``, at a site only its assumption makes float16
    (a model class or a free attention function, `product_sites`)."""
    if record.get("status") == "function" and reason is None and chain is None:
        return not getattr(project.settings, "library_info", False)  # only in library mode
    return library_quiet(project, reason, chain)


class Fp16AttentionLogits(Rule):
    code = "FP205"
    name = "fp16-attention-logits"
    severity = Severity.WARNING
    severities = (Severity.WARNING, Severity.INFO)  # info: q or k is scaled before the product
    runtime_confirmable = "yes: max |x| and inf/NaN of the softmax input"
    requires = (ModelFacts, AttentionTracker)

    summary = "Attention logits (q·kᵀ fed to a softmax) computed in float16 overflow to inf."
    what = (
        "Finds a product of queries and keys — `q @ k.transpose(-2, -1)`, `torch.matmul`, "
        "`bmm`, `baddbmm`, `einsum` — whose result reaches a softmax in the same function "
        "(through scaling, masks, views and casts) and is computed in float16: its inputs are "
        "float16 here, it runs inside an fp16 autocast region (autocast runs matmuls in "
        "float16 even from float32 inputs), or it is in a model class that a float16 cast "
        "reaches (in library mode, `assume-fp16`, every model class and attention function). "
        "Upcast q or k (`.float()`, `.to(torch.float32)`) outside fp16 autocast, "
        "`F.scaled_dot_product_attention` (and a manual path in the other branch of an `if` "
        "that uses it), and cosine attention (`F.normalize`-d q and k) are "
        "not reported. Linear attention's key·value products (`k.transpose(-1, -2) @ v`, "
        "`einsum('bhdn,bhen->bhde', k, v)`, `torch.matmul(value, key)`: keys and values, told "
        "by their names, share only the token axis) are reported on the same terms, softmax or "
        "not."
    )
    why = (
        "A logit is a dot product over the head dimension: with activations near 100 and 64 "
        "channels it is near 640,000, far above float16's 65504, so it becomes inf and the "
        "softmax row becomes NaN (the Stable Diffusion 2.x black images, fixed upstream by "
        "upcasting q and k to float32). Scaling by 1/sqrt(d) before the product divides the "
        "logits by only 8 to 11 (such sites are reported as `info`; library mode lists them only with "
        "`library-info`, as no read of real code found one that overflowed), and `softmax(..., dtype=torch.float32)` or `.float()` after "
        "the product comes too late: the inf is already there. "
        "`F.scaled_dot_product_attention` keeps the logits in float32 inside its kernels. "
        "A key·value product sums over every token: with thousands of tokens and non-negative "
        "kernel features (ReLU, elu + 1) its entries and the normaliser next to them pass 65504 "
        "(the NaNs upstream fixed in timm's EfficientViT and the diffusion U-Nets' linear "
        "attention by computing it in float32 or rescaling v)."
    )
    example = """\
with torch.autocast("cuda", dtype=torch.float16):
    attn = (q @ k.transpose(-2, -1)) * scale
    out = attn.softmax(dim=-1) @ v
"""
    use_instead = """\
with torch.autocast("cuda", dtype=torch.float16):
    out = F.scaled_dot_product_attention(q, k, v)
"""
    references = (
        "https://github.com/Stability-AI/stablediffusion/commit/"
        "e1797ae248408ea47561ef6c3a2d1f8b1f4e6b48",
        "https://pytorch.org/docs/stable/amp.html#cuda-ops-that-can-autocast-to-float16",
        "https://pytorch.org/docs/stable/generated/"
        "torch.nn.functional.scaled_dot_product_attention.html",
    )

    valid = (
        # Never cast to float16.
        _ATTENTION.format(body=_LOGITS) + "model = Attention(64)\n",
        # q and k upcast before the product.
        _ATTENTION.format(
            body="        attn = (q.float() @ k.float().transpose(-2, -1)) * self.scale\n"
            "        return attn.softmax(-1).type_as(v) @ v\n"
        )
        + "model = Attention(64).half()\n",
        # SDPA.
        _ATTENTION.format(body="        return F.scaled_dot_product_attention(q, k, v)\n")
        + "model = Attention(64).half()\n",
        # The manual path is the fallback of a branch that uses SDPA.
        _ATTENTION.format(
            body="        if self.fused:\n            return F.scaled_dot_product_attention(q, k, v)\n"
            "        else:\n            attn = q @ k.transpose(-2, -1)\n"
            "            return attn.softmax(-1) @ v\n"
        )
        + "model = Attention(64).half()\n",
        # A product not fed to a softmax (the attention-weighted values).
        "import torch\n\ndef mix(p, v):\n    return p.half() @ v.half()\n",
        # Upcast under autocast(enabled=False), as Stable Diffusion 2.x's fix does.
        "import torch\n\ndef attend(q, k, scale):\n"
        "    with torch.autocast('cuda', enabled=False):\n"
        "        sim = torch.einsum('bid,bjd->bij', q.float(), k.float()) * scale\n"
        "    return sim.softmax(dim=-1)\n",
        # Cosine attention: products of unit vectors are at most 1.
        "import torch\nimport torch.nn.functional as F\n\ndef attend(q, k):\n    q = q.half()\n"
        "    attn = F.normalize(q, dim=-1) @ F.normalize(k.half(), dim=-1).transpose(-2, -1)\n"
        "    return attn.softmax(dim=-1)\n",
        # Run under fp16 autocast, with SDPA.
        _ATTENTION.format(body="        return F.scaled_dot_product_attention(q, k, v)\n")
        + "model = Attention(64)\n\ndef step(x):\n    with torch.autocast('cuda', dtype=torch.float16):\n        return model(x)\n",
        # Linear attention upcast with autocast disabled, as timm's EfficientViT fix does.
        "import torch\n\ndef linear_attention(q, k, v, eps):\n"
        "    with torch.autocast('cuda', enabled=False):\n"
        "        kv = k.float().transpose(-1, -2) @ v.float()\n"
        "        out = q.float() @ kv\n"
        "    return out[..., :-1] / (out[..., -1:] + eps)\n",
        # Keys softmax-normalised over the tokens the product sums: a weighted average of v.
        _ATTENTION.format(
            body="        k = k.softmax(dim=-2)\n"
            "        context = torch.einsum('b n d, b n e -> b d e', k, v)\n"
            "        return torch.einsum('b d e, b n d -> b n e', context, q.softmax(dim=-1))\n"
        )
        + "model = Attention(64).half()\n",
        # A key-value product of float32 tensors outside autocast.
        "import torch\n\ndef mix(k, v):\n    return torch.einsum('bdn,ben->bde', k, v)\n",
        # bfloat16 autocast.
        "import torch\n\ndef attend(q, k):\n"
        "    with torch.autocast('cuda', dtype=torch.bfloat16):\n"
        "        return torch.softmax(q @ k.transpose(-1, -2), dim=-1)\n",
    )
    invalid = (
        # A model run under fp16 autocast by its caller: autocast runs q @ kᵀ in float16, even
        # on upcast q and k.
        Invalid(
            _ATTENTION.format(body=_LOGITS)
            + "model = Attention(64)\n\ndef step(x):\n    with torch.autocast('cuda', dtype=torch.float16):\n        return model(x)\n",
            (("FP205", 14),),
        ),
        Invalid(
            _ATTENTION.format(
                body="        attn = (q.float() @ k.float().transpose(-2, -1)) * self.scale\n"
                "        return attn.softmax(-1).type_as(v) @ v\n"
            )
            + "model = Attention(64)\n\ndef step(x):\n    with torch.autocast('cuda', dtype=torch.float16):\n        return model(x)\n",
            (("FP205", 14),),
        ),
        # A model cast to float16 with a hand-written attention.
        Invalid(
            _ATTENTION.format(body=_LOGITS) + "model = Attention(64).half()\n", (("FP205", 14),)
        ),
        # fp16 autocast: einsum and a float32 softmax after the product (too late).
        Invalid(
            "import torch\n\ndef attend(q, k, v, mask, scale):\n"
            "    with torch.autocast('cuda', dtype=torch.float16):\n"
            "        sim = torch.einsum('b i d, b j d -> b i j', q, k) * scale\n"
            "        sim = sim.masked_fill(~mask, -1e4)\n"
            "        attn = sim.softmax(dim=-1, dtype=torch.float32)\n"
            "        return attn.to(v.dtype) @ v\n",
            (("FP205", 5),),
        ),
        # float16 tensors; baddbmm with scaling inside; scaling q first is not enough.
        Invalid(
            "import torch\nimport torch.nn.functional as F\n\n"
            "def attend(q, k, bias, scale):\n    q = q.half()\n    k = k.half()\n"
            "    scores = torch.baddbmm(bias.half(), q, k.transpose(1, 2), alpha=scale)\n"
            "    probs = F.softmax(scores, dim=-1)\n"
            "    logits = torch.bmm(q * scale, k.transpose(1, 2))\n"
            "    return probs, torch.softmax(logits, -1)\n",
            (("FP205", 7), ("FP205", 9)),
        ),
        # Linear attention in a model cast to float16: the key·value sum over tokens.
        Invalid(
            _ATTENTION.format(
                body="        k = F.relu(k)\n"
                "        v = F.pad(v, (0, 1), value=1.0)\n"
                "        kv = k.transpose(-1, -2) @ v\n"
                "        out = q @ kv\n"
                "        return out[..., :-1] / (out[..., -1:] + 1e-4)\n"
            )
            + "model = Attention(64).half()\n",
            (("FP205", 16),),
        ),
        # Upcast inputs do not help under fp16 autocast: it runs the matmul in float16.
        Invalid(
            "import torch\n\ndef linear_attention(q, key, value):\n"
            "    with torch.autocast('cuda', dtype=torch.float16):\n"
            "        scores = torch.matmul(value.float(), key.float())\n"
            "        return torch.matmul(scores, q)\n",
            (("FP205", 5),),
        ),
    )

    @classmethod
    def check_project(cls, project, report) -> None:
        seen: set[tuple[str, tuple]] = set()
        for path, record, reason, chain in product_sites(project, "FP205"):
            key = (path, tuple(record["span"]))
            if key in seen:
                continue
            seen.add(key)
            scaled = record.get("scaled", False)
            if scaled and _assumed_only(project, record, reason, chain):
                continue  # an info site only the assumption makes float16: --library-info
            where = where_product(record, reason, chain)
            if record.get("kind") == "linear":
                message = (
                    f"`{record['text']}` computes linear attention's key·value product {where}: "
                    "a sum over every token, which passes 65504 and becomes inf."
                )
            else:
                message = (
                    f"`{record['text']}` computes attention logits {where}: a q·kᵀ dot product "
                    f"above 65504 becomes inf and the softmax row NaN{_SCALED if scaled else ''}."
                )
            report.add(
                cls,
                path,
                record["span"],
                with_chain(message, chain),
                help=_LINEAR_HINT if record.get("kind") == "linear" else _HINT,
                related=[*(reason.related() if reason else ()), *related(chain)],
                severity=Severity.INFO if scaled else None,
            )
