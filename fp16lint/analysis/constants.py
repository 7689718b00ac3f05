"""Constant evaluation: which number an expression stands for, and where it was written.

Rules about numbers float16 cannot hold need the value behind ``-1e9``, ``float("-inf")``,
``-1e4 * 10``, ``torch.finfo(torch.float32).min`` (any spelling of the dtype),
``np.finfo(np.float32).max``, ``sys.float_info.max``, and behind names bound once to such a
value: module constants (``NEG_INF = -1e9``), class attributes (``self.eps = eps`` in
``__init__``, ``NEG = -1e9`` in the class body), and parameter defaults (``eps=1e-12``). A name
bound to different values, or to anything opaque, is unknown: unknown stays unknown.

A value reached through a name carries its ``origin``: the places that bound it, so that a
finding at the use can point at the definition as a related location.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

import libcst as cst

from fp16lint.analysis.base import Tracker
from fp16lint.analysis.dtypes import DType, dtype_of
from fp16lint.analysis.guards import branch_excludes_fp16
from fp16lint.analysis.names import Binding, NameResolver
from fp16lint.analysis.tree import statements

_MAX_DEPTH = 8
FP16_MAX = 65504.0  # largest finite float16; fill-style ops raise beyond it
FP16_INF_FROM = 65520.0  # magnitudes from here round to inf (FACTS.md §2)
FP16_SMALLEST = 2.0**-24  # smallest subnormal, 5.96e-08
FP16_ZERO_UP_TO = 2.0**-25  # magnitudes up to here round to 0

# torch.finfo / numpy.finfo values per dtype (IEEE formats; bf16 from torch.finfo).
_FINFO = {
    DType.FP16: {"min": -65504.0, "max": 65504.0, "tiny": 2.0**-14, "eps": 2.0**-10},
    DType.BF16: {
        "min": -3.3895313892515355e38,
        "max": 3.3895313892515355e38,
        "tiny": 2.0**-126,
        "eps": 2.0**-7,
    },
    DType.FP32: {
        "min": -3.4028234663852886e38,
        "max": 3.4028234663852886e38,
        "tiny": 2.0**-126,
        "eps": 2.0**-23,
    },
    DType.FP64: {
        "min": -sys.float_info.max,
        "max": sys.float_info.max,
        "tiny": sys.float_info.min,
        "eps": sys.float_info.epsilon,
    },
}
_FINFO_ALIASES = {"smallest_normal": "tiny"}
_FINFO_CALLS = frozenset({"torch.finfo", "numpy.finfo"})
_FLOAT_INFO = {
    "max": sys.float_info.max,
    "min": sys.float_info.min,
    "epsilon": sys.float_info.epsilon,
}
_INFINITIES = {
    "math.inf": math.inf,
    "math.nan": math.nan,
    "numpy.inf": math.inf,
    "numpy.Inf": math.inf,
    "numpy.PINF": math.inf,
    "numpy.NINF": -math.inf,
    "numpy.nan": math.nan,
    "torch.inf": math.inf,
    "torch.nan": math.nan,
}
SCALAR_TENSORS = frozenset({"torch.tensor", "torch.as_tensor", "torch.scalar_tensor"})
_ARITHMETIC = {
    cst.Add: lambda a, b: a + b,
    cst.Subtract: lambda a, b: a - b,
    cst.Multiply: lambda a, b: a * b,
    cst.Divide: lambda a, b: a / b,
    cst.Power: lambda a, b: a**b,
}

Lookup = Callable[[str], "list[Binding] | None"]
Origin = tuple[cst.CSTNode, str]  # a place that bound the value, and what it says there


@dataclass(frozen=True)
class Constant:
    """A number an expression evaluates to.

    ``text`` is how the value was written where it was written (``-1e9``); ``limit`` names the
    dtype whose ``finfo`` limit the value is (``float32``), when it is one, unchanged;
    ``tensor`` marks a 0-dim tensor made from the value (``torch.tensor(-1e9)``); ``origin``
    lists the bindings it came through, use first; ``attribute`` is set when it came through
    ``self.<name>``; ``integral`` when only integer literals made it (token ids, hash keys:
    values for integer tensors).
    """

    value: float
    text: str
    limit: DType | None = None
    tensor: bool = False
    origin: tuple[Origin, ...] = ()
    attribute: bool = False
    integral: bool = False

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value)

    @property
    def overflows_fill(self) -> bool:
        """Fill-style ops (``masked_fill``, ``fill_``, ``clamp``) raise for this value in fp16."""
        return self.finite and abs(self.value) > FP16_MAX

    @property
    def overflows(self) -> bool:
        """The value itself becomes ±inf in fp16 (arithmetic, ``torch.where``, assignment)."""
        return self.finite and abs(self.value) >= FP16_INF_FROM

    @property
    def underflows(self) -> bool:
        """A positive value float16 rounds to 0 (at most 2**-25); one above becomes a
        subnormal, which still keeps a sum away from 0 (tests/facts/test_constant_sinks.py)."""
        return 0 < self.value <= FP16_ZERO_UP_TO

    @property
    def shown(self) -> str:
        return self.text if len(self.text) <= 40 else f"{self.value:g}"


def literal_number(value: cst.BaseExpression | None) -> float | None:
    """The number a literal (``1e-4``, ``-1e9``, ``--3``) writes, or None (also for an integer
    too large for a float)."""
    if type(value) is cst.UnaryOperation and type(value.operator) is cst.Minus:
        inner = literal_number(value.expression)
        return -inner if inner is not None else None
    if type(value) in (cst.Integer, cst.Float):
        try:
            return float(value.evaluated_value)  # type: ignore[union-attr]
        except (ValueError, OverflowError):
            return None
    return None


def fp16_holds(number: float) -> bool:
    """Float16 holds ``number``: zero, or a magnitude it does not round to 0, up to its max."""
    return number == 0 or FP16_ZERO_UP_TO < abs(number) <= FP16_MAX


def _string(node: cst.BaseExpression) -> str | None:
    if type(node) is cst.SimpleString and "b" not in node.prefix.lower():
        return node.evaluated_value if isinstance(node.evaluated_value, str) else None
    return None


class ConstantEvaluator:
    """Evaluates expressions of one file; ``class_attributes`` supplies ``self.<name>`` facts."""

    def __init__(self, module: cst.Module, names: NameResolver):
        self.module = module
        self.names = names
        self._classes: dict[
            int, dict[str, list[tuple[cst.BaseExpression | None, Lookup, cst.CSTNode]]]
        ] = {}

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    # --- entry point ---------------------------------------------------------------------
    def value_of(self, expr: cst.BaseExpression) -> Constant | None:
        """The constant ``expr`` evaluates to at the current point of the walk, or None."""
        return self._eval(expr, self.names.bindings, 0)

    def _eval(self, expr: cst.BaseExpression | None, lookup: Lookup, depth: int) -> Constant | None:
        if expr is None or depth > _MAX_DEPTH:
            return None
        number = literal_number(expr) if type(expr) in (cst.Integer, cst.Float) else None
        if number is not None:
            return Constant(number, self.code(expr), integral=type(expr) is cst.Integer)
        if type(expr) is cst.UnaryOperation:
            return self._unary(expr, lookup, depth)
        if type(expr) is cst.BinaryOperation:
            return self._binary(expr, lookup, depth)
        if type(expr) is cst.Name:
            return self._name(expr, lookup, depth)
        if type(expr) is cst.Attribute:
            return self._attribute(expr, lookup, depth)
        if type(expr) is cst.Call:
            return self._call(expr, lookup, depth)
        if type(expr) is cst.IfExp:
            return self._if_exp(expr, lookup, depth)
        return None

    def _unary(self, expr: cst.UnaryOperation, lookup: Lookup, depth: int) -> Constant | None:
        if type(expr.operator) not in (cst.Minus, cst.Plus):
            return None
        inner = self._eval(expr.expression, lookup, depth + 1)
        if inner is None:
            return None
        sign = -1.0 if type(expr.operator) is cst.Minus else 1.0
        return replace(inner, value=sign * inner.value, text=self.code(expr))

    def _binary(self, expr: cst.BinaryOperation, lookup: Lookup, depth: int) -> Constant | None:
        operation = _ARITHMETIC.get(type(expr.operator))
        if operation is None:
            return None
        left = self._eval(expr.left, lookup, depth + 1)
        right = self._eval(expr.right, lookup, depth + 1) if left is not None else None
        if left is None or right is None or left.tensor or right.tensor:
            return None
        try:
            value = float(operation(left.value, right.value))
        except (OverflowError, ZeroDivisionError, ValueError, TypeError):
            return None
        integral = left.integral and right.integral and value.is_integer()
        integral = integral and type(expr.operator) is not cst.Divide
        return Constant(
            value, self.code(expr), origin=left.origin or right.origin, integral=integral
        )

    def _if_exp(self, expr: cst.IfExp, lookup: Lookup, depth: int) -> Constant | None:
        """``a if x.dtype == torch.float32 else b``: the branch that can run in fp16."""
        branches = [
            branch
            for branch, when in ((expr.body, True), (expr.orelse, False))
            if not branch_excludes_fp16(expr, when, self.names)
        ]
        if len(branches) != 1:
            return None
        return self._eval(branches[0], lookup, depth + 1)

    # --- names, attributes and their bindings --------------------------------------------
    def _name(self, expr: cst.Name, lookup: Lookup, depth: int) -> Constant | None:
        qualname = self.names.qualname(expr)
        if qualname in _INFINITIES:
            return Constant(_INFINITIES[qualname], self.code(expr))
        found = lookup(expr.value)
        if not found:
            return None
        return self._bindings(expr.value, found, lookup, depth)

    def _bindings(
        self, name: str, found: list[Binding], lookup: Lookup, depth: int
    ) -> Constant | None:
        values = []
        for binding in found:
            if type(binding.node) is cst.Param and binding.node.default is not None:
                inner = self._eval(binding.node.default, lookup, depth + 1)
                verb = "defaults to"
            elif binding.value is not None and binding.qualname is None:
                inner = self._eval(binding.value, lookup, depth + 1)
                verb = "is set to"
            else:
                return None
            if inner is None:
                return None
            values.append((inner, (binding.node, f"`{name}` {verb} {inner.shown} here.")))
        first, here = values[0]
        if any(
            other.value != first.value and not (math.isnan(other.value) and math.isnan(first.value))
            for other, _ in values[1:]
        ):
            return None
        return replace(first, origin=(here, *first.origin))

    def _attribute(self, expr: cst.Attribute, lookup: Lookup, depth: int) -> Constant | None:
        qualname = self.names.qualname(expr)
        if qualname in _INFINITIES:
            return Constant(_INFINITIES[qualname], self.code(expr))
        if qualname is not None and qualname.startswith("sys.float_info."):
            value = _FLOAT_INFO.get(qualname.rsplit(".", 1)[1])
            limit = DType.FP64 if qualname.endswith(".max") else None
            return Constant(value, self.code(expr), limit) if value is not None else None
        attr = _FINFO_ALIASES.get(expr.attr.value, expr.attr.value)
        dtype = self._finfo_dtype(expr.value, lookup, depth)
        if dtype is not None and attr in _FINFO[dtype]:
            value = _FINFO[dtype][attr]
            limit = dtype if attr in ("min", "max") and dtype is not DType.FP16 else None
            return Constant(value, self.code(expr), limit)
        return self._member(expr, lookup, depth)

    def _finfo_dtype(self, expr: cst.BaseExpression, lookup: Lookup, depth: int) -> DType | None:
        """The dtype of a ``torch.finfo(<dtype>)`` call (directly or through a name)."""
        if type(expr) is cst.Name:
            found = lookup(expr.value)
            if not found or len(found) != 1 or found[0].value is None or depth > _MAX_DEPTH:
                return None
            return self._finfo_dtype(found[0].value, lookup, depth + 1)
        if type(expr) is not cst.Call or len(expr.args) != 1 or expr.args[0].keyword:
            return None
        qualname = self.names.qualname(expr.func)
        if qualname not in _FINFO_CALLS:
            return None
        arg = expr.args[0].value
        if qualname == "numpy.finfo" and self.names.qualname(arg) == "builtins.float":
            return DType.FP64
        fact = dtype_of(arg, self.names, strings=True)
        return fact.dtype if fact is not None and not fact.maybe else None

    def _member(self, expr: cst.Attribute, lookup: Lookup, depth: int) -> Constant | None:
        """``self.X``, ``cls.X`` and ``ClassName.X`` of a class defined in this file."""
        owner = self._owner_class(expr.value, lookup)
        if owner is None:
            return None
        facts = self._class_facts(owner).get(expr.attr.value)
        if not facts:
            return None
        values = []
        for value, method_lookup, node in facts:
            inner = self._eval(value, method_lookup, depth + 1)
            if inner is None:
                return None
            values.append((inner, node))
        first, node = values[0]
        if any(other.value != first.value for other, _ in values[1:]):
            return None
        attribute = self.code(expr)
        if first.origin:
            origin = ((node, f"`{attribute}` is set here."), *first.origin)
        else:
            origin = ((node, f"`{attribute}` is set to {first.shown} here."),)
        return replace(first, origin=origin, attribute=True)

    def attribute_values(self, expr: cst.Attribute) -> list[cst.BaseExpression | None] | None:
        """The values assigned to ``self.X`` / ``cls.X`` / ``ClassName.X`` in its class."""
        owner = self._owner_class(expr.value, self.names.bindings)
        facts = self._class_facts(owner).get(expr.attr.value) if owner is not None else None
        return [value for value, _, _ in facts] if facts else None

    def _owner_class(self, expr: cst.BaseExpression, lookup: Lookup) -> cst.ClassDef | None:
        if type(expr) is not cst.Name:
            return None
        found = lookup(expr.value)
        if found and len(found) == 1 and type(found[0].node) is cst.ClassDef:
            return found[0].node
        if not found or type(found[0].node) is not cst.Param or expr.value not in ("self", "cls"):
            return None
        for scope in reversed(self.names.scopes):
            if scope.kind == "class" and type(scope.node) is cst.ClassDef:
                return scope.node
        return None

    def _class_facts(
        self, cls: cst.ClassDef
    ) -> dict[str, list[tuple[cst.BaseExpression | None, Lookup, cst.CSTNode]]]:
        """``{attribute: [(value, lookup for its names, assignment)]}`` for a class: its body's
        assignments and ``self.X = ...`` in its methods. Computed once per class."""
        facts = self._classes.get(id(cls))
        if facts is not None:
            return facts
        facts = {}
        module_lookup = self._module_lookup()
        for statement in cls.body.body:
            if type(statement) is cst.SimpleStatementLine:
                for small in statement.body:
                    for target, value in _assignments(small):
                        if type(target) is cst.Name:
                            facts.setdefault(target.value, []).append((value, module_lookup, small))
            elif type(statement) is cst.FunctionDef:
                self._method_facts(statement, facts)
        self._classes[id(cls)] = facts
        return facts

    def _method_facts(self, method: cst.FunctionDef, facts: dict) -> None:
        params = [*method.params.posonly_params, *method.params.params]
        if not params:
            return
        receiver = params[0].name.value
        lookup = self._method_lookup(method)
        for node in statements(method.body, nested_scopes=False):
            for target, value in _assignments(node):
                if (
                    type(target) is cst.Attribute
                    and type(target.value) is cst.Name
                    and target.value.value == receiver
                ):
                    facts.setdefault(target.attr.value, []).append((value, lookup, node))

    def _module_lookup(self) -> Lookup:
        """Module-level names. The lookups kept in ``_classes`` hold no reference back to this
        evaluator: a cycle through it would keep the file's tree alive until the cyclic
        collector runs, instead of freeing it when the file is done."""
        return self.names.scopes[0].bindings.get

    def _method_lookup(self, method: cst.FunctionDef) -> Lookup:
        """Names inside a method: its parameters (with their defaults), else module names."""
        params = {
            p.name.value: [Binding(node=p)]
            for p in (
                *method.params.posonly_params,
                *method.params.params,
                *method.params.kwonly_params,
            )
        }

        module_lookup = self._module_lookup()

        def lookup(name: str) -> list[Binding] | None:
            return params.get(name) or module_lookup(name)

        return lookup

    # --- calls -----------------------------------------------------------------------------
    def _call(self, expr: cst.Call, lookup: Lookup, depth: int) -> Constant | None:
        qualname = self.names.qualname(expr.func)
        args = [a for a in expr.args if not a.star]
        if qualname == "builtins.float" and len(args) == 1 and args[0].keyword is None:
            text = _string(args[0].value)
            if text is not None:
                try:
                    return Constant(float(text.strip()), self.code(expr))
                except ValueError:
                    return None
            return self._eval(args[0].value, lookup, depth + 1)
        if qualname in SCALAR_TENSORS and args and args[0].keyword is None:
            dtype_arg = next(
                (a.value for a in args if a.keyword and a.keyword.value == "dtype"), None
            )
            if dtype_arg is not None and dtype_of(dtype_arg, self.names) is None:
                return None  # an integer (or unknown) dtype: not a float constant
            inner = self._eval(args[0].value, lookup, depth + 1)
            if inner is None:
                return None
            return replace(inner, tensor=True)
        return None


def _assignments(node: cst.CSTNode) -> list[tuple[cst.BaseExpression, cst.BaseExpression | None]]:
    """``(target, value)`` pairs a statement binds; value None for augmented or unpacked ones."""
    if type(node) is cst.Assign:
        out = []
        for target in node.targets:
            if type(target.target) in (cst.Tuple, cst.List):
                out.extend((e.value, None) for e in target.target.elements)
            else:
                out.append((target.target, node.value))
        return out
    if type(node) is cst.AnnAssign and node.value is not None:
        return [(node.target, node.value)]
    if type(node) is cst.AugAssign:
        return [(node.target, None)]
    return []


class ConstantTracker(Tracker):
    """Shared constant evaluation: ``ctx.get(ConstantTracker).value_of(expr)``."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.evaluator = ConstantEvaluator(ctx.module, ctx.names)

    def value_of(self, expr: cst.BaseExpression) -> Constant | None:
        return self.evaluator.value_of(expr)
