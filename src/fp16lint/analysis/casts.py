"""Cast calls in every spelling: ``x.half()``, ``x.to(torch.float16)``, ``x.to(dtype=...)``,
``x.to(device, torch.half)``, ``x.to(device=..., dtype=...)``, ``x.type(torch.HalfTensor)``,
``x.bfloat16()``, ``x.float()``... — what they convert to and where.

Whether the receiver is a module (in-place, whole model) or a tensor (a new tensor) is the
receiver analysis' question (``analysis.receivers``), not this one's.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from fp16lint.analysis.dtypes import DType, DTypeFact, dtype_of, string_value
from fp16lint.analysis.names import NameResolver

_METHOD_DTYPES = {
    "half": DType.FP16,
    "bfloat16": DType.BF16,
    "float": DType.FP32,
    "double": DType.FP64,
}
CAST_METHODS = frozenset({*_METHOD_DTYPES, "to", "type", "cuda", "cpu"})


@dataclass(frozen=True)
class CastSite:
    call: cst.Call
    receiver: cst.BaseExpression
    method: str  # half, to, type, bfloat16, float, double, cuda, cpu
    dtype: DTypeFact | None  # None: the call moves the value without changing its dtype
    device: str | None  # a literal device ("cuda", "cpu", "cuda:0") when one is written

    @property
    def to_fp16(self) -> bool:
        return self.dtype is not None and self.dtype.is_fp16


def _device_of(expr: cst.BaseExpression | None, names: NameResolver) -> str | None:
    if expr is None:
        return None
    text = string_value(expr)
    if text is not None:
        return text
    if isinstance(expr, cst.Call) and names.qualname(expr.func) == "torch.device" and expr.args:
        return string_value(expr.args[0].value)
    return None


def cast_of(call: cst.Call, names: NameResolver) -> CastSite | None:
    """The cast ``call`` performs, or None if it is not a cast method call."""
    func = call.func
    if not isinstance(func, cst.Attribute) or func.attr.value not in CAST_METHODS:
        return None
    method = func.attr.value
    if method in _METHOD_DTYPES:
        return CastSite(call, func.value, method, DTypeFact(_METHOD_DTYPES[method]), None)
    if method in ("cuda", "cpu"):
        return CastSite(call, func.value, method, None, method)
    if method == "type":
        if not call.args:
            return None  # x.type() returns the type name
        return CastSite(call, func.value, method, dtype_of(call.args[0].value, names, strings=True), None)
    dtype: DTypeFact | None = None
    device: str | None = None
    for arg in call.args:
        if arg.star:
            continue
        keyword = arg.keyword.value if arg.keyword is not None else None
        if keyword == "dtype":
            dtype = dtype_of(arg.value, names)
        elif keyword == "device":
            device = _device_of(arg.value, names)
        elif keyword is None:
            found = dtype_of(arg.value, names)
            if found is not None:
                dtype = found
            elif device is None:
                device = _device_of(arg.value, names)
    return CastSite(call, func.value, method, dtype, device)
