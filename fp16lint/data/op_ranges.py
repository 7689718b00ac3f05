"""Ranges of torch functions' outputs, whatever their finite input: what bounds a value.

Sources: the torch 2.x reference page of each function
(https://pytorch.org/docs/stable/generated/torch.<name>.html and
https://pytorch.org/docs/stable/nn.functional.html), which define them as ``1 / (1 + exp(-x))``
(sigmoid), ``exp(x_i) / sum_j exp(x_j)`` (softmax, softmin), ``x / max(||x||_p, eps)``
(``F.normalize``: every component of a unit vector lies in [-1, 1]), ``x / (1 + |x|)``
(softsign), ``min(max(0, x), 6)`` (relu6), ``relu6(x + 3) / 6`` (hardsigmoid),
``clamp(x, -1, 1)`` (hardtanh's defaults), the cosine of an angle (cosine_similarity), and the
trigonometric and error functions' textbook ranges. Every range is checked in float16 against
torch by tests/facts/test_op_ranges.py.
"""

from __future__ import annotations

import math

# The last part of the function's or method's name -> (lowest, highest) output.
OUTPUT_RANGES: dict[str, tuple[float, float]] = {
    "sigmoid": (0.0, 1.0),
    "expit": (0.0, 1.0),  # torch.special.expit
    "hardsigmoid": (0.0, 1.0),
    "softmax": (0.0, 1.0),
    "softmin": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "hardtanh": (-1.0, 1.0),  # with its default min_val/max_val (checked by the caller)
    "softsign": (-1.0, 1.0),
    "erf": (-1.0, 1.0),
    "sin": (-1.0, 1.0),
    "cos": (-1.0, 1.0),
    "normalize": (-1.0, 1.0),
    "cosine_similarity": (-1.0, 1.0),
    "relu6": (0.0, 6.0),
    "atan": (-math.pi / 2, math.pi / 2),
    "log_softmax": (-math.inf, 0.0),
    "logsigmoid": (-math.inf, 0.0),
}

# Functions whose output is never negative (abs, relu, ...), whatever their input.
NONNEGATIVE = frozenset({"abs", "relu", "softplus", "square", "exp", "sqrt", "norm"})

# Shape, layout and float-dtype changes: the output holds the input's values (in float16,
# rounded to the nearest value, which keeps a bound within float16's range).
VALUE_PRESERVING = frozenset(
    {
        "float", "half", "bfloat16", "double", "to", "type_as", "detach", "clone",
        "contiguous", "view", "view_as", "reshape", "reshape_as", "transpose", "permute",
        "unsqueeze", "squeeze", "flatten", "expand", "expand_as", "repeat", "flip", "roll",
        "split", "chunk", "unbind", "narrow", "t",
    }
)  # fmt: skip

# Reductions whose result lies within the range of the values reduced.
WITHIN_RANGE = frozenset({"mean", "nanmean", "amax", "amin", "median", "nanmedian"})

FLOAT16_MAX = 65504.0  # torch.finfo(torch.float16).max; 65520 and above round to inf
