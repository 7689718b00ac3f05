"""Positions of the few nodes a file reports, as libcst's ``PositionProvider`` gives them, cheaply.

``PositionProvider`` builds a ``CodeRange`` for every node while it regenerates the code, which
costs about twice the parse itself (measured on the torch sources, see issue 9). The engine
needs positions only for the nodes it reports (findings, fix edits, related locations, span
facts). This runs the same code generation but notes token indices for the wanted nodes only,
and turns them into lines and columns once at the end. Semantics are the provider's: syntactic
positions where a node records them (leading blank lines and enclosing parentheses excluded,
a compound statement ending where its body ends), whitespace-inclusive bounds otherwise.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable
from typing import Any

import libcst as cst
from libcst._nodes.internal import CodegenState

_NEWLINE = re.compile(r"\r\n?|\n")

# (line, column, end line, end column): 1-based lines, 0-based columns, as libcst's CodeRange.
Range = tuple[int, int, int, int]


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NULL = _Null()


class _Record:
    """Records one wanted node's syntactic bounds, hoisted from ``start_node``/``end_node``."""

    __slots__ = ("end_node", "node", "start", "start_node", "state")

    def __init__(self, state: _State, node: cst.CSTNode, start_node: Any, end_node: Any):
        self.state, self.node, self.start_node, self.end_node = state, node, start_node, end_node

    def __enter__(self) -> None:
        self.start = len(self.state.tokens)

    def __exit__(self, *exc: object) -> None:
        found = self.state.found
        start = found[id(self.start_node)][0] if self.start_node is not None else self.start
        end = found[id(self.end_node)][1] if self.end_node is not None else len(self.state.tokens)
        found[id(self.node)] = (start, end)


class _State(CodegenState):
    def __init__(self, module: cst.Module, wanted: set[int]):
        super().__init__(
            default_indent=module.default_indent, default_newline=module.default_newline
        )
        self.wanted = wanted
        self.opened: dict[int, int] = {}
        self.found: dict[int, tuple[int, int]] = {}  # id(node) -> token indices [start, end)

    def before_codegen(self, node: cst.CSTNode) -> None:
        if id(node) in self.wanted:
            self.opened[id(node)] = len(self.tokens)

    def after_codegen(self, node: cst.CSTNode) -> None:
        key = id(node)
        if key in self.wanted and key not in self.found:
            self.found[key] = (self.opened[key], len(self.tokens))

    def record_syntactic_position(
        self, node: cst.CSTNode, *, start_node: Any = None, end_node: Any = None
    ) -> Any:
        if id(node) not in self.wanted:
            return _NULL
        # The hoisted bounds come from children generated inside this call: want them too.
        if start_node is not None:
            self.wanted.add(id(start_node))
        if end_node is not None:
            self.wanted.add(id(end_node))
        return _Record(self, node, start_node, end_node)

    def pop_trailing_newline(self) -> None:
        """Keep the token: the provider's line count has already moved past it."""


def node_ranges(module: cst.Module, nodes: Iterable[cst.CSTNode]) -> dict[int, Range]:
    """``{id(node): (line, column, end_line, end_column)}`` for ``nodes`` of ``module``."""
    wanted = {id(node) for node in nodes}
    if not wanted:
        return {}
    state = _State(module, wanted)
    module._codegen(state)
    offsets = list(itertools.accumulate(map(len, state.tokens), initial=0))
    text = "".join(state.tokens)
    starts = [0, *(m.end() for m in _NEWLINE.finditer(text))]

    def where(index: int) -> tuple[int, int]:
        offset = offsets[index]
        line = bisect.bisect_right(starts, offset)
        return line, offset - starts[line - 1]

    out: dict[int, Range] = {}
    for key, (start, end) in state.found.items():
        out[key] = (*where(start), *where(end))
    return out
