"""Which files to lint: recursion, default excludes, ``exclude`` globs and ``.gitignore``.

Directory symlinks are not followed (no loops, nothing outside the tree); a path given
explicitly is linted even when an exclude rule would skip it, as in ruff, and so is a folder
given explicitly, with what is below it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from fp16lint.settings import Settings

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
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, why), found but unusable


def gitignore_spec(patterns: tuple[str, ...] | list[str]) -> pathspec.PathSpec:
    """Patterns with ``.gitignore`` semantics. A line pathspec refuses but git accepts (``!``,
    a lone ``\\``) matches nothing, as in git, rather than failing the run."""
    try:
        return pathspec.GitIgnoreSpec.from_lines(patterns)
    except Exception:  # pathspec raises several types for patterns it cannot compile
        return pathspec.GitIgnoreSpec.from_lines([p for p in patterns if _compiles(p)])


def _compiles(pattern: str) -> bool:
    try:
        pathspec.GitIgnoreSpec.from_lines([pattern])
    except Exception:
        return False
    return True


def _gitignore(folder: Path) -> pathspec.PathSpec | None:
    try:
        lines = (folder / ".gitignore").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return gitignore_spec(lines)


class _Filter:
    """Exclusion tests on POSIX path strings relative to the project root (no ``resolve``
    per entry: the walk builds each entry's real path from its folder's)."""

    def __init__(self, settings: Settings, suffixes: tuple[str, ...]):
        self.root = settings.root.resolve().as_posix()
        self.excludes = gitignore_spec(settings.exclude + settings.extend_exclude)
        self.gitignore = settings.respect_gitignore
        self.suffixes = suffixes

    def relative(self, real: str, folder: str) -> str | None:
        if real == folder:
            return ""
        prefix = folder.rstrip("/") + "/"
        return real[len(prefix) :] if real.startswith(prefix) else None

    def excluded(self, real: str, is_dir: bool, ignores: list[_Ignore], use_excludes: bool) -> bool:
        suffix = "/" if is_dir else ""
        rel = self.relative(real, self.root)
        if use_excludes and rel and self.excludes.match_file(rel + suffix):
            return True
        for folder, spec in ignores:
            sub = self.relative(real, folder)
            if sub and spec.match_file(sub + suffix):
                return True
        return False


_Ignore = tuple[str, pathspec.PathSpec]  # a .gitignore's folder (real, POSIX) and its patterns


def _git_ignores_above(folder: Path, root: str) -> list[_Ignore]:
    """``.gitignore`` files from the project root down to ``folder`` (exclusive)."""
    found = []
    for parent in reversed(folder.parents):
        text = parent.as_posix()
        if text != root and not text.startswith(root.rstrip("/") + "/"):
            continue
        spec = _gitignore(parent)
        if spec is not None:
            found.append((text, spec))
    return found


def discover(
    paths: list[Path], settings: Settings, suffixes: tuple[str, ...] = SUFFIXES
) -> Discovery:
    result = Discovery()
    rules = _Filter(settings, suffixes)
    seen: set[str] = set()
    for path in paths:
        if not path.exists():
            result.missing.append(path)
        elif path.is_dir():
            top = path.resolve()
            real = top.as_posix()
            ignores = _git_ignores_above(top, rules.root) if rules.gitignore else []
            # A folder given explicitly is linted even if an exclude or a .gitignore above it
            # skips the folder itself (`fp16lint .venv/lib/.../torch`); those rules then do
            # not apply below it either.
            ignores = [i for i in ignores if not rules.excluded(real, True, [i], False)]
            use_excludes = not rules.excluded(real, True, [], True)
            for found, key in _walk(path, real, rules, ignores, use_excludes, result.skipped):
                if key not in seen:
                    seen.add(key)
                    result.files.append(found)
        elif not path.is_file():  # a FIFO named x.py blocks a read, /dev/zero never ends
            result.skipped.append((path, "not a regular file"))
        else:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                result.files.append(path)
    return result


def _walk(
    top: Path,
    real_top: str,
    rules: _Filter,
    ignores: list[_Ignore],
    use_excludes: bool,
    skipped: list[tuple[Path, str]],
) -> Iterator[tuple[Path, str]]:
    """Files under ``top`` in sorted order, each with its real path (the dedup key); entries
    that cannot be examined (a symbolic link loop, a folder without permission) go to
    ``skipped``."""
    pending: list[tuple[str, str, list[_Ignore]]] = [(os.fspath(top), real_top, ignores)]
    while pending:
        folder, real_folder, inherited = pending.pop()
        local = inherited
        if rules.gitignore:
            spec = _gitignore(Path(folder))
            if spec is not None:
                local = [*inherited, (real_folder, spec)]
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            skipped.append((Path(folder), exc.strerror or str(exc)))
            continue
        subfolders = []
        for entry in entries:
            real = f"{real_folder.rstrip('/')}/{entry.name}"
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in DEFAULT_EXCLUDES and not rules.excluded(
                        real, True, local, use_excludes
                    ):
                        subfolders.append((entry.path, real, local))
                elif (
                    entry.name.endswith(rules.suffixes)
                    and entry.is_file()
                    and not rules.excluded(real, False, local, use_excludes)
                ):
                    key = os.path.realpath(entry.path) if entry.is_symlink() else real
                    yield Path(entry.path), key
            except OSError as exc:
                if entry.name.endswith(rules.suffixes):
                    skipped.append((Path(entry.path), exc.strerror or str(exc)))
                continue
        pending.extend(reversed(subfolders))
