"""Output formats. Each formatter turns the sorted findings of a run into one string.

A formatter is a function ``(findings, context) -> str`` registered in ``FORMATTERS``; the
CLI prints its result. Machine formats print nothing else on stdout.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fp16lint.findings import Finding


@dataclass
class FormatContext:
    color: bool = False
    unsafe_fixes: bool = False
    _lines: dict[str, list[str]] = field(default_factory=dict)

    def source_line(self, path: str, line: int) -> str | None:
        """The text of ``line`` in ``path`` (read lazily, once per file), or None."""
        if path not in self._lines:
            from fp16lint.source import SourceError, read

            try:
                self._lines[path] = read(Path(path)).text.splitlines()
            except (SourceError, OSError):
                self._lines[path] = []
        lines = self._lines[path]
        return lines[line - 1] if 0 < line <= len(lines) else None


Formatter = Callable[[list[Finding], FormatContext], str]

# name -> "module:function", imported on use so that start-up stays fast.
FORMATTERS: dict[str, str] = {
    "full": "fp16lint.formatters.text:format_full",
    "concise": "fp16lint.formatters.text:format_concise",
    "json": "fp16lint.formatters.json_format:format_json",
}


def get_formatter(name: str) -> Formatter:
    module, _, function = FORMATTERS[name].partition(":")
    return getattr(importlib.import_module(module), function)
