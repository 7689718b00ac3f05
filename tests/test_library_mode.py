"""Library mode (``assume-fp16``): what it reports where float16 is only assumed, what it
leaves to ``library-info``, and that a real cast keeps every finding in it."""

from __future__ import annotations

from lintutil import lint_code

MODEL = """\
import torch
import torch.nn.functional as F
from torch import nn


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.loss = nn.CrossEntropyLoss()
        self.norm = nn.LayerNorm(8)
        self.act = nn.Softmax(-1)

    def forward(self, x, attention_mask, input_ids, y):
        a = x.sum(-1)
        b = (x * 2).sum()
        c = torch.sum(x)
        d = x.softmax(-1) + F.normalize(x) + F.layer_norm(x, (8,))
        e = x.exp()
        f = F.mse_loss(x, y) + self.loss(x, y)
        g = x ** y
        h = attention_mask.sum() + input_ids.cumsum(-1) + attention_mask.float().sum()
        i = F.one_hot(y, 8).sum(0)
        return self.act(self.norm(x)), a, b, c, d, e, f, g, h, i
"""
# Reported whatever the setting: a reduction of every element.
ALWAYS = {("FP202", 15), ("FP202", 16)}
# Float32-kernel ops and layers, losses, a one-dimension sum, a power of an unknown exponent,
# an exp of a value nothing shows to be large (test_exp_and_powers_need_a_large_argument).
INFO = {
    ("FP201", 9), ("FP201", 10), ("FP202", 11), ("FP202", 14), ("FP202", 17), ("FP202", 18),
    ("FP202", 19), ("FP202", 20),
}  # fmt: skip


def _found(code: str, **settings) -> set[tuple[str, int]]:
    findings = lint_code(code, select=("FP201", "FP202"), assume_fp16=True, **settings).findings
    return {(f.code, f.span.start.line) for f in findings}


def test_library_mode_reports_only_what_overflows_by_itself():
    """(An exp of the input, reported here before session 6, is now an info site: see
    test_exp_and_powers_need_a_large_argument.)"""
    assert _found(MODEL) == ALWAYS


def test_library_info_reports_the_info_sites_too():
    found = _found(MODEL, library_info=True)
    assert found == ALWAYS | INFO
    # masks, ids and one_hot counts are no float16 data, whatever the setting
    assert not {line for _, line in found} & {21, 22}


def test_a_real_cast_keeps_its_findings_in_library_mode():
    """A class a `.half()` reaches is judged as in default mode, with the cast as its reason."""
    cast = MODEL + "\n\nmodel = Head().half()\n"
    default = {
        (f.code, f.span.start.line, f.message)
        for f in lint_code(cast, select=("FP201", "FP202")).findings
    }
    library = {
        (f.code, f.span.start.line, f.message)
        for f in lint_code(cast, select=("FP201", "FP202"), assume_fp16=True).findings
    }
    assert default and default == library
    assert all("is cast with `.half()`" in message for _, _, message in library)


def test_norm_wrapper_that_upcasts_is_quiet_with_library_info():
    """A LayerNorm subclass whose forward runs on ``x.float()`` is never reported."""
    code = (
        "from torch import nn\n\n\n"
        "class LayerNormFp32(nn.LayerNorm):\n"
        "    def forward(self, x):\n"
        "        return super().forward(x.float()).type(x.dtype)\n\n\n"
        "class Block(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.ln = LayerNormFp32(8)\n"
        "        self.bn = nn.BatchNorm1d(8)\n\n"
        "    def forward(self, x):\n"
        "        return self.ln(x) + self.bn(x)\n"
    )
    assert _found(code) == set()
    assert _found(code, library_info=True) == {("FP201", 13)}


def test_squared_difference_is_a_loss_in_library_mode():
    """FP203 keeps hand-written norms (centred ones too) and sums of squares, not
    ``mean((a - b) ** 2)``."""
    code = (
        "import torch\nfrom torch import nn\n\n\n"
        "class Quantizer(nn.Module):\n"
        "    def forward(self, z, z_q, h):\n"
        "        loss = torch.mean((z_q.detach() - z) ** 2)\n"
        "        sq = (h - z) ** 2\n"
        "        dist = sq.mean(-1) + torch.sum(z**2, dim=1)\n"
        "        var = h.pow(2).mean(-1, keepdim=True)\n"
        "        mu = h.mean(-1, keepdim=True)\n"
        "        c = ((h - mu) ** 2).mean(-1) + ((h - h.mean(-1)) ** 2).mean(-1)\n"
        "        diff = z - h\n"
        "        c = c + torch.pow(diff, 2).mean()\n"
        "        return loss, dist, h * torch.rsqrt(var + 1e-6), c\n"
    )
    found = lint_code(code, select=("FP203",), assume_fp16=True).findings
    assert sorted(f.span.start.line for f in found) == [9, 10, 12, 12]
    found = lint_code(code, select=("FP203",), assume_fp16=True, library_info=True).findings
    assert sorted(f.span.start.line for f in found) == [7, 9, 9, 10, 12, 12, 14]


