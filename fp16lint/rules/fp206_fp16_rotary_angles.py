"""FP206 fp16-rotary-angles: rotary position angles (positions times inverse frequencies) computed
in float16."""

from __future__ import annotations

from fp16lint.analysis.attention import AttentionTracker
from fp16lint.analysis.exposure import related, with_chain
from fp16lint.analysis.index import ModelFacts
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule
from fp16lint.rules.fp2xx_common import MODEL_HEADER, product_sites, where_product

_ROTARY = (
    MODEL_HEADER + "class Rotary(nn.Module):\n"
    "    def __init__(self, dim, base=10000.0):\n"
    "        super().__init__()\n"
    "        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))\n"
    "        self.register_buffer('inv_freq', inv_freq, persistent=False)\n"
    "\n"
    "{decorator}"
    "    def forward(self, seq_len):\n"
    "        t = torch.arange(seq_len, device=self.inv_freq.device).type_as(self.inv_freq)\n"
    "{body}"
    "\n"
    "\n"
)  # without a decorator, the body starts on line 14
_EINSUM = "        freqs = torch.einsum('i,j->ij', t, self.inv_freq)\n        return freqs.cos(), freqs.sin()\n"
_UNDER_AUTOCAST = (
    "rotary = Rotary(64)\n\ndef step(n):\n"
    "    with torch.autocast('cuda', dtype=torch.float16):\n        return rotary(n)\n"
)
_HINT = (
    "Compute the angles on float32 positions and frequencies (`.float()`) inside "
    "`torch.autocast(device_type, enabled=False)`, as transformers' rotary embeddings do, and "
    "cast cos/sin to the activations' dtype afterwards."
)


class Fp16RotaryAngles(Rule):
    code = "FP206"
    name = "fp16-rotary-angles"
    severity = Severity.WARNING
    runtime_confirmable = "no"
    requires = (ModelFacts, AttentionTracker)

    summary = "Rotary angles (positions times inverse frequencies) computed in float16 are wrong."
    what = (
        "Finds the product of positions and rotary inverse frequencies — `einsum('i,j->ij', t, "
        "self.inv_freq)`, `inv_freq[None, :, None] @ position_ids[:, None, :]`, `torch.matmul` "
        "— when it runs in float16: inside an fp16 autocast region (autocast runs matmul, and on "
        "CUDA einsum, in float16 even from float32 inputs), on float16 tensors, or in a module "
        "that a float16 cast reaches (the cast converts its `inv_freq` buffer too); in library "
        "mode (`assume-fp16`) every module and free function. The frequencies are a name or "
        "attribute called `inv_freq...` or a local `1 / base ** (arange(...) / d)`. A product "
        "inside `autocast(enabled=False)` is not reported, nor one with float64 frequencies "
        "(`dtype=torch.float64`, `.double()`: autocast does not lower them and the product "
        "promotes to float64), nor, in default mode, one on "
        "`.float()` operands outside fp16 autocast; library mode reports those too, since "
        "autocast lowers them whatever their dtype. Elementwise products "
        "(`t[:, None] * inv_freq`) are not looked at."
    )
    why = (
        "The angle of position p in the first band is p radians. float16 keeps 11 significant "
        "bits: positions above 2048 are rounded to even numbers and an angle near 1000 is off "
        "by up to 0.5 rad, so cos/sin of the angles are wrong by more than 0.1 over a "
        "4096-token sequence and distant positions become indistinguishable "
        "(x-transformers and diffusers fixed this by disabling autocast around the product; "
        "transformers' rotary embeddings do the same)."
    )
    example = """\
class Rotary(nn.Module):
    def forward(self, t):  # run under torch.autocast("cuda", dtype=torch.float16)
        freqs = torch.einsum("i,j->ij", t, self.inv_freq)
        return freqs.cos(), freqs.sin()
"""
    use_instead = """\
class Rotary(nn.Module):
    def forward(self, t):
        with torch.autocast(t.device.type, enabled=False):
            freqs = torch.einsum("i,j->ij", t.float(), self.inv_freq.float())
        return freqs.cos(), freqs.sin()
"""
    references = (
        "https://github.com/lucidrains/x-transformers/issues/210",
        "https://pytorch.org/docs/stable/amp.html#cuda-ops-that-can-autocast-to-float16",
    )

    valid = (
        # Never run in float16.
        _ROTARY.format(decorator="", body=_EINSUM) + "rotary = Rotary(64)\n",
        # Autocast disabled around the product (transformers' rotary embeddings).
        _ROTARY.format(
            decorator="",
            body="        with torch.autocast('cuda', enabled=False):\n"
            "            freqs = t.float()[:, None] @ self.inv_freq.float()[None, :]\n"
            "        return freqs.cos(), freqs.sin()\n",
        )
        + _UNDER_AUTOCAST,
        # ... or around the whole forward, as a decorator (x-transformers' fix).
        _ROTARY.format(decorator="    @torch.autocast('cuda', enabled=False)\n", body=_EINSUM)
        + _UNDER_AUTOCAST,
        # bfloat16 autocast is not this rule's business.
        "import torch\n\ndef rope(pos, dim, theta):\n"
        "    omega = 1.0 / (theta ** (torch.arange(0, dim, 2) / dim))\n"
        "    with torch.autocast('cuda', dtype=torch.bfloat16):\n"
        "        return torch.einsum('...n,d->...nd', pos, omega)\n",
        # float64 frequencies: autocast leaves them alone and the product is float64.
        "import torch\n\ndef rope(pos, dim, theta):\n"
        "    omega = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))\n"
        "    with torch.autocast('cuda', dtype=torch.float16):\n"
        "        return torch.einsum('...n,d->...nd', pos, omega)\n",
        # A product of two other tensors.
        "import torch\n\ndef step(a, b):\n"
        "    with torch.autocast('cuda', dtype=torch.float16):\n"
        "        return torch.einsum('i,j->ij', a, b)\n",
    )
    invalid = (
        # A rotary module run under fp16 autocast by its caller (x-transformers before 4adbfc2).
        Invalid(_ROTARY.format(decorator="", body=_EINSUM) + _UNDER_AUTOCAST, (("FP206", 14),)),
        # A module cast to float16: its inv_freq buffer is float16 too.
        Invalid(
            _ROTARY.format(
                decorator="",
                body="        freqs = t[:, None] @ self.inv_freq[None, :]\n"
                "        return freqs.cos(), freqs.sin()\n",
            )
            + "rotary = Rotary(64).half()\n",
            (("FP206", 14),),
        ),
        # Local frequencies; fp16 autocast around the einsum.
        Invalid(
            "import torch\n\ndef rope(pos, dim, theta):\n"
            "    scale = torch.arange(0, dim, 2, dtype=torch.float32) / dim\n"
            "    omega = 1.0 / (theta**scale)\n"
            "    with torch.autocast('cuda', dtype=torch.float16):\n"
            "        return torch.einsum('...n,d->...nd', pos, omega)\n",
            (("FP206", 7),),
        ),
    )

    @classmethod
    def check_project(cls, project, report) -> None:
        seen: set[tuple[str, tuple]] = set()
        for path, record, reason, chain in product_sites(project, "FP206"):
            key = (path, tuple(record["span"]))
            if key in seen:
                continue
            seen.add(key)
            message = (
                f"`{record['text']}` computes rotary angles {where_product(record, reason, chain)}: "
                "float16 rounds positions above 2048 and angles near 1000 by up to 0.5 rad."
            )
            report.add(
                cls,
                path,
                record["span"],
                with_chain(message, chain),
                help=_HINT,
                related=[*(reason.related() if reason else ()), *related(chain)],
            )
