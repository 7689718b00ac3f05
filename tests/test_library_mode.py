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
# Reported whatever the setting: overflow by itself, or a reduction of every element.
ALWAYS = {("FP202", 15), ("FP202", 16), ("FP202", 18)}
# Float32-kernel ops and layers, losses, a one-dimension sum, a power of an unknown exponent.
INFO = {
    ("FP201", 9), ("FP201", 10), ("FP202", 11), ("FP202", 14), ("FP202", 17), ("FP202", 19),
    ("FP202", 20),
}  # fmt: skip


def _found(code: str, **settings) -> set[tuple[str, int]]:
    findings = lint_code(code, select=("FP201", "FP202"), assume_fp16=True, **settings).findings
    return {(f.code, f.span.start.line) for f in findings}


def test_library_mode_reports_only_what_overflows_by_itself():
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
    integer sizes, a local ``token_mask`` is a mask. A square of one activation stays a
    warning, a full sum of an activation is kept."""
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
    assert [f.message.split("`")[1] for f in found] == ["logits**2", "logits.sum()"]
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
