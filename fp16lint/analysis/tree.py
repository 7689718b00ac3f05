"""Walking libcst trees cheaply: semantic children in source order, without whitespace and
operator tokens, by reading dataclass fields directly (``CSTNode.children`` rebuilds nodes).

While the engine analyses a file (``shared_children``), each node's child list is built once
and shared: analyses that scan a subtree ahead of the main walk (a class body for the calls
its methods make) would otherwise rebuild the same lists, about as many as the walk itself
(measured on the diffusers sources). The lists are shared, so callers must not change them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import libcst as cst
import libcst._nodes.op as _cst_op
import libcst._nodes.whitespace as _cst_ws

_SKIP_TYPES: frozenset[type] = frozenset(
    value
    for module in (_cst_op, _cst_ws)
    for value in vars(module).values()
    if isinstance(value, type) and issubclass(value, cst.CSTNode)
)
_FIELD_ORDER = {
    cst.FunctionDef: ("decorators", "name", "params", "returns", "body"),
    cst.ClassDef: ("decorators", "name", "bases", "keywords", "body"),
}
_SKIP_FIELDS = frozenset(
    {"lpar", "rpar", "comma", "semicolon", "leading_lines", "lines_after_decorators", "header"}
    | {"footer", "newline", "trailing_whitespace", "asynchronous", "star", "equal", "dot"}
)
# Nodes that never have semantic children: over a third of all nodes are names, so they skip
# the field scan and the shared-list bookkeeping.
_LEAF_TYPES = frozenset(
    {cst.Name, cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.Ellipsis}
    | {cst.Pass, cst.Break, cst.Continue}
)
_NO_CHILDREN: list[cst.CSTNode] = []
_fields_cache: dict[type, tuple[str, ...]] = {}


def _child_fields(kind: type) -> tuple[str, ...]:
    names = _fields_cache.get(kind)
    if names is None:
        names = _FIELD_ORDER.get(kind) or tuple(
            f.name
            for f in dataclasses.fields(kind)
            if f.name not in _SKIP_FIELDS and not f.name.startswith("whitespace")
        )
        _fields_cache[kind] = names
    return names


def _is_kept(kind: type) -> bool:
    """Whether values of type ``kind`` are semantic child nodes (cached: ``isinstance`` on
    ``CSTNode``, an ABC, is the walk's hottest call otherwise)."""
    kept = _kept_cache.get(kind)
    if kept is None:
        kept = _kept_cache[kind] = issubclass(kind, cst.CSTNode) and kind not in _SKIP_TYPES
    return kept


_kept_cache: dict[type, bool] = {}


# id(node) -> (node, its children); the node is kept to tell a reused id from its owner
Memo = dict[int, tuple[cst.CSTNode, list[cst.CSTNode]]]
_shared: Memo | None = None
_kept: Memo | None = None


@contextmanager
def shared_children(kept: Memo | None = None) -> Iterator[None]:
    """Within the block, ``children`` remembers each node's list. ``kept``: the lists of an
    earlier block over a tree that shares nodes with this one (an editor buffer's tree after an
    incremental parse: most statements are the same objects), taken from there instead of
    built again; on leaving, ``kept`` holds this block's lists instead."""
    global _shared, _kept
    outer = _shared, _kept
    _shared, _kept = {}, kept or None
    try:
        yield
        if kept is not None:
            kept.clear()
            kept.update(_shared)
    finally:
        _shared, _kept = outer


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The semantic child nodes of ``node`` in source order (a shared list: do not modify)."""
    if type(node) in _LEAF_TYPES:
        return _NO_CHILDREN
    shared = _shared
    if shared is None:
        return _children(node)
    entry = shared.get(id(node))
    if entry is None or entry[0] is not node:
        entry = _kept.get(id(node)) if _kept is not None else None
        if entry is None or entry[0] is not node:
            entry = (node, _children(node))
        shared[id(node)] = entry
    return entry[1]


def _children(node: cst.CSTNode) -> list[cst.CSTNode]:
    out: list[cst.CSTNode] = []
    kind = type(node)
    names = _fields_cache.get(kind) or _child_fields(kind)
    kept = _kept_cache
    for name in names:
        value = getattr(node, name)
        value_kind = type(value)
        if value_kind is tuple or value_kind is list:
            out.extend([v for v in value if kept.get(type(v)) or _is_kept(type(v))])
        elif kept.get(value_kind) or _is_kept(value_kind):
            out.append(value)
    return out


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """``node`` and all its descendants, depth first, in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


# Statements, and the nodes statements nest in (never expressions): compound statements, a
# line of small statements, and the parts of compound statements that hold a body.
_STATEMENT_TYPES = frozenset(
    value
    for value in vars(cst).values()
    if isinstance(value, type) and issubclass(value, (cst.BaseStatement, cst.BaseSmallStatement))
)
_HOLDS_STATEMENTS = frozenset(
    {value for value in _STATEMENT_TYPES if issubclass(value, cst.BaseStatement)}
    | {cst.Module, cst.IndentedBlock, cst.SimpleStatementSuite, cst.Else, cst.ExceptHandler}
    | {cst.ExceptStarHandler, cst.Finally, cst.MatchCase}
)
_ON_THE_WAY = _STATEMENT_TYPES | _HOLDS_STATEMENTS


def statements(node: cst.CSTNode, *, nested_scopes: bool = True) -> Iterator[cst.CSTNode]:
    """Every statement inside ``node`` (nested bodies and a line's small statements
    included), in source order, without entering expressions: finding assignments this way
    visits a small fraction of the nodes a full ``walk`` does. ``nested_scopes=False`` yields
    the functions and classes inside but not their statements."""
    stack = [node]
    while stack:
        current = stack.pop()
        kind = type(current)
        if current is not node:
            if kind in _STATEMENT_TYPES:
                yield current
            if kind not in _HOLDS_STATEMENTS or (
                not nested_scopes and kind in (cst.FunctionDef, cst.ClassDef)
            ):
                continue
        stack.extend(c for c in reversed(children(current)) if type(c) in _ON_THE_WAY)


Located = tuple[cst.BaseExpression, tuple[cst.CSTNode, ...]]
_SCOPES = (cst.FunctionDef, cst.ClassDef)
_BINDERS = (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.For, cst.AsName, cst.NamedExpr)


# Methods whose result holds the same values as their receiver, only viewed otherwise: a
# rebinding ``x = x.squeeze(1)`` keeps what was known of ``x``'s values (no dtype casts: a
# ``.half()`` rounds them).
_VIEWS = frozenset(
    {"squeeze", "unsqueeze", "reshape", "reshape_as", "view", "view_as", "transpose", "permute",
     "flatten", "expand", "expand_as", "contiguous", "clone", "detach"}
)  # fmt: skip


def views_itself(node: cst.Assign, name: str) -> bool:
    """``name = name.squeeze(1)`` (``name.view(b, -1).contiguous()``...): ``name`` rebound to
    a view of its own values."""
    value = node.value
    if not all(type(t.target) is cst.Name and t.target.value == name for t in node.targets):
        return False
    calls = 0
    while (
        type(value) is cst.Call
        and type(value.func) is cst.Attribute
        and value.func.attr.value in _VIEWS
    ):
        value, calls = value.func.value, calls + 1
    return calls > 0 and type(value) is cst.Name and value.value == name


def binds(node: cst.CSTNode, name: str, *, views: bool = True) -> bool:
    """``node`` (a statement) may bind ``name``: any assignment, loop, ``with``/``import``/
    ``except`` ``as`` or walrus target spelled so inside it. ``views=False``: not counting
    rebindings to a view of its own values (``views_itself``)."""
    kept: set[int] = set()
    for inner in walk(node):
        if not views and type(inner) is cst.Assign and views_itself(inner, name):
            kept.update(id(t) for t in inner.targets)  # the walk meets them next
        elif type(inner) in _BINDERS and id(inner) not in kept:
            target = getattr(inner, "target", None) or getattr(inner, "name", None)
            if target is not None and any(
                type(n) is cst.Name and n.value == name for n in walk(target)
            ):
                return True
    return False


def last_assignment(stack: tuple | list, name: str, *, dominating: bool = False) -> Located | None:
    """The last plain ``name = value`` before the current statement (``stack``'s innermost),
    in its block or, going outwards, before the blocks that hold it, inside its function: the
    value, and the stack at that assignment (where the value is evaluated). None when there is
    none (a parameter, an outer name).

    The one helper for "what a name holds here" (attention, rotary, learned scales, bounds).
    By default compound statements and other bindings between are passed over: the value
    before a conditional or in-place update (``w = q @ k.T; if mask is not None: w = w + mask;
    w *= s`` keeps the product). ``dominating``: only an assignment that every path to here runs
    last: None when a statement between may bind ``name`` otherwise (a branch, ``+=``,
    unpacking), when a loop around here or after here in the assignment's block binds it (the
    value comes back round), or outside a function; a rebinding to a view of the same values
    (``if squeeze: x = x.squeeze(1)``) is passed over, as the values stay those bound before."""
    if dominating:
        scope = next((n for n in reversed(stack) if type(n) in _SCOPES), None)
        if type(scope) is not cst.FunctionDef:
            return None
    for index in range(len(stack) - 1, 0, -1):
        block = stack[index - 1]
        kind = type(block)
        if kind is cst.FunctionDef:
            return None
        if dominating and kind in (cst.For, cst.While) and binds(block, name, views=False):
            return None
        if kind is not cst.IndentedBlock:
            continue
        statements = block.body
        here = next((i for i, s in enumerate(statements) if s is stack[index]), None)
        if here is None:
            return None
        for statement in reversed(statements[:here]):
            if type(statement) is not cst.SimpleStatementLine:
                if dominating and binds(statement, name, views=False):
                    return None
                continue
            for small in reversed(statement.body):
                if type(small) is cst.Assign and any(
                    type(t.target) is cst.Name and t.target.value == name for t in small.targets
                ):
                    if dominating and any(
                        type(later) in (cst.For, cst.While) and binds(later, name, views=False)
                        for later in statements[here:]
                    ):
                        return None  # a loop after it rebinds the name (kept conservative)
                    return small.value, (*stack[:index], statement, small)
                if dominating and binds(small, name, views=False):
                    return None
    return None


def latest_value(stack: tuple | list, name: str) -> cst.BaseExpression | None:
    """The value of ``last_assignment`` (compound statements between passed over)."""
    found = last_assignment(stack, name)
    return found[0] if found is not None else None
