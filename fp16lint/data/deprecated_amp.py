"""Deprecated AMP entry points and their replacements.

Source: torch/cuda/amp/autocast_mode.py, torch/cuda/amp/grad_scaler.py and torch/cpu/amp/*.py
in torch 2.13 (each class is wrapped in ``typing_extensions.deprecated(..., FutureWarning)``
naming its replacement); ``torch.amp.GradScaler`` exists since 2.3, the warnings since 2.4
(../shared/FACTS.md §5). The old positional parameter orders below are copied from those
signatures: the new ``torch.amp.autocast`` takes ``(device_type, dtype, enabled, ...)``, so
old positional arguments must become keywords.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Replacement:
    new: str  # qualified name of the replacement
    device: str  # "cuda" or "cpu"
    kind: str  # "autocast", "scaler" or "decorator"
    old_positional: tuple[str, ...]  # the deprecated callable's positional parameters


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
            f"torch.amp.{_name}", "cuda", "decorator", ("fn",)
        )

# Modules whose `from M import name` lines are rewritten to `from torch.amp import name`.
DEPRECATED_MODULES = {"torch.cuda.amp": "cuda", "torch.cpu.amp": "cpu"}
