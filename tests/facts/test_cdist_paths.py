"""``torch.cdist`` on float16: only its direct kernel rejects it; the matrix-multiply path runs.

With ``p=2`` (the default) and more than 25 rows in an input, ``cdist`` computes the distances
with a matrix multiply (``compute_mode="use_mm_for_euclid_dist_if_necessary"``), which accepts
float16; smaller inputs (or ``p != 2``) use the direct kernel, which has no float16 version.
So a float16 ``cdist`` over large feature sets (metric code) runs, and FP204's "no float16
kernel on CPU" holds for the direct kernel only.
"""

from __future__ import annotations

import pytest
import torch

HALF = torch.float16


def test_small_fp16_cdist_uses_the_direct_kernel_and_raises():
    """25 rows or fewer: the direct kernel, which raises for float16 on CPU."""
    a = torch.randn(25, 8).to(HALF)
    with pytest.raises(NotImplementedError, match="'Half'"):
        torch.cdist(a, a)


def test_large_fp16_cdist_uses_matmul_and_runs():
    """More than 25 rows (p=2): the matrix-multiply path, which returns float16 distances."""
    a = torch.randn(26, 8).to(HALF)
    assert torch.cdist(a, a).dtype == HALF
    assert torch.cdist(a[:4], a[:4], compute_mode="use_mm_for_euclid_dist").dtype == HALF
    with pytest.raises(NotImplementedError, match="'Half'"):
        torch.cdist(a, a, p=1.0)


def test_either_input_over_25_rows_takes_the_matmul_path():
    """``use_mm_for_euclid_dist_if_necessary`` (the default) uses the matrix multiply when P or R
    exceeds 25 (torch/functional.py's ``cdist`` docstring), whatever the other's size."""
    big, small = torch.randn(26, 8).to(HALF), torch.randn(3, 8).to(HALF)
    assert torch.cdist(big, small).dtype == HALF
    assert torch.cdist(small, big, p=2.0).dtype == HALF


def test_donot_use_mm_forces_the_direct_kernel():
    """``compute_mode="donot_use_mm_for_euclid_dist"`` takes the direct kernel at any size."""
    a = torch.randn(64, 8).to(HALF)
    with pytest.raises(NotImplementedError, match="'Half'"):
        torch.cdist(a, a, compute_mode="donot_use_mm_for_euclid_dist")
