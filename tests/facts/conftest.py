"""Shared helpers for the facts tests.

Every test in this folder checks one claim that the docs make about float16 in PyTorch and
transformers, on the versions installed here. The docs link to the tests, so a claim that stops
holding after an upgrade shows up as a failing test, not as a stale sentence.

Conventions:

- each test's docstring states its claim in one sentence;
- every test starts from ``torch.manual_seed(0)`` (autouse fixture below);
- facts that need a GPU carry ``@pytest.mark.cuda`` plus a ``skipif`` on
  ``torch.cuda.is_available()``: they run only where a CUDA device is present;
- transformers never reaches the network (``HF_HUB_OFFLINE=1`` is set before it is imported).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

# Set before anything imports transformers or huggingface_hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Make every facts test deterministic."""
    torch.manual_seed(0)


class Zoo(nn.Module):
    """One module holding every kind of tensor a cast may or may not touch."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)  # float parameters
        self.bn = nn.BatchNorm1d(4)  # float running stats + int64 num_batches_tracked
        self.register_buffer("scale", torch.ones(4))  # persistent float buffer
        self.register_buffer("cache", torch.ones(4), persistent=False)  # non-persistent
        self.register_buffer("index", torch.arange(4))  # int64 buffer
        self.register_buffer("mask", torch.tensor([True, False, True, False]))  # bool buffer
        self.register_buffer("phase", torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64))
        self.plain = torch.ones(4)  # plain attribute, not registered


@pytest.fixture
def zoo() -> Zoo:
    return Zoo()


@pytest.fixture
def caught_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Every Python warning raised during the test, with no de-duplication."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


# --------------------------------------------------------------------------- transformers


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def hf_log() -> Iterator[list[str]]:
    """Messages logged by transformers during the test.

    transformers' root logger does not propagate, so ``caplog`` cannot see it; a handler is
    attached directly. ``warning_once``'s cache is cleared so a message already emitted by an
    earlier test is emitted again.
    """
    pytest.importorskip("transformers")
    logger = logging.getLogger("transformers")
    handler = _ListHandler()
    logger.addHandler(handler)
    once = getattr(logging.Logger, "warning_once", None)
    if once is not None and hasattr(once, "cache_clear"):
        once.cache_clear()
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _tiny_t5_config():
    from transformers import T5Config

    return T5Config(
        vocab_size=100,
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )


def _save_tiny_t5(path: Path, cast: Callable[[nn.Module], nn.Module] | None = None) -> Path:
    from transformers import T5ForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(_tiny_t5_config())
    if cast is not None:
        model = cast(model)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_t5_fp32_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised T5 saved in fp32 (about 30 kB, built offline)."""
    pytest.importorskip("transformers")
    return _save_tiny_t5(tmp_path_factory.mktemp("t5_fp32"))


@pytest.fixture(scope="session")
def tiny_t5_fp16_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny T5 saved after ``.half()``: an fp16 checkpoint."""
    pytest.importorskip("transformers")
    return _save_tiny_t5(tmp_path_factory.mktemp("t5_fp16"), cast=lambda m: m.half())


@pytest.fixture
def tiny_t5_config():
    """The config of the tiny T5 (d_model=16, d_ff=32, one layer each side, two heads)."""
    pytest.importorskip("transformers")
    return _tiny_t5_config()
