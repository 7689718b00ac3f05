"""``tree.statements`` finds exactly the statements a full walk finds, in the same order."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from fp16lint.analysis.tree import _STATEMENT_TYPES, statements, walk

REPO = Path(__file__).parents[1]
SOURCES = sorted((REPO / "fp16lint").rglob("*.py"))[:40]

EDGE_CASES = """\
match command:
    case [x, *rest] if x:
        a = 1
    case _:
        pass
try:
    import foo
except* ValueError:
    b: int = 2
else:
    c = 3
finally:
    d = 4
if x: e = 5; f = 6
else:
    while y:
        g = lambda: 7
    else:
        del g
for i in range(3): continue
try:
    raise E
except E as err:
    raise
async def h():
    async with ctx() as z, other():
        await z
    async for q in z:
        yield q
class K(Base, metaclass=M):
    @decorator(lambda self: None)
    def m(self, arg=(lambda: 1)):
        self.v = [w := 1 for _ in range(2)]
        global G
        nonlocal_value = 1
        return
"""


def _by_walk(node: cst.CSTNode) -> list[cst.CSTNode]:
    return [n for n in walk(node) if n is not node and type(n) in _STATEMENT_TYPES]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_same_statements_as_a_full_walk(path: Path) -> None:
    module = cst.parse_module(path.read_text(encoding="utf-8"))
    assert list(statements(module)) == _by_walk(module)


def test_every_kind_of_statement_body() -> None:
    module = cst.parse_module(EDGE_CASES)
    found = list(statements(module))
    assert found == _by_walk(module)
    assert {type(n).__name__ for n in found} >= {
        "Match", "Try", "TryStar", "While", "For", "FunctionDef", "ClassDef", "With",
        "AnnAssign", "Assign", "Del", "Continue", "Global", "Return", "Pass", "Import", "Raise",
    }  # fmt: skip


def test_starts_inside_a_subtree() -> None:
    module = cst.parse_module(EDGE_CASES)
    cls = next(n for n in module.body if type(n) is cst.ClassDef)
    assert list(statements(cls)) == _by_walk(cls)


def test_nested_scopes_can_be_left_out() -> None:
    module = cst.parse_module(EDGE_CASES)
    found = list(statements(module, nested_scopes=False))
    inner = {
        id(n)
        for scope in found
        if type(scope) in (cst.FunctionDef, cst.ClassDef)
        for n in statements(scope)
    }
    assert found == [n for n in _by_walk(module) if id(n) not in inner]
    assert any(type(n) is cst.ClassDef for n in found)