def test_squared_difference_and_grid_sizes_in_library_mode():
    """``(logits - target) ** 2`` is a hand-written ``mse_loss``; ``image_grid_thw`` holds
    integer sizes, a local ``token_mask`` is a mask. A full sum of an activation is kept; the
    square of an input nothing shows to be large is an info site (it was a warning before
    session 6: test_exp_and_powers_need_a_large_argument)."""
    code = (
        "import torch\nfrom torch import nn\n\n\n"
        "class Head(nn.Module):\n"
        "    def forward(self, logits, target, image_grid_thw):\n"
        "        loss = (logits - target) ** 2 + (logits - target).pow(2)\n"
        "        n = image_grid_thw.prod(-1)\n"
        "        token_mask, _ = self.masks(logits, target)\n"
        "        return loss, n, logits**2, token_mask.sum(), logits.sum()\n"
    )
    found = lint_code(code, select=("FP202",), assume_fp16=True).findings
    assert [f.message.split("`")[1] for f in found] == ["logits.sum()"]
    found = lint_code(code, select=("FP202",), assume_fp16=True, library_info=True).findings
    assert sorted(f.span.start.line for f in found) == [7, 7, 10, 10]


def test_cpu_only_failures_are_left_out_in_library_mode():
    """``cdist`` fails on CPU only (as far as checked here); ``quantile`` everywhere."""
    code = (
        "import torch\nfrom torch import nn\n\n\n"
        "class Matcher(nn.Module):\n"
        "    def forward(self, boxes, targets):\n"
        "        cost = torch.cdist(boxes, targets, p=1)\n"
        "        return cost, torch.quantile(boxes, 0.5)\n"
    )
    found = lint_code(code, select=("FP204",), assume_fp16=True).findings
    assert [f.span.start.line for f in found] == [8]
    found = lint_code(code, select=("FP204",), assume_fp16=True, library_info=True).findings
    assert sorted(f.span.start.line for f in found) == [7, 8]
    cast = code + "\n\nmodel = Matcher().half()\n"
    found = lint_code(cast, select=("FP204",), assume_fp16=True).findings
    assert sorted(f.span.start.line for f in found) == [7, 8]


def test_a_helper_method_its_callers_feed_float32_is_left_out():
    """``self.stft(x)`` called only with ``x.float()`` (through another method): the helper's
    op runs in float32 whatever library mode assumes; called with the raw input, it is kept.
    A method named like a torch function (``stft``) still has its callers seen."""
    code = (
        "import torch\nfrom torch import nn\n\n\n"
        "class Spectrogram(nn.Module):\n"
        "    def stft(self, x):\n"
        "        return torch.stft(x, 400, return_complex=True)\n\n"
        "    def features(self, signal):\n"
        "        with torch.autocast('cuda', enabled=False):\n"
        "            return self.stft(signal)\n\n"
        "    def forward(self, signal):\n"
        "        return self.features(signal.to(torch.float32))\n"
    )
    assert lint_code(code, select=("FP204",), assume_fp16=True).findings == []
    raw = code.replace("signal.to(torch.float32)", "signal")
    found = lint_code(raw, select=("FP204",), assume_fp16=True).findings
    assert [f.span.start.line for f in found] == [7]


NORM_OVERRIDE = """\
import torch
from torch import nn


class L2Norm(nn.Module):
    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    def forward(self, x):
        return self._norm(x.float()).type_as(x)


class UnitNorm(L2Norm):
    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + 1e-6)
"""


