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

from fp16lint.analysis.tree import latest_value, walk

_THROUGH = frozenset(
    {
        "float", "to", "type", "type_as", "expand", "expand_as", "view", "reshape", "unsqueeze",
        "contiguous", "transpose", "permute", "T", "mT", "repeat", "detach",
    }
)  # fmt: skip
_MAX_DEPTH = 3


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
