"""Ops with no float16 kernel on CPU: what really happens on this build.

Every test here runs on the CPU device (``device="cpu"`` explicitly). The CUDA behaviour
differs for some ops and is checked by the ``cuda``-marked tests at the end, which run only where
a GPU is present.
"""

from __future__ import annotations

import pytest
import torch

HALF = torch.float16
CPU = "cpu"

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (fact cited from PyTorch sources)"
)


def _spd(device: str) -> torch.Tensor:
    a = torch.randn(4, 4, device=device)
    return (a @ a.T + 4 * torch.eye(4, device=device)).to(HALF)


def test_quantile_rejects_fp16_on_cpu():
    """``torch.quantile`` / ``torch.nanquantile`` on a float16 tensor raise "input tensor must be either float or double dtype"."""
    x = torch.randn(16, device=CPU, dtype=HALF)
    with pytest.raises(RuntimeError, match="must be either float or double"):
        torch.quantile(x, 0.5)
    with pytest.raises(RuntimeError, match="must be either float or double"):
        torch.nanquantile(x, 0.5)


LINALG = {
    "linalg.solve": (lambda a: torch.linalg.solve(a, a[:, :1]), NotImplementedError, "'Half'"),
    "linalg.inv": (torch.linalg.inv, RuntimeError, "Low precision dtypes not supported"),
    "linalg.det": (torch.linalg.det, NotImplementedError, "'Half'"),
    "linalg.qr": (torch.linalg.qr, NotImplementedError, "'Half'"),
    "linalg.svd": (torch.linalg.svd, NotImplementedError, "'Half'"),
    "linalg.eigh": (torch.linalg.eigh, NotImplementedError, "'Half'"),
    "linalg.cholesky": (torch.linalg.cholesky, NotImplementedError, "'Half'"),
    "linalg.lstsq": (
        lambda a: torch.linalg.lstsq(a, a[:, :1]),
        RuntimeError,
        "other than float and double",
    ),
    "cdist": (lambda a: torch.cdist(a, a), NotImplementedError, "'Half'"),
}


@pytest.mark.parametrize("name", LINALG)
def test_linalg_solvers_and_decompositions_reject_fp16_on_cpu(name):
    """torch.linalg solves and decompositions (solve, inv, det, qr, svd, eigh, cholesky, lstsq) and torch.cdist raise on float16 CPU tensors."""
    fn, error, message = LINALG[name]
    with pytest.raises(error, match=message):
        fn(_spd(CPU))


def test_linalg_norms_accept_fp16_on_cpu():
    """torch.linalg's norms (vector_norm, matrix_norm, norm) do accept float16 CPU tensors."""
    a = _spd(CPU)
    assert torch.linalg.vector_norm(a).dtype == HALF
    assert torch.linalg.matrix_norm(a).dtype == HALF
    assert torch.linalg.norm(a).dtype == HALF


@pytest.mark.parametrize("n", [15, 16], ids=["size_15", "size_16_power_of_two"])
@pytest.mark.parametrize("fn", [torch.fft.fft, torch.fft.rfft], ids=["fft", "rfft"])
def test_fft_rejects_fp16_on_cpu_for_every_size(fn, n):
    """On CPU, ``torch.fft`` rejects float16 for every signal size, powers of two included ("Unsupported dtype Half")."""
    with pytest.raises(RuntimeError, match="Unsupported dtype Half"):
        fn(torch.randn(n, device=CPU, dtype=HALF))


def test_stft_rejects_fp16_on_cpu(caught_warnings):
    """``torch.stft`` on a float16 CPU signal raises "MKL FFT doesn't support tensors of type: Half"."""
    signal = torch.randn(64, device=CPU, dtype=HALF)
    window = torch.hann_window(16, device=CPU, dtype=HALF)
    with pytest.raises(RuntimeError, match="doesn't support tensors of type: Half"):
        torch.stft(signal, n_fft=16, window=window, return_complex=True)


def test_common_layers_do_run_in_fp16_on_cpu():
    """matmul, conv2d and median do have float16 CPU kernels (slow ones: fp16 on CPU is not a speed-up)."""
    a = _spd(CPU)
    assert (a @ a).dtype == HALF
    image = torch.randn(1, 1, 8, 8, dtype=HALF)
    kernel = torch.randn(1, 1, 3, 3, dtype=HALF)
    assert torch.nn.functional.conv2d(image, kernel).dtype == HALF
    assert torch.median(torch.randn(9, dtype=HALF)).dtype == HALF


def test_a_decoder_step_runs_in_fp16_on_cpu():
    """A causal LM's decoding step (embedding, RMS norm, linear, SiLU, SDPA, softmax sampling)
    runs in float16 on the CPU in this torch: FP104's CPU-path finding claims missing kernels
    only for the ops above (older torch lacked even ``addmm`` for Half on the CPU)."""
    torch.manual_seed(0)
    ids = torch.randint(0, 32, (1, 6))
    h = torch.nn.Embedding(32, 16).half()(ids)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
    q = k = v = torch.nn.Linear(16, 16).half()(h).view(1, 6, 2, 8).transpose(1, 2)
    h = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    h = torch.nn.functional.silu(h.transpose(1, 2).reshape(1, 6, 16))
    logits = torch.nn.Linear(16, 32).half()(h)[:, -1]
    probs = torch.softmax(logits / 0.7, dim=-1)
    assert probs.dtype == HALF and torch.isfinite(probs).all()
    assert torch.multinomial(probs, 1).shape == (1, 1)
    assert probs.topk(5).values.dtype == HALF


@pytest.mark.cuda
@requires_cuda
@pytest.mark.skipif(bool(torch.version.hip), reason="cuFFT message; ROCm uses hipFFT")
def test_cuda_fft_accepts_fp16_only_for_powers_of_two():
    """On CUDA, float16 FFTs work for power-of-two sizes and raise for other sizes (CuFFTPlanCache.h)."""
    assert torch.fft.fft(torch.randn(16, device="cuda", dtype=HALF)).dtype == torch.complex32
    with pytest.raises(RuntimeError, match="powers of two"):
        torch.fft.fft(torch.randn(15, device="cuda", dtype=HALF))