def test_an_override_its_inherited_caller_feeds_float32_is_left_out():
    """FP203 leaves out a norm helper whose callers all pass ``x.float()``, an override too:
    the inherited ``forward``'s ``self._norm(x.float())`` runs the subclass's ``_norm``.
    Called with ``x`` itself, both are reported."""
    assert lint_code(NORM_OVERRIDE, select=("FP203",), assume_fp16=True).findings == []
    raw = NORM_OVERRIDE.replace("self._norm(x.float())", "self._norm(x)")
    found = lint_code(raw, select=("FP203",), assume_fp16=True).findings
    assert sorted(f.span.start.line for f in found) == [7, 15]


def test_a_free_helper_its_callers_feed_float32_is_left_out():
    """A free function reached only through a method's parameters, whose project callers all
    upcast (``self.features(signal.float())``): float16 is only assumed upstream, and never
    arrives. Called with the raw signal, it is reported."""
    code = (
        "import torch\nfrom torch import nn\n\n\n"
        "def normalize_batch(x, seq_len):\n"
        "    valid = torch.arange(x.shape[2]).unsqueeze(0) < seq_len.unsqueeze(1)\n"
        "    mean = torch.where(valid.unsqueeze(1), x, 0.0).sum(axis=2)\n"
        "    d = torch.where(valid.unsqueeze(1), x - mean, 0.0)\n"
        "    return torch.sqrt(torch.sum(d**2, axis=2))\n\n\n"
        "class Pre(nn.Module):\n"
        "    def features(self, signal, length):\n"
        "        x = torch.sqrt(self.stft(signal).pow(2).sum(-1))\n"
        "        return normalize_batch(x, length)\n\n"
        "    def forward(self, signal, length):\n"
        "        return self.features(signal.float(), length)\n"
    )
    assert lint_code(code, select=("FP203",), assume_fp16=True).findings == []
    raw = code.replace("signal.float()", "signal")
    found = lint_code(raw, select=("FP203",), assume_fp16=True).findings
    assert [f.span.start.line for f in found] == [9, 14]


def test_a_mean_of_every_square_is_a_loss_term_in_library_mode():
    """``logits.logsumexp(-1).pow(2).mean()`` (a z-loss) and ``w.square().mean()`` (an L2
    penalty) reduce every element in float32: loss terms, left out like ``mse_loss`` unless
    ``library-info``; a full ``sum`` of squares, which float16 overflows by its count, and a
    norm along a dimension are kept."""
    code = (
        "import torch\nfrom torch import nn\n\n\n"
        "class Head(nn.Module):\n"
        "    def forward(self, logits, w, h):\n"
        "        z = logits.logsumexp(dim=-1).pow(2).mean() + torch.mean(w**2)\n"
        "        s = torch.sum(h**2)\n"
        "        return z, s, h * torch.rsqrt(h.square().mean(-1, keepdim=True) + 1e-6)\n"
    )
    found = lint_code(code, select=("FP203",), assume_fp16=True).findings
    assert sorted(f.span.start.line for f in found) == [8, 9]
    found = lint_code(code, select=("FP203",), assume_fp16=True, library_info=True).findings
    assert sorted(f.span.start.line for f in found) == [7, 7, 8, 9]


RAW = """\
import torch
from torch import nn

MEAN = [0.485, 0.456, 0.406]


class Codec(nn.Module):
    def frame(self, input_values):
        mono = torch.sum(input_values, 1, keepdim=True) / input_values.shape[1]
        return input_values / (mono.pow(2).mean(dim=-1, keepdim=True).sqrt() + 1e-8)

    def forward(self, pixel_values, hidden):
        frames = pixel_values * 0.2 + torch.as_tensor(MEAN)[None, :, None]
        frames = frames.view(4, -1, 3)
        v = (frames.var(dim=-2, keepdim=True) + 1e-6).sqrt()
        h = self.proj(pixel_values)
        a = h.pow(2).mean(-1, keepdim=True).rsqrt()
        b = pixel_values.pow(2).sum(-1, keepdim=True).rsqrt()
        c = (pixel_values * 1000).pow(2).mean(-1, keepdim=True).rsqrt()
        return v, a, b, c, self.frame(pixel_values), (hidden.var(-1) + 1e-5).sqrt()
"""


def test_norms_of_raw_inputs_at_unit_scale_are_left_out():
    """The RMS of audio samples and the variance of pixels (raw inputs, shifted and scaled by
    small numbers, reshaped, averaged) cannot reach 65504; a layer's output, a sum along a
    row (its length is unknown), a large factor and a hidden state are kept."""
    found = lint_code(RAW, select=("FP203",), assume_fp16=True).findings
    assert sorted(f.span.start.line for f in found) == [17, 18, 19, 20]


