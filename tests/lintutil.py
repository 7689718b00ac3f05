"""Helpers for the static linter's tests (import as ``from lintutil import ...``)."""

from __future__ import annotations

from pathlib import Path

from fp16lint.runner import LintResult, Options, lint_paths, lint_text
from fp16lint.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def settings_for(root: Path, **kwargs) -> Settings:
    return Settings(root=root, **kwargs)


def lint_code(code: str, path: str = "example.py", **kwargs) -> LintResult:
    """Lint a snippet as the file ``path`` with settings ``kwargs`` (no config lookup)."""
    return lint_text(code, path, Settings(root=Path.cwd(), **kwargs))


def lint_project(root: Path, files: dict[str, str], **kwargs) -> LintResult:
    """Write ``files`` under ``root`` and lint the folder in-process without a cache."""
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return lint_paths([root], Settings(root=root, **kwargs), Options(jobs=1, use_cache=False))


def lint_project_folder(root: Path, **kwargs):
    """Findings for an existing folder, in-process and without a cache."""
    return lint_paths(
        [root], Settings(root=root, **kwargs), Options(jobs=1, use_cache=False)
    ).findings


def run_cli(*args: str, stdin: str | None = None):
    """``fp16lint ARGS`` in this process (click's runner), with ``stdin`` as standard input."""
    from click.testing import CliRunner

    from fp16lint.cli import main

    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def write(name: str, text: str) -> Path:
    """Write ``text`` to ``name`` (relative to the working folder), making its folders."""
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
