"""Autocast, GradScaler and the deprecated ``torch.cuda.amp`` / ``torch.cpu.amp`` spellings."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

HALF = torch.float16

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (fact cited from PyTorch sources)"
)


def test_default_autocast_dtypes():
    """Autocast's default lower-precision dtype is bfloat16 on CPU and float16 on CUDA."""
    assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert torch.get_autocast_dtype("cuda") == torch.float16


def test_cpu_autocast_fp16_keeps_softmax_in_fp16():
    """Under ``torch.autocast("cpu", dtype=torch.float16)``, ``softmax(linear(x))`` is float16 (CUDA autocast would give float32)."""
    linear = nn.Linear(8, 8)
    x = torch.randn(2, 8)
    with torch.autocast("cpu", dtype=HALF):
        logits = linear(x)
        probs = torch.softmax(logits, dim=-1)
    assert logits.dtype == HALF
    assert probs.dtype == HALF


@pytest.mark.parametrize(
    "op",
    [
        lambda y: torch.softmax(y, -1),
        lambda y: F.log_softmax(y, -1),
        lambda y: F.layer_norm(y, (8,)),
        lambda y: F.group_norm(y.view(2, 8, 1), 2),
        lambda y: y.exp(),
        lambda y: y.log(),
        lambda y: y.pow(2),
        lambda y: y.sum(),
        lambda y: y.cumsum(-1),
    ],
    ids=[
        "softmax",
        "log_softmax",
        "layer_norm",
        "group_norm",
        "exp",
        "log",
        "pow",
        "sum",
        "cumsum",
    ],
)
def test_cpu_autocast_fp16_has_no_fp32_policy_for_cuda_fp32_ops(op):
    """CPU float16 autocast runs ops that CUDA autocast puts in float32 (softmax, log_softmax, layer_norm, group_norm, exp, log, pow, sum, cumsum) in float16."""
    x = torch.rand(2, 8) + 0.5
    with torch.autocast("cpu", dtype=HALF):
        y = nn.Linear(8, 8)(x).abs() + 0.5  # a float16 activation
        assert y.dtype == HALF
        assert op(y).dtype == HALF


def test_cpu_autocast_fp16_casts_losses_to_fp32():
    """CPU float16 autocast does have an fp32 list: losses such as mse_loss and cross_entropy come out float32."""
    x = torch.randn(2, 8)
    with torch.autocast("cpu", dtype=HALF):
        y = nn.Linear(8, 8)(x)
        assert F.mse_loss(y, y.detach()).dtype == torch.float32
        assert F.cross_entropy(y, torch.tensor([0, 1])).dtype == torch.float32


def test_cpu_autocast_default_is_bfloat16():
    """``torch.autocast("cpu")`` with no dtype runs linear layers in bfloat16."""
    with torch.autocast("cpu"):
        assert nn.Linear(4, 4)(torch.randn(1, 4)).dtype == torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="this fact is about CPU-only builds")
def test_cuda_autocast_on_cpu_only_build_warns_and_disables_itself(caught_warnings):
    """On a CPU-only build, ``torch.autocast("cuda")`` warns "CUDA is not available ... Disabling autocast." and does nothing."""
    linear = nn.Linear(4, 4)
    with torch.autocast("cuda", dtype=HALF):
        assert not torch.is_autocast_enabled("cuda")
        out = linear(torch.randn(1, 4))
    assert out.dtype == torch.float32
    messages = [str(w.message) for w in caught_warnings if issubclass(w.category, UserWarning)]
    assert any("Disabling autocast" in m for m in messages)


DEPRECATED = {
    "torch.cuda.amp.autocast": (
        lambda: torch.cuda.amp.autocast(),
        "torch.amp.autocast('cuda', args...)",
    ),
    "torch.cuda.amp.GradScaler": (
        lambda: torch.cuda.amp.GradScaler(),
        "torch.amp.GradScaler('cuda', args...)",
    ),
    "torch.cpu.amp.autocast": (
        lambda: torch.cpu.amp.autocast(),
        "torch.amp.autocast('cpu', args...)",
    ),
    "torch.cpu.amp.GradScaler": (
        lambda: torch.cpu.amp.GradScaler(),
        "torch.amp.GradScaler('cpu', args...)",
    ),
}