LARGE = """\
import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.key = nn.Linear(d, d)
        self.to_log_var = nn.Linear(d, 1)
        self.act = nn.ReLU()

    def forward(self, x, q, k, sigma, A_log, dt):
        scores = q @ k.transpose(-1, -2)
        a = scores.exp()
        b = torch.exp(torch.einsum("b i d, b j d -> b i j", q, k))
        c = torch.square(torch.relu(self.key(x)))
        h = F.linear(x, self.key.weight)
        d = h ** 2
        e = self.to_log_var(x).exp()
        f = sigma ** 2 + torch.square(self.act(x)) + x.pow(3)
        g = torch.exp(A_log * dt) + torch.exp(x.cumsum(-1))
        n = x.sigmoid() ** -2
        return a, b, c, d, e, f, g, n, x ** -2
"""


def test_exp_and_powers_need_a_large_argument():
    """Where float16 is only assumed, an exp is reported on a dot product of activations
    (attention scores), a power also on a projection layer's output; an exp of a learned
    log-scale, a power of a noise level or of an activation, the exp of a decay: info sites.
    A negative power fails near 0: it is reported on a base shown to get there (a sigmoid
    probability below 65520 ** -0.5), like a log or a reciprocal; of any activation it is info
    (changed by design, session 7: x-transformers' xpos scales, diffusion noise levels)."""
    large = {("FP202", line) for line in (15, 16, 17, 19, 23)}
    assert _found(LARGE) == large
    info = {("FP202", line) for line in (20, 21, 22, 24)}
    assert _found(LARGE, library_info=True) == large | info


def test_a_real_cast_keeps_exp_without_evidence():
    """A class a `.half()` reaches keeps every exp and power, evidence or not."""
    found = {
        (f.code, f.span.start.line)
        for f in lint_code(
            LARGE + "\n\nmodel = Block(8).half()\n", select=("FP202",), assume_fp16=True
        ).findings
    }
    assert {("FP202", line) for line in (20, 21, 22)} <= found


ROWS = """\
import torch
import torch.nn.functional as F
from torch import nn


class Loss(nn.Module):
    def forward(self, x, y, pred, target, mask, probs, w):
        loss = F.l1_loss(x, y, reduction="none")
        a = (loss * mask).sum() / mask.sum()
        ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        b = ce.mean(1).sum()
        sq = (pred - target) ** 2
        sq = sq.mean(dim=-1)
        c = (sq * mask).sum()
        num = 2 * (x * y).sum(-1)
        den = x.sum(-1) + y.sum(-1)
        d = (1 - (num + 1) / (den + 1)).sum()
        marginal = probs.mean(dim=0)
        e = torch.exp(-torch.sum(marginal * torch.log(marginal + 1e-10), dim=-1)).sum()
        torch.sum(w)
        return a, b, c, d, e, F.logsigmoid(x * y).sum()
"""


def test_full_sums_of_row_statistics_are_info_in_library_mode():
    """A full sum of per-element losses is kept (lines 9, 21; line 19's log too); a full
    sum of row means, of dice ratios or of values normalised by a sum (one value per row, of
    its elements' scale) is an info site; a bare ``torch.sum(w)`` statement is no site."""
    assert _found(ROWS) == {("FP202", 9), ("FP202", 19), ("FP202", 21)}
    info = _found(ROWS, library_info=True)
    assert {("FP202", line) for line in (11, 14, 17)} <= info
    assert ("FP202", 20) not in info
    on_19 = {
        f.message.split("`")[1]
        for f in lint_code(ROWS, select=("FP202",), assume_fp16=True).findings
        if f.span.start.line == 19
    }
    assert on_19 == {"torch.log(marginal + 1e-10)"}  # the perplexity's sum of row means: info


LOGS = """\
import torch
from torch import nn


class Box(nn.Module):
    def inverse_sigmoid(self, x, eps=1e-5):
        x = x.clamp(min=0, max=1)
        x1 = x.clamp(min=eps)
        x2 = (1 - x).clamp(min=eps)
        return torch.log(x1 / x2)

    def entropy(self, t, eps=1e-20):
        return t.clamp(min=eps).log()

    def binomial(self, p, eps=1e-4):
        q = (1 - p).clamp(min=eps, max=1.0)
        p = p.clamp(min=eps, max=1.0)
        return torch.log(p) + torch.log(q)

    def forward(self, x):
        return self.inverse_sigmoid(x), self.entropy(x), self.binomial(x)
"""


