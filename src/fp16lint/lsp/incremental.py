"""Re-parsing only the top-level statements an edit touched, for the language server.

libcst's parse is half of the time to lint a file, and a keystroke changes one statement. The
server keeps each buffer's tree with the offsets where its top-level statements begin; after a
change it parses the text of the statements the edit overlaps (with one neighbour each side)
as a module of its own and splices that module's statements into the old tree. The result is
the tree a full parse gives (``tests/lsp/test_incremental.py`` compares them on edits of real
files); whenever the fragment could attach differently in the whole file (comment lines left at
its end, another indentation or newline style, a file without a final newline) or does not
parse, it falls back to parsing the whole text, which also reports the syntax error.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from fp16lint.engine import looks_deep
from fp16lint.parsing import parse_module


@dataclass(frozen=True)
class Parsed:
    """A buffer's text, its tree, and where each top-level statement's code begins (the last
    entry is where the statements end and the module's footer starts)."""

    text: str
    module: cst.Module
    bounds: tuple[int, ...]


def parse(text: str, previous: Parsed | None = None) -> Parsed | None:
    """The tree of ``text``, re-using ``previous`` (the same buffer before an edit) where it
    can; None for text whose full parse fails too (the engine reports it)."""
    if previous is not None and previous.text == text:
        return previous
    if looks_deep(text):
        return None  # the engine checks such text with CPython's parser before libcst's
    if previous is not None:
        spliced = _splice(previous, text)
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


def _splice(old: Parsed, text: str) -> Parsed | None:
    body = old.module.body
    if not body:
        return None
    prefix = _common_prefix(old.text, text)
    suffix = _common_suffix(old.text, text, limit=min(len(old.text), len(text)) - prefix)
    delta = len(text) - len(old.text)
    # The statements the changed span [prefix, len - suffix) overlaps, and one more each side.
    first = max(_statement_at(old.bounds, prefix) - 1, 0)
    last = min(_statement_at(old.bounds, len(old.text) - suffix) + 2, len(body))
    start = old.bounds[first] if first else 0
    end = old.bounds[last] + delta if last < len(body) else len(text)
    if end < start or (last < len(body) and end > len(text)):
        return None
    try:
        fragment = parse_module(text[start:end])
    except Exception:
        return None
    module = old.module
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
    for statement in statements:
        offset += len(spliced.code_for_node(statement))
        bounds.append(offset)
    bounds += [b + delta for b in old.bounds[last + 1 :]]
    return Parsed(text, spliced, tuple(bounds))


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
