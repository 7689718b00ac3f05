"""FP205 (issue 17): which q·kᵀ products are reported, and at which severity."""

from __future__ import annotations

from lintutil import lint_code

from fp16lint.findings import Severity

HEAD = "import torch\n\ndef attend(q, k, scale):\n    q = q.half()\n    k = k.half()\n"


def _found(body: str, **settings) -> list[tuple[int, Severity]]:
    result = lint_code(HEAD + body, select=("FP205",), **settings)
    return [(f.span.start.line, f.severity) for f in result.findings]


def test_scaling_after_the_product_is_a_warning():
    assert _found("    return torch.softmax(q @ k.transpose(-1, -2) * scale, -1)\n") == [
        (6, Severity.WARNING)
    ]


def test_scaling_q_or_k_first_is_info():
    body = "    return ((q * 0.35) @ (k * 0.35).transpose(-1, -2)).softmax(-1)\n"
    assert _found(body) == [(6, Severity.INFO)]
    body = "    q = q * scale\n    attn = q @ k.transpose(-1, -2)\n    return attn.softmax(-1)\n"
    assert _found(body) == [(7, Severity.INFO)]


def test_a_one_operand_einsum_is_no_product():
    body = "    m = torch.einsum('ijbn->bnij', q)\n    return torch.softmax(m, -1)\n"
    assert _found(body) == []


def test_upcast_or_unknown_inputs_are_quiet():
    upcast = "    return torch.softmax(q.float() @ k.float().transpose(-1, -2), -1)\n"
    assert _found(upcast) == []
    free = "import torch\n\ndef attend(q, k):\n    return torch.softmax(q @ k.mT, -1)\n"
    assert lint_code(free, select=("FP205",)).findings == []


def test_library_mode_reports_attention_functions():
    free = "import torch\n\ndef attend(q, k):\n    return torch.softmax(q @ k.mT, -1)\n"
    found = lint_code(free, select=("FP205",), assume_fp16=True).findings
    assert [(f.span.start.line, f.severity) for f in found] == [(4, Severity.WARNING)]
    assert "in `attend`" in found[0].message
