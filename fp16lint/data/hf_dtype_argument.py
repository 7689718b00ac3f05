"""The keyword that Hugging Face loaders take for the load dtype (FP501's fix).

transformers: ``from_pretrained(..., dtype=...)`` since 4.56.0 (PR #39782, "Use `dtype` instead
of `torch_dtype` everywhere"). Checked in the released wheels' transformers/modeling_utils.py:
4.55.4's ``PreTrainedModel.from_pretrained`` pops only ``torch_dtype`` (a ``dtype`` keyword is
left in the kwargs that go on to the config and the model's constructor, so it does not set the
load dtype); 4.56.0's pops ``dtype`` and keeps ``torch_dtype`` "for BC". The installed 5.24.0
still accepts ``torch_dtype`` (tests/facts/test_transformers_dtypes.py). So ``torch_dtype=`` works
with every version, ``dtype=`` only from 4.56.

diffusers: 0.42.1 accepts both (diffusers/utils/deprecation_utils.py ``_resolve_dtype``
deprecates ``torch_dtype`` for removal in 1.0.0; tests/facts/test_pipeline_casts.py). Its sources
do not say which release added ``dtype``, while every release so far takes ``torch_dtype``: a
fix for a diffusers load uses ``torch_dtype``.
"""

from __future__ import annotations

TRANSFORMERS_DTYPE_SINCE: tuple[int, ...] = (4, 56)
DIFFUSERS_DTYPE_KEYWORD = "torch_dtype"
