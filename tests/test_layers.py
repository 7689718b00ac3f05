"""The layers table in DEVELOPERS.md stays true: every import of the package (module-level,
lazy and type-only alike), read with ``ast``, points to its own row or a row above it."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "fp16lint"
TABLE_HEADER = "| layer | where | imports torch? |"
# The report model and the records it is built from; text.py and html.py render them.
RUNTIME_MODEL = ("fp16lint.runtime.report", "fp16lint.runtime.records", "fp16lint.runtime.join")
RUNTIME_RENDERERS = ("fp16lint.runtime.text", "fp16lint.runtime.html")


@functools.cache
def layer_table() -> list[tuple[str, list[str], str]]:
    """``(layer, [paths], torch column)`` per row, top row (the lowest layer) first."""
    lines = (REPO / "DEVELOPERS.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(TABLE_HEADER) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        layer, where, torch = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append((layer, re.findall(r"`(fp16lint/[^`]*)`", where), torch))
    return rows


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module: str | None = None) -> list[tuple[str, int, bool]]:
    """``(imported module, line, at module level?)`` for the file ``path`` (the module
    ``module``, by default its place in the package); relative imports resolved, and
    ``from pkg import name`` also counted as ``pkg.name`` (it may be a submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top_level = {id(n) for n in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` and `try:` blocks still run at import time
        if isinstance(node, ast.If | ast.Try):
            top_level |= {id(n) for n in ast.walk(node) if isinstance(n, ast.stmt)}
    found = []
    for node in ast.walk(tree):
        eager = id(node) in top_level
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, eager) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, node.lineno, eager))
            found += [(f"{base}.{alias.name}", node.lineno, eager) for alias in node.names]
    return found


def layer_of(rows: list[tuple[str, list[str], str]], module: str) -> int | None:
    """The row of ``module`` (a file's row, else its folder's); None for a name that is not a
    module of the package (``from fp16lint.findings import Finding`` also yields
    ``fp16lint.findings.Finding``)."""
    path = module.replace(".", "/")
    candidates = (f"{path}.py", f"{path}/__init__.py")
    for index, (_, paths, _) in enumerate(rows):
        if any(c in paths for c in candidates):
            return index
    for index, (_, paths, _) in enumerate(rows):
        for where in paths:
            if where.endswith("/") and any(c.startswith(where) for c in candidates):
                return index
    return None


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_table_is_read_and_names_real_places():
    rows = layer_table()
    assert len(rows) >= 10
    for layer, paths, _ in rows:
        assert paths, f"row {layer!r} names no place"
        for where in paths:
            assert (REPO / where).exists(), f"{where} (row {layer!r}) does not exist"


def test_every_module_is_in_a_row():
    rows = layer_table()
    missing = [str(p.relative_to(REPO)) for p in SOURCES if layer_of(rows, module_name(p)) is None]
    assert not missing, f"modules in no row of the layers table: {missing}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_points_down_the_table(path):
    rows = layer_table()
    here = layer_of(rows, module_name(path))
    wrong = []
    for target, line, _ in imports(path):
        if not target.startswith("fp16lint"):
            continue
        there = layer_of(rows, target)
        if there is not None and there > here:
            wrong.append(f"{path.name}:{line} imports {target} ({rows[there][0]!r})")
    assert not wrong, f"{rows[here][0]!r} imports a higher layer: {wrong}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_torch_only_where_the_table_says(path):
    rows = layer_table()
    torch_column = rows[layer_of(rows, module_name(path))][2].lower()
    torch_imports = [
        (line, eager) for t, line, eager in imports(path) if t.split(".")[0] == "torch"
    ]
    if torch_column.startswith("**yes"):
        return
    if torch_column.startswith("lazily"):
        assert not [line for line, eager in torch_imports if eager], "torch at import time"
        return
    assert not torch_imports, f"imports torch at lines {[line for line, _ in torch_imports]}"


def test_the_report_model_does_not_import_its_renderers():
    for module in RUNTIME_MODEL:
        path = REPO / (module.replace(".", "/") + ".py")
        targets = {t for t, _, _ in imports(path)}
        assert not targets & set(RUNTIME_RENDERERS), module


def test_an_upward_import_is_caught(tmp_path):
    """The check itself: a lazy and a type-only import of a higher layer are both seen."""
    rows = layer_table()
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from fp16lint.engine import lint_source\n"
        "def f():\n    from ..runner import lint_paths\n",
        encoding="utf-8",
    )
    found = imports(probe, "fp16lint.analysis.probe")
    here = layer_of(rows, "fp16lint.analysis.context")
    higher = {t for t, _, _ in found if (layer_of(rows, t) or 0) > here}
    assert {"fp16lint.engine", "fp16lint.runner"} <= higher
    assert ("fp16lint.engine", 3, True) in found and ("fp16lint.runner", 5, False) in found
