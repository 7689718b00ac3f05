"""Output formats. Each formatter turns the sorted findings of a run into one string.

A formatter is a function ``(findings, context) -> str`` registered in ``FORMATTERS``; the
CLI prints its result. Machine formats print nothing else on stdout.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fp16lint.findings import Finding, Span

_NEWLINE = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """Lines as the parser numbers them (``str.splitlines`` also splits on form feeds...)."""
    lines = _NEWLINE.split(text)
    return lines[:-1] if lines and lines[-1] == "" else lines


@dataclass
class FormatContext:
    color: bool = False
    unsafe_fixes: bool = False
    _lines: dict[str, list[str]] = field(default_factory=dict)

    def use_text(self, path: str, text: str) -> None:
        """Take ``path``'s lines from ``text`` (standard input, an editor buffer), not the disk."""
        self._lines[path] = split_lines(text)

    def source_line(self, path: str, line: int, cell: int | None = None) -> str | None:
        """The text of ``line`` in ``path`` (or in its notebook ``cell``), read lazily once per
        file, or None."""
        key = path if cell is None else f"{path}\0{cell}"
        if key not in self._lines:
            from fp16lint.source import SourceError, read

            try:
                if cell is None:
                    self._lines[key] = split_lines(read(Path(path)).text)
                else:
                    from fp16lint.notebook import cell_text

                    self._lines[key] = split_lines(cell_text(Path(path), cell))
            except (SourceError, OSError):
                self._lines[key] = []
        lines = self._lines[key]
        return lines[line - 1] if 0 < line <= len(lines) else None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(path: str) -> str:
    """``path`` with control characters escaped (a newline in a file name would otherwise
    start a line that looks like another finding), and bytes that are not UTF-8 as ``\\xff``."""
    text = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: repr(m[0])[1:-1], text)


def with_help(finding: Finding) -> str:
    """The message and its help as one text, for formats with a single text field."""
    return f"{finding.message} {finding.help}" if finding.help else finding.message


def location(path: str, span: Span) -> str:
    """``path:line:col``, or ``notebook.ipynb:cell 3:line:col`` in a notebook."""
    cell = f"cell {span.cell}:" if span.cell is not None else ""
    return f"{printable(path)}:{cell}{span.start.line}:{span.start.column}"


Formatter = Callable[[list[Finding], FormatContext], str]

# name -> "module:function", imported on use so that start-up stays fast.
FORMATTERS: dict[str, str] = {
    "full": "fp16lint.formatters.text:format_full",
    "concise": "fp16lint.formatters.text:format_concise",
    "json": "fp16lint.formatters.json_format:format_json",
    "json-lines": "fp16lint.formatters.json_format:format_json_lines",
    "github": "fp16lint.formatters.github:format_github",
    "gitlab": "fp16lint.formatters.gitlab:format_gitlab",
    "sarif": "fp16lint.formatters.sarif:format_sarif",
    "junit": "fp16lint.formatters.junit:format_junit",
    "lsp": "fp16lint.formatters.lsp_format:format_lsp",
}


def get_formatter(name: str) -> Formatter:
    module, _, function = FORMATTERS[name].partition(":")
    return getattr(importlib.import_module(module), function)
