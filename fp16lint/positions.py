"""Positions of the few nodes a file reports, as libcst's ``PositionProvider`` gives them, cheaply.

``PositionProvider`` builds a ``CodeRange`` for every node while it regenerates the code, which
costs about twice the parse itself (measured on the torch sources, see issue 9). The engine
needs positions only for the nodes it reports (findings, fix edits, related locations, span
facts). ``node_ranges`` runs the same code generation but notes token indices for the wanted
nodes only; ``located_ranges`` generates only the statements that hold them and finds that
code in the source (14% -> 3% of the time to lint the diffusers sources). Semantics are the
provider's: syntactic positions where a node records them (leading blank lines and enclosing
parentheses excluded, a compound statement ending where its body ends), whitespace-inclusive
bounds otherwise.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import re
from collections.abc import Iterable, Sequence
from typing import Any

import libcst as cst
from libcst._nodes.internal import CodegenState

_NEWLINE = re.compile(r"\r\n?|\n")
_LINE_STARTING = (cst.SimpleStatementLine, cst.BaseCompoundStatement)

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

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is not None:  # generation was cut short before the node's end
            return
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
        self.targets: set[int] | None = None  # generation stops once these are all found

    def before_codegen(self, node: cst.CSTNode) -> None:
        if id(node) in self.wanted:
            self.opened[id(node)] = len(self.tokens)

    def after_codegen(self, node: cst.CSTNode) -> None:
        key = id(node)
        if key in self.wanted:
            if key not in self.found:
                self.found[key] = (self.opened[key], len(self.tokens))
            targets = self.targets
            if targets is not None and key in targets:
                targets.discard(key)
                if not targets:
                    raise _Done

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


# --- locating nodes without generating the whole module --------------------------------------
class _Stop(Exception):
    """Ends code generation where a compound statement's body begins."""


class _Done(_Stop):
    """Ends code generation once every wanted node has been generated."""


class _HeaderState(_State):
    """Generates a compound statement up to its first body statement only."""

    def __init__(self, module: cst.Module, wanted: set[int], stop: cst.CSTNode):
        super().__init__(module, wanted)
        self.stop = stop

    def before_codegen(self, node: cst.CSTNode) -> None:
        if node is self.stop:
            raise _Stop
        super().before_codegen(node)


# A statement that starts a line: the statement, the indentation its lines carry, for the
# innermost one when the wanted node sits in its header the body statement to stop generating
# at, and the statements of the block that holds it with its index there.
_Level = tuple[cst.CSTNode, list[str], "cst.CSTNode | None", Sequence[cst.CSTNode], int]


def _statement_levels(
    module: cst.Module,
    node: cst.CSTNode,
    ancestors: Sequence[cst.CSTNode],
    indices: dict[int, dict[int, int]],
) -> list[_Level]:
    """The statements that start a line and contain ``node``, innermost first. ``indices``:
    where each statement sits in its block, per block, filled as blocks are met."""
    chain = [*ancestors, node]
    levels: list[_Level] = []
    for i in range(len(chain) - 1, 0, -1):
        item, parent = chain[i], chain[i - 1]
        if not isinstance(item, _LINE_STARTING):
            continue
        if parent is not module and type(parent) is not cst.IndentedBlock:
            continue
        indents = [
            module.default_indent if block.indent is None else block.indent
            for block in chain[:i]
            if type(block) is cst.IndentedBlock
        ]
        stop = None
        body = getattr(item, "body", None)
        in_header = not levels and item is not node and chain[i + 1] is not body
        if in_header and type(body) is cst.IndentedBlock and body.body:
            stop = body.body[0]
        siblings = parent.body
        where = indices.get(id(parent))
        if where is None:
            where = indices[id(parent)] = {id(s): k for k, s in enumerate(siblings)}
        levels.append((item, indents, stop, siblings, where[id(item)]))
    return levels


