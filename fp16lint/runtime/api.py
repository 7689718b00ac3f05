"""The Python API: ``check(model, *args, **kwargs)`` and ``check_target(factory, inputs)``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from .records import RUN_ORDER, Thresholds
from .report import Report
from .runner import RunOptions, run_target


def _options(
    device: str | None,
    require_cuda: bool,
    backward: bool,
    cast: Callable[[torch.nn.Module], torch.nn.Module] | None,
    runs: Iterable[str] | None,
    seed: int,
    thresholds: Thresholds | None,
    local_check: bool | str,
) -> RunOptions:
    return RunOptions(
        device=device,
        require_cuda=require_cuda,
        backward=backward,
        cast=cast,
        runs=tuple(runs) if runs is not None else RUN_ORDER,
        seed=seed,
        thresholds=thresholds or Thresholds(),
        local_check=local_check,
    )


def check(
    model: torch.nn.Module,
    *args: Any,
    device: str | None = None,
    require_cuda: bool = False,
    backward: bool = False,
    cast: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
    runs: Iterable[str] | None = None,
    seed: int = 0,
    thresholds: Thresholds | None = None,
    local_check: bool | str = "auto",
    name: str | None = None,
    **kwargs: Any,
) -> Report:
    """Run ``model(*args, **kwargs)`` in fp32, as prepared (``.half()`` of an fp32 model, or the
    fp16 model as given), under fp16 autocast and in bf16, and report what happened.

    The model is copied, never changed. Keyword arguments other than the options above go to the
    model; to pass a model keyword that clashes with an option, use :func:`check_target`.

    In a test: ``fp16lint.runtime.check(model, x).assert_ok()``.
    """
    opts = _options(device, require_cuda, backward, cast, runs, seed, thresholds, local_check)
    return run_target(model, name=name, options=opts, args_kwargs=(tuple(args), dict(kwargs)))


def check_target(
    factory: Any,
    inputs: Any = None,
    *,
    name: str | None = None,
    device: str | None = None,
    require_cuda: bool = False,
    backward: bool = False,
    cast: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
    runs: Iterable[str] | None = None,
    seed: int = 0,
    thresholds: Thresholds | None = None,
    local_check: bool | str = "auto",
) -> Report:
    """Check a model built by ``factory`` (a callable or an ``nn.Module``) on ``inputs``.

    ``inputs`` is args, ``(args, kwargs)``, a kwargs mapping, a tensor, a callable returning one of
    those, or None to guess inputs from the model's first layer (Linear, Embedding, Conv*d; the
    report says so). Failures (factory raising, inputs not fitting, non-tensor outputs, NaN in the
    inputs, out of memory) are in ``report.error``; only a missing required CUDA raises.
    """
    opts = _options(device, require_cuda, backward, cast, runs, seed, thresholds, local_check)
    return run_target(factory, inputs, name=name, options=opts)
