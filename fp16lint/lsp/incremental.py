"""Re-parsing only the statements an edit touched, for the language server.

libcst's parse is half of the time to lint a file, and a keystroke changes one statement. The
server keeps each buffer's tree with the offsets where its top-level statements begin; after a
change it parses the text of the statements the edit overlaps (with one neighbour each side)
as a module of its own and splices that module's statements into the old tree. Two refinements
keep a big class from being parsed again whole:

* an edit inside the body of a top-level class or function re-parses only the statements of
  that body it touched, under an ``if 1:`` line that gives them their indentation;
* a big body next to an edit (the class under an edited blank line) is stood in for by one
  line while the fragment is parsed, and the old body is put back.

The result is the tree a full parse gives, and its code is the text (``tests/lsp/
test_incremental.py`` compares them on edits of real files); whenever the fragment could attach
differently in the whole file (comment lines left at its end, another indentation or newline
style, a file without a final newline) or does not parse, it falls back to parsing the whole
text, which also reports the syntax error.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from fp16lint.engine import looks_deep
from fp16lint.parsing import parse_module
from fp16lint.positions import generated


@dataclass(frozen=True)
class Parsed:
    """A buffer's text, its tree, and where each top-level statement's code begins (the last
    entry is where the statements end and the module's footer starts)."""

    text: str
    module: cst.Module
    bounds: tuple[int, ...]
    # A top-level statement the last edit was inside, and where the statements of its body
    # begin (the last entry: where they end), so the next edit there finds them at once.
    members: tuple[cst.CSTNode, tuple[int, ...]] | None = None


def parse(text: str, previous: Parsed | None = None) -> Parsed | None:
    """The tree of ``text``, re-using ``previous`` (the same buffer before an edit) where it
    can; None for text whose full parse fails too (the engine reports it)."""
    if previous is not None and previous.text == text:
        return previous
    if looks_deep(text):
        return None  # the engine checks such text with CPython's parser before libcst's
    if previous is not None:
        change = _change(previous.text, text)
        bodies: dict[int, tuple[int, ...] | None] = {}  # ``_member_bounds``, found once
        try:
            spliced = _splice_inside(previous, text, change, bodies) or _splice(
                previous, text, change, bodies
            )
        except Exception:  # a case nobody foresaw costs a full parse, never the lint
            spliced = None
        if spliced is not None:
            return spliced
    try:
        module = parse_module(text)
    except Exception:  # a syntax error or a parser crash: the engine's own parse reports it
        return None
    return _with_bounds(text, module)


def _with_bounds(text: str, module: cst.Module) -> Parsed | None:
    if not module.has_trailing_newline:
        return None  # the last statement's code then differs from its text: parse in full
    offset = sum(len(module.code_for_node(line)) for line in module.header)
    bounds = [offset]
    for statement in module.body:
        offset += len(module.code_for_node(statement))
        bounds.append(offset)
    footer = sum(len(module.code_for_node(line)) for line in module.footer)
    return Parsed(text, module, tuple(bounds)) if offset + footer == len(text) else None


@dataclass(frozen=True)
class _Change:
    """An edit as the span ``[start, end)`` of the old text it replaced, and how much longer
    the text got."""

    start: int
    end: int
    delta: int


def _change(old: str, new: str) -> _Change:
    prefix = _common_prefix(old, new)
    suffix = _common_suffix(old, new, limit=min(len(old), len(new)) - prefix)
    return _Change(prefix, len(old) - suffix, len(new) - len(old))


def _splice(
    old: Parsed, text: str, change: _Change, bodies: dict[int, tuple[int, ...] | None]
) -> Parsed | None:
    body = old.module.body
    if not body:
        return None
    delta = change.delta
    # The statements the changed span overlaps, and one more each side.
    first = max(_statement_at(old.bounds, change.start) - 1, 0)
    last = min(_statement_at(old.bounds, change.end) + 2, len(body))
    start = old.bounds[first] if first else 0
    end = old.bounds[last] + delta if last < len(body) else len(text)
    if end < start or (last < len(body) and end > len(text)):
        return None
    module = old.module
    stand_ins = _stand_ins(old, first, last, change.end, bodies)
    try:
        fragment = parse_module(
            _with_stand_ins(text, start, end, stand_ins, delta, module.default_newline)
        )
    except Exception:
        return None
    if (
        fragment.default_indent != module.default_indent
        or fragment.default_newline != module.default_newline
        or (last < len(body) and (fragment.footer or not fragment.has_trailing_newline))
        or (first and fragment.header and not fragment.body)
    ):
        return None
    statements = list(fragment.body)
    header = module.header
    if first == 0:
        header = fragment.header
    elif fragment.header:  # comment lines above a statement that starts a file are its header
        statements[0] = statements[0].with_changes(
            leading_lines=[*fragment.header, *statements[0].leading_lines]
        )
    grafted = _grafted(statements, stand_ins, module)
    if grafted is None:
        return None
    changes: dict = {"header": header, "body": [*body[:first], *statements, *body[last:]]}
    if last == len(body):
        if not fragment.has_trailing_newline:
            return None
        changes["footer"] = fragment.footer
    spliced = module.with_changes(**changes)
    # The first new statement's code starts the fragment, its header lines now included,
    # unless the fragment starts the file (then the module's header comes first).
    offset = start if first else sum(len(spliced.code_for_node(line)) for line in header)
    bounds = [*old.bounds[:first], offset]
    members = None
    for index, statement in enumerate(statements):
        graft = grafted.get(index)
        if graft is None:
            code = spliced.code_for_node(statement)
            if not text.startswith(code, offset):
                return None  # text libcst does not give back as written (parsed in full)
            offset += len(code)
        else:  # the code around the body that was not parsed again, then the body's text
            stand_in, head, tail = graft
            gap = stand_in.members[-1] - stand_in.members[0]
            if not (
                text.startswith(head, offset) and text.startswith(tail, offset + len(head) + gap)
            ):
                return None
            members = (statement, tuple(m + delta for m in stand_in.members))
            offset += len(head) + gap + len(tail)
        bounds.append(offset)
    bounds += [b + delta for b in old.bounds[last + 1 :]]
    return Parsed(text, spliced, tuple(bounds), members)


# A body of this many statements or more that an edit next to it does not reach is not parsed
# again: a line stands in for it and the old body is put back (an edit above a class of
# hundreds of lines otherwise parses the whole class). Smaller ones cost less to parse again.
_STAND_IN_FROM = 8
_STAND_IN = "pass  # fp16lint: stands in for a body not parsed again"


@dataclass(frozen=True)
class _StandIn:
    block: cst.IndentedBlock  # a top-level statement's body, kept
    members: tuple[int, ...]  # where the body's statements begin in the old text, and end
    indent: str


def _stand_ins(
    old: Parsed,
    first: int,
    last: int,
    changed_end: int,
    bodies: dict[int, tuple[int, ...] | None],
) -> list[_StandIn]:
    """The big bodies among statements ``first``..``last - 1`` that begin after the edit."""
    found = []
    for index in range(first, last):
        block = getattr(old.module.body[index], "body", None)
        if type(block) is not cst.IndentedBlock or len(block.body) < _STAND_IN_FROM:
            continue
        indent = old.module.default_indent if block.indent is None else block.indent
        members = _member_bounds(old, index, indent, bodies)
        if members is not None and members[0] >= changed_end:
            found.append(_StandIn(block, members, indent))
    return found


def _with_stand_ins(
    text: str, start: int, end: int, stand_ins: list[_StandIn], delta: int, newline: str
) -> str:
    """``text[start:end]`` with a line in place of each body in ``stand_ins`` (which begin
    after the edit, so ``delta`` further on than in the old text)."""
    pieces, at = [], start
    for stand_in in stand_ins:
        pieces.append(text[at : stand_in.members[0] + delta])
        pieces.append(f"{stand_in.indent}{_STAND_IN}{newline}")
        at = stand_in.members[-1] + delta
    pieces.append(text[at:end])
    return "".join(pieces)


def _grafted(
    statements: list[cst.CSTNode], stand_ins: list[_StandIn], module: cst.Module
) -> dict[int, tuple[_StandIn, str, str]] | None:
    """Put the kept bodies back in place of the stand-ins in ``statements`` (changed in place).
    Returns, for each statement that holds one, the stand-in and the statement's code before
    and after it; None unless each stand-in is alone in the body of a statement of its own,
    as it was."""
    if not stand_ins:
        return {}
    holders = [
        i
        for i, statement in enumerate(statements)
        if type(getattr(statement, "body", None)) is cst.IndentedBlock
        and _is_stand_in(statement.body.body[0])  # type: ignore[attr-defined]
    ]
    if len(holders) != len(stand_ins):
        return None
    found = {}
    for i, stand_in in zip(holders, stand_ins, strict=True):
        parsed = statements[i].body  # type: ignore[attr-defined]
        kept = stand_in.block
        if (
            len(parsed.body) != 1
            or parsed.indent != kept.indent
            or len(parsed.footer) != len(kept.footer)
            or not all(a.deep_equals(b) for a, b in zip(parsed.footer, kept.footer, strict=True))
        ):
            return None
        code = module.code_for_node(statements[i])
        line = f"{stand_in.indent}{_STAND_IN}{module.default_newline}"
        if code.count(line) != 1:
            return None
        head, _, tail = code.partition(line)
        found[i] = (stand_in, head, tail)
        statements[i] = statements[i].with_changes(body=kept.with_changes(header=parsed.header))
    return found


def _is_stand_in(statement: cst.CSTNode) -> bool:
    return (
        type(statement) is cst.SimpleStatementLine
        and len(statement.body) == 1
        and type(statement.body[0]) is cst.Pass
        and statement.trailing_whitespace.comment is not None
        and statement.trailing_whitespace.comment.value == _STAND_IN.partition("  ")[2]
        and not statement.leading_lines
    )


def _splice_inside(
    old: Parsed, text: str, change: _Change, bodies: dict[int, tuple[int, ...] | None]
) -> Parsed | None:
    """``_splice`` one level down: an edit inside the body of a top-level class or function
    re-parses only the statements of that body it touched (with one neighbour each side),
    under an ``if 1:`` line that gives them their indentation, instead of the whole class."""
    module, body = old.module, old.module.body
    prefix, changed_end, delta = change.start, change.end, change.delta
    k = _statement_at(old.bounds, prefix)
    if k >= len(body) or _statement_at(old.bounds, changed_end) != k:
        return None
    statement = body[k]
    block = getattr(statement, "body", None)
    if type(block) is not cst.IndentedBlock or not block.body:
        return None
    indent = module.default_indent if block.indent is None else block.indent
    members = _member_bounds(old, k, indent, bodies)
    if members is None or not members[0] <= prefix <= changed_end <= members[-1]:
        return None
    first = max(_statement_at(members, prefix) - 1, 0)
    last = min(_statement_at(members, changed_end) + 2, len(block.body))
    start, end = members[first], members[last] + delta
    newline = module.default_newline
    try:
        wrapper = parse_module(f"if 1:{newline}{text[start:end]}")
    except Exception:
        return None
    inner = wrapper.body[0] if len(wrapper.body) == 1 else None
    if (
        type(inner) is not cst.If
        or inner.orelse is not None
        or type(inner.body) is not cst.IndentedBlock
        or inner.body.footer
        or wrapper.header
        or wrapper.footer
        or wrapper.default_indent != module.default_indent
        or wrapper.default_newline != newline
        or (inner.body.indent or wrapper.default_indent) != indent
    ):
        return None  # the statements could attach differently in the whole file
    statements = list(inner.body.body)
    offsets = [start]
    for new in statements:
        code = generated(module, new, (indent,))
        if not text.startswith(code, offsets[-1]):
            return None  # text libcst does not give back as written (parsed in full)
        offsets.append(offsets[-1] + len(code))
    if offsets[-1] != end:
        return None
    new_block = block.with_changes(body=[*block.body[:first], *statements, *block.body[last:]])
    new_statement = statement.with_changes(body=new_block)
    spliced = module.with_changes(body=[*body[:k], new_statement, *body[k + 1 :]])
    bounds = (*old.bounds[: k + 1], *(b + delta for b in old.bounds[k + 1 :]))
    kept = (*members[:first], *offsets[:-1], *(m + delta for m in members[last:]))
    return Parsed(text, spliced, bounds, (new_statement, kept))


def _member_bounds(
    old: Parsed, k: int, indent: str, bodies: dict[int, tuple[int, ...] | None]
) -> tuple[int, ...] | None:
    """Where the statements in the body of top-level statement ``k`` begin in ``old.text``,
    and where the last one ends; None if their code is not found there. ``bodies`` keeps
    what this edit found (both splices may ask about the same class)."""
    statement = old.module.body[k]
    if old.members is not None and old.members[0] is statement:
        return old.members[1]
    if k not in bodies:
        bodies[k] = _find_member_bounds(old, k, indent)
    return bodies[k]


def _find_member_bounds(old: Parsed, k: int, indent: str) -> tuple[int, ...] | None:
    statement = old.module.body[k]
    block = statement.body  # type: ignore[attr-defined]
    offset = old.bounds[k] + len(generated(old.module, statement, stop=block.body[0]))
    found = [offset]
    for member in block.body:
        code = generated(old.module, member, (indent,))
        if not old.text.startswith(code, offset):
            return None
        offset += len(code)
        found.append(offset)
    return tuple(found)


def _statement_at(bounds: tuple[int, ...], offset: int) -> int:
    """The index of the top-level statement whose code holds ``offset``."""
    low, high = 0, len(bounds) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if bounds[middle] <= offset:
            low = middle
        else:
            high = middle - 1
    return low


def _common_prefix(a: str, b: str) -> int:
    limit = min(len(a), len(b))
    low, high = 0, limit
    while low < high:  # the longest prefix that matches, by halving (each test runs in C)
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _common_suffix(a: str, b: str, limit: int) -> int:
    low, high = 0, max(limit, 0)
    while low < high:
        middle = (low + high + 1) // 2
        if a[len(a) - middle :] == b[len(b) - middle :]:
            low = middle
        else:
            high = middle - 1
    return low