def test_logs_of_values_held_away_from_zero():
    """A ratio of two clamps at eps = 1e-5, a clamp at a parameter's default 1e-4 (after a
    reassignment in the body): no log of 0 in float16. A clamp at 1e-20 rounds to 0: kept."""
    assert _found(LOGS, library_info=True) == {("FP202", 13)}


PROMOTE = """\
from functools import reduce

import torch
from torch import nn


def rms_norm(x, scale, eps):
    dtype = reduce(torch.promote_types, (x.dtype, scale.dtype, torch.float32))
    mean_sq = torch.mean(x.to(dtype)**2, dim=-1, keepdim=True)
    return x * torch.rsqrt(mean_sq + eps).to(x.dtype)


def rms_norm1(x, scale, eps):
    dtype = torch.promote_types(x.dtype, torch.float32)
    mean_sq = torch.mean(x.to(dtype)**2, dim=-1, keepdim=True)
    return x * torch.rsqrt(mean_sq + eps).to(x.dtype)


def rms_norm2(x, scale, eps):
    dtype = torch.promote_types(x.dtype, scale.dtype)
    mean_sq = torch.mean(x.to(dtype)**2, dim=-1, keepdim=True)
    return x * torch.rsqrt(mean_sq + eps).to(x.dtype)


class M(nn.Module):
    def forward(self, x):
        return rms_norm(x, x, 1e-6) + rms_norm1(x, x, 1e-6) + rms_norm2(x, x, 1e-6)
"""


def test_promote_types_with_float32_is_wide():
    """``x.to(torch.promote_types(x.dtype, torch.float32))`` (k-diffusion's rms_norm) squares
    at least float32 values; promoting with another tensor's dtype proves nothing."""
    found = lint_code(PROMOTE, select=("FP203",), assume_fp16=True).findings
    assert [(f.code, f.span.start.line) for f in found] == [("FP203", 21)]


UNIT = """\
import torch
import torch.nn.functional as F
from torch import nn


class VQ(nn.Module):
    def forward(self, hidden_states, h2):
        encodings = hidden_states.reshape(-1, 8)
        encodings = F.normalize(encodings)
        l2_norm = encodings.pow(2).sum(1, keepdim=True)
        flat = F.normalize(h2, p=2, dim=-1)
        d = torch.sum(flat**2, dim=1, keepdim=True)
        e = torch.sum(flat**2, dim=-1, keepdim=True)
        return l2_norm + d + e
"""


def test_squares_of_normalised_rows_are_bounded():
    """``F.normalize(x)`` (dim 1), then ``.pow(2).sum(1)``: each row's squares sum to 1, no
    FP203 (ViT-VQGAN codebook distances). Summed along another dimension: reported."""
    found = lint_code(UNIT, select=("FP203",), assume_fp16=True).findings
    assert [(f.code, f.span.start.line) for f in found] == [("FP203", 12)]


GRAD = """\
import torch
from torch import nn


class M(nn.Module):
    def forward(self, x, params):
        loss = x * 3
        g = torch.autograd.grad(loss.sum(), params)
        h = torch.autograd.grad(outputs=loss.sum(), inputs=params)
        k = torch.autograd.grad(params, loss.sum())
        return g, h, k, loss.sum()
"""


def test_sums_only_differentiated_by_autograd_grad():
    """``torch.autograd.grad(loss.sum(), params)``: the sum's gradient is ones whatever its
    value; as the ``inputs`` of ``grad``, or returned, the sum is reported."""
    assert _found(GRAD) == {("FP202", 10), ("FP202", 11)}


def test_sum_compared_with_zero():
    """``if d.sum() == 0``: inf keeps the sign, the test comes out the same; ``> 1`` does not."""
    code = (
        "import torch\nfrom torch import nn\n\n\nclass M(nn.Module):\n"
        "    def forward(self, d):\n        if d.sum() == 0:\n            d = d + 1\n"
        "        return d.sum() > 1\n"
    )
    assert _found(code) == {("FP202", 9)}


NEAR_ZERO = """\
import torch
from torch import nn


class M(nn.Module):
    def forward(self, x, sigma, scale, logits, t, eps=1e-10):
        p = logits.sigmoid()
        a = (p + 1e-8).log()
        b = (1 - p + 1e-8).log()
        c = torch.clamp(x, min=1e-10).log10()
        d = sigma.log()
        e = scale.log()
        f = torch.log(t + eps)
        g = torch.log(x + 1e-6)
        h = torch.rsqrt(x + 1e-6)
        k = torch.log(p)
        return a, b, c, d, e, f, g, h, k
"""


