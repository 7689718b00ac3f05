"""How a mask value's tensor is used: filled into the scores before a softmax, or added to the
scores later (``data.mask_fills`` says which values are safe for each).

Asked only when a fix is written (FP301/FP302), so it may scan the rest of the function.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from fp16lint.analysis.names import NameResolver
from fp16lint.analysis.tree import walk
from fp16lint.data.mask_fills import ADDITIVE_CALLS, ADDITIVE_KEYWORDS, SOFTMAX_NAMES, MaskUse

_ADDITIVE_OPERATORS = (cst.Add, cst.Subtract)
_ADDITIVE_AUGMENTED = (cst.AddAssign, cst.SubtractAssign)


def mask_use(
    stack: Sequence[cst.CSTNode], names: NameResolver, written: str | None = None
) -> MaskUse:
    """The use of the tensor made by ``stack[-1]`` (a fill call, ``torch.where``, a cast, or a
    subscript assignment into the name ``written``): how the result is used right away, else
    how the name it is bound to (or ``written``) is used later in the same function."""
    node, index = stack[-1], len(stack) - 1
    while index > 0:  # climb method chains: ``where(...).to(x.dtype).unsqueeze(1)``
        parent = stack[index - 1]
        if type(parent) is cst.Attribute and parent.value is node and index > 1:
            if parent.attr.value in SOFTMAX_NAMES:
                return MaskUse.FILL
            call = stack[index - 2]
            if type(call) is cst.Call and call.func is parent:
                node, index = call, index - 2
                continue
        break
    parent = stack[index - 1] if index > 0 else None
    direct = _use_of(parent, stack[index - 2] if index > 1 else None, names)
    if direct is not None:
        return direct
    if type(parent) is cst.Assign and len(parent.targets) == 1:
        target = parent.targets[0].target
        written = target.value if type(target) is cst.Name else written
    if written is None:
        return MaskUse.UNKNOWN
    return _later_use(stack, stack[-1], written, names)


def _root(expr: cst.BaseExpression) -> cst.BaseExpression:
    """``mask`` for ``mask``, ``mask[:, None]``, ``mask.unsqueeze(1).to(x.dtype)``."""
    while True:
        kind = type(expr)
        if kind is cst.Call and type(expr.func) is cst.Attribute:
            expr = expr.func.value
        elif kind in (cst.Attribute, cst.Subscript):
            expr = expr.value
        else:
            return expr


def _is(expr: cst.BaseExpression | None, name: str) -> bool:
    if expr is None:
        return False
    root = _root(expr)
    return type(root) is cst.Name and root.value == name


def _use_of(
    parent: cst.CSTNode | None, grandparent: cst.CSTNode | None, names: NameResolver
) -> MaskUse | None:
    """How ``parent`` uses the tensor when that alone decides it."""
    kind = type(parent)
    if kind is cst.BinaryOperation and type(parent.operator) in _ADDITIVE_OPERATORS:
        return MaskUse.ADDITIVE
    if kind is cst.AugAssign and type(parent.operator) in _ADDITIVE_AUGMENTED:
        return MaskUse.ADDITIVE
    if kind is cst.Arg and parent.keyword is not None:
        return MaskUse.ADDITIVE if parent.keyword.value in ADDITIVE_KEYWORDS else None
    if kind is cst.Arg and type(grandparent) is cst.Call:
        qualname = names.qualname(grandparent.func) or ""
        if qualname in ADDITIVE_CALLS:
            return MaskUse.ADDITIVE
        if qualname.rsplit(".", 1)[-1] in SOFTMAX_NAMES and grandparent.args[0] is parent:
            return MaskUse.FILL
    return None


def _later_use(
    stack: Sequence[cst.CSTNode], fill: cst.CSTNode, name: str, names: NameResolver
) -> MaskUse:
    scope = next((n for n in reversed(stack) if type(n) is cst.FunctionDef), stack[0])
    seen, softmax = False, False
    for node in walk(scope):
        if node is fill:
            seen = True
            continue
        if not seen:
            continue
        kind = type(node)
        if kind is cst.BinaryOperation and type(node.operator) in _ADDITIVE_OPERATORS:
            if _is(node.left, name) or _is(node.right, name):
                return MaskUse.ADDITIVE
        elif kind is cst.AugAssign and type(node.operator) in _ADDITIVE_AUGMENTED:
            if _is(node.value, name):
                return MaskUse.ADDITIVE
        elif kind is cst.Arg and node.keyword is not None:
            if node.keyword.value in ADDITIVE_KEYWORDS and _is(node.value, name):
                return MaskUse.ADDITIVE
        elif kind is cst.Call:
            qualname = names.qualname(node.func) or ""
            if qualname in ADDITIVE_CALLS and any(_is(a.value, name) for a in node.args[3:4]):
                return MaskUse.ADDITIVE
            short = qualname.rsplit(".", 1)[-1] if qualname else _method(node)
            if short in SOFTMAX_NAMES:
                receiver = node.func.value if type(node.func) is cst.Attribute else None
                first = node.args[0].value if node.args else None
                softmax = softmax or _is(first, name) or (not qualname and _is(receiver, name))
    return MaskUse.FILL if softmax else MaskUse.UNKNOWN


def _method(call: cst.Call) -> str | None:
    return call.func.attr.value if type(call.func) is cst.Attribute else None


def masks_whole_rows(
    stack: Sequence[cst.CSTNode],
    written: str | None = None,
    mask: cst.BaseExpression | None = None,
) -> bool:
    """Evidence that the mask made at ``stack[-1]`` can mask a whole row of the scores: it
    keeps an axis besides the key axis (the last), so it differs from row to row — indexed
    ``(inf * (m - 1))[..., :, None, None, :]`` in the statement that makes it, ``mask`` (the
    tensor the constant meets) made of ``m[:, :, None]``, or the name the result is bound to
    (or ``written``) indexed so later in the function.
    A pair mask or a per-query mask masks every row of a padded position; a key-padding mask
    (``m[:, None, None, :]``) masks a whole row only for a sequence that is all padding.
    Where a whole row is masked, float16's ``-inf`` gives NaN; elsewhere it masks like the
    constant (FACTS.md §2, tests/facts/test_masking.py)."""
    if mask is not None and any(
        type(found) is cst.Subscript and _keeps_rows(found) for found in walk(mask)
    ):
        return True
    index = len(stack) - 1
    node = stack[index]
    while index > 0 and not isinstance(node, cst.BaseSmallStatement):
        parent = stack[index - 1]
        if type(parent) is cst.Subscript and parent.value is node and _keeps_rows(parent):
            return True
        node, index = parent, index - 1
    statement = node
    if type(statement) is cst.Assign and len(statement.targets) == 1:
        target = statement.targets[0].target
        written = target.value if type(target) is cst.Name else written
    if written is None:
        return False
    scope = next((n for n in reversed(stack) if type(n) is cst.FunctionDef), None)
    return scope is not None and any(
        type(found) is cst.Subscript and _is(found.value, written) and _keeps_rows(found)
        for found in walk(scope)
    )


def _keeps_rows(subscript: cst.Subscript) -> bool:
    """``[..., :, None, :]``, ``[:, :, None]``, ``[:, None, :, :]``: a full slice other than
    the last element, not counting a leading one without an ``...`` (the batch axis)."""
    kinds = []
    for element in subscript.slice:
        index = element.slice
        if type(index) is cst.Index and type(index.value) is cst.Ellipsis:
            kinds.append("...")
        elif type(index) is cst.Index and type(index.value) is cst.Name:
            kinds.append("none" if index.value.value == "None" else "other")
        elif type(index) is cst.Slice and index.lower is None and index.upper is None:
            kinds.append(":")
        else:
            kinds.append("other")
    if kinds[:1] == [":"]:
        kinds = kinds[1:]  # the batch axis
    return ":" in kinds[:-1]
