"""Applying fixes to text: edits are character ranges, so everything else stays byte-identical.

A fix is applied whole or not at all; fixes whose edits overlap an already chosen fix wait for
the next round (the runner re-lints and repeats until nothing changes, like ruff).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fp16lint.findings import Applicability, Finding, Fix, Position

_NEWLINE = re.compile(r"\r\n|\r|\n")


def line_starts(text: str) -> list[int]:
    """Offsets where each line starts, splitting on the newlines the parser knows."""
    return [0, *(m.end() for m in _NEWLINE.finditer(text))]


def offset(starts: list[int], position: Position) -> int:
    return starts[position.line - 1] + position.column - 1


def is_applicable(fix: Fix | None, unsafe: bool) -> bool:
    return fix is not None and (fix.applicability is Applicability.SAFE or unsafe)


def apply(text: str, findings: Iterable[Finding], unsafe: bool) -> tuple[str, list[Finding]]:
    """Apply every non-overlapping applicable fix; return the new text and the fixed findings."""
    starts = line_starts(text)
    chosen: list[tuple[int, int, str]] = []
    applied: list[Finding] = []
    seen_fixes: set[Fix] = set()
    for finding in sorted(findings, key=lambda f: f.sort_key):
        fix = finding.fix
        if not is_applicable(fix, unsafe):
            continue
        assert fix is not None
        if fix in seen_fixes:  # several findings may share one fix (an import and its uses)
            applied.append(finding)
            continue
        ranges = [
            (offset(starts, e.span.start), offset(starts, e.span.end), e.content) for e in fix.edits
        ]
        if any(_overlaps(r, c) for r in ranges for c in chosen):
            continue
        chosen.extend(ranges)
        seen_fixes.add(fix)
        applied.append(finding)
    for start, end, content in sorted(chosen, key=lambda r: (r[0], r[1]), reverse=True):
        text = text[:start] + content + text[end:]
    return text, applied


def _overlaps(a: tuple[int, int, str], b: tuple[int, int, str]) -> bool:
    if a[0] == a[1] == b[0] == b[1]:
        return True  # two insertions at one point: order would be ambiguous
    return a[0] < b[1] and b[0] < a[1]