class KnownOffsets:
    """Where the nodes located in earlier lints of one editor buffer sit inside their top-level
    statement. After an incremental parse (``lsp.incremental``) an unchanged statement is the
    same node object and generates the same code, so its nodes keep their offsets from the
    statement's start wherever the statement now begins: only the statements an edit touched
    are generated again."""

    def __init__(self) -> None:
        self._starts: dict[int, int] = {}  # id(top-level statement) -> where its code begins
        # id(node) -> (node, its top-level statement, start, end): offsets from the statement's
        # start. Entries hold both nodes, so an id here is never another object's.
        self._inside: dict[int, tuple[cst.CSTNode, cst.CSTNode, int, int]] = {}

    def move_to(self, module: cst.Module, bounds: Sequence[int]) -> None:
        """The buffer's tree now and where each top-level statement's code begins in its text
        (``Parsed.bounds``); the nodes of statements it no longer holds are forgotten."""
        self._starts = {id(statement): bounds[i] for i, statement in enumerate(module.body)}
        self._inside = {k: v for k, v in self._inside.items() if id(v[1]) in self._starts}

    def find(self, node: cst.CSTNode) -> tuple[int, int] | None:
        entry = self._inside.get(id(node))
        if entry is None or entry[0] is not node:
            return None
        start = self._starts.get(id(entry[1]))
        return None if start is None else (start + entry[2], start + entry[3])

    def remember(self, node: cst.CSTNode, statement: cst.CSTNode, start: int, end: int) -> None:
        base = self._starts.get(id(statement))
        if base is not None:
            self._inside[id(node)] = (node, statement, start - base, end - base)


def _generate(
    module: cst.Module, level: _Level, ids: set[int], *, whole: bool
) -> tuple[str, _State, bool]:
    """The code of ``level``'s statement (or header) with the wanted ``ids`` recorded; unless
    ``whole``, only up to the end of the last of them. Also whether it stopped there."""
    statement, indents, stop, _, _ = level
    state = _HeaderState(module, ids, stop) if stop is not None else _State(module, ids)
    state.indent_tokens = list(indents)
    if not whole:
        state.targets = set(ids)
    cut = False
    try:
        statement._codegen(state)
    except _Done:
        cut = True
    except _Stop:
        pass
    return "".join(state.tokens), state, cut


