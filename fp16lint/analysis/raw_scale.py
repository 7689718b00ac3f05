"""Values of unit scale: made only from a model's raw input (``data.raw_inputs``: pixel values,
audio samples, spectrogram features, which processors deliver at unit scale) and constants,
through arithmetic with small numbers, shape changes and means, with no layer or product that
could scale them up. Their squares stay far below float16's 65504, so a mean of squares or a
variance of them is no FP203 hazard (``analysis.hazards``)."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.constants import literal_number
from fp16lint.analysis.names import NameResolver
from fp16lint.data.op_ranges import VALUE_PRESERVING
from fp16lint.data.raw_inputs import RAW_INPUTS

_ARITHMETIC = (cst.Add, cst.Subtract, cst.Multiply, cst.Divide)
# Calls whose result lies within their input's values (shape changes, means) or is a constant
# tensor of a table.
_KEEPS_SCALE = VALUE_PRESERVING | {"mean", "nanmean", "as_tensor", "tensor"}
_FACTOR = 16.0  # numbers a raw input may be shifted or scaled by and stay of unit scale
_NOT_VALUES = frozenset({"shape", "size", "dtype", "device", "ndim", "dim", "numel"})
_MAX_NAMES = 4


def raw_scale(
    expr: cst.BaseExpression | None, names: NameResolver, seen: frozenset[str] = frozenset()
) -> bool:
    """``expr`` is of unit scale (see the module's docstring): ``x.view(b, -1, n)``,
    ``pixel_values * std + mean``, ``torch.sum(x, 1) / x.shape[1]`` of a raw input ``x``."""
    kind = type(expr)
    if expr is None or len(seen) > _MAX_NAMES:
        return False
    if kind is cst.Name:
        return _name(expr, names, seen)
    if kind is cst.BinaryOperation and type(expr.operator) in _ARITHMETIC:
        left, right = expr.left, expr.right
        if type(expr.operator) is not cst.Divide:
            return raw_scale(left, names, seen) and raw_scale(right, names, seen)
        if _shape_read(right):  # ``torch.sum(x, 1) / x.shape[1]``: a mean
            return raw_scale(_summed(left, names) or left, names, seen)
        number = literal_number(right)  # by a number of at least 1
        return number is not None and abs(number) >= 1 and raw_scale(left, names, seen)
    if kind is cst.UnaryOperation:
        return raw_scale(expr.expression, names, seen)
    if kind is cst.Subscript:
        return raw_scale(expr.value, names, seen)  # the indices pick values, not make them
    if kind in (cst.List, cst.Tuple):  # a table of means or deviations
        return all(
            type(e) is cst.Element and raw_scale(e.value, names, seen)
            for e in expr.elements  # type: ignore[attr-defined]
        )
    if kind is not cst.Call:
        number = literal_number(expr)
        return number is not None and abs(number) <= _FACTOR
    qualname = names.qualname(expr.func)
    method = _method(expr) if qualname is None else None
    name = qualname.removeprefix("torch.") if qualname else method
    if name not in _KEEPS_SCALE:
        return False
    if method is not None:  # ``x.view(b, -1)``, ``x.to(dtype)``: the arguments are no values
        return raw_scale(expr.func.value, names, seen)  # type: ignore[attr-defined]
    values = [a.value for a in expr.args if a.keyword is None and not a.star][:1]
    return bool(values) and raw_scale(values[0], names, seen)


def _name(expr: cst.Name, names: NameResolver, seen: frozenset[str]) -> bool:
    name = expr.value
    if name in seen:
        return True  # ``frames = frames.view(...)``: a binding adds no other source
    bindings = names.bindings(name) or []
    if not bindings:
        return False
    if all(b.qualname is not None for b in bindings):
        return True  # an imported constant (a table of means)
    if any(type(b.node) is cst.Param for b in bindings):
        return name in RAW_INPUTS and len(bindings) == 1
    values = names.values(name)
    return bool(values) and all(
        v is not None and raw_scale(v, names, seen | {name}) for v in values
    )


def _method(call: cst.Call) -> str | None:
    return call.func.attr.value if type(call.func) is cst.Attribute else None


def _summed(expr: cst.BaseExpression, names: NameResolver) -> cst.BaseExpression | None:
    """``x`` of ``torch.sum(x, ...)`` / ``x.sum(...)``."""
    if type(expr) is not cst.Call:
        return None
    if names.qualname(expr.func) == "torch.sum":
        values = [a.value for a in expr.args if a.keyword is None and not a.star]
        return values[0] if values else None
    return expr.func.value if _method(expr) == "sum" else None  # type: ignore[attr-defined]


def _shape_read(expr: cst.BaseExpression) -> bool:
    """``x.shape[1]``, ``x.size(1)``: a size, no value of the tensor."""
    if type(expr) is cst.Subscript:
        expr = expr.value
    if type(expr) is cst.Attribute:
        return expr.attr.value in _NOT_VALUES
    return type(expr) is cst.Call and _method(expr) in _NOT_VALUES
