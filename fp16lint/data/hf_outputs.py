"""Fields of a Hugging Face model's output that are float32 whatever the model's dtype.

Source: transformers 5.24.0, ``transformers/loss/loss_utils.py``: the loss functions the models
use (``ForCausalLMLoss`` line 61, ``ForMaskedLMLoss`` line 85, ``ForTokenClassification`` line
146) upcast the logits with ``logits = logits.float()`` before the cross-entropy, so ``.loss``
is float32 even for a float16 model (tests/facts/test_hf_loss_dtype.py).
"""

TRANSFORMERS_VERSION = "5.24.0"

# attribute of the model's output -> why it is float32
FLOAT32_OUTPUTS: dict[str, str] = {
    "loss": "transformers' loss functions upcast the logits (`logits.float()`)",
}
