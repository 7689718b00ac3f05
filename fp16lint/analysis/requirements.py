"""Which versions of a package a project says it works with, from its requirement files.

Read from the project root (the folder of the config file, or the working folder):
``pyproject.toml`` (``[project] dependencies`` and ``optional-dependencies``),
``requirements*.txt``, ``setup.cfg`` (``[options] install_requires`` and
``[options.extras_require]``), and ``setup.py`` (the literal ``install_requires`` and
``extras_require`` of its ``setup(...)`` call, or a module-level list they name). Nothing is
imported, run or fetched, and a file that cannot be read or parsed counts as absent: unknown
stays unknown.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from collections.abc import Iterator
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Version = tuple[int, ...]

_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)", re.DOTALL)
_SPECIFIER = re.compile(r"\s*(===|~=|==|!=|<=|>=|<|>)\s*v?(\d+(?:\.\d+)*)")
_LOWER_BOUNDS = frozenset({"===", "==", "~=", ">=", ">"})


def lowest_version(root: Path, package: str) -> Version | None:
    """The lowest version of ``package`` that a requirement of the project at ``root`` admits:
    ``(4, 40, 2)`` for ``==4.40.2``, ``(4, 30)`` for ``>=4.30``, ``(0,)`` for ``<4.56``. With
    several requirements (extras, a dev pin), the lowest of them. None when no requirement bounds
    the version (not listed, listed bare, only ``!=``, a URL) or nothing can be read."""
    wanted = _normal(package)
    found = [v for r in _requirements(root) if (v := _lowest(r, wanted)) is not None]
    return min(found) if found else None


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lowest(requirement: str, package: str) -> Version | None:
    """The lowest version one requirement string admits, if it is for ``package`` and bounds
    it."""
    match = _REQUIREMENT.fullmatch(requirement.split(";", 1)[0])
    if match is None or _normal(match[1]) != package:
        return None
    rest = match[2].strip().strip("()")
    if rest.startswith("@"):
        return None  # a direct reference: no version
    bounded, lowest = False, (0,)
    for part in rest.split(","):
        spec = _SPECIFIER.match(part)
        if spec is None or spec[1] == "!=":
            continue
        bounded = True
        if spec[1] in _LOWER_BOUNDS:
            lowest = max(lowest, tuple(int(n) for n in spec[2].split(".")))
    return lowest if bounded else None


def _requirements(root: Path) -> Iterator[str]:
    yield from _pyproject(root / "pyproject.toml")
    try:
        listed = sorted(root.glob("requirements*.txt"))
    except OSError:
        listed = []
    for path in listed:
        yield from _requirements_txt(path)
    yield from _setup_cfg(root / "setup.cfg")
    yield from _setup_py(root / "setup.py")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _pyproject(path: Path) -> Iterator[str]:
    text = _read(path) if path.is_file() else None
    if text is None:
        return
    try:
        project = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError:
        return
    if not isinstance(project, dict):
        return
    yield from _strings(project.get("dependencies"))
    extras = project.get("optional-dependencies")
    for group in extras.values() if isinstance(extras, dict) else ():
        yield from _strings(group)


def _requirements_txt(path: Path) -> Iterator[str]:
    text = _read(path) if path.is_file() else None
    for line in (text or "").replace("\\\n", " ").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            yield line


def _setup_cfg(path: Path) -> Iterator[str]:
    text = _read(path) if path.is_file() else None
    if text is None:
        return
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return
    values = [parser.get("options", "install_requires", fallback="")]
    if parser.has_section("options.extras_require"):
        values += [value for _, value in parser.items("options.extras_require")]
    for value in values:
        yield from (line.strip() for line in value.splitlines() if line.strip())


def _setup_py(path: Path) -> Iterator[str]:
    text = _read(path) if path.is_file() else None
    if text is None:
        return
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return
    lists = {  # NAME = [...] at module level, for install_requires=NAME
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func  # setup(...) or setuptools.setup(...)
        if getattr(func, "id", None) != "setup" and getattr(func, "attr", None) != "setup":
            continue
        for keyword in node.keywords:
            value = keyword.value
            if isinstance(value, ast.Name):
                value = lists.get(value.id, value)
            if keyword.arg == "install_requires":
                yield from _literal_strings(value)
            elif keyword.arg == "extras_require" and isinstance(value, ast.Dict):
                for group in value.values:
                    yield from _literal_strings(group)


def _literal_strings(node: ast.expr) -> list[str]:
    if isinstance(node, (ast.List, ast.Tuple)):
        return [
            e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        ]
    return []
