"""Default-mode judgement of sites whose hazard depends on another value: a fill in, or constants
cast to, the dtype of ``x`` stand where float16 reaches ``x`` (library mode keeps them, as callers
are unseen)."""

from __future__ import annotations

from lintutil import lint_code

FILL = (
    "import torch\n\n\ndef pad(x, n):\n"
    "    fill = torch.full((n,), torch.finfo(torch.float32).min, dtype=x.dtype)\n"
    "    return torch.cat((x, fill))\n"
)


def _codes(code: str, **settings) -> list[tuple[str, int]]:
    findings = lint_code(code, select=("FP301", "FP302"), **settings).findings
    return [(f.code, f.span.start.line) for f in findings]


def test_fill_in_the_dtype_of_a_value_no_float16_reaches_is_quiet_by_default():
    assert _codes(FILL) == []
    assert _codes(FILL, assume_fp16=True) == [("FP302", 5)]


def test_fill_in_the_dtype_of_a_float16_value_is_reported_with_its_chain():
    code = FILL + "\n\ndef run(x):\n    return pad(x.half(), 4)\n"
    findings = lint_code(code, select=("FP302",)).findings
    assert [(f.code, f.span.start.line) for f in findings] == [("FP302", 5)]
    assert "float16 here" in findings[0].message


def test_fill_in_the_dtype_of_an_upcast_value_is_quiet_in_both_modes():
    code = (
        "import torch\n\n\ndef f(q, n):\n    q = q.float()\n"
        "    return torch.full((n,), -1e9, dtype=q.dtype)\n"
    )
    assert _codes(code) == []
    assert _codes(code, assume_fp16=True) == []


def test_constants_cast_to_the_dtype_of_a_value_no_float16_reaches_are_quiet_by_default():
    code = (
        "import torch\n\n\ndef f(mask, hidden):\n"
        "    bias = torch.where(mask > 0, 0.0, -1e10).to(hidden.dtype)\n"
        "    return hidden + bias\n"
    )
    assert _codes(code) == []
    # a silent -inf with no evidence that a whole row can be masked: listed on request
    assert _codes(code, assume_fp16=True) == []
    assert _codes(code, assume_fp16=True, library_info=True) == [("FP301", 5)]
    reached = code + "\n\ndef run(mask, x):\n    return f(mask, x.half())\n"
    assert _codes(reached) == [("FP301", 5)]
