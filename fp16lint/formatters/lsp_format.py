"""LSP ``Diagnostic`` objects as JSON: the ``lsp`` output format and the language server build
them here, so an editor plugin that runs the CLI sees what the server would publish.

Columns are converted to the client's position units (UTF-16 unless negotiated otherwise).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fp16lint.findings import Finding, Position, Severity, Span
from fp16lint.formatters import FormatContext

SOURCE = "fp16lint"
SEVERITY = {Severity.ERROR: 1, Severity.WARNING: 2, Severity.INFO: 3}
# (path, 1-based line, notebook cell) -> the line's text, or None when unknown
LineText = Callable[[str, int, "int | None"], "str | None"]


def units(text: str, encoding: str = "utf-16") -> int:
    """The length of ``text`` in LSP position units (``positionEncoding``)."""
    if text.isascii() or encoding == "utf-32":
        return len(text)
    if encoding == "utf-8":
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def path_uri(path: str) -> str:
    return Path(os.path.abspath(path)).as_uri()


def lsp_range(path: str, span: Span, line_text: LineText, encoding: str) -> dict[str, Any]:
    def position(pos: Position) -> dict[str, int]:
        text = line_text(path, pos.line, span.cell)
        prefix_units = pos.column - 1 if text is None else units(text[: pos.column - 1], encoding)
        return {"line": pos.line - 1, "character": prefix_units}

    return {"start": position(span.start), "end": position(span.end)}


def diagnostic(finding: Finding, line_text: LineText, encoding: str = "utf-16") -> dict[str, Any]:
    """One ``Diagnostic``; ``data`` carries the rule name, the help (shown in the hover), the
    fix and the notebook cell."""
    out: dict[str, Any] = {
        "range": lsp_range(finding.path, finding.span, line_text, encoding),
        "severity": SEVERITY[finding.severity],
        "code": finding.code,
        "source": SOURCE,
        "message": finding.message,
    }
    if finding.url:
        out["codeDescription"] = {"href": finding.url}
    if finding.related:
        out["relatedInformation"] = [
            {
                "location": {
                    "uri": path_uri(r.path),
                    "range": lsp_range(r.path, r.span, line_text, encoding),
                },
                "message": r.message,
            }
            for r in finding.related
        ]
    data: dict[str, Any] = {"name": finding.name}
    if finding.help:
        data["help"] = finding.help
    if finding.fix is not None:
        data["fix"] = finding.fix.to_dict()
    if finding.span.cell is not None:
        data["cell"] = finding.span.cell
    out["data"] = data
    return out


def format_lsp(findings: list[Finding], ctx: FormatContext) -> str:
    """``[{"uri", "path", "diagnostics": [Diagnostic, ...]}, ...]``, one entry per file."""
    files: dict[str, list[dict[str, Any]]] = {}
    for finding in findings:
        files.setdefault(finding.path, []).append(diagnostic(finding, ctx.source_line))
    entries = [
        {"uri": path_uri(path), "path": path, "diagnostics": items} for path, items in files.items()
    ]
    return json.dumps(entries, indent=2) + "\n"
