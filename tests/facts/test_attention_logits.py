"""FP205's facts: q·kᵀ logits computed in float16 overflow; upcasting q and k (or SDPA) does not.

Activations of about 100 in q and k (seen in Stable Diffusion 2.x's attention, fixed upstream by
upcasting q and k to float32) give dot products over 64 channels near 640,000: far above
float16's 65504. Checked in pure float16 and under CPU fp16 autocast, which puts matmul, bmm,
baddbmm and einsum on its lower-precision list as CUDA autocast does (CUDA (cited): amp.md,
"CUDA Ops that can autocast to float16").
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

HALF = torch.float16
D = 64
SCALE = D**-0.5


@pytest.fixture
def qk() -> tuple[torch.Tensor, torch.Tensor]:
    """float32 q and k, (batch 2, 8 tokens, 64 channels), |values| near 100, aligned."""
    base = torch.full((2, 8, D), 100.0) + torch.randn(2, 8, D)
    return base.clone(), base.clone()


LOGITS = {
    "matmul": lambda q, k: torch.matmul(q, k.transpose(-1, -2)),
    "@": lambda q, k: q @ k.transpose(-1, -2),
    "bmm": lambda q, k: torch.bmm(q, k.transpose(1, 2)),
    "baddbmm": lambda q, k: torch.baddbmm(
        torch.zeros(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype),
        q,
        k.transpose(1, 2),
        beta=0,
        alpha=SCALE,
    ),
    "einsum": lambda q, k: torch.einsum("bid,bjd->bij", q, k),
}


@pytest.mark.parametrize("op", sorted(LOGITS))
def test_fp16_logits_overflow_and_softmax_gives_nan(op, qk):
    """q·kᵀ of float16 q and k overflows to inf, and softmax of the row is NaN; in float32 it is finite."""
    q, k = qk
    logits = LOGITS[op](q.to(HALF), k.to(HALF))
    assert logits.dtype == HALF
    assert torch.isinf(logits).any()
    assert torch.isnan(torch.softmax(logits, dim=-1)).any()
    assert torch.isfinite(torch.softmax(LOGITS[op](q, k), dim=-1)).all()


@pytest.mark.parametrize("op", sorted(LOGITS))
def test_fp16_autocast_runs_the_logits_in_fp16(op, qk):
    """Under fp16 autocast the logits are float16 (and overflow) even from float32 q and k."""
    q, k = qk
    with torch.autocast("cpu", dtype=HALF):
        logits = LOGITS[op](q, k)
    assert logits.dtype == HALF
    assert torch.isinf(logits).any()


def test_scaling_before_the_matmul_is_not_enough(qk):
    """Scaling q by 1/sqrt(d) before the matmul still overflows: it only divides the logits by 8."""
    q, k = qk
    logits = (q.to(HALF) * SCALE) @ k.to(HALF).transpose(-1, -2)
    assert torch.isinf(logits).any()


def test_softmax_in_fp32_after_an_fp16_matmul_is_too_late(qk):
    """``softmax(..., dtype=torch.float32)`` of float16 logits is NaN: the inf is already there."""
    q, k = qk
    logits = q.to(HALF) @ k.to(HALF).transpose(-1, -2) * SCALE
    assert torch.isnan(torch.softmax(logits, dim=-1, dtype=torch.float32)).any()


def test_upcasting_q_and_k_keeps_the_logits_finite(qk):
    """``q.float() @ k.float().transpose(...)`` from float16 q and k is finite, softmax too."""
    q, k = (t.to(HALF) for t in qk)
    probs = torch.softmax(q.float() @ k.float().transpose(-1, -2) * SCALE, dim=-1)
    assert torch.isfinite(probs).all()


def test_sdpa_on_fp16_inputs_is_finite_where_the_manual_logits_overflow(qk):
    """``F.scaled_dot_product_attention`` on the same float16 q, k, v gives finite outputs."""
    q, k = (t.to(HALF).unsqueeze(1) for t in qk)
    v = torch.randn_like(q)
    manual = torch.softmax(q @ k.transpose(-1, -2) * SCALE, dim=-1) @ v
    assert torch.isnan(manual).any()
    assert torch.isfinite(F.scaled_dot_product_attention(q, k, v)).all()
