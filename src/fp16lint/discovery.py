"""Which files to lint: recursion, default excludes, ``exclude`` globs and ``.gitignore``.

Directory symlinks are not followed (no loops, nothing outside the tree); a path given
explicitly is linted even when an exclude rule would skip it, as in ruff.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from fp16lint.config import Settings

DEFAULT_EXCLUDES = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    ".eggs",
    "build",
    "dist",
    "__pycache__",
    "node_modules",
    "site-packages",
    ".fp16lint_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".ipynb_checkpoints",
)
SUFFIXES = (".py", ".pyi", ".ipynb")  # notebooks: see fp16lint.notebook


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)


def _spec(patterns: tuple[str, ...]) -> pathspec.PathSpec:
    return pathspec.GitIgnoreSpec.from_lines(patterns)


def _gitignore(folder: Path) -> pathspec.PathSpec | None:
    try:
        lines = (folder / ".gitignore").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return _spec(tuple(lines))


def _relative(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return None


class _Filter:
    def __init__(self, settings: Settings, suffixes: tuple[str, ...]):
        self.root = settings.root.resolve()
        self.excludes = _spec(settings.exclude + settings.extend_exclude)
        self.gitignore = settings.respect_gitignore
        self.suffixes = suffixes

    def excluded(self, path: Path, is_dir: bool, ignores: list[tuple[Path, pathspec.PathSpec]]) -> bool:
        if path.name in DEFAULT_EXCLUDES and is_dir:
            return True
        rel = _relative(path, self.root)
        suffix = "/" if is_dir else ""
        if rel is not None and self.excludes.match_file(rel + suffix):
            return True
        for folder, spec in ignores:
            sub = _relative(path, folder)
            if sub is not None and spec.match_file(sub + suffix):
                return True
        return False


def _git_ignores_above(folder: Path, root: Path) -> list[tuple[Path, pathspec.PathSpec]]:
    """``.gitignore`` files from the project root down to ``folder`` (exclusive)."""
    found = []
    folder = folder.resolve()
    for parent in reversed([folder, *folder.parents]):
        if parent != root and root not in parent.parents:
            continue
        spec = _gitignore(parent) if parent != folder else None
        if spec is not None:
            found.append((parent, spec))
    return found


def discover(paths: list[Path], settings: Settings, suffixes: tuple[str, ...] = SUFFIXES) -> Discovery:
    result = Discovery()
    rules = _Filter(settings, suffixes)
    seen: set[Path] = set()
    for path in paths:
        if not path.exists():
            result.missing.append(path)
        elif path.is_dir():
            ignores = _git_ignores_above(path, rules.root) if rules.gitignore else []
            for found in _walk(path, rules, ignores):
                key = found.resolve()
                if key not in seen:
                    seen.add(key)
                    result.files.append(found)
        else:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                result.files.append(path)
    return result


def _walk(top: Path, rules: _Filter, ignores: list) -> Iterator[Path]:
    pending: list[tuple[Path, list]] = [(top, ignores)]
    while pending:
        folder, inherited = pending.pop()
        local = inherited
        if rules.gitignore:
            spec = _gitignore(folder)
            if spec is not None:
                local = [*inherited, (folder, spec)]
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not rules.excluded(path, True, local):
                        subfolders.append((path, local))
                elif path.suffix in rules.suffixes and entry.is_file():
                    if not rules.excluded(path, False, local):
                        yield path
            except OSError:
                continue
        pending.extend(reversed(subfolders))
