"""Learned positive scales: values built only from a module's own parameters that stay away
from zero, so an epsilon added to them never matters (FP304).

``exp`` of a parameter-only value (a log-scale parameterisation: ``beta = exp(self.beta)``) and
a parameter initialised to ones (``self.alpha = nn.Parameter(torch.ones(c))``, a learned
frequency or scale) qualify; activations (a function's inputs), buffers and anything else do
not. Shape and view methods and indexing keep the value; names follow their last binding when
it sits at the top level of the function body, before the use (``beta = exp(beta)`` rebinds).
"""

from __future__ import annotations

from enum import Enum

import libcst as cst

from fp16lint.analysis.names import NameResolver, self_attribute
from fp16lint.analysis.tree import walk

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
        value, before = _latest(expr.value, stack)
        if value is None:
            return None
        return learned(value, names, attributes, before, depth + 1)
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


def _latest(
    name: str, stack: tuple[cst.CSTNode, ...]
) -> tuple[cst.BaseExpression | None, tuple[cst.CSTNode, ...]]:
    """The value of the last plain assignment to ``name`` among the function body's top-level
    statements before the one on ``stack``, and the stack at that assignment; None when a
    later statement may bind it otherwise (a branch, a loop)."""
    for index in range(len(stack) - 1, 1, -1):
        if (
            type(stack[index - 1]) is cst.IndentedBlock
            and type(stack[index - 2]) is cst.FunctionDef
        ):
            block, statement = stack[index - 1], stack[index]
            break
    else:
        return None, ()
    latest: tuple[cst.BaseExpression | None, tuple[cst.CSTNode, ...]] = (None, ())
    for line in block.body:
        if line is statement:
            return latest
        assigned = _assignment(line, name)
        if assigned is not None:
            latest = (assigned, (*stack[:index], line, line.body[0]))
        elif _binds(line, name):
            latest = (None, ())
    return None, ()


def _assignment(line: cst.BaseStatement, name: str) -> cst.BaseExpression | None:
    if type(line) is not cst.SimpleStatementLine or len(line.body) != 1:
        return None
    assign = line.body[0]
    if (
        type(assign) is cst.Assign
        and len(assign.targets) == 1
        and type(assign.targets[0].target) is cst.Name
        and assign.targets[0].target.value == name
    ):
        return assign.value
    return None


def _binds(line: cst.BaseStatement, name: str) -> bool:
    """``line`` may bind ``name`` (any target spelled so inside it)."""
    for node in walk(line):
        if type(node) in (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.For, cst.AsName):
            target = getattr(node, "target", None) or getattr(node, "name", None)
            if target is not None and any(
                type(n) is cst.Name and n.value == name for n in walk(target)
            ):
                return True
    return False
