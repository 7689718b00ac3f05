"""Compatibility guards: code that runs only when a newer API is missing.

Old APIs kept as a deliberate fallback — in an ``except (ImportError, AttributeError)``
handler, or under an ``if`` that tests the torch version or ``hasattr(...)`` — are not a
finding: the project already prefers the new API where it exists.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from fp16lint.analysis.names import dotted
from fp16lint.analysis.tree import walk

_FALLBACK_EXCEPTIONS = frozenset(
    {"ImportError", "ModuleNotFoundError", "AttributeError", "TypeError", "Exception", "BaseException"}
)
_PROBES = frozenset({"hasattr", "getattr"})


def _caught(handler: cst.ExceptHandler) -> set[str]:
    if handler.type is None:
        return {"BaseException"}
    items = handler.type.elements if isinstance(handler.type, cst.Tuple) else [handler.type]
    names = set()
    for item in items:
        expr = item.value if isinstance(item, cst.Element) else item
        text = dotted(expr)
        if text:
            names.add(text.rsplit(".", 1)[-1])
    return names


def is_version_or_feature_test(test: cst.BaseExpression) -> bool:
    """``torch.__version__ >= ...``, ``is_torch_version(...)``, ``hasattr(torch.amp, ...)``."""
    for node in walk(test):
        if isinstance(node, cst.Name) and ("version" in node.value.lower() or node.value in _PROBES):
            return True
        if isinstance(node, cst.Attribute) and "version" in node.attr.value.lower():
            return True
    return False


def in_compat_fallback(stack: Sequence[cst.CSTNode]) -> bool:
    """Whether the innermost node of ``stack`` sits in a fallback branch."""
    for index, node in enumerate(stack[:-1]):
        if isinstance(node, cst.ExceptHandler) and _caught(node) & _FALLBACK_EXCEPTIONS:
            return True
        if isinstance(node, (cst.If, cst.IfExp)) and stack[index + 1] is not node.test:
            if is_version_or_feature_test(node.test):
                return True
    return False
