"""Learned positive scales: values built only from a module's own parameters that stay away
from zero, so an epsilon added to them never matters (FP304).

``exp`` of a parameter-only value (a log-scale parameterisation: ``beta = exp(self.beta)``) and
a parameter initialised to ones (``self.alpha = nn.Parameter(torch.ones(c))``, a learned
frequency or scale) qualify; activations (a function's inputs), buffers and anything else do
not. Shape and view methods and indexing keep the value; names follow the assignment that
last binds them on every path to the use (``tree.last_assignment``; ``beta = exp(beta)`` rebinds).
"""

from __future__ import annotations

from enum import Enum

import libcst as cst

from fp16lint.analysis.names import NameResolver, self_attribute
from fp16lint.analysis.tree import last_assignment

_PARAMETERS = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})
_ONES = frozenset({"torch.ones", "torch.ones_like"})
_EXP = frozenset({"torch.exp"})
_KEEP = frozenset(
    {"unsqueeze", "squeeze", "view", "reshape", "expand", "expand_as", "flatten", "contiguous"}
)
_MAX_DEPTH = 8


class Learned(Enum):
    ANY = "a learned parameter"
    POSITIVE = "a learned positive scale"


def learned(
    expr: cst.BaseExpression,
    names: NameResolver,
    attributes: dict[str, list[cst.BaseExpression | None]],
    stack: tuple[cst.CSTNode, ...],
    depth: int = 0,
) -> Learned | None:
    """What ``expr`` is when only the enclosing class's parameters make it (``attributes``: the
    class's ``self.x = ...`` values), at the point ``stack`` of the walk; None otherwise."""
    if depth > _MAX_DEPTH:
        return None
    kind = type(expr)
    attr = self_attribute(expr)
    if attr is not None:
        return _parameter(attributes.get(attr), names)
    if kind is cst.Subscript:
        return learned(expr.value, names, attributes, stack, depth + 1)
    if kind is cst.Name:
        found = last_assignment(stack, expr.value, dominating=True)
        if found is None:
            return None
        return learned(found[0], names, attributes, found[1], depth + 1)
    if kind is not cst.Call:
        return None
    func = expr.func
    if names.qualname(func) in _EXP and expr.args:
        inner = learned(expr.args[0].value, names, attributes, stack, depth + 1)
        return Learned.POSITIVE if inner is not None else None
    if type(func) is cst.Attribute and names.qualname(func) is None:
        inner = learned(func.value, names, attributes, stack, depth + 1)
        if inner is None:
            return None
        if func.attr.value == "exp":
            return Learned.POSITIVE
        return inner if func.attr.value in _KEEP else None
    return None


def _parameter(values: list[cst.BaseExpression | None] | None, names: NameResolver):
    """``nn.Parameter(...)`` in every assignment of the attribute; POSITIVE from ``ones``."""
    if not values or not all(
        type(v) is cst.Call and names.qualname(v.func) in _PARAMETERS and v.args for v in values
    ):
        return None
    inits = [v.args[0].value for v in values]  # type: ignore[union-attr]
    if all(type(i) is cst.Call and names.qualname(i.func) in _ONES for i in inits):
        return Learned.POSITIVE
    return Learned.ANY