def test_log_and_rsqrt_need_evidence_of_a_value_near_zero():
    """Where float16 is only assumed, a log (rsqrt, reciprocal) is reported on a value shown
    to come near 0: a sigmoid probability, a clamp floor or a guard float16 rounds to 0
    (1e-8, 1e-10, a parameter's default 1e-10). A noise level, a scale, a value guarded by
    1e-6 (held by float16): info sites."""
    assert _found(NEAR_ZERO) == {("FP202", line) for line in (8, 9, 10, 13, 16)}
    info = {("FP202", line) for line in (11, 12, 14, 15)}
    assert _found(NEAR_ZERO, library_info=True) == info | _found(NEAR_ZERO)


NORMALIZERS = """\
import torch
from torch import nn


class M(nn.Module):
    def forward(self, x, weights, residue_weights, dim=None, eps=1e-8):
        sum_weights = torch.clamp(weights.sum(dim=dim) if dim else weights.sum(), min=1.0)
        avg = (x * weights).sum(dim) / sum_weights
        normed = residue_weights / (eps + residue_weights.sum())
        total = x.sum()
        other = total / 2
        kept = x.sum()
        return avg, normed, other, kept / x.sum(), kept
"""


def test_full_sums_only_divided_by_are_info():
    """A full sum only used as a divisor (directly, plus eps, clamped, or through a name only
    divided by) is a count or total weight: info in library mode. A total divided by 2, or
    returned, is kept."""
    found = lint_code(NORMALIZERS, select=("FP202",), assume_fp16=True).findings
    assert sorted(f.span.start.line for f in found) == [10, 12]
    info = lint_code(NORMALIZERS, select=("FP202",), assume_fp16=True, library_info=True)
    assert {7, 9, 13} <= {f.span.start.line for f in info.findings}


def test_a_linalg_solve_on_the_module_own_weights_through_an_identity_of_their_dtype():
    """``eye = torch.eye(n, dtype=q.dtype)`` has q's dtype (not float32), so ``solve(eye - q,
    eye + q)`` on the module's own weights runs in float16 (peft@3173c2aba, PSOFT)."""
    code = (
        "import torch\nfrom torch import nn\n\n\n"
        "class Orth(nn.Module):\n"
        "    def forward(self, x):\n"
        "        q = self.weight - self.weight.T\n"
        "        eye = torch.eye(q.shape[0], device=q.device, dtype=q.dtype)\n"
        "        return x @ torch.linalg.solve(eye - q, eye + q)\n"
    )
    found = lint_code(code, select=("FP204",), assume_fp16=True).findings
    assert [f.span.start.line for f in found] == [9]
    upcast = code.replace(
        "q = self.weight - self.weight.T", "q = (self.weight - self.weight.T).float()"
    )
    assert lint_code(upcast, select=("FP204",), assume_fp16=True).findings == []


SIGNS_AND_SCALARS = """\
import torch
from torch import nn


class Precond(nn.Module):
    def __init__(self, sigma_data=0.5):
        super().__init__()
        self.sigma_data = sigma_data

    def forward(self, sigma, y, logits):
        c_in = (sigma ** 2 + self.sigma_data ** 2) ** -0.5
        weight = (sigma * self.sigma_data) ** -2
        shift = torch.log2(torch.sqrt(y.pow(2).sum(2) / 2 ** 32))
        return c_in, weight, shift, aggregation(logits), counts(y, 2, 2)


def aggregation(logits):
    dist = torch.distributions.categorical.Categorical(logits=logits)
    mass = torch.sum(dist.probs[:, 1:], dim=1)
    return -torch.log(mass)


def counts(grid_thw, kernel_height: int, kernel_width: int):
    frames, height, width = grid_thw.unbind(-1)
    merged = (height // kernel_height) * (width // kernel_width)
    return int(merged.sum())
"""


