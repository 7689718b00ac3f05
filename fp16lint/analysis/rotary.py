"""Rotary inverse frequencies: which operand of a product is ``inv_freq``.

Rotary position embeddings rotate channel pairs by ``position * inv_freq`` radians, with
``inv_freq = 1 / base ** (arange(0, d, 2) / d)``. A product of positions and those frequencies
(``einsum('i,j->ij', t, self.inv_freq)``, ``inv_freq[None, :, None] @ position_ids[:, None, :]``)
computes the angles; in float16 they are wrong (tests/facts/test_rotary_angles.py).

An operand is the frequencies when, under views, casts and indexing, it is a name or attribute
called ``inv_freq``-something (the spelling of transformers, x-transformers, rotary-embedding-torch
and most others), or a local name last bound in the same block to a reciprocal power of a value
built from ``torch.arange`` (``omega = 1.0 / (theta ** scale)`` with ``scale = arange(...) / d``).
"""

from __future__ import annotations

from typing import Any

import libcst as cst

from fp16lint.analysis.calls import argument
from fp16lint.analysis.dtypes import DType, dtype_of
from fp16lint.analysis.tree import latest_value, walk

_THROUGH = frozenset(
    {
        "float", "to", "type", "type_as", "expand", "expand_as", "view", "reshape", "unsqueeze",
        "contiguous", "transpose", "permute", "T", "mT", "repeat", "detach",
    }
)  # fmt: skip
_MAX_DEPTH = 3
# Views and elementwise steps that keep a float64 operand float64 (casts are left out).
_KEEPS = frozenset(
    {
        "expand", "expand_as", "view", "reshape", "unsqueeze", "contiguous", "transpose",
        "permute", "T", "mT", "repeat", "detach", "neg", "reciprocal", "pow", "mul", "div",
    }
)  # fmt: skip
_FACTORIES = frozenset(
    f"torch.{name}" for name in ("arange", "linspace", "tensor", "ones", "zeros", "full")
)


def _bare(expr: cst.BaseExpression) -> cst.BaseExpression:
    """``inv_freq`` under ``inv_freq[None, :, None].float().expand(...)``."""
    while True:
        if type(expr) is cst.Subscript:
            expr = expr.value
        elif type(expr) is cst.Call and type(expr.func) is cst.Attribute:
            if expr.func.attr.value not in _THROUGH:
                return expr
            expr = expr.func.value
        elif type(expr) is cst.Attribute and expr.attr.value in ("T", "mT"):
            expr = expr.value
        else:
            return expr


def is_inverse_frequencies(expr: cst.BaseExpression, stack: tuple | list, names: Any) -> bool:
    """Whether ``expr`` is rotary inverse frequencies (see the module docstring)."""
    expr = _bare(expr)
    if type(expr) is cst.Attribute:
        return "inv_freq" in expr.attr.value
    if type(expr) is not cst.Name:
        return False
    if "inv_freq" in expr.value:
        return True
    value = latest_value(stack, expr.value)
    return value is not None and _reciprocal_power(value, stack, names)


def _reciprocal_power(value: cst.BaseExpression, stack: tuple | list, names: Any) -> bool:
    """``1.0 / (base ** x)`` or ``base ** -x`` with ``x`` built from ``torch.arange``."""
    while type(value) is cst.BinaryOperation and type(value.operator) is cst.Multiply:
        value = value.left  # ``1.0 / (base ** x) * scale``
    if type(value) is not cst.BinaryOperation:
        return False
    if type(value.operator) is cst.Divide and type(value.left) in (cst.Float, cst.Integer):
        power = value.right
        if type(power) is not cst.BinaryOperation or type(power.operator) is not cst.Power:
            return False
        return _from_arange(power.right, stack, names, 0)
    if type(value.operator) is cst.Power and type(value.right) is cst.UnaryOperation:
        return _from_arange(value.right.expression, stack, names, 0)
    return False


def _from_arange(expr: cst.BaseExpression, stack: tuple | list, names: Any, depth: int) -> bool:
    for node in walk(expr):
        if type(node) is cst.Call and (names.qualname(node.func) or "").endswith(".arange"):
            return True
        if type(node) is cst.Name and depth < _MAX_DEPTH:
            value = latest_value(stack, node.value)
            if value is not None and _from_arange(value, stack, names, depth + 1):
                return True
    return False


def in_float64(expr: cst.BaseExpression, stack: tuple | list, names: Any, depth: int = 0) -> bool:
    """``expr`` is a float64 tensor the code made: ``omega = 1.0 / theta ** (torch.arange(0,
    d, 2, dtype=torch.float64) / d)``, ``.double()``, through views and arithmetic. A product
    with it is float64: autocast does not lower float64 operands and the product promotes to
    float64 (tests/facts/test_rotary_angles.py), so its angles are exact."""
    if depth > _MAX_DEPTH + 3:
        return False
    kind = type(expr)
    if kind is cst.Name:
        value = latest_value(stack, expr.value)
        return value is not None and in_float64(value, stack, names, depth + 1)
    if kind is cst.BinaryOperation:
        return any(in_float64(side, stack, names, depth + 1) for side in (expr.left, expr.right))
    if kind is cst.Subscript:
        return in_float64(expr.value, stack, names, depth + 1)
    if kind is not cst.Call:
        return False
    func = expr.func
    if type(func) is cst.Attribute and names.qualname(func) is None:
        method = func.attr.value
        if method == "double":
            return True
        if method == "to" and expr.args:
            fact = dtype_of(argument(expr, "dtype") or expr.args[0].value, names)
            return fact is not None and fact.dtype is DType.FP64 and not fact.maybe
        return method in _KEEPS and in_float64(func.value, stack, names, depth + 1)
    if names.qualname(func) in _FACTORIES:
        dtype = argument(expr, "dtype")
        fact = dtype_of(dtype, names) if dtype is not None else None
        return fact is not None and fact.dtype is DType.FP64 and not fact.maybe
    return False
