"""Mask fills: which values a mask may hold in which dtype, and how a mask is used.

One definition for the linter's FP301/FP302 fixes and the runtime companion (no torch here).
Every number below is checked against torch by tests/facts/test_mask_fills.py:

- A *fill-then-softmax* mask writes its value into the scores themselves
  (``scores.masked_fill(m, v)`` then ``softmax``): nothing is added afterwards, so the dtype's
  own limit ``torch.finfo(scores.dtype).min`` is safe in every dtype, and a fully masked row
  comes out uniform, not NaN.
- An *additive* mask is built first and added to the scores later (``scores + mask``,
  ``attn_weights += attn_mask``, ``scaled_dot_product_attention(attn_mask=mask)``). In float16,
  ``finfo(float16).min`` plus any score below -16 rounds past 65504 to ``-inf``, and a fully
  masked row becomes NaN. ``ADDITIVE_FP16_FILL`` (-1e4) survives the addition for any score
  above -55504 and still masks (``exp(-1e4)`` is 0 in every dtype), so the fix writes
  ``-1e4 if t.dtype == torch.float16 else <the original value>``: unchanged outside float16.
- A value equal to its dtype's limit (``finfo(dtype).min``/``.max``) written by a fill is a
  deliberate mask value, not an overflowed activation: ``is_limit_fill``.
"""

from __future__ import annotations

import math
import struct
from enum import Enum

# torch.finfo(dtype).max for the floating dtypes (min is its negative).
DTYPE_MAX: dict[str, float] = {
    "float16": 65504.0,
    "bfloat16": 3.3895313892515355e38,
    "float32": 3.4028234663852886e38,
    "float64": 1.7976931348623157e308,
}
FP16_MAX = DTYPE_MAX["float16"]
# The value an additive mask gets in float16: finite after adding any score above -55504.
ADDITIVE_FP16_FILL = -1e4
ADDITIVE_FP16_FILL_TEXT = "-1e4"


class MaskUse(Enum):
    """How the tensor a mask value is written into is used afterwards."""

    FILL = "fill-then-softmax"  # the scores themselves, then softmax: the dtype's limit is safe
    ADDITIVE = "additive"  # added to the scores later: needs a value that survives the sum
    UNKNOWN = "unknown"  # returned or stored: the additive-safe value fits both uses


# Calls whose first argument (or receiver) is scores about to be normalised.
SOFTMAX_NAMES = frozenset({"softmax", "log_softmax", "softmin", "_softmax"})
# Keywords and calls that add a float mask to the scores (SDPA adds a float ``attn_mask``).
ADDITIVE_KEYWORDS = frozenset({"attn_mask", "attention_mask", "attn_bias", "bias", "mask"})
ADDITIVE_CALLS = frozenset({"torch.nn.functional.scaled_dot_product_attention"})


def to_fp16(value: float) -> float:
    """``value`` rounded to float16 as torch rounds it (round to nearest even; ±inf past
    65504 once the rounding crosses 65520)."""
    if math.isnan(value) or math.isinf(value):
        return value
    if abs(value) >= 65520.0:
        return math.copysign(math.inf, value)
    return struct.unpack("<e", struct.pack("<e", value))[0]


def fp16_sum_is_finite(fill: float, score: float) -> bool:
    """Whether ``fill + score`` computed in float16 is finite (both operands float16)."""
    return math.isfinite(to_fp16(to_fp16(fill) + to_fp16(score)))


def is_limit_fill(value: float, dtype: str) -> bool:
    """Whether ``value`` in a tensor of ``dtype`` ("float16", "bfloat16"...) is a deliberate
    mask fill: exactly the dtype's own ``finfo`` limit (``-65504`` in float16)."""
    limit = DTYPE_MAX.get(dtype.removeprefix("torch."))
    return limit is not None and abs(value) == limit
