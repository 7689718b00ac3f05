"""The Python API: lint paths or text and get ``Finding`` records back.

Used by the runtime companion (to join its observations to static findings), the language
server, and anyone scripting fp16lint.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fp16lint.config import load_settings
from fp16lint.findings import Finding
from fp16lint.runner import LintResult, Options
from fp16lint.runner import lint_paths as _lint_paths
from fp16lint.runner import lint_text as _lint_text
from fp16lint.settings import Settings


def lint_paths(
    paths: Iterable[str | Path], settings: Settings | None = None, options: Options | None = None
) -> LintResult:
    """Lint files and folders; settings default to the config found above the first path."""
    targets = [Path(p) for p in paths] or [Path(".")]
    settings = settings or load_settings(None, targets[0])
    return _lint_paths(targets, settings, options or Options())


def lint_text(
    text: str, path: str = "<stdin>.py", settings: Settings | None = None
) -> list[Finding]:
    """Findings for ``text`` as if it were the file ``path`` (not read from disk)."""
    settings = settings or load_settings(None, Path(path).parent)
    return _lint_text(text, path, settings).findings
