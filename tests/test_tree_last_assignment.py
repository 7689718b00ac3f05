"""``tree.last_assignment``: the one helper for "what a name holds here" (attention, rotary,
learned scales, magnitude bounds), with and without ``dominating``."""

from __future__ import annotations

import libcst as cst
import pytest

from fp16lint.analysis.tree import last_assignment, latest_value, walk


def _use(source: str, marker: str = "use") -> tuple[cst.CSTNode, ...]:
    """The walk's path (module down) to the statement calling ``use(...)``."""
    module = cst.parse_module(source)
    path: list[cst.CSTNode] = []

    def search(node: cst.CSTNode) -> bool:
        path.append(node)
        if type(node) is cst.SimpleStatementLine and any(
            type(n) is cst.Name and n.value == marker for n in walk(node)
        ):
            return True
        if any(search(child) for child in node.children):
            return True
        path.pop()
        return False

    assert search(module)
    return tuple(path)


def _found(source: str, dominating: bool) -> str | None:
    found = last_assignment(_use(source), "x", dominating=dominating)
    return None if found is None else cst.Module([]).code_for_node(found[0])


@pytest.mark.parametrize(
    ("body", "passing", "dominating"),
    [
        # a plain assignment before, in the block or the blocks around
        ("    x = a\n    use(x)\n", "a", "a"),
        ("    x = a\n    if c:\n        use(x)\n", "a", "a"),
        ("    x = a\n    if c:\n        x = b\n        use(x)\n", "b", "b"),
        ("    x = a; x = b\n    use(x)\n", "b", "b"),
        # a conditional or in-place update between: passed over, or no dominating value
        ("    x = a\n    if c:\n        x = b\n    use(x)\n", "a", None),
        ("    x = a\n    x *= 2\n    use(x)\n", "a", None),
        ("    x = a\n    x, y = b\n    use(x)\n", "a", None),
        ("    x = a\n    with f() as x:\n        pass\n    use(x)\n", "a", None),
        # a loop around the use, or after it, rebinds it: its value comes back round
        ("    x = a\n    for i in r:\n        use(x)\n        x = b\n", "a", None),
        ("    x = a\n    use(x)\n    while c:\n        x = b\n", "a", None),
        ("    x = a\n    for i in r:\n        x = b\n        use(x)\n", "b", "b"),
        # a rebinding to a view of its own values keeps the value bound before
        ("    x = a\n    if c:\n        x = x.squeeze(1)\n    use(x)\n", "a", "a"),
        ("    x = a\n    for i in r:\n        x = x.view(b, -1).clone()\n    use(x)\n", "a", "a"),
        ("    x = a\n    use(x)\n    while c:\n        x = x.transpose(0, 1)\n", "a", "a"),
        # ... but not a cast (it rounds the values), a view of another name, or unpacking
        ("    x = a\n    if c:\n        x = x.half()\n    use(x)\n", "a", None),
        ("    x = a\n    if c:\n        x = b.squeeze(1)\n    use(x)\n", "a", None),
        ("    x = a\n    if c:\n        x, y = x.squeeze(1)\n    use(x)\n", "a", None),
        ("    x = a\n    if c:\n        x = y = x.squeeze(1)\n    use(x)\n", "a", None),
        # nothing in the function: a parameter
        ("    use(x)\n", None, None),
    ],
)
def test_the_last_assignment_a_use_sees(body, passing, dominating):
    source = f"def f(x, a, b, c, r):\n{body}"
    assert _found(source, dominating=False) == passing
    assert _found(source, dominating=True) == dominating


def test_the_stack_at_the_assignment_lets_a_value_be_followed_further():
    source = "def f(p):\n    y = p\n    x = y.exp()\n    use(x)\n"
    value, stack = last_assignment(_use(source), "x", dominating=True)
    assert type(stack[-1]) is cst.Assign and stack[-1].value is value
    inner, _ = last_assignment(stack, "y", dominating=True)
    assert type(inner) is cst.Name and inner.value == "p"


def test_a_dominating_value_is_only_a_functions():
    assert last_assignment(_use("x = 1\nuse(x)\n"), "x", dominating=True) is None
    source = "class A:\n    x = 1\n    use(x)\n"
    assert last_assignment(_use(source), "x", dominating=True) is None
    assert type(latest_value(_use(source), "x")) is cst.Integer  # a class body, passed over