def test_bounds_from_class_numbers_signs_and_scalar_parameters():
    """``self.sigma_data`` set from a parameter's default 0.5 keeps ``sigma**2 +
    sigma_data**2`` at least 0.25, so its ``** -0.5`` is finite (``(sigma * sigma_data) ** -2``
    is not bounded: an info site, nothing shows sigma near 0). A log of a square root shows
    only a sign, no value near 0; a sum of probabilities (``Categorical.probs``) may be near
    0: kept. Grid sizes divided by ``int`` parameters are no float16 data."""
    assert _found(SIGNS_AND_SCALARS) == {("FP202", 20)}
    assert ("FP202", 12) in _found(SIGNS_AND_SCALARS, library_info=True)
    every = lint_code(SIGNS_AND_SCALARS, select=("FP202",), assume_fp16=True, library_info=True)
    texts = {(f.span.start.line, f.message.split("`")[1]) for f in every.findings}
    assert (11, "sigma ** 2") in texts and (11, "**") not in texts
    assert not any(line == 26 for line, _ in texts)


NOISE = """\
import torch
from torch import nn


class Flow(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.proj = nn.Conv1d(d, d, 1)

    def forward(self, x, mask):
        h = self.proj(x)
        noise = torch.randn(h.size(0), 2, h.size(2)).to(device=h.device, dtype=h.dtype) * mask
        squares = noise ** 2
        return squares, h ** 2
"""


def test_shapes_and_dtypes_of_a_projection_show_no_large_value():
    """Gaussian noise shaped and typed like a convolution's output is no projection output:
    its square is an info site; the output's own square is reported."""
    assert _found(NOISE) == {("FP202", 14)}
    assert _found(NOISE, library_info=True) == {("FP202", 13), ("FP202", 14)}


SCALERS = """\
import torch
from torch import nn


class MeanScaler(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.minimum_scale = config.minimum_scale if hasattr(config, "minimum_scale") else 1e-10

    def forward(self, data, observed):
        scale = data.abs().sum(1, keepdim=True) / observed.sum(1, keepdim=True).clamp(min=1)
        scale = torch.clamp(scale, min=self.minimum_scale)
        return data / scale, torch.zeros_like(scale), scale


class StdScaler(nn.Module):
    def forward(self, data, observed):
        loc = data.mean(1, keepdim=True)
        scale = torch.sqrt(data.var(1, keepdim=True) + 1e-5)
        return (data - loc) / scale, loc, scale


class Model(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.scaler = MeanScaler(config) if config.scaling == "mean" else StdScaler()
        self.other = StdScaler()

    def forward(self, past, observed):
        _, loc, scale = self.scaler(past, observed)
        squeezed = scale.squeeze(1) if scale.ndim == 3 else scale
        _, _, spread = self.other(past, observed)
        return squeezed.log(), loc.abs().log1p(), spread.log()
"""


def test_a_value_a_submodule_returns_near_zero():
    """A scale a submodule class of the file returns clamped at its ``1e-10`` floor (a
    config's default, set in ``__init__``) rounds to 0 in float16: its log is reported; the
    log of a scale held at ``sqrt(1e-5)`` or more is an info site."""
    assert _found(SCALERS) == {("FP202", 33)}
    texts = lint_code(SCALERS, select=("FP202",), assume_fp16=True, library_info=True).findings
    assert any(f.message.startswith("`spread.log()`") for f in texts)


def test_a_returned_value_squeezed_in_a_branch_keeps_its_bound():
    """``if not self.keepdim: scale = scale.squeeze(1)`` between the clamp and the return
    only views the clamped values: the floor still shows (the time-series scalers)."""
    clamp = "        scale = torch.clamp(scale, min=self.minimum_scale)\n"
    squeezed = SCALERS.replace(
        clamp, clamp + "        if not self.keepdim:\n            scale = scale.squeeze(1)\n"
    )
    assert _found(squeezed) == {("FP202", 35)}
    halved = squeezed.replace("scale.squeeze(1)", "scale.half()")  # a cast rounds the values
    assert _found(halved) == set()


def test_a_loss_on_a_float16_model_s_output_is_listed_only_with_library_info():
    """A real cast does not make `cross_entropy` a finding: it reduces in float32 and returns
    a float16 loss of about 3 significant digits; `mse_loss`'s squares still overflow."""
    code = (
        "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n"
        "model = nn.Linear(4, 4).half()\nlogits = model(x)\n"
        "loss = F.cross_entropy(logits, y)\nother = F.mse_loss(logits, t)\n"
    )
    for library in (False, True):  # default mode and library mode alike
        found = lint_code(code, select=("FP202",), assume_fp16=library).findings
        assert [f.span.start.line for f in found] == [8]
        listed = lint_code(code, select=("FP202",), assume_fp16=library, library_info=True)
        assert [f.span.start.line for f in listed.findings] == [7, 8]


