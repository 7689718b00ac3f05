"""Text edits the code actions offer, computed on the text itself (no LSP types here): the
``# noqa: CODE`` comment for a line, and one minimal edit between two versions of a buffer."""

from __future__ import annotations

import io
import re
import tokenize
from bisect import bisect_right

from fp16lint.findings import Edit, Position, Span
from fp16lint.fixes import line_starts

_NOQA_CODES = re.compile(r"#\s*noqa:\s*[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*", re.I)
_STRING_TOKENS = {tokenize.STRING, *(getattr(tokenize, n, -1) for n in ("FSTRING_MIDDLE",))}


def position_at(starts: list[int], offset: int) -> Position:
    line = bisect_right(starts, offset)
    return Position(line, offset - starts[line - 1] + 1)


def minimal_edit(before: str, after: str) -> Edit:
    """One edit turning ``before`` into ``after``: the changed middle, common ends kept."""
    prefix = 0
    limit = min(len(before), len(after))
    while prefix < limit and before[prefix] == after[prefix]:
        prefix += 1
    if 0 < prefix < len(before) and before[prefix - 1 : prefix + 1] == "\r\n":
        prefix -= 1  # never split a CRLF: positions count it as one line break
    suffix = 0
    while suffix < limit - prefix and before[-1 - suffix] == after[-1 - suffix]:
        suffix += 1
    if 0 < suffix < len(before) and before[-1 - suffix : len(before) - suffix + 1] == "\r\n":
        suffix -= 1
    starts = line_starts(before)
    span = Span(position_at(starts, prefix), position_at(starts, len(before) - suffix))
    return Edit(span, after[prefix : len(after) - suffix])


def _scan_line(text: str, line: int) -> tuple[bool, int | None] | None:
    """Whether ``line`` ends inside a multi-line string, and the column (0-based) of its
    comment; None when the text does not tokenize."""
    comment = None
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.start[0] > line:
                break
            if token.type in _STRING_TOKENS and token.start[0] <= line < token.end[0]:
                return True, None
            if token.type == tokenize.COMMENT and token.start[0] == line:
                comment = token.start[1]
    except (tokenize.TokenError, SyntaxError):
        return None
    return False, comment


def noqa_edit(text: str, line: int, code: str) -> Edit | None:
    """The edit that adds ``code`` to ``line``'s ``# noqa`` comment (or adds the comment).

    None where a comment cannot go: the line ends inside a string or continues with a
    backslash, or the text does not tokenize."""
    starts = line_starts(text)
    if not 0 < line <= len(starts):
        return None
    end = starts[line] if line < len(starts) else len(text)
    content = text[starts[line - 1] : end].rstrip("\r\n")
    scan = _scan_line(text, line)
    if scan is None or scan[0] or content.rstrip().endswith("\\"):
        return None
    comment = scan[1]
    existing = _NOQA_CODES.search(content, comment) if comment is not None else None
    if existing is not None:
        column = existing.end() + 1
        return Edit(Span(Position(line, column), Position(line, column)), f", {code}")
    column = len(content.rstrip()) + 1
    return Edit(Span(Position(line, column), Position(line, column)), f"  # noqa: {code}")
