"""Ops whose built-in kernels compute in float32 stay finite on float16 inputs where the same
maths written in float16 overflows: why library mode (``assume-fp16``) leaves them out unless
``library-info`` is set (``data/amp_ops.quiet_in_library``).

Run on this build's CPU. The CUDA kernels accumulate in ``acc_type<Half>`` = float as well
(ATen/AccumulateType.h; SoftMax.cu, layer_norm_kernel.cu, group_norm_kernel.cu, LossNLL.cu,
Normalization.cuh, ReduceOps), which this test cannot run here: a CUDA-only difference would
show as a runtime-companion finding, not here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

HALF = torch.float16


@pytest.fixture
def logits() -> torch.Tensor:
    """float16 values up to about 1000: ``exp`` and squares of them overflow float16."""
    torch.manual_seed(0)
    return (torch.randn(16, 64) * 300).to(HALF)


def test_hand_written_softmax_and_norm_overflow_in_float16(logits):
    """The same maths written with float16 ops is inf/NaN: what FP202/FP203 keep reporting."""
    e = logits.exp()
    assert torch.isnan(e / e.sum(-1, keepdim=True)).any()
    assert torch.isinf(logits.pow(2).sum(-1)).all()


@pytest.mark.parametrize(
    "op",
    [
        lambda x: torch.softmax(x, -1),
        lambda x: torch.log_softmax(x, -1),
        lambda x: F.normalize(x, dim=-1),
        lambda x: F.cosine_similarity(x, x.flip(0), dim=-1),
        lambda x: torch.logsumexp(x, -1),
        lambda x: torch.linalg.vector_norm(x, dim=-1),
        lambda x: F.layer_norm(x, (64,)),
        lambda x: F.group_norm(x, 4),
        lambda x: F.rms_norm(x, (64,)),
    ],
    ids=[
        "softmax",
        "log_softmax",
        "normalize",
        "cosine_similarity",
        "logsumexp",
        "vector_norm",
        "layer_norm",
        "group_norm",
        "rms_norm",
    ],
)
def test_fp32_kernel_is_finite_and_close_to_float32(op, logits):
    """Float16 in, float16 out, finite, and equal to the float32 result up to float16 rounding."""
    out = op(logits)
    assert out.dtype == HALF
    assert torch.isfinite(out).all()
    expected = op(logits.float())
    torch.testing.assert_close(out.float(), expected, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize(
    "loss",
    [
        lambda x, t: F.binary_cross_entropy_with_logits(x, t.sigmoid()),
        lambda x, t: F.mse_loss(x / 300, t / 300),
        lambda x, t: F.l1_loss(x, t),
        lambda x, t: F.smooth_l1_loss(x, t),
    ],
    ids=["bce_with_logits", "mse_loss", "l1_loss", "smooth_l1"],
)
def test_elementwise_loss_mean_reduces_in_float32(loss):
    """Losses over 300000 elements whose float16 sum is inf: the mean comes out finite and
    equal to the float32 loss, since the reduction accumulates in float32."""
    torch.manual_seed(0)
    x = (torch.randn(4096, 75) * 300).to(HALF)
    t = (torch.randn(4096, 75) * 300).to(HALF)
    assert torch.isinf((x - t).abs().sum())  # the same total written in float16
    out = loss(x, t)
    assert out.dtype == HALF and torch.isfinite(out)
    torch.testing.assert_close(out.float(), loss(x.float(), t.float()), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize(
    "loss",
    [F.cross_entropy, lambda x, t: F.nll_loss(torch.log_softmax(x, -1), t)],
    ids=["cross_entropy", "nll_loss"],
)
def test_cpu_nll_mean_overflows_once_the_summed_loss_passes_65504(loss):
    """On CPU, cross_entropy/nll_loss on float16 logits give inf once the per-token losses
    add up past 65504 (16384 tokens of loss ~11), though each term and the mean are small;
    4096 tokens are fine. CUDA's reduction accumulates in float (LossNLL.cu, cited, not run
    here). Library mode leaves losses out by default all the same (autocast runs them in
    float32; pure float16 on CPU is FP104's); ``library-info`` shows them."""
    torch.manual_seed(0)
    x = (torch.randn(16384, 1000) * 3).to(HALF)
    t = torch.randint(0, 1000, (16384,))
    assert torch.isinf(loss(x, t))
    assert torch.isfinite(loss(x.float(), t))
    assert torch.isfinite(loss(x[:4096], t[:4096]))


def test_full_sum_of_activations_overflows_but_a_short_row_does_not():
    """A reduction of every element (tokens times features) passes 65504 where one row of the
    same values does not: library mode keeps the first kind (``x.sum()``), not ``x.sum(-1)``."""
    x = torch.full((512, 256), 2.0, dtype=HALF)
    assert torch.isinf(x.sum())
    assert torch.isfinite(x.sum(-1)).all()


def test_one_hot_is_an_integer_tensor():
    """``F.one_hot`` gives int64: counts taken from it are no float16 data (``analysis.flow``)."""
    assert F.one_hot(torch.tensor([0, 2, 1]), 3).dtype == torch.int64


def test_variance_norm_in_float16_zeroes_the_row():
    """``torch.var`` accumulates in float32 but writes float16: activations spread beyond
    about ±256 (here ±400) give an inf variance, and a hand-written norm built on it (FP203) turns the row
    into zeros, where ``F.layer_norm`` stays right."""
    torch.manual_seed(0)
    x = (torch.randn(4, 64) * 400).to(HALF)
    var = torch.var(x, dim=1, unbiased=False, keepdim=True)
    assert torch.isinf(var).all()
    out = (x - x.mean(1, keepdim=True)) / (var + 1e-5).sqrt()
    assert (out == 0).all()
    assert torch.isfinite(F.layer_norm(x, (64,))).all() and F.layer_norm(x, (64,)).abs().max() > 1
