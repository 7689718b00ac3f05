"""Where a notebook's cell sources sit in its JSON text, so a fix can replace just those bytes.

Re-printing the whole notebook with ``json.dumps`` would change what the fix never touched:
CRLF line endings, tab indentation, a BOM, ``\\u00E9`` escapes, duplicate keys, numbers in
output metadata (``1e5`` -> ``100000.0``). The scanner is iterative (no recursion limit on
deeply nested outputs) and reads text ``json.loads`` has already accepted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from json.decoder import scanstring  # type: ignore[attr-defined]

_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:Infinity|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|true|false|null|NaN")

Span = tuple[int, int]


def _ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]


def _skip(text: str, pos: int) -> int:
    """The end of the JSON value starting at ``pos``."""
    depth = 0
    while True:
        pos = _ws(text, pos)
        char = text[pos]
        if char == '"':
            pos = scanstring(text, pos + 1)[1]
        elif char in "[{":
            depth, pos = depth + 1, pos + 1
        elif char in "]}":
            depth, pos = depth - 1, pos + 1
        elif char in ",:":
            pos += 1
            continue
        else:
            match = _SCALAR.match(text, pos)
            if match is None:
                raise ValueError(f"unexpected {char!r} at {pos}")
            pos = match.end()
        if depth == 0:
            return pos


def members(text: str, pos: int) -> Iterator[tuple[str, Span]]:
    """The ``(key, value span)`` pairs of the object starting at ``pos``."""
    pos = _ws(text, pos) + 1
    while True:
        pos = _ws(text, pos)
        if text[pos] == "}":
            return
        key, pos = scanstring(text, pos + 1)
        start = _ws(text, _ws(text, pos) + 1)  # past the colon
        end = _skip(text, start)
        yield key, (start, end)
        pos = _ws(text, end)
        pos += text[pos] == ","


def elements(text: str, pos: int) -> Iterator[Span]:
    """The value spans of the array starting at ``pos``."""
    pos = _ws(text, pos) + 1
    while True:
        pos = _ws(text, pos)
        if text[pos] == "]":
            return
        end = _skip(text, pos)
        yield pos, end
        pos = _ws(text, end)
        pos += text[pos] == ","


def _last(text: str, pos: int, key: str) -> Span | None:
    """The value of ``key`` in the object at ``pos`` (the last one, as ``json.loads`` keeps)."""
    found = None
    for name, span in members(text, pos):
        if name == key:
            found = span
    return found


def cell_sources(text: str) -> list[Span | None]:
    """The span of each cell's ``source`` value, in cell order (None: a cell without one)."""
    cells = _last(text, 0, "cells")
    if cells is None:
        return []
    return [_last(text, start, "source") for start, _ in elements(text, cells[0])]


def render_source(text: str, span: Span, new: str) -> str:
    """``new`` as the JSON of a cell source written like the one at ``span``: a string, or a
    list of lines with the same separators and the unchanged lines' text as it was; non-ASCII
    is escaped only if the file is all ASCII."""
    ascii_only = text.isascii()
    old = text[span[0] : span[1]]
    if not old.startswith("["):
        return json.dumps(new, ensure_ascii=ascii_only)
    items = list(elements(text, span[0]))
    open_ws, sep, close_ws = "", ", ", ""
    if items:
        open_ws = text[span[0] + 1 : items[0][0]]
        close_ws = text[items[-1][1] : span[1] - 1]
        sep = text[items[0][1] : items[1][0]] if len(items) > 1 else "," + open_ws
    # A line the fix left alone keeps its JSON text as written (``\u00E9`` stays so).
    written = {json.loads(text[a:b]): text[a:b] for a, b in reversed(items)}
    lines = [
        written.get(line) or json.dumps(line, ensure_ascii=ascii_only)
        for line in new.splitlines(keepends=True)
    ]
    if not lines:
        return "[]"
    return "[" + open_ws + sep.join(lines) + close_ws + "]"
