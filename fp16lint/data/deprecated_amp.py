"""Deprecated AMP entry points and their replacements.

Source: torch/cuda/amp/autocast_mode.py, torch/cuda/amp/grad_scaler.py and torch/cpu/amp/*.py
in torch 2.13 (each class is wrapped in ``typing_extensions.deprecated(..., FutureWarning)``
naming its replacement); ``torch.amp.GradScaler`` exists since 2.3, the warnings since 2.4
(../shared/FACTS.md §5). The old positional parameter orders below are copied from those
signatures: the new ``torch.amp.autocast`` takes ``(device_type, dtype, enabled, ...)``, so
old positional arguments must become keywords.

``since``: the first torch whose ``torch.amp`` has the replacement, read from PyTorch's history
(not runnable here): ``torch/amp/grad_scaler.py`` and the device argument of
``torch.amp.GradScaler`` arrived in 2.3 (pytorch/pytorch#109993, the CPU GradScaler stack of
issue #111559); ``torch.amp.custom_fwd/custom_bwd(device_type=...)`` in 2.4
(pytorch/pytorch#126531; deepspeedai/DeepSpeed#7920 falls back below 2.4). ``torch.amp.autocast``
is older, but a ``from torch.cuda.amp import GradScaler, autocast`` line is rewritten as one, so
autocast gets GradScaler's 2.3 too (issue 18: below 2.3, FP401 rewrites nothing).
tests/facts/test_autocast_and_amp.py checks each replacement on the installed torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Replacement:
    new: str  # qualified name of the replacement
    device: str  # "cuda" or "cpu"
    kind: str  # "autocast", "scaler" or "decorator"
    old_positional: tuple[str, ...]  # the deprecated callable's positional parameters
    since: tuple[int, int] = (2, 3)  # the first torch that has ``new`` as used by the fix


_AUTOCAST = ("enabled", "dtype", "cache_enabled")
_SCALER = ("init_scale", "growth_factor", "backoff_factor", "growth_interval", "enabled")

DEPRECATED: dict[str, Replacement] = {}
for _device in ("cuda", "cpu"):
    for _module in (f"torch.{_device}.amp", f"torch.{_device}.amp.autocast_mode"):
        DEPRECATED[f"{_module}.autocast"] = Replacement(
            "torch.amp.autocast", _device, "autocast", _AUTOCAST
        )
    for _module in (f"torch.{_device}.amp", f"torch.{_device}.amp.grad_scaler"):
        DEPRECATED[f"{_module}.GradScaler"] = Replacement(
            "torch.amp.GradScaler", _device, "scaler", _SCALER
        )
for _module in ("torch.cuda.amp", "torch.cuda.amp.autocast_mode"):
    for _name in ("custom_fwd", "custom_bwd"):
        DEPRECATED[f"{_module}.{_name}"] = Replacement(
            f"torch.amp.{_name}", "cuda", "decorator", ("fn",), since=(2, 4)
        )

# Modules whose `from M import name` lines are rewritten to `from torch.amp import name`.
DEPRECATED_MODULES = {"torch.cuda.amp": "cuda", "torch.cpu.amp": "cpu"}
