"""Facts behind the AMP training-loop rules (FP403, FP405, FP406) and FP502/FP503.

CUDA facts carry ``@pytest.mark.cuda`` and run only where a GPU is present; where the CPU build
can show the same mechanism (the Python-level dtype check in ``torch.autocast.__init__``, the
autocast dispatch casting to whatever ``get_autocast_dtype`` says), a CPU test shows it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (fact cited from PyTorch sources)"
)


# --- FP406: autocast with dtype=float32 ----------------------------------------------------
def test_cpu_autocast_rejects_float32_and_disables_itself(caught_warnings):
    """``torch.autocast("cpu", dtype=torch.float32)`` warns "the target dtype is not supported. Disabling autocast." and bfloat16 inputs stay bfloat16 inside it."""
    a = torch.randn(4, 4, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.float32):
        assert not torch.is_autocast_enabled("cpu")
        assert (a @ a).dtype == torch.bfloat16
    messages = [str(w.message) for w in caught_warnings]
    assert any("target dtype is not supported. Disabling autocast" in m for m in messages)


def test_cuda_autocast_keeps_float32_enabled(monkeypatch, caught_warnings):
    """``torch.autocast("cuda", dtype=torch.float32)`` is not rejected: its dtype check exempts CUDA, so the region stays enabled with float32 and no warning (checked without a GPU by pretending CUDA is available)."""
    monkeypatch.setattr(torch.cuda.amp.common, "amp_definitely_not_available", lambda: False)
    region = torch.autocast("cuda", dtype=torch.float32)
    assert region._enabled is True
    assert region.fast_dtype == torch.float32
    assert not [w for w in caught_warnings if "autocast" in str(w.message).lower()]


def test_autocast_dispatch_casts_only_listed_ops_to_its_dtype():
    """With the autocast dtype set to float32 (as CUDA allows), listed ops (mm, linear) run in float32 but unlisted ones (add, softmax on CPU) stay in the inputs' 16-bit dtype."""
    a = torch.randn(4, 4, dtype=torch.bfloat16)
    previous = torch.get_autocast_dtype("cpu")
    torch.set_autocast_enabled("cpu", True)
    torch.set_autocast_dtype("cpu", torch.float32)
    try:
        assert (a @ a).dtype == torch.float32
        assert torch.nn.functional.linear(a, a).dtype == torch.float32
        assert (a + a).dtype == torch.bfloat16
    finally:
        torch.set_autocast_enabled("cpu", False)
        torch.set_autocast_dtype("cpu", previous)


@pytest.mark.cuda
@requires_cuda
def test_cuda_autocast_float32_leaves_unlisted_ops_in_float16():
    """Under ``torch.autocast("cuda", dtype=torch.float32)``, a float16 matmul runs in float32 but float16 elementwise arithmetic stays float16."""
    a = torch.randn(8, 8, device="cuda", dtype=torch.float16)
    with torch.autocast("cuda", dtype=torch.float32):
        assert (a @ a).dtype == torch.float32
        assert (a * 2 + a).dtype == torch.float16


# --- FP403: clipping before unscale_ ---------------------------------------------------------
def test_scaled_gradients_are_multiplied_by_the_loss_scale():
    """After ``scaler.scale(loss).backward()`` and before ``unscale_``, gradients are the true ones times the loss scale (65536 by default), so a clip threshold compares against scaled values."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x = torch.randn(8, 4)
    model(x).pow(2).mean().backward()
    true_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    model.zero_grad()
    scaler = torch.amp.GradScaler("cpu")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler.scale(model(x).pow(2).mean()).backward()
    scaled_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    assert torch.isclose(scaled_norm, true_norm * 65536.0, rtol=1e-4)
    scaler.unscale_(optimizer)
    assert torch.isclose(
        torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")), true_norm, rtol=1e-4
    )


# --- FP503: fp16_full_eval ---------------------------------------------------------------------
def test_fp16_full_eval_casts_the_model_itself(tmp_path):
    """``TrainingArguments(fp16_full_eval=True)``: ``Trainer.evaluate`` runs the forward pass with float16 parameters and leaves the model object float16 afterwards."""
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        vocab_size=50,
    )
    model = transformers.BertForSequenceClassification(config)
    seen: list[torch.dtype] = []
    model.register_forward_pre_hook(lambda module, _: seen.append(module.classifier.weight.dtype))
    data = [{"input_ids": torch.tensor([1, 2, 3]), "labels": torch.tensor(0)} for _ in range(2)]
    args = transformers.TrainingArguments(
        str(tmp_path),
        fp16_full_eval=True,
        per_device_eval_batch_size=2,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    transformers.Trainer(model=model, args=args, eval_dataset=data).evaluate()
    assert seen and set(seen) == {torch.float16}
    assert model.classifier.weight.dtype == torch.float16
