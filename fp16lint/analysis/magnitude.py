"""Magnitude facts: bounds on a value, so that an overflow rule does not report what cannot
reach float16's limit (65504).

``bound(expr, names)`` is an interval ``(low, high)`` the value surely lies in, or None when
nothing is known. It is built from literals, from functions with a bounded output
(``data.op_ranges``: sigmoid, softmax, tanh, cos, ``F.normalize``...), ``clamp`` with literal
limits, comparisons and ``~mask`` (0 or 1), and carried through interval arithmetic
(``(sigmoid(x) * 2) ** 2`` lies in [0, 4]; ``log(x + 1)`` of a non-negative x in [0, ...]),
shape and dtype changes, ``split``/``chunk`` unpacking, range-preserving reductions (mean,
amax) and names bound (every binding) to a bounded value. A sum is bounded by its terms'
bound times their count where the count is written out (``torch.stack([a, b, c]).sum(0)``).
A division by a value of known sign is bounded (``x.clamp(min=eps) / (1 - x).clamp(min=eps)``
lies in [eps, 1/eps] for x in [0, 1]). A ``clamp`` limit may be a name bound to a number (a
parameter's default: ``def f(x, eps=1e-4)``). A name reassigned in the function
(``x = x.clamp(0, 1)``, not rebound in a branch or a loop since: ``tree.last_assignment``)
holds that value from there on. The squares
of ``F.normalize(x, dim=d)`` summed along ``d`` are at most 1 (a unit vector's; ``-1`` and
``1`` are one dimension where the rank is written out: ``x.view(-1, n)``). A sum or
cumulative sum of non-positive terms is non-positive (``exp(cumsum(-softplus(a)))`` is at most 1).
An even power of anything is at least 0, a negative power of a positive base is bounded
(``(sigma**2 + sigma_data**2) ** -0.5``); ``self.x`` that every assignment in its class sets to
a number (a literal, a parameter's default, a config's ``hasattr`` fallback) is that number;
``d.probs`` of a ``torch.distributions`` object is a probability.
Only what holds for every finite input is a bound; ``data.op_ranges`` lists the functions.
"""

from __future__ import annotations

import math
from typing import Any

import libcst as cst

from fp16lint.analysis.constants import literal_number
from fp16lint.analysis.names import NameResolver
from fp16lint.analysis.tree import last_assignment, walk
from fp16lint.data.op_ranges import (
    FLOAT16_MAX,
    NONNEGATIVE,
    OUTPUT_RANGES,
    VALUE_PRESERVING,
    WITHIN_RANGE,
)

Interval = tuple[float, float]
_MAX_DEPTH = 8  # nested calls and names followed; bounds are asked only at op sites
_UNIT = (0.0, 1.0)
_CLAMPS = frozenset({"clamp", "clip", "clamp_", "clip_", "clamp_min", "clamp_max"})
_NORMALIZE = frozenset({"torch.nn.functional.normalize"})
# A unit vector's squares sum to 1; float16 rounds each square by at most 2**-11 of it.
_UNIT_SQUARES = 1.0 + 2.0**-10
_STACKS = frozenset({"torch.stack", "torch.cat", "torch.concat", "torch.concatenate"})
_DISTRIBUTIONS = "torch.distributions."  # ``.probs`` of Categorical, Bernoulli...: in [0, 1]


def finite_in_float16(interval: Interval | None) -> bool:
    """Whether every value of ``interval`` is below float16's overflow threshold."""
    return interval is not None and max(abs(interval[0]), abs(interval[1])) <= FLOAT16_MAX


def power(base: Interval, exponent: float) -> Interval | None:
    """The range of ``x ** exponent`` for x in ``base``."""
    low, high = base
    if exponent == int(exponent) and exponent >= 0:
        ends = (_pow(low, exponent), _pow(high, exponent))
        if exponent % 2 == 0 and low <= 0 <= high:
            return 0.0, max(ends)
        return min(ends), max(ends)
    if low >= 0 and exponent >= 0:
        return _pow(low, exponent), _pow(high, exponent)
    if low > 0:  # a negative exponent of a positive base: decreasing
        return _pow(high, exponent), _pow(low, exponent)
    return None


