"""Ruff-style text: ``path:line:col: CODE [*] message``, with a source frame in ``full``.

A severity other than ``warning`` (the common case) is shown after the code, ``FP202 (info)``,
so that what JSON and the GitHub format carry is visible in the terminal too."""

from __future__ import annotations

from fp16lint.findings import Finding, Severity
from fp16lint.fixes import is_applicable
from fp16lint.formatters import FormatContext, location

_BOLD, _RED, _CYAN, _RESET = "\x1b[1m", "\x1b[31m", "\x1b[36m", "\x1b[0m"


def _header(finding: Finding, ctx: FormatContext) -> str:
    marker = " [*]" if is_applicable(finding.fix, ctx.unsafe_fixes) else ""
    where = location(finding.path, finding.span) + ":"
    code = finding.code
    if ctx.color:
        where, code = f"{_BOLD}{where}{_RESET}", f"{_BOLD}{_RED}{code}{_RESET}"
    severity = "" if finding.severity is Severity.WARNING else f" ({finding.severity.value})"
    return f"{where} {code}{severity}{marker} {finding.message}"


def format_concise(findings: list[Finding], ctx: FormatContext) -> str:
    return "".join(_header(f, ctx) + "\n" for f in findings)


def format_full(findings: list[Finding], ctx: FormatContext) -> str:
    blocks = []
    for finding in findings:
        lines = [_header(finding, ctx)]
        start, end = finding.span.start, finding.span.end
        text = ctx.source_line(finding.path, start.line, finding.span.cell)
        if text is not None:
            gutter = " " * len(str(start.line))
            stop = (
                end.column
                if end.line == start.line and end.column > start.column
                else len(text) + 1
            )
            carets = "^" * max(1, stop - start.column)
            lines += [
                f"{gutter} |",
                f"{start.line} | {text}",
                f"{gutter} | {' ' * (start.column - 1)}{carets} {finding.code}",
            ]
        for related in finding.related:
            lines.append(f"  = note: {related.message} ({location(related.path, related.span)})")
        if finding.help:
            lines.append(f"  = help: {finding.help}")
        if finding.fix is not None:
            kind = "" if finding.fix.applicability.value == "safe" else " (unsafe)"
            lines.append(f"  = fix: {finding.fix.message}{kind}")
        if finding.detail:
            lines.append(finding.detail.rstrip())
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)