GUARDED_HELPERS = """\
import torch
from torch import nn


def log(t, eps=1e-20):
    return torch.log(t.clamp(min=eps))


def entropy(t, eps=1e-20):
    return -(t * (t + eps).log()).sum(-1)


def safe_log(t):
    return torch.log(t + 1e-10)


class Denoiser(nn.Module):
    def c_noise(self, sigma):
        return log(sigma) * 0.25

    def posterior(self, likelihoods_w, prior):
        return torch.log(torch.clamp(likelihoods_w, min=1e-30)) + prior

    def forward(self, x, sigma):
        h = self.proj(x)
        p = self.posterior(self.head(h), self.prior)
        return self.c_noise(sigma) + entropy(h.softmax(-1)) + safe_log(h.sigmoid()) + p
"""


def test_a_guard_written_at_the_log_needs_callers_that_pass_a_vanishing_value():
    """``log(t.clamp(min=1e-20))`` in a helper only guards its callers' values: where every
    project call passes a value that is never 0 (a noise level), the floor float16 loses shows
    nothing; a probability passed in (``softmax``, ``sigmoid``) or a parameter named as one
    (``likelihoods_w``) keeps the finding. A model's own inputs, whose callers are unseen,
    keep the guard as evidence (test_log_and_rsqrt_need_evidence_of_a_value_near_zero)."""
    assert _found(GUARDED_HELPERS) == {("FP202", 10), ("FP202", 14), ("FP202", 22)}
    with_info = _found(GUARDED_HELPERS, library_info=True)
    assert {("FP202", 6), ("FP202", 22)} <= with_info


REDUCTIONS = """\
import torch
from torch import nn


class FocalLoss(nn.Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, pred, true):
        loss = (pred - true).abs() * pred.sigmoid()
        if self.reduction == "mean":
            return loss.mean()
        elif self.reduction == "sum":
            return loss.sum()
        total = loss.sum() if "sum" == self.reduction else loss
        return total, loss.sum()
"""


def test_the_sum_arm_of_a_loss_reduction_switch_is_info_in_library_mode():
    """``elif self.reduction == "sum": return loss.sum()`` is the total a caller asks for, as
    torch's own losses give it for ``reduction="sum"``: listed only with library-info; a sum
    the code always takes (line 17) is kept."""
    assert _found(REDUCTIONS) == {("FP202", 17)}
    assert _found(REDUCTIONS, library_info=True) >= {("FP202", 15), ("FP202", 16)}


DIAGONALS = """\
import torch
from torch import nn


class Contrastive(nn.Module):
    def forward(self, logits, i: int):
        rows = torch.arange(logits.shape[0], device=logits.device)
        a = logits[rows, i + rows].sum()
        b = logits.diag().sum() + torch.diagonal(logits).sum()
        c = logits[rows].sum()
        return a, b, c, logits.sum()
"""


def test_full_sums_of_a_diagonal_are_info_in_library_mode():
    """The positive pairs of a similarity matrix (``logits[rows, i + rows]`` with ``rows =
    torch.arange(n)``, ``diag()``, ``torch.diagonal``) are one value per row, as a row
    statistic: a sum of them is an info site; whole rows (line 10) and the whole matrix stay."""
    assert _found(DIAGONALS) == {("FP202", 10), ("FP202", 11)}
    assert _found(DIAGONALS, library_info=True) >= {("FP202", 8), ("FP202", 9)}


# A method of a module class fed a tensor its caller makes float16 (`w.half()`), no model
# cast: default mode finds the exp through the value's chain; library mode, which also
# assumes the class float16, must keep it (the real origin, not the assumption, judges it).
FED_HALF = """\
import torch
from torch import nn


class Scaler(nn.Module):
    def forward(self, x, w):
        return x * self.scale_of(w)

    def scale_of(self, w):
        return torch.exp(w)

    def setup(self, w, half):
        if half:
            w = w.half()
        self.scale = self.scale_of(w)
"""


def test_a_value_made_float16_by_a_caller_keeps_its_finding_in_library_mode():
    def found(**settings):
        findings = lint_code(FED_HALF, select=("FP202",), **settings).findings
        return {(f.code, f.span.start.line, f.message) for f in findings}

    default = found()
    assert {(code, line) for code, line, _ in default} == {("FP202", 10)}
    assert found(assume_fp16=True) == default
    assert all("w.half()" in message for _, _, message in default)
