"""Library helpers that return the dtype they are given (on the devices where it matters here),
so ``dtype=helper(torch.float64, device)`` makes a float64 tensor.

Source: diffusers 0.42.1, diffusers/utils/torch_utils.py ``maybe_adjust_dtype_for_device``:
returns its ``dtype`` argument, except on devices listed in ``_DTYPE_UNSUPPORTED_DEVICES``
for it (float64 on ``mps``), where it returns float32. diffusers' rotary helpers build their
frequencies with it (``rope`` of HiDream, Flux-style embeddings). Checked by
tests/facts/test_rotary_angles.py.
"""

from __future__ import annotations

# qualified name -> position of the dtype argument it returns
RETURNS_ITS_DTYPE: dict[str, int] = {
    "diffusers.utils.torch_utils.maybe_adjust_dtype_for_device": 0,
}
