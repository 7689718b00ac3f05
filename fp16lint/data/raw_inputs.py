"""Parameter names that hold a model's raw input: audio samples, spectrogram features, image
pixels. Silent or zero-padded audio and blank padding are exact zeros, so an epsilon guarding
a norm of such a value is reached (FP304's zero evidence, ``analysis.zeros``).

Source: the Hugging Face Transformers glossary and model input docs
(https://huggingface.co/docs/transformers/glossary, "input_values", "input_features",
"pixel_values"; transformers 4.x), whose models take these names for raw inputs.
"""

from __future__ import annotations

RAW_INPUTS = frozenset({"input_values", "input_features", "pixel_values"})
