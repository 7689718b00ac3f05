"""Guards: branches whose condition tells a rule something.

Compatibility guards: old APIs kept as a deliberate fallback — in an
``except (ImportError, AttributeError)`` handler, or under an ``if`` statement or a conditional
expression that tests the torch version or ``hasattr(...)`` — are not a finding: the project
already prefers the new API where it exists. A version test is also a flag named like one
(``TORCH_GE_2_4``, ``is_torch_greater_or_equal_than_2_0``), or a name bound to a test.

Dtype guards (``if t.dtype == torch.float16:``, ``x if t.dtype == torch.float32 else y``) pin a
value's dtype on each branch: code under them is known per branch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

from fp16lint.analysis.dtypes import DType, dtype_of
from fp16lint.analysis.names import NameResolver, dotted
from fp16lint.analysis.tree import walk

_FALLBACK_EXCEPTIONS = frozenset(
    {
        "ImportError",
        "ModuleNotFoundError",
        "AttributeError",
        "TypeError",
        "Exception",
        "BaseException",
    }
)
_PROBES = frozenset({"hasattr", "getattr"})
# Version flags as projects name them: TORCH_GE_2_4, _TORCH_GREATER_EQUAL_2_0, IS_TORCH_2,
# is_torch_greater_or_equal_than_1_13, PYTORCH_2_0, torch_lt_1_10.
_VERSION_FLAG = re.compile(
    r"^_*(is_)?(py)?torch_+(v?\d|(ge|gt|le|lt|eq|greater|less|newer|older|at_?least|below|above)"
    r"(_|$|\d))",
    re.IGNORECASE,
)


def caught(handler: cst.ExceptHandler) -> set[str]:
    """The exception names (last dotted part) an ``except`` clause catches."""
    if handler.type is None:
        return {"BaseException"}
    items = handler.type.elements if type(handler.type) is cst.Tuple else [handler.type]
    names = set()
    for item in items:
        expr = item.value if type(item) is cst.Element else item
        text = dotted(expr)
        if text:
            names.add(text.rsplit(".", 1)[-1])
    return names


def _is_version_name(name: str) -> bool:
    return "version" in name.lower() or _VERSION_FLAG.match(name) is not None


def is_version_or_feature_test(
    test: cst.BaseExpression, names: NameResolver | None = None, depth: int = 0
) -> bool:
    """``torch.__version__ >= ...``, ``is_torch_version(...)``, ``hasattr(torch.amp, ...)``,
    ``TORCH_GE_2_4``, or (with ``names``) a name bound to one of those."""
    for node in walk(test):
        if type(node) is cst.Name:
            if _is_version_name(node.value) or node.value in _PROBES:
                return True
            if names is not None and depth < 2:
                for value in names.values(node.value):
                    if value is not None and is_version_or_feature_test(value, names, depth + 1):
                        return True
        if type(node) is cst.Attribute and _is_version_name(node.attr.value):
            return True
    return False


def in_compat_fallback(stack: Sequence[cst.CSTNode], names: NameResolver | None = None) -> bool:
    """Whether the innermost node of ``stack`` sits in a fallback branch (``names`` lets a
    test be a name bound to a version test)."""
    for index, node in enumerate(stack[:-1]):
        if type(node) is cst.ExceptHandler and caught(node) & _FALLBACK_EXCEPTIONS:
            return True
        if (
            type(node) in (cst.If, cst.IfExp)
            and stack[index + 1] is not node.test
            and is_version_or_feature_test(node.test, names)
        ):
            return True
    return False


# --- dtype guards ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DtypeGuard:
    """A branch chosen by a dtype test: ``if t.dtype == torch.float16:``,
    ``x if t.dtype in (torch.float16, torch.bfloat16) else y``.

    ``subject`` is the expression whose dtype is tested (``t`` for ``t.dtype``; the name itself
    for ``if dtype == torch.float16``); ``on_value`` says the test read a tensor's or module's
    ``.dtype`` (the branch follows data that already has that dtype) rather than a dtype
    variable. On this branch the subject's dtype is one of ``dtypes`` when ``holds``, and none
    of them otherwise.
    """

    node: cst.If | cst.IfExp
    subject: cst.BaseExpression
    on_value: bool
    dtypes: frozenset[DType]
    holds: bool

    @property
    def known(self) -> DType | None:
        """The subject's dtype on this branch, when the test pins it to one."""
        if self.holds and len(self.dtypes) == 1:
            return next(iter(self.dtypes))
        return None

    @property
    def excludes_fp16(self) -> bool:
        """On this branch the subject cannot be fp16."""
        return (DType.FP16 in self.dtypes) != self.holds

    def same_subject(self, expr: cst.BaseExpression) -> bool:
        text = dotted(self.subject)
        return text is not None and text == dotted(expr)


