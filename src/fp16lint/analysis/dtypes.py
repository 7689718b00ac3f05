"""Dtype facts: which floating-point type an expression names (fp16 / bf16 / fp32 / fp64).

Recognises torch dtypes in any spelling the name resolver can see (``torch.half``,
``th.float16``, ``from torch import float16 as f16``, ``DTYPE = torch.float16``), dtype strings
where an API takes them (``torch_dtype="float16"``), and the legacy tensor types
(``torch.cuda.HalfTensor`` and their string names). A name bound to fp16 on some branches and to
something else on others (``weight_dtype`` chosen from ``args.mixed_precision``) is *may-be
fp16*: rules treat it as fp16 and say "when mixed precision is fp16".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import libcst as cst

from fp16lint.analysis.names import NameResolver

_MAX_DEPTH = 6


class DType(str, Enum):
    FP16 = "float16"
    BF16 = "bfloat16"
    FP32 = "float32"
    FP64 = "float64"


@dataclass(frozen=True)
class DTypeFact:
    dtype: DType
    maybe: bool = False  # chosen at run time: this dtype on at least one branch

    @property
    def is_fp16(self) -> bool:
        return self.dtype is DType.FP16


_TORCH_DTYPES = {
    "torch.float16": DType.FP16,
    "torch.half": DType.FP16,
    "torch.bfloat16": DType.BF16,
    "torch.float32": DType.FP32,
    "torch.float": DType.FP32,
    "torch.float64": DType.FP64,
    "torch.double": DType.FP64,
    "numpy.float16": DType.FP16,
    "numpy.half": DType.FP16,
    "numpy.float32": DType.FP32,
    "numpy.float64": DType.FP64,
}
# Legacy tensor types: torch.HalfTensor, torch.cuda.HalfTensor, ... (and their string names).
LEGACY_TYPES = {
    f"torch.{device}{name}Tensor": dtype
    for device in ("", "cuda.")
    for name, dtype in (
        ("Half", DType.FP16),
        ("BFloat16", DType.BF16),
        ("Float", DType.FP32),
        ("Double", DType.FP64),
    )
}
_STRINGS = {
    "float16": DType.FP16,
    "fp16": DType.FP16,
    "half": DType.FP16,
    "bfloat16": DType.BF16,
    "bf16": DType.BF16,
    "float32": DType.FP32,
    "fp32": DType.FP32,
    "float": DType.FP32,
    "float64": DType.FP64,
    "double": DType.FP64,
    **{name.removeprefix("torch."): dtype for name, dtype in _TORCH_DTYPES.items() if name.startswith("torch.")},
}


def string_value(node: cst.BaseExpression) -> str | None:
    """The value of a plain (non-f, non-byte) string literal."""
    if isinstance(node, cst.SimpleString) and node.prefix.lower() in ("", "r", "u"):
        return node.raw_value
    return None


def dtype_of_string(text: str) -> DType | None:
    text = text.strip()
    if text in LEGACY_TYPES:
        return LEGACY_TYPES[text]
    return _STRINGS.get(text.removeprefix("torch."))


def dtype_of(
    expr: cst.BaseExpression | None,
    names: NameResolver,
    *,
    strings: bool = False,
    _depth: int = 0,
) -> DTypeFact | None:
    """The dtype ``expr`` denotes, or None when it names no dtype we can see.

    ``strings=True`` where the API takes dtype strings (``torch_dtype="float16"``,
    ``.type("torch.cuda.HalfTensor")``).
    """
    if expr is None or _depth > _MAX_DEPTH:
        return None
    if isinstance(expr, (cst.Name, cst.Attribute)):
        qualname = names.qualname(expr)
        if qualname is not None:
            known = _TORCH_DTYPES.get(qualname) or LEGACY_TYPES.get(qualname)
            if known is not None:
                return DTypeFact(known)
        if isinstance(expr, cst.Name):
            return _from_bindings(names.values(expr.value), names, strings, _depth)
        return None
    if strings:
        text = string_value(expr)
        if text is not None:
            found = dtype_of_string(text)
            return DTypeFact(found) if found is not None else None
    if isinstance(expr, cst.IfExp):
        return _combine([expr.body, expr.orelse], names, strings, _depth)
    if isinstance(expr, cst.Call) and names.qualname(expr.func) == "builtins.getattr":
        args = expr.args
        if len(args) == 2 and names.qualname(args[0].value) in ("torch", "numpy"):
            text = string_value(args[1].value)
            found = dtype_of_string(text) if text else None
            return DTypeFact(found) if found is not None else None
    return None


def _from_bindings(values, names: NameResolver, strings: bool, depth: int) -> DTypeFact | None:
    if not values:
        return None
    return _combine(list(values), names, strings, depth)


def _combine(options, names: NameResolver, strings: bool, depth: int) -> DTypeFact | None:
    """One fact for several possible values: fp16 wins (may-be) when it is among them."""
    facts = [dtype_of(option, names, strings=strings, _depth=depth + 1) for option in options]
    known = [f for f in facts if f is not None]
    if not known:
        return None
    kinds = {f.dtype for f in known}
    uncertain = len(known) != len(facts) or len(kinds) > 1 or any(f.maybe for f in known)
    if DType.FP16 in kinds:
        return DTypeFact(DType.FP16, maybe=uncertain)
    if len(kinds) == 1 and len(known) == len(facts):
        return DTypeFact(kinds.pop(), maybe=uncertain)
    return None