def _even(exponent: float | None) -> bool:
    """An even whole exponent: ``x ** 2`` is at least 0 whatever ``x``."""
    return (
        exponent is not None and exponent >= 2 and exponent == int(exponent) and exponent % 2 == 0
    )


def _pow(value: float, exponent: float) -> float:
    try:
        return value**exponent
    except OverflowError:
        return math.copysign(math.inf, value) if exponent % 2 else math.inf


def _argument(call: cst.Call, index: int, keyword: str) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    positional = [a.value for a in call.args if a.keyword is None and not a.star]
    return positional[index] if index < len(positional) else None


def _square_base(expr: cst.BaseExpression, names: NameResolver) -> cst.BaseExpression | None:
    """``u`` of ``u ** 2``, ``u.pow(2)``, ``u.square()``, ``torch.square(u)``, ``u * u``."""
    if type(expr) is cst.BinaryOperation:
        if type(expr.operator) is cst.Power and literal_number(expr.right) == 2:
            return expr.left
        same = type(expr.left) is cst.Name and type(expr.right) is cst.Name
        if type(expr.operator) is cst.Multiply and same and expr.left.value == expr.right.value:
            return expr.left
        return None
    if type(expr) is not cst.Call:
        return None
    qualname = names.qualname(expr.func)
    if qualname in ("torch.square", "torch.pow"):
        exponent = _argument(expr, 1, "exponent") if qualname == "torch.pow" else None
        return (
            _argument(expr, 0, "input")
            if qualname == "torch.square"
            or (exponent is not None and literal_number(exponent) == 2)
            else None
        )
    if qualname is None and type(expr.func) is cst.Attribute:
        method = expr.func.attr.value
        if method == "square" or (
            method == "pow" and literal_number(_argument(expr, 0, "exponent")) == 2
        ):
            return expr.func.value
    return None


def _arithmetic(op: cst.BaseBinaryOp, a: Interval, b: Interval) -> Interval | None:
    kind = type(op)
    if kind is cst.Add:
        return a[0] + b[0], a[1] + b[1]
    if kind is cst.Subtract:
        return a[0] - b[1], a[1] - b[0]
    if kind is cst.Multiply:
        products = [0.0 if x == 0 or y == 0 else x * y for x in a for y in b]
        return min(products), max(products)
    if kind is cst.Divide and (b[0] > 0 or b[1] < 0):  # a divisor of known sign
        return _arithmetic(cst.Multiply(), a, (1 / b[1], 1 / b[0]))
    return None


def _default(value: cst.BaseExpression | None, defaults: dict[str, float | None]) -> float | None:
    """The number an attribute is set to: a literal, a parameter's literal default, or the
    fallback of ``config.x if hasattr(config, "x") else 1e-10`` (a config's default)."""
    if value is None:
        return None
    if type(value) is cst.IfExp:
        test = value.test
        if type(test) is cst.Call and type(test.func) is cst.Name and test.func.value == "hasattr":
            return literal_number(value.orelse)
        return None
    if type(value) is cst.Name:
        return defaults.get(value.value)
    return literal_number(value)


def _targets(node: cst.CSTNode) -> list[cst.BaseExpression]:
    """What an assignment statement or a ``for`` binds."""
    kind = type(node)
    if kind is cst.Assign:
        return [t.target for t in node.targets]  # type: ignore[attr-defined]
    if kind in (cst.AugAssign, cst.AnnAssign, cst.For):
        return [node.target]  # type: ignore[attr-defined]
    return []


def _class_numbers(cls: cst.ClassDef) -> dict[str, Interval]:
    """``{attr: (low, high)}`` for the ``self.attr`` every assignment in the class's methods
    sets to a number (``_default``)."""
    found: dict[str, list[float | None]] = {}
    for method in cls.body.body:
        if type(method) is not cst.FunctionDef:
            continue
        params = method.params
        defaults = {
            p.name.value: literal_number(p.default)
            for p in (*params.posonly_params, *params.params, *params.kwonly_params)
            if p.default is not None
        }
        for node in walk(method.body):
            for target in _targets(node):
                if (
                    type(target) is cst.Attribute
                    and type(target.value) is cst.Name
                    and target.value.value == "self"
                ):
                    value = node.value if type(node) in (cst.Assign, cst.AnnAssign) else None
                    found.setdefault(target.attr.value, []).append(_default(value, defaults))
    return {
        attr: (min(numbers), max(numbers))  # type: ignore[type-var]
        for attr, numbers in found.items()
        if None not in numbers
    }