def _dtype_set(expr: cst.BaseExpression, names: NameResolver) -> frozenset[DType] | None:
    items = expr.elements if type(expr) in (cst.Tuple, cst.List, cst.Set) else None
    options = [e.value for e in items] if items is not None else [expr]
    found = set()
    for option in options:
        fact = dtype_of(option, names)
        if fact is None or fact.maybe:
            return None
        found.add(fact.dtype)
    return frozenset(found)


def _parse_test(test: cst.BaseExpression, names: NameResolver, depth: int = 0) -> list[tuple]:
    """``(subject, on_value, dtypes, positive)`` for each dtype comparison that must all hold
    for ``test`` to be true (``a and b`` gives both; ``not`` flips a single comparison; a flag
    bound once to such a test, ``needs_upcast = vae.dtype == torch.float16 and ...``, counts
    as the test)."""
    if type(test) is cst.Name and depth < 2:
        values = names.values(test.value)
        if len(values) == 1 and type(values[0]) in (cst.Comparison, cst.BooleanOperation):
            return _parse_test(values[0], names, depth + 1)
        return []
    if type(test) is cst.BooleanOperation and type(test.operator) is cst.And:
        return _parse_test(test.left, names, depth) + _parse_test(test.right, names, depth)
    if type(test) is cst.UnaryOperation and type(test.operator) is cst.Not:
        inner = _parse_test(test.expression, names, depth)
        return [(s, v, d, not p) for s, v, d, p in inner] if len(inner) == 1 else []
    if type(test) is not cst.Comparison or len(test.comparisons) != 1:
        return []
    target = test.comparisons[0]
    operator = type(target.operator)
    if operator in (cst.Equal, cst.Is, cst.In):
        positive = True
    elif operator in (cst.NotEqual, cst.IsNot, cst.NotIn):
        positive = False
    else:
        return []
    left, right = test.left, target.comparator
    for subject, other in ((left, right), (right, left)):
        if operator in (cst.In, cst.NotIn) and subject is right:
            continue
        dtypes = _dtype_set(other, names)
        if not dtypes:
            continue
        if type(subject) is cst.Attribute and subject.attr.value == "dtype":
            return [(subject.value, True, dtypes, positive)]
        fact = dtype_of(subject, names)
        if dotted(subject) is not None and (fact is None or fact.maybe):
            return [(subject, False, dtypes, positive)]
    return []


def dtype_guards(stack: Sequence[cst.CSTNode], names: NameResolver) -> list[DtypeGuard]:
    """The dtype guards around the innermost node of ``stack``, innermost first.

    Only the branch a node sits in counts: the body of ``if t.dtype == torch.float16:`` knows
    ``t`` is fp16; its ``else`` knows it is not. Early returns are not followed.
    """
    found: list[DtypeGuard] = []
    for index in range(len(stack) - 2, -1, -1):
        node, child = stack[index], stack[index + 1]
        if type(node) not in (cst.If, cst.IfExp) or child is node.test:
            continue
        branch = child is node.body
        parts = _parse_test(node.test, names)
        if not branch and len(parts) != 1:
            continue  # "not (a and b)" pins nothing
        for subject, on_value, dtypes, positive in parts:
            found.append(DtypeGuard(node, subject, on_value, dtypes, positive == branch))
    return found


def dtype_guard(
    stack: Sequence[cst.CSTNode], names: NameResolver, subject: cst.BaseExpression | None = None
) -> DtypeGuard | None:
    """The innermost dtype guard around the node (about ``subject`` when given)."""
    for guard in dtype_guards(stack, names):
        if subject is None or guard.same_subject(subject):
            return guard
    return None


def in_non_fp16_branch(stack: Sequence[cst.CSTNode], names: NameResolver) -> bool:
    """Whether the innermost node of ``stack`` runs only when a tested dtype is not fp16
    (``-1e9`` in ``-1e9 if x.dtype == torch.float32 else -1e4``, or under the ``else`` of
    ``if x.dtype == torch.float16:``)."""
    return any(guard.excludes_fp16 for guard in dtype_guards(stack, names))


def branch_excludes_fp16(node: cst.If | cst.IfExp, body: bool, names: NameResolver) -> bool:
    """Whether ``node``'s body (``body=True``) or else branch runs only when not fp16."""
    return in_non_fp16_branch((node, node.body if body else node.orelse), names)


def follows_fp16_data(stack: Sequence[cst.CSTNode], names: NameResolver) -> bool:
    """Whether the node runs only when some tensor or module already is fp16
    (``if x.dtype == torch.float16: model.half()``): a cast there follows the data's dtype
    rather than choosing fp16."""
    return any(
        g.on_value and g.holds and DType.FP16 in g.dtypes for g in dtype_guards(stack, names)
    )
