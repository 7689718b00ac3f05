"""FP001 unused-noqa: fp16lint codes in ``# noqa`` comments that silenced nothing.

Made after the noqa pass, from the directives each one used (``runner._filter``); the fix
edits only the comment.
"""

from __future__ import annotations

from collections.abc import Iterable

from fp16lint import suppression
from fp16lint.analysis.context import FileSummary
from fp16lint.findings import Applicability, Edit, Finding, Fix, Position, Span
from fp16lint.fixes import line_starts
from fp16lint.rules.fp001_unused_noqa import UnusedNoqa

_DIRECTIVE = "# noqa"


def unused_noqa(
    summaries: dict[str, FileSummary],
    used: set[tuple[str, int, str]],
    texts: dict[str, str],
    known: Iterable[str],
    enabled: Iterable[str],
) -> list[Finding]:
    """FP001 for each line whose ``# noqa: CODES`` has fp16lint codes that silenced nothing
    (``used``: the (path, line, code) directives that did silence a finding)."""
    known, enabled = tuple(known), tuple(enabled)
    out = []
    for path, summary in summaries.items():
        text = texts.get(path)
        if text is None:
            continue
        starts = line_starts(text)
        for line, codes in sorted(summary.noqa.lines.items()):
            ours = [
                c
                for c in codes or ()
                if c.startswith("FP")
                and c != UnusedNoqa.code
                and any(k.startswith(c) for k in known)
                and (path, line, c) not in used
            ]
            if ours:
                end = starts[line] if line < len(starts) else len(text)
                finding = _finding(path, line, text[starts[line - 1] : end], codes, ours, enabled)
                if finding is not None:
                    out.append(finding)
    return out


def _finding(
    path: str,
    line: int,
    text: str,
    codes: list[str],
    unused: list[str],
    enabled: tuple[str, ...],
) -> Finding | None:
    match = suppression.last_directive(text.rstrip("\r\n"))
    if match is None:
        return None
    kept = [c for c in codes if c not in unused]
    if kept:
        start, content = match.start(), f"{_DIRECTIVE}: {', '.join(kept)}"
    else:  # the whole comment goes, with the spaces before it
        start, content = len(text[: match.start()].rstrip(" \t")), ""
    edit = Edit(Span(Position(line, start + 1), Position(line, match.end() + 1)), content)
    names = ", ".join(f"`{c}`" for c in unused)
    disabled = all(not any(e.startswith(c) for e in enabled) for c in unused)
    which = "non-enabled" if disabled else "unused"
    where = Span(Position(line, match.start() + 1), Position(line, match.end() + 1))
    return Finding(
        UnusedNoqa.code,
        UnusedNoqa.name,
        UnusedNoqa.severity,
        f"Unused `noqa` directive ({which}: {names}).",
        path,
        where,
        Fix(
            "Remove the unused `noqa` code" + ("s" if len(unused) > 1 else ""),
            Applicability.SAFE,
            (edit,),
        ),
        url=UnusedNoqa.url(),
        help="Remove the code from the comment; a stale `noqa` hides the next real finding.",
    )
