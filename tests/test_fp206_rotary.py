"""FP206 (issue 17): rotary angles computed in float16, by mode."""

from __future__ import annotations

from lintutil import lint_code

ROPE = (
    "import torch\n\n"
    "def rope(pos, dim, theta):\n"
    "    scale = torch.arange(0, dim, 2, dtype=torch.float32) / dim\n"
    "    omega = 1.0 / (theta**scale)\n"
    "{body}"
)
EINSUM = "    return torch.einsum('...n,d->...nd', pos, omega)\n"


def _lines(code: str, **settings) -> list[int]:
    return [f.span.start.line for f in lint_code(code, select=("FP206",), **settings).findings]


def test_library_mode_reports_float32_frequencies_that_autocast_would_lower():
    # The frequencies are float32, but fp16 autocast runs einsum and matmul in float16 anyway.
    assert _lines(ROPE.format(body=EINSUM), assume_fp16=True) == [6]
    assert _lines(ROPE.format(body=EINSUM)) == []  # default mode: no fp16 reaches it


def test_default_mode_reports_the_function_when_a_caller_runs_it_under_fp16_autocast():
    caller = (
        "\n\ndef embed(pos):\n"
        "    with torch.autocast('cuda', dtype=torch.float16):\n"
        "        return rope(pos, 64, 10000)\n"
    )
    assert _lines(ROPE.format(body=EINSUM) + caller) == [6]


def test_autocast_disabled_protects_in_every_mode():
    body = "    with torch.autocast('cuda', enabled=False):\n" + "    " + EINSUM
    assert _lines(ROPE.format(body=body), assume_fp16=True) == []


def test_positions_times_other_tensors_are_not_rotary_angles():
    code = "import torch\n\ndef outer(pos, weights):\n    return torch.einsum('i,j->ij', pos, weights)\n"
    assert _lines(code, assume_fp16=True) == []
