"""FP206's facts: rotary angles (positions times inverse frequencies) computed in float16 are wrong.

Rotary embeddings rotate each channel pair by ``position * inv_freq`` radians, with
``inv_freq = 1 / base ** (arange(0, d, 2) / d)`` (the first band has frequency 1). float16 keeps
11 significant bits: positions above 2048 are rounded to even numbers, and an angle near 1000
radians is off by up to 0.5. Under fp16 autocast, ``matmul`` runs in float16 even from float32
positions and frequencies (CPU checked), and so does ``einsum`` on CUDA, whose autocast lists it
(FACTS.md §4; checked where a GPU is present); ``autocast(enabled=False)`` with
float32 inputs keeps them exact, and a module cast with ``.half()`` casts its ``inv_freq``
buffer too. Upstream fixes: x-transformers 4adbfc2, diffusers 508e5350d0, transformers'
``LlamaRotaryEmbedding`` (autocast disabled around the product).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

HALF = torch.float16
DIM, BASE = 64, 10000.0


def _inv_freq() -> torch.Tensor:
    return 1.0 / (BASE ** (torch.arange(0, DIM, 2, dtype=torch.float32) / DIM))


def _angles(positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    return torch.einsum("i,j->ij", positions, inv_freq)


def _error(angles: torch.Tensor, exact: torch.Tensor) -> float:
    """Largest error of the rotation itself (cos and sin), not of the raw angle."""
    return float(
        torch.maximum(
            (angles.float().cos() - exact.cos()).abs(), (angles.float().sin() - exact.sin()).abs()
        ).max()
    )


def test_fp16_autocast_runs_the_angle_matmul_in_fp16_and_rotations_go_wrong():
    """Under fp16 autocast, a matmul of float32 positions and frequencies gives float16 angles
    whose cos/sin are off by more than 0.1 for a 4096-token sequence (float32: below 1e-3)."""
    positions = torch.arange(4096, dtype=torch.float32)
    exact = _angles(positions.double(), _inv_freq().double())
    with torch.autocast("cpu", dtype=HALF):
        matmul = positions[:, None] @ _inv_freq()[None, :]
    assert matmul.dtype == HALF
    assert _error(matmul, exact) > 0.1
    assert _error(_angles(positions, _inv_freq()), exact) < 1e-3
    assert _error(_angles(positions.to(HALF), _inv_freq().to(HALF)), exact) > 0.1  # cast model


def test_cuda_autocast_casts_einsum_itself_cpu_only_its_contractions():
    """CUDA autocast registers einsum itself (FACTS.md §4: on its float16 list), so even an
    outer product ``einsum('i,j->ij', t, inv_freq)`` runs in float16 there; CPU autocast does
    not list einsum, and an einsum without a summed index (a broadcast ``mul``) stays float32."""
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    assert has("aten::einsum", "AutocastCUDA")
    assert not has("aten::einsum", "AutocastCPU")
    positions = torch.arange(16, dtype=torch.float32)
    with torch.autocast("cpu", dtype=HALF):
        assert _angles(positions, _inv_freq()).dtype == torch.float32


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fp16_autocast_runs_the_angle_einsum_in_fp16():
    """On CUDA, the outer-product einsum of rotary angles is float16 under fp16 autocast."""
    positions = torch.arange(4096, dtype=torch.float32, device="cuda")
    with torch.autocast("cuda", dtype=HALF):
        angles = _angles(positions, _inv_freq().cuda())
    assert angles.dtype == HALF


def test_autocast_disabled_keeps_the_angles_in_float32():
    """A nested autocast(enabled=False) region runs the product in float32 again."""
    positions = torch.arange(4096, dtype=torch.float32)
    with torch.autocast("cpu", dtype=HALF), torch.autocast("cpu", enabled=False):
        angles = _angles(positions, _inv_freq())
    assert angles.dtype == torch.float32


def test_half_casts_the_inv_freq_buffer_and_positions_above_2048_are_rounded():
    """``module.half()`` casts a registered ``inv_freq`` buffer to float16, and float16
    positions above 2048 collapse onto even numbers."""

    class Rotary(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("inv_freq", _inv_freq(), persistent=False)

    assert Rotary().half().inv_freq.dtype == HALF
    positions = torch.arange(2048, 2056, dtype=torch.float32)
    assert positions.to(HALF).float().unique().numel() < positions.numel()


def test_float64_frequencies_keep_the_angles_float64_under_fp16_autocast():
    """Autocast does not lower float64 operands, and a product with float64 frequencies
    promotes to float64 (einsum; matmul of two float64 operands): the angles are exact, fp16
    autocast or float16 positions (FP206 leaves them out)."""
    positions = torch.arange(4096, dtype=torch.float64)
    inv_freq = _inv_freq().double()
    exact = _angles(positions, inv_freq)
    with torch.autocast("cpu", dtype=HALF):
        matmul = positions[:, None] @ inv_freq[None, :]
        einsum = torch.einsum("...n,d->...nd", positions.to(HALF)[:8], inv_freq)
    assert matmul.dtype == einsum.dtype == torch.float64
    assert _error(matmul, exact) < 1e-3  # fp16 autocast on float32 inputs: > 0.1 (above)
    assert _error(_angles(positions.float(), inv_freq), exact) < 1e-3  # promoted, not lowered


def test_diffusers_dtype_helper_returns_float64_off_mps():
    """diffusers' ``maybe_adjust_dtype_for_device(torch.float64, device)`` (its rotary
    helpers' frequency dtype, ``data.dtype_helpers``) returns float64 on CPU and CUDA, and
    float32 only on MPS."""
    torch_utils = pytest.importorskip("diffusers.utils.torch_utils")
    adjust = torch_utils.maybe_adjust_dtype_for_device
    assert adjust(torch.float64, torch.device("cpu")) == torch.float64
    assert adjust(torch.float64, torch.device("cuda")) == torch.float64
    assert adjust(torch.float64, torch.device("mps")) == torch.float32


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fp16_autocast_leaves_float64_rotary_products_float64():
    """On CUDA too, fp16 autocast leaves an einsum and a matmul of float64 positions and
    frequencies in float64."""
    positions = torch.arange(4096, dtype=torch.float64, device="cuda")
    inv_freq = _inv_freq().double().cuda()
    with torch.autocast("cuda", dtype=HALF):
        assert _angles(positions, inv_freq).dtype == torch.float64
        assert (positions[:, None] @ inv_freq[None, :]).dtype == torch.float64