def located_ranges(
    module: cst.Module,
    text: str,
    wanted: Iterable[tuple[cst.CSTNode, Sequence[cst.CSTNode]]],
    known: KnownOffsets | None = None,
) -> dict[int, Range]:
    """``node_ranges`` for ``(node, its ancestors from the module down)`` pairs, generating only
    the statements that hold the nodes (or just their headers, or their code up to the last
    wanted node) and finding that code in ``text``, the module's source.

    A statement's generated code is the exact slice of the source it was parsed from, so when
    that code (or its beginning) occurs exactly once, at a line start, in a stretch of the
    source known to hold the statement, its offset is the statement's. The stretches narrow
    from the top-level statement around it down the statements that hold it, each bounded by
    its neighbours whose headers occur once in the enclosing stretch (a method repeated in many
    classes is then found in its own class, a line repeated in one method between its own
    neighbours: see ``_Placer``). What no stretch places is retried at the enclosing statement,
    and what no level places is placed by generating the whole module. ``known``: offsets kept
    from earlier lints of the same buffer (read, and added to)."""
    starts = [0, *(m.end() for m in _NEWLINE.finditer(text))]
    placer = _Placer(module, text)
    indices: dict[int, dict[int, int]] = {}

    def where(offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(starts, offset)
        return line, offset - starts[line - 1]

    out: dict[int, Range] = {}
    pending = []
    for node, ancestors in wanted:
        if id(node) in out:
            continue
        hit = known.find(node) if known is not None else None
        if hit is None:
            pending.append((node, _statement_levels(module, node, ancestors, indices)))
            continue
        out[id(node)] = (*where(hit[0]), *where(hit[1]))
    while pending:
        groups: dict[tuple[int, bool], list[tuple[cst.CSTNode, list[_Level]]]] = {}
        left: list[cst.CSTNode] = []
        for node, levels in pending:
            if id(node) in out:
                continue
            if not levels:
                left.append(node)
                continue
            statement, _, stop, _, _ = levels[0]
            groups.setdefault((id(statement), stop is not None), []).append((node, levels))
        pending = []
        for members in groups.values():
            levels = members[0][1]
            ids = {id(node) for node, _ in members}
            code, state, cut = _generate(module, levels[0], ids, whole=False)
            base = placer.find(code, levels)
            if base is None and cut:
                code, state, _ = _generate(module, levels[0], ids, whole=True)
                base = placer.find(code, levels)
            offsets = list(itertools.accumulate(map(len, state.tokens), initial=0))
            outermost = levels[-1][0]
            for node, node_levels in members:
                found = state.found.get(id(node)) if base is not None else None
                if found is None:
                    pending.append((node, node_levels[1:]))
                else:
                    start, end = base + offsets[found[0]], base + offsets[found[1]]
                    out[id(node)] = (*where(start), *where(end))
                    if known is not None:
                        known.remember(node, outermost, start, end)
        if left:
            out.update(node_ranges(module, left))
    return out


def generated(
    module: cst.Module,
    node: cst.CSTNode,
    indents: Sequence[str] = (),
    stop: cst.CSTNode | None = None,
) -> str:
    """The code libcst generates for ``node`` (a statement) nested in blocks indented by
    ``indents``: the exact text it was parsed from. With ``stop`` (a statement of its body),
    only the code before that statement's own."""
    state = _HeaderState(module, set(), stop) if stop is not None else _State(module, set())
    state.indent_tokens = list(indents)
    with contextlib.suppress(_Stop):
        node._codegen(state)
    return "".join(state.tokens)


class _Placer:
    """Where statements begin in the text, found from their headers on demand, and the
    stretches of text known to hold them."""

    _REACH = 3  # neighbours tried on each side before a stretch runs to its enclosing one's end
    _LONG = 4000  # characters

    def __init__(self, module: cst.Module, text: str):
        self.module, self.text = module, text
        self.offsets: dict[int, int | None] = {}  # id(statement) -> where its code begins
        self.stretches: dict[int, tuple[int, int]] = {}  # id(statement) -> a stretch holding it

    def find(self, code: str, levels: Sequence[_Level]) -> int | None:
        """Where ``code``, the beginning of the innermost of ``levels``' statements, begins:
        searched in the stretch known to hold each level, outermost first. A long stretch
        (a big class) is not searched while a level below it narrows it from headers alone
        (cached): scanning it again for every statement inside cost more."""
        begin, end = 0, len(self.text)
        for depth in range(len(levels) - 1, -1, -1):
            begin, end = self.stretch(levels[depth], begin, end, depth == 0)
            if depth > 1 and end - begin > self._LONG:
                continue
            hit = _unique_line_start(self.text, code, begin, end)
            if hit is not None:
                return hit
        return None

    def stretch(self, level: _Level, begin: int, end: int, innermost: bool) -> tuple[int, int]:
        """Where in ``text[begin:end]``, the stretch of the enclosing statement, the
        ``level``'s statement (and all it holds) lies: from its own beginning, or a preceding
        neighbour's, to a following neighbour's. The innermost statement's own beginning is what
        is being searched, so it is not looked up."""
        statement, indents, _, siblings, k = level
        if not innermost:
            known = self.stretches.get(id(statement))
            if known is not None:
                return known
        inner_begin, inner_end = begin, end
        for j in range(k - innermost, max(k - self._REACH, -1), -1):
            found = self.offset(siblings[j], indents, begin, end)
            if found is not None:
                inner_begin = found
                break
        for j in range(k + 1, min(k + 1 + self._REACH, len(siblings))):
            found = self.offset(siblings[j], indents, begin, end)
            if found is not None:
                inner_end = found
                break
        if not innermost:
            self.stretches[id(statement)] = (inner_begin, inner_end)
        return inner_begin, inner_end

    def offset(
        self, statement: cst.CSTNode, indents: list[str], begin: int, end: int
    ) -> int | None:
        """Where ``statement`` begins, if its header occurs once in ``text[begin:end]`` (the
        stretch of the statement around it, always the same for one statement). A function's
        header is tried up to its ``(`` first: the names of a class's methods differ, and
        signatures are long."""
        key = id(statement)
        if key not in self.offsets:
            found = None
            if type(statement) is cst.FunctionDef:
                code = generated(self.module, statement, indents, statement.params)
                found = _unique_line_start(self.text, code, begin, end)
            if found is None:
                body = getattr(statement, "body", None)
                stop = body.body[0] if type(body) is cst.IndentedBlock and body.body else None
                code = generated(self.module, statement, indents, stop)
                found = _unique_line_start(self.text, code, begin, end)
            self.offsets[key] = found
        return self.offsets[key]


def _unique_line_start(text: str, code: str, begin: int = 0, end: int | None = None) -> int | None:
    """The offset of ``code`` in ``text[begin:end]`` if it occurs there once and starts a line."""
    end = len(text) if end is None else end
    first = text.find(code, begin, end)
    if first < 0 or text.find(code, first + 1, end) >= 0:
        return None
    if first and text[first - 1] not in "\r\n":
        return None
    return first