@pytest.mark.parametrize("name", DEPRECATED)
def test_old_amp_spellings_emit_future_warning(name, caught_warnings):
    """``torch.cuda.amp.autocast`` / ``GradScaler`` and ``torch.cpu.amp.autocast`` / ``GradScaler`` emit a FutureWarning naming their ``torch.amp`` replacement."""
    make, replacement = DEPRECATED[name]
    make()
    future = [str(w.message) for w in caught_warnings if issubclass(w.category, FutureWarning)]
    assert any(replacement in m for m in future), future


def test_old_custom_fwd_emits_future_warning(caught_warnings):
    """``torch.cuda.amp.custom_fwd`` emits a FutureWarning pointing at ``torch.amp.custom_fwd(device_type='cuda')``."""

    @torch.cuda.amp.custom_fwd
    def forward(ctx, x):  # pragma: no cover - never called
        return x

    future = [str(w.message) for w in caught_warnings if issubclass(w.category, FutureWarning)]
    assert any("torch.amp.custom_fwd" in m for m in future), future


def test_torch_amp_gradscaler_exists():
    """``torch.amp.GradScaler`` exists and takes the device type as its first argument."""
    scaler = torch.amp.GradScaler("cpu")
    assert isinstance(scaler, torch.amp.GradScaler)
    assert scaler.is_enabled()


def test_every_fp401_replacement_exists_with_its_device_argument(caught_warnings):
    """Each ``torch.amp`` replacement FP401 writes exists in the installed torch (newer than
    every ``since`` of data/deprecated_amp.py) and takes the device as the fix passes it."""
    from fp16lint.data.deprecated_amp import DEPRECATED

    installed = tuple(int(n) for n in torch.__version__.split("+")[0].split(".")[:2])
    for rep in DEPRECATED.values():
        assert installed >= rep.since
        new = getattr(torch.amp, rep.new.rsplit(".", 1)[1])
        if rep.kind == "decorator":
            assert callable(new(device_type=rep.device)(lambda ctx, x: x))
        elif rep.kind == "scaler":
            assert isinstance(new(rep.device, init_scale=1024), torch.amp.GradScaler)
        else:
            with new(rep.device, enabled=False):
                pass


def _fp16_model_and_scaled_backward(device: str):
    model = nn.Linear(4, 4).to(device).half()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler(device)
    loss = model(torch.randn(2, 4, device=device, dtype=HALF)).float().sum()
    scaler.scale(loss).backward()
    return scaler, optimizer


def test_cpu_gradscaler_refuses_fp16_gradients():
    """``torch.amp.GradScaler("cpu").unscale_`` raises "Attempting to unscale FP16 gradients" for a ``.half()`` model, no GPU needed."""
    scaler, optimizer = _fp16_model_and_scaled_backward("cpu")
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        scaler.unscale_(optimizer)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this fact is about CPU-only builds")
def test_cuda_gradscaler_on_cpu_only_build_disables_itself(caught_warnings):
    """On a CPU-only build, ``torch.amp.GradScaler("cuda")`` warns and disables itself, so it cannot show the fp16 refusal."""
    scaler = torch.amp.GradScaler("cuda")
    assert not scaler.is_enabled()
    assert any("CUDA is not available" in str(w.message) for w in caught_warnings)


@pytest.mark.cuda
@requires_cuda
def test_cuda_gradscaler_refuses_fp16_gradients():
    """``torch.amp.GradScaler("cuda").unscale_`` raises "Attempting to unscale FP16 gradients" for a ``.half()`` model."""
    scaler, optimizer = _fp16_model_and_scaled_backward("cuda")
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        scaler.unscale_(optimizer)


@pytest.mark.cuda
@requires_cuda
def test_cuda_autocast_runs_softmax_and_layer_norm_in_fp32():
    """Under ``torch.autocast("cuda", dtype=torch.float16)``, linear is float16 but softmax and layer_norm come out float32."""
    linear = nn.Linear(8, 8).cuda()
    with torch.autocast("cuda", dtype=HALF):
        y = linear(torch.randn(2, 8, device="cuda"))
        assert y.dtype == HALF
        assert torch.softmax(y, -1).dtype == torch.float32
        assert F.layer_norm(y, (8,)).dtype == torch.float32


@pytest.mark.cuda
@requires_cuda
def test_cuda_autocast_does_not_touch_in_place_ops():
    """CUDA autocast leaves in-place ops alone: ``y.exp_()`` on a float16 activation stays float16."""
    linear = nn.Linear(8, 8).cuda()
    with torch.autocast("cuda", dtype=HALF):
        y = linear(torch.randn(2, 8, device="cuda"))
        assert y.exp().dtype == torch.float32
        assert y.exp_().dtype == HALF
