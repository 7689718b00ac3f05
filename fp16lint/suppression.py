"""``# noqa`` comments, read from the text without parsing.

Line level: ``# noqa`` (everything on that line) or ``# noqa: FP101, FP202``. File level, on a
line of its own: ``# fp16lint: noqa`` or ``# fp16lint: noqa: FP301``. Codes are matched as
prefixes, like ruff's (``# noqa: FP3`` silences the FP3xx family).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any

# A code ends where a letter or digit cannot follow (`FP4O1` is a typo, not the prefix `FP4`).
_CODES = r"(?P<colon>:\s*(?P<codes>[A-Z]+[0-9]+(?![A-Z0-9])(?:[\s,]+[A-Z]+[0-9]+(?![A-Z0-9]))*)?)?"
_LINE = re.compile(r"#\s*noqa" + _CODES, re.I)
_FILE = re.compile(r"^\s*#\s*fp16lint:\s*noqa" + _CODES, re.I)
_SPLIT = re.compile(r"[\s,]+")
_MENTION = re.compile("noqa", re.I)
_NEWLINE = re.compile(r"\r\n?|\n")


def _valid(match: re.Match[str]) -> bool:
    """``# noqa:`` with nothing readable after the colon silences nothing (not everything)."""
    return not match.group("colon") or match.group("codes") is not None


def _codes(text: str | None) -> list[str] | None:
    return [c.upper() for c in _SPLIT.split(text.strip()) if c] if text else None


@dataclass
class Noqa:
    """``None`` as a code list means "every code"."""

    lines: dict[int, list[str] | None] = field(default_factory=dict)
    file: list[str] = field(default_factory=list)  # codes silenced in the whole file
    file_all: bool = False

    def suppresses(self, code: str, line: int) -> bool:
        if self.file_all or any(code.startswith(c) for c in self.file):
            return True
        if line not in self.lines:
            return False
        codes = self.lines[line]
        return codes is None or any(code.startswith(c) for c in codes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": {str(k): v for k, v in self.lines.items()},
            "file": self.file,
            "all": self.file_all,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Noqa:
        return cls({int(k): v for k, v in data["lines"].items()}, data["file"], data["all"])


def last_directive(line: str) -> re.Match[str] | None:
    """The line's ``# noqa`` directive (the last one: an earlier one can sit in a string)."""
    matches = list(_LINE.finditer(line))
    return matches[-1] if matches and _valid(matches[-1]) else None


def scan(text: str) -> Noqa:
    """The directives in ``text``. Only lines that mention noqa are read, and lines are
    numbered as Python counts them (``\\r\\n``, ``\\r`` or ``\\n``; a form feed ends none)."""
    noqa = Noqa()
    mentions = [m.start() for m in _MENTION.finditer(text)]
    if not mentions:
        return noqa
    starts = [0, *(m.end() for m in _NEWLINE.finditer(text))]
    read: set[int] = set()
    for offset in mentions:
        number = bisect.bisect_right(starts, offset)
        if number in read:
            continue
        read.add(number)
        end = starts[number] if number < len(starts) else len(text)
        line = text[starts[number - 1] : end].rstrip("\r\n")
        file_match = _FILE.match(line)
        if file_match and _valid(file_match):
            codes = _codes(file_match.group("codes"))
            if codes is None:
                noqa.file_all = True
            else:
                noqa.file.extend(codes)
            continue
        match = last_directive(line)
        if match is not None:
            noqa.lines[number] = _codes(match.group("codes"))
    return noqa
