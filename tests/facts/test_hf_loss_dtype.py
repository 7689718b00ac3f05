"""A Hugging Face model's ``.loss`` is float32 even when the model runs in float16.

transformers' loss functions upcast the logits first (``logits.float()`` in
``transformers/loss/loss_utils.py``: ``ForCausalLMLoss``, ``ForMaskedLMLoss``,
``ForTokenClassification``), so the loss a float16 model returns is float32. The model is a
tiny Llama built from a config (random weights): nothing is downloaded.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from fp16lint.data.hf_outputs import FLOAT32_OUTPUTS, TRANSFORMERS_VERSION  # noqa: E402


def _tiny_llama() -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return LlamaForCausalLM(config).half().eval()


def test_fp16_causal_lm_loss_is_float32():
    """A float16 causal LM's ``out.loss`` is float32 while its ``out.logits`` are float16."""
    model = _tiny_llama()
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    assert out.logits.dtype == torch.float16
    assert out.loss.dtype == torch.float32


def test_table_names_the_installed_version():
    """The table's claim was read in the installed transformers (``loss`` is listed)."""
    assert transformers.__version__ == TRANSFORMERS_VERSION
    assert "loss" in FLOAT32_OUTPUTS
