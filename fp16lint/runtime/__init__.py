"""The runtime companion: run a model in fp32, fp16, fp16 autocast and bf16 and see where it fails.

``fp16lint.runtime.check(model, x).assert_ok()`` is a one-line fp16 test for a user's own suite.
This package is the only part of fp16lint that imports torch, and it does so lazily: importing
``fp16lint.runtime`` costs nothing until a name below is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "OPS_OF_INTEREST",
    "CudaRequiredError",
    "JoinResult",
    "Report",
    "RunOptions",
    "Thresholds",
    "check",
    "check_target",
    "join",
    "torch_available",
]

_LAZY = {
    "check": ("api", "check"),
    "check_target": ("api", "check_target"),
    "Report": ("report", "Report"),
    "Thresholds": ("records", "Thresholds"),
    "RunOptions": ("runner", "RunOptions"),
    "CudaRequiredError": ("runner", "CudaRequiredError"),
    "OPS_OF_INTEREST": ("probe", "OPS_OF_INTEREST"),
    "join": ("join", "join"),
    "JoinResult": ("join", "JoinResult"),
}

INSTALL_HINT = (
    "the runtime companion needs PyTorch: install torch for your platform "
    "(https://pytorch.org/get-started/locally/), then `pip install 'fp16lint[runtime]'`"
)


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from .api import check, check_target
    from .join import JoinResult, join
    from .probe import OPS_OF_INTEREST
    from .records import Thresholds
    from .report import Report
    from .runner import CudaRequiredError, RunOptions