class Magnitudes:
    """Bounds of expressions in the file being analysed (``names`` resolves what they call)."""

    def __init__(self, names: NameResolver, stack: list[cst.CSTNode] | tuple):
        self.names = names
        self.stack = stack  # the walk's path to the node in hand (``FileContext.stack``)
        self._numbers: dict[int, dict[str, Interval]] = {}  # per class: ``_class_numbers``

    def bound(self, expr: cst.BaseExpression | None, depth: int = 0) -> Interval | None:
        if expr is None or depth > _MAX_DEPTH:
            return None
        number = literal_number(expr)
        if number is not None:
            return number, number
        kind = type(expr)
        if kind is cst.Comparison:
            return _UNIT
        if kind is cst.UnaryOperation:
            if type(expr.operator) in (cst.BitInvert, cst.Not):
                return _UNIT if self.bound(expr.expression, depth + 1) == _UNIT else None
            inner = self.bound(expr.expression, depth + 1)
            if type(expr.operator) is cst.Minus and inner is not None:
                return -inner[1], -inner[0]
            return inner if type(expr.operator) is cst.Plus else None
        if kind is cst.BinaryOperation:
            return self._binary(expr, depth)
        if kind is cst.Subscript:
            return self.bound(expr.value, depth + 1)
        if kind is cst.Call:
            return self._call(expr, depth)
        if kind is cst.Name:
            return self._name(expr.value, depth)
        if kind is cst.Attribute:
            return self._attribute(expr)
        return None

    def _attribute(self, expr: cst.Attribute) -> Interval | None:
        """``self.x`` that every assignment in the class sets to a number (a literal, or a
        parameter's literal default: ``def __init__(self, sigma_data=0.5)``), and ``d.probs``
        of a ``torch.distributions`` object (probabilities)."""
        value = expr.value
        if type(value) is not cst.Name:
            return None
        if value.value != "self":
            if expr.attr.value != "probs":
                return None
            made = self.names.values(value.value)
            calls = [v for v in made if type(v) is cst.Call]
            found = bool(made) and len(calls) == len(made)
            return _UNIT if found and all(
                (self.names.qualname(c.func) or "").startswith(_DISTRIBUTIONS) for c in calls
            ) else None  # fmt: skip
        cls = next((s.node for s in reversed(self.names.scopes) if s.kind == "class"), None)
        if type(cls) is not cst.ClassDef:
            return None
        numbers = self._numbers.get(id(cls))
        if numbers is None:
            numbers = self._numbers[id(cls)] = _class_numbers(cls)
        return numbers.get(expr.attr.value)

    def _binary(self, expr: cst.BinaryOperation, depth: int) -> Interval | None:
        left = self.bound(expr.left, depth + 1)
        if type(expr.operator) is cst.Power:
            exponent = literal_number(expr.right)
            if left is None:
                return (0.0, math.inf) if _even(exponent) else None
            return power(left, exponent) if exponent is not None else None
        if left is None:
            return None
        right = self.bound(expr.right, depth + 1)
        return _arithmetic(expr.operator, left, right) if right is not None else None

    def _name(self, name: str, depth: int) -> Interval | None:
        """Every binding of ``name`` bounded: their union (a tuple target takes the bound of
        the ``split``/``chunk``/``unbind`` it unpacks)."""
        bindings = self.names.bindings(name)
        if not bindings:
            return None
        if len(bindings) > 1:
            latest = last_assignment(self.stack, name, dominating=True)
            if latest is not None:
                return self.bound(latest[0], depth + 1)
        lows, highs = [], []
        for binding in bindings:
            value = binding.value
            if value is None and binding.qualname is None and type(binding.node) is cst.Assign:
                targets = binding.node.targets
                if type(targets[0].target) in (cst.Tuple, cst.List):
                    value = binding.node.value  # the pieces hold the whole's values
            found = self.bound(value, depth + 1) if binding.qualname is None else None
            if found is None:
                return None
            lows.append(found[0])
            highs.append(found[1])
        return min(lows), max(highs)

    def limit(self, expr: cst.BaseExpression | None) -> float | None:
        """A ``clamp`` limit: a number, or a name every binding of which is that number (an
        assignment, or a parameter's default)."""
        number = literal_number(expr) if expr is not None else None
        if number is None and type(expr) is cst.Attribute:
            found = self._attribute(expr)  # ``clamp(min=self.minimum_scale)``
            return found[0] if found is not None and found[0] == found[1] else None
        if number is not None or type(expr) is not cst.Name:
            return number
        found = set()
        for binding in self.names.bindings(expr.value) or ():
            node = binding.node
            value = node.default if type(node) is cst.Param else binding.value
            found.add(literal_number(value) if value is not None else None)
        return found.pop() if len(found) == 1 else None

    def _call(self, call: cst.Call, depth: int) -> Interval | None:
        qualname = self.names.qualname(call.func)
        is_method = qualname is None and type(call.func) is cst.Attribute
        if qualname is None and not is_method:
            return None
        name = qualname.rsplit(".", 1)[-1] if qualname else call.func.attr.value  # type: ignore[union-attr]
        operand = call.func.value if is_method else _argument(call, 0, "input")  # type: ignore[union-attr]
        offset = 0 if is_method else 1
        if qualname in _STACKS:
            return self._union(_argument(call, 0, "tensors"), depth)
        if name in OUTPUT_RANGES and not (name == "hardtanh" and len(call.args) > offset):
            return OUTPUT_RANGES[name]
        if name in _CLAMPS:
            return self._clamp(call, name, operand, offset, depth)
        if name in VALUE_PRESERVING or name in WITHIN_RANGE:
            return self.bound(operand, depth + 1)
        inner = self.bound(operand, depth + 1)
        if name in ("pow", "square"):
            exponent = (
                2.0 if name == "square" else literal_number(_argument(call, offset, "exponent"))
            )
            if inner is None:
                return (0.0, math.inf) if _even(exponent) else None
            return power(inner, exponent) if exponent is not None else None
        if name in ("log", "log1p", "sqrt", "exp") and inner is not None:
            shift = 1.0 if name == "log1p" else 0.0
            low, high = inner[0] + shift, inner[1] + shift
            if name == "exp":
                return math.exp(min(low, 709.0)), math.exp(min(high, 709.0))
            if low <= 0:
                return None  # -inf/NaN at 0: not a bound
            return (math.log(low), math.log(high)) if name != "sqrt" else (low**0.5, high**0.5)
        if name == "abs" and inner is not None:
            top = max(abs(inner[0]), abs(inner[1]))
            return (0.0 if inner[0] <= 0 <= inner[1] else min(map(abs, inner))), top
        if name in NONNEGATIVE:
            return 0.0, math.inf
        if name == "sum" and self._unit_squares(operand, _argument(call, offset, "dim"), depth):
            return 0.0, _UNIT_SQUARES
        if name == "sum" and inner is not None:
            count = (
                self.count(operand) if literal_number(_argument(call, offset, "dim")) == 0 else None
            )
            if count is not None:
                return inner[0] * count, inner[1] * count
        if name in ("sum", "cumsum", "nansum") and inner is not None and inner[1] <= 0:
            return -math.inf, 0.0  # non-positive terms: so is their sum (``cumsum`` of decays)
        return None

    def _unit_squares(
        self, expr: cst.BaseExpression | None, dim: cst.BaseExpression | None, depth: int
    ) -> bool:
        """``u.pow(2)`` (``u ** 2``, ``u.square()``, ``u * u``) where ``u`` is
        ``F.normalize(x, dim=d)`` (p=2), summed along that ``d``: a unit vector's squares."""
        axis = literal_number(dim) if dim is not None else None
        if axis is None or expr is None or depth > _MAX_DEPTH:
            return False
        base, stack = _square_base(expr, self.names), self.stack
        while type(base) is cst.Name:
            found = self._held(base.value, stack)
            if found is None:
                return False
            base, stack = found
        if type(base) is not cst.Call or self.names.qualname(base.func) not in _NORMALIZE:
            return False
        p = _argument(base, 1, "p")
        along = literal_number(_argument(base, 2, "dim") or cst.Integer("1"))
        if (p is not None and literal_number(p) != 2) or along is None:
            return False
        if along == axis or (along < 0) == (axis < 0):
            return along == axis
        rank = self._rank(_argument(base, 0, "input"), stack, depth + 1)  # ``dim=-1`` of a 2-D
        return rank is not None and along % rank == axis % rank

    def _held(self, name: str, stack) -> tuple[cst.BaseExpression, Any] | None:
        """What ``name`` holds at ``stack``: its one binding's value, or the assignment every
        path runs last (``tree.last_assignment``), with the stack where that value is made."""
        bindings = self.names.bindings(name) or []
        if len(bindings) > 1:
            return last_assignment(stack, name, dominating=True)
        if len(bindings) == 1 and bindings[0].value is not None:
            return bindings[0].value, stack
        return None

    def _rank(self, expr: cst.BaseExpression | None, stack, depth: int) -> int | None:
        """The number of dimensions of ``x.view(-1, d)`` / ``x.reshape(n, d)`` (or a name
        holding one), when it is written out."""
        if type(expr) is cst.Name and depth <= _MAX_DEPTH:
            found = self._held(expr.value, stack)
            return self._rank(found[0], found[1], depth + 1) if found is not None else None
        if (
            type(expr) is not cst.Call
            or type(expr.func) is not cst.Attribute
            or expr.func.attr.value not in ("view", "reshape")
            or any(a.star or a.keyword is not None for a in expr.args)
        ):
            return None
        sizes = [a.value for a in expr.args]
        if len(sizes) != 1:
            return len(sizes) or None
        if type(sizes[0]) in (cst.Tuple, cst.List):  # ``x.view((n, d))``
            elements = sizes[0].elements  # type: ignore[attr-defined]
            starred = any(type(e) is cst.StarredElement for e in elements)
            return None if starred else len(elements)
        return 1 if literal_number(sizes[0]) is not None else None  # not ``x.view(shape)``

    def _union(self, items: cst.BaseExpression | None, depth: int) -> Interval | None:
        if type(items) not in (cst.List, cst.Tuple):
            return None
        elements = items.elements  # type: ignore[union-attr]
        if any(type(e) is cst.StarredElement for e in elements):
            return None
        found = [self.bound(e.value, depth + 1) for e in elements]
        if not found or any(f is None for f in found):
            return None
        return min(f[0] for f in found), max(f[1] for f in found)  # type: ignore[index]

    def _clamp(self, call, name, operand, offset, depth) -> Interval | None:
        inner = self.bound(operand, depth + 1) or (-math.inf, math.inf)
        low = self.limit(_argument(call, offset, "min")) if name != "clamp_max" else None
        high_index = offset + (0 if name == "clamp_max" else 1)
        high = self.limit(_argument(call, high_index, "max")) if name != "clamp_min" else None
        result = (
            max(inner[0], low) if low is not None else inner[0],
            min(inner[1], high) if high is not None else inner[1],
        )
        return None if result == (-math.inf, math.inf) else result

    def count(self, expr: cst.BaseExpression | None) -> int | None:
        """How many terms a reduction over dimension 0 of ``expr`` adds, when written out:
        ``torch.stack([a, b, c])``."""
        if type(expr) is not cst.Call or self.names.qualname(expr.func) != "torch.stack":
            return None
        if literal_number(_argument(expr, 1, "dim")) not in (None, 0):
            return None
        items = _argument(expr, 0, "tensors")
        if type(items) in (cst.List, cst.Tuple) and not any(
            type(e) is cst.StarredElement
            for e in items.elements  # type: ignore[union-attr]
        ):
            return len(items.elements)  # type: ignore[union-attr]
        return None
