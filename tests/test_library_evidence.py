"""Library mode (``assume-fp16``) keeps a site float16 reaches only by its assumption where the
code shows the hazard can happen: FP301's silent ``-inf`` masks need evidence that a whole row
can be masked, FP204 leaves out front ends whose callers cast what they return to the model's
dtype (they run on the data the model is given), FP206 leaves out float64 frequencies."""

from __future__ import annotations

from lintutil import lint_code, lint_project


def _lines(code: str, rule: str, **settings) -> list[int]:
    findings = lint_code(code, select=(rule,), assume_fp16=True, **settings).findings
    return [f.span.start.line for f in findings]


PAIR_BIAS = (
    "import torch\nfrom torch import nn\n\n\nclass TriangleAttention(nn.Module):\n"
    "    def __init__(self):\n        super().__init__()\n        self.inf = 1e9\n\n"
    "    def forward(self, x, mask):\n"
    "        bias = (self.inf * (mask - 1))[..., :, None, None, :]\n"
    "        return (x + bias).softmax(-1)\n"
)


def test_silent_minus_inf_of_a_mask_with_rows_of_its_own_is_reported():
    assert _lines(PAIR_BIAS, "FP301") == [11]
    per_query = (
        "import torch\ndef f(scores, m: torch.Tensor):\n"
        "    return scores + (1.0 - m[:, :, None]) * -1e9\n"
    )
    assert _lines(per_query, "FP301") == [3]
    later = (
        "import torch\ndef f(scores, m: torch.Tensor):\n    bias = (1.0 - m) * -1e9\n"
        "    return scores + bias[:, None, :, :]\n"
    )
    assert _lines(later, "FP301") == [3]


def test_silent_minus_inf_of_a_key_padding_mask_is_listed_only_with_library_info():
    key_padding = (
        "import torch\ndef f(scores, m):\n"
        "    bias = torch.where(m > 0, 0.0, -1e10).to(scores.dtype)[:, None, None, :]\n"
        "    return scores + bias\n"
    )
    order_only = (
        "import torch\ndef pool(h: torch.Tensor):\n    h[h == 0] = -1e9\n"
        "    return torch.max(h, 0)[0]\n"
    )
    for code in (key_padding, order_only):
        assert _lines(code, "FP301") == []
        assert _lines(code, "FP301", library_info=True) == [3]


def test_fills_that_raise_need_no_row_evidence():
    code = "import torch\ndef f(scores, m):\n    return scores.masked_fill(m, -1e9)\n"
    assert _lines(code, "FP301") == [3]


def test_a_half_model_reaching_a_silent_mask_is_reported_without_row_evidence():
    code = (
        "import torch\n\n\ndef f(scores, m):\n    return scores + (1.0 - m) * -1e9\n\n\n"
        "def run(scores, m):\n    return f(scores, m.half())\n"
    )
    assert _lines(code, "FP301") == [5]
    assert [f.span.start.line for f in lint_code(code, select=("FP301",)).findings] == [5]


FRONT_END = {
    "audio.py": (
        "import torch\nfrom torch import nn\n\n\n"
        "def log_mel(audio):\n"
        "    return torch.stft(audio, 400, 160, return_complex=True).abs()\n\n\n"
        "class Mel(nn.Module):\n    def forward(self, waveform):\n"
        "        return torch.stft(waveform, 512, return_complex=True).abs()\n\n\n"
        "class Encoder(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.mel = Mel()\n        self.conv = nn.Conv1d(201, 8, 3)\n\n"
        "    def forward(self, x):\n        x = log_mel(x)\n"
        "        x = x.to(dtype=self.conv.weight.dtype)\n"
        "        return self.conv(x) + self.conv(self.mel(x).to(self.conv.weight.dtype))\n"
    ),
}


def test_front_ends_whose_callers_cast_their_result_are_quiet(tmp_path):
    found = lint_project(tmp_path, FRONT_END, select=("FP204",), assume_fp16=True).findings
    assert found == []
    uncast = dict(FRONT_END)
    uncast["audio.py"] = uncast["audio.py"].replace(
        "        x = x.to(dtype=self.conv.weight.dtype)\n", ""
    )
    found = lint_project(tmp_path / "b", uncast, select=("FP204",), assume_fp16=True).findings
    assert [f.span.start.line for f in found] == [6]
    half = dict(FRONT_END)
    half["audio.py"] = half["audio.py"].replace(
        "x.to(dtype=self.conv.weight.dtype)", "x.to(torch.float16)"
    )
    # The literal cast quiets the front end its result comes from (line 6); ``self.mel(x)``
    # is then given that float16 ``x``: a real origin, which library mode keeps (line 11).
    found = lint_project(tmp_path / "c", half, select=("FP204",), assume_fp16=True).findings
    assert [f.span.start.line for f in found] == [11]
    assert "`x.to(torch.float16)`" in found[0].message


def test_a_front_end_on_activations_is_reported(tmp_path):
    code = (
        "import torch\nfrom torch import nn\n\n\nclass Spectrum(nn.Module):\n"
        "    def forward(self, h):\n        return torch.fft.rfft(h, dim=-1)\n\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.proj = nn.Linear(4, 4)\n        self.spectrum = Spectrum()\n\n"
        "    def forward(self, x):\n        return self.spectrum(self.proj(x)).real\n"
    )
    assert _lines(code, "FP204") == [7]


ROPE = (
    "import torch\n\n\ndef rope(pos, dim, theta):\n"
    "    dtype = {dtype}\n"
    "    scale = torch.arange(0, dim, 2, dtype=dtype, device=pos.device) / dim\n"
    "    omega = 1.0 / (theta**scale)\n"
    "    return torch.einsum('...n,d->...nd', pos, omega)\n"
)


def test_rotary_angles_with_float64_frequencies_are_quiet():
    assert _lines(ROPE.format(dtype="torch.float64"), "FP206") == []
    assert _lines(ROPE.format(dtype="torch.float32"), "FP206") == [8]
    helper = "from diffusers.utils.torch_utils import maybe_adjust_dtype_for_device\n" + (
        ROPE.format(dtype="maybe_adjust_dtype_for_device(torch.float64, pos.device)")
    )
    assert _lines(helper, "FP206") == []
    double = ROPE.format(dtype="torch.float32").replace("omega)\n", "omega.double())\n")
    assert _lines(double, "FP206") == []


def test_a_one_line_body_calling_a_function_is_no_internal_error():
    """``if flag: y = f(x)`` puts the assignment in a one-line suite, not a block of
    statements: the recast search must not read a next statement there (FP999 on real code)."""
    code = (
        "import torch\n\n\ndef f(x):\n    return torch.stft(x, 400, return_complex=True)\n\n\n"
        "def g(x, flag):\n    if flag: y = f(x)\n    for _ in range(2): z = f(x)\n    return y, z\n"
    )
    for library in (False, True):
        found = lint_code(code, select=("ALL",), assume_fp16=library).findings
        assert "FP999" not in {f.code for f in found}
