"""analysis/value_dtypes.py: the dtype evidence of a value read through its bindings."""

from __future__ import annotations

from lintutil import lint_code

# The padding idiom: a name rebound from itself with ``dtype=<name>.dtype``. The inner name is the
# earlier binding; reading it as the latest one again recursed until Python's limit (FP999).
PADDED = """\
import torch
import torch.nn.functional as F


def usage(z, idx, n, pad):
    x = F.one_hot(idx, n).type(z.dtype).mean(0)
    x = torch.cat([x, torch.zeros(pad, dtype=x.dtype)])
    return x.clamp(min=1e-10).log()
"""


def test_a_name_rebound_from_its_own_dtype_is_read_through_the_earlier_binding():
    found = lint_code(PADDED, select=("FP304", "FP999"), assume_fp16=True).findings
    assert [(f.code, f.span.start.line) for f in found] == [("FP304", 8)]


def test_a_wide_earlier_binding_shows_through_the_padding():
    code = PADDED.replace(".type(z.dtype).mean(0)", ".float().mean(0)")
    found = lint_code(code, select=("FP304", "FP999"), assume_fp16=True).findings
    assert found == []
