"""Parameter names that hold a model's raw input: audio samples, spectrogram features, image
pixels. Silent or zero-padded audio and blank padding are exact zeros, so an epsilon guarding
a norm of such a value is reached (FP304's zero evidence, ``analysis.zeros``). They are also
of unit scale, so their squares stay far below float16's 65504 (FP203, ``analysis.hazards``):
image processors rescale pixels by 1/255 and normalise them with per-channel means and
deviations (``image_processing_utils.py``, ``rescale_factor = 1 / 255``; ``utils/constants.py``
ImageNet means and deviations), audio samples lie in [-1, 1] or are normalised to zero mean and
unit variance (``feature_extraction_wav2vec2.py``, ``zero_mean_unit_var_norm``), and Whisper's
log-mel features are scaled to about [-1, 1.5] (``feature_extraction_whisper.py``,
``(log_spec + 4.0) / 4.0``); transformers 5.24.0.

Source: the Hugging Face Transformers glossary and model input docs
(https://huggingface.co/docs/transformers/glossary, "input_values", "input_features",
"pixel_values"; transformers 4.x), whose models take these names for raw inputs.
"""

from __future__ import annotations

RAW_INPUTS = frozenset({"input_values", "input_features", "pixel_values"})
