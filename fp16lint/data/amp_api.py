"""Loss scaling and gradient clipping entry points, by qualified name.

Sources (torch 2.13): ``torch.amp.GradScaler(device="cuda", init_scale, growth_factor,
backoff_factor, growth_interval, enabled)`` in torch/amp/grad_scaler.py, re-exported as
``torch.GradScaler``; the deprecated ``torch.cuda.amp.GradScaler`` / ``torch.cpu.amp.GradScaler``
subclasses take no device (torch/cuda/amp/grad_scaler.py, torch/cpu/amp/grad_scaler.py);
``ShardedGradScaler`` (torch/distributed/fsdp/sharded_grad_scaler.py) subclasses GradScaler with
the same leading parameters. Clipping functions: torch/nn/utils/clip_grad.py (re-exported by
torch/nn/utils/__init__.py); timm's wrappers in timm/utils/clip_grad.py and timm/utils/agc.py
(they clip whatever gradients they are given).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScalerClass:
    device: str | None  # the device it implies; None: the ``device`` parameter (default "cuda")
    enabled_position: int  # index of ``enabled`` among the positional parameters


_NEW = ScalerClass(None, 5)
GRAD_SCALERS: dict[str, ScalerClass] = {
    "torch.GradScaler": _NEW,
    "torch.amp.GradScaler": _NEW,
    "torch.amp.grad_scaler.GradScaler": _NEW,
    "torch.distributed.fsdp.sharded_grad_scaler.ShardedGradScaler": _NEW,
    **{
        f"torch.{device}.amp{module}.GradScaler": ScalerClass(device, 4)
        for device in ("cuda", "cpu")
        for module in ("", ".grad_scaler")
    },
}

GRAD_CLIPPING = frozenset(
    {
        *(
            f"torch.nn.utils{module}.{name}"
            for module in ("", ".clip_grad")
            for name in ("clip_grad_norm_", "clip_grad_norm", "clip_grad_value_")
        ),
        "torch.nn.utils.clip_grads_with_norm_",
        "torch.nn.utils.clip_grad._clip_grads_with_norm_",
        "timm.utils.dispatch_clip_grad",
        "timm.utils.clip_grad.dispatch_clip_grad",
        "timm.utils.adaptive_clip_grad",
        "timm.utils.agc.adaptive_clip_grad",
    }
)
