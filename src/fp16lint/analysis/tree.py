"""Walking libcst trees cheaply: semantic children in source order, without whitespace and
operator tokens, by reading dataclass fields directly (``CSTNode.children`` rebuilds nodes)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

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


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    out: list[cst.CSTNode] = []
    for name in _child_fields(type(node)):
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            if type(value) not in _SKIP_TYPES:
                out.append(value)
        elif isinstance(value, (tuple, list)):
            out.extend(v for v in value if isinstance(v, cst.CSTNode) and type(v) not in _SKIP_TYPES)
    return out




def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """``node`` and all its descendants, depth first, in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))
