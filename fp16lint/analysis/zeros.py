"""Zero evidence: can the value an epsilon guards be exactly 0 in float16 (FP304)?

An epsilon that float16 rounds to 0 matters only where the sum it guards can be 0. A norm of
an activation vector, a count, a sum of top-k scores are never 0 in practice; what is:

- probabilities: ``sigmoid``/``softmax``/``softmin``/``gumbel_softmax`` outputs underflow to
  0 (float16 keeps nothing below 5.96e-08) and ``1 - sigmoid(x)`` is 0 once it rounds to 1;
- one-hot encodings (``F.one_hot``) and their averages (a code no row uses);
- spectra of signals (``stft``: silent or zero-padded audio), and a model's raw inputs by their
  conventional names (``data.raw_inputs``: ``input_values``...).

The evidence is carried through names, indexing, views and casts, products (a zero factor),
quotients (a zero numerator), sums of two vanishing terms, positive powers, ``abs`` and square
roots; reductions (``sum``, ``mean``, ``norm``, ``@``, ``einsum``) keep it only where every
entry is 0 together (one-hot columns, silence), not a probability's entry-by-entry underflow
(a softmax sums to 1) nor a parameter's. ``exp`` is no evidence by itself (schedules and
learned scales are ``exp`` of bounded values). A value with a positive lower bound
(``analysis.magnitude``: ``x.clamp(min=1)``, ``relu(x).sum() + 1``) is never 0.

``ZeroEvidence.of(expr)`` is a reason (evidence), the set of the enclosing function's
parameters the value vanishes with (the callers decide: ``analysis.exposure`` records which
calls pass vanishing arguments), or None.
"""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.magnitude import Magnitudes
from fp16lint.analysis.names import NameResolver
from fp16lint.data.raw_inputs import RAW_INPUTS

Zero = str | frozenset[str] | None

_PROBABILITIES = frozenset({"sigmoid", "softmax", "softmin", "gumbel_softmax", "expit"})
_UNDERFLOW = "a probability that underflows to 0"
_ROUNDS_TO_ONE = "a probability that rounds to 1"
_RAW = "a raw model input (silence, padding)"
_EVIDENCE = {
    **dict.fromkeys(_PROBABILITIES, _UNDERFLOW),
    "one_hot": "a one-hot encoding",
    "stft": "a spectrum of a signal that may be silent",
}
# Evidence a sum keeps: every entry is 0 together (an unused code, silence). A probability
# vanishes entry by entry: a sum over entries (``softmax`` sums to 1) is no evidence.
_PER_ENTRY = frozenset({_UNDERFLOW, _ROUNDS_TO_ONE})
_REDUCTIONS = frozenset(
    {"sum", "mean", "nansum", "nanmean", "norm", "matmul", "mm", "bmm", "einsum"}
)
# Ops whose output is 0 where their (first) input is.
_KEEP = frozenset(
    {
        "view", "reshape", "flatten", "unsqueeze", "squeeze", "transpose", "permute", "t",
        "contiguous", "expand", "expand_as", "repeat", "movedim", "clone", "detach", "float",
        "half", "double", "to", "type", "type_as", "abs", "square", "pow", "sqrt", "narrow",
        "real", "flip", "roll",
    }
)  # fmt: skip
_PRODUCTS = frozenset({"matmul", "mm", "bmm", "einsum", "mul", "multiply"})  # any factor
_CLAMPS = frozenset({"clamp", "clip", "clamp_min", "clamp_", "clip_", "clamp_min_"})
_MAX_DEPTH = 8


class ZeroEvidence:
    """Zero evidence for expressions of the file being walked (``names`` and ``stack`` at the
    walk's point)."""

    def __init__(self, names: NameResolver, stack: list[cst.CSTNode] | tuple):
        self.names = names
        self.magnitudes = Magnitudes(names, stack)
        self._memo: dict[int, Zero] = {}

    def of(self, expr: cst.BaseExpression | None) -> Zero:
        """The evidence for ``expr`` (see the module docstring)."""
        self._memo = {}
        found = self._of(expr, 0)
        if found:  # the bound only where it could overrule (most values show nothing)
            bound = self.magnitudes.bound(expr)
            if bound is not None and bound[0] > 0:
                return None
        return found

    def _of(self, expr: cst.BaseExpression | None, depth: int) -> Zero:
        if expr is None or depth > _MAX_DEPTH:
            return None
        key = id(expr)
        if key not in self._memo:  # names bound to shared values: each value once
            self._memo[key] = None  # a value that refers to itself shows nothing more
            self._memo[key] = self._value(expr, depth)
        return self._memo[key]

    def _value(self, expr: cst.BaseExpression, depth: int) -> Zero:
        kind = type(expr)
        if kind is cst.Name:
            return self._name(expr.value, depth)
        if kind is cst.Subscript:
            return self._of(expr.value, depth + 1)
        if kind is cst.UnaryOperation:
            return self._of(expr.expression, depth + 1)
        if kind is cst.BinaryOperation:
            return self._binary(expr, depth)
        if kind is cst.Call:
            return self._call(expr, depth)
        if kind is cst.IfExp:  # either branch may run
            return _either(self._of(expr.body, depth + 1), self._of(expr.orelse, depth + 1))
        return None

    def _name(self, name: str, depth: int) -> Zero:
        """Any binding vanishing (a reason first, else the parameters); a parameter is
        deferred to the callers, unless its name says it is a raw input."""
        found: set[str] = set()
        for binding in self.names.bindings(name) or ():
            if type(binding.node) is cst.Param:
                if name in RAW_INPUTS:
                    return _RAW
                found.add(name)
                continue
            zero = self._of(binding.value, depth + 1) if binding.value is not None else None
            if isinstance(zero, str):
                return zero
            if zero:
                found |= zero
        return frozenset(found) or None

    def _binary(self, expr: cst.BinaryOperation, depth: int) -> Zero:
        op = type(expr.operator)
        if op is cst.Divide:
            return self._of(expr.left, depth + 1)
        if op is cst.Power:
            exponent = expr.right
            number = exponent.evaluated_value if type(exponent) in (cst.Integer, cst.Float) else 0
            return self._of(expr.left, depth + 1) if float(number) > 0 else None  # type: ignore[arg-type]
        left, right = self._of(expr.left, depth + 1), self._of(expr.right, depth + 1)
        if op is cst.Multiply:
            return _either(left, right)
        if op is cst.MatrixMultiply:
            return _summed(_either(left, right))
        if op is cst.Subtract and _saturates(expr.left, expr.right, self.names):
            return _ROUNDS_TO_ONE
        if op in (cst.Add, cst.Subtract) and left is not None and right is not None:
            if isinstance(left, str) and isinstance(right, str):
                return left
            return frozenset(p for z in (left, right) if not isinstance(z, str) for p in z)
        return None

    def _call(self, call: cst.Call, depth: int) -> Zero:
        func = call.func
        qualname = self.names.qualname(func)
        if qualname is not None:
            if not qualname.startswith("torch."):
                return None
            name = qualname.rsplit(".", 1)[-1]
            operands = [a.value for a in call.args if a.keyword is None]
            operand = operands[0] if operands else None
        elif type(func) is cst.Attribute:
            name, operand = func.attr.value, func.value
            operands = [operand]
        else:
            return None
        if name in _EVIDENCE:
            return _EVIDENCE[name]
        if name in _PRODUCTS:
            zeros = [self._of(o, depth + 1) for o in operands if type(o) is not cst.SimpleString]
            found = None
            for zero in zeros:
                found = _either(found, zero)
            return _summed(found) if name in _REDUCTIONS else found
        if name in _REDUCTIONS:
            return _summed(self._of(operand, depth + 1))
        if name in _KEEP or (name in _CLAMPS and not self._floored(call, qualname)):
            return self._of(operand, depth + 1)
        return None

    def _floored(self, call: cst.Call, qualname: str | None) -> bool:
        """A clamp whose lower bound is a positive number."""
        offset = 1 if qualname is not None else 0
        positional = [a.value for a in call.args if a.keyword is None]
        low = next((a.value for a in call.args if a.keyword and a.keyword.value == "min"), None)
        if low is None and len(positional) > offset:
            low = positional[offset]
        limit = self.magnitudes.limit(low) if low is not None else None
        return limit is not None and limit > 0


def _summed(zero: Zero) -> Zero:
    """What a sum (a reduction, a contraction) of values of evidence ``zero`` keeps: evidence
    that holds for every entry together; not a parameter's (the callers' values are judged
    as they are, not summed)."""
    return zero if isinstance(zero, str) and zero not in _PER_ENTRY else None


def _either(left: Zero, right: Zero) -> Zero:
    """A product vanishes where either factor does (a conditional value, where either
    branch does)."""
    if isinstance(left, str):
        return left
    if isinstance(right, str):
        return right
    if left or right:
        return frozenset((left or frozenset()) | (right or frozenset()))
    return None


def _saturates(left: cst.BaseExpression, right: cst.BaseExpression, names: NameResolver) -> bool:
    """``1 - p`` for a probability ``p``: 0 once ``p`` rounds to 1."""
    if type(left) not in (cst.Integer, cst.Float) or float(left.evaluated_value) != 1:  # type: ignore[union-attr]
        return False
    return _probability(right, names, set(), 0)


def _probability(
    expr: cst.BaseExpression | None, names: NameResolver, seen: set[str], depth: int
) -> bool:
    """A probability op's output (inline, indexed, or a name every binding of which is one;
    ``p = p[:, ids]`` keeps it)."""
    if expr is None or depth > _MAX_DEPTH:
        return False
    kind = type(expr)
    if kind is cst.Subscript:
        return _probability(expr.value, names, seen, depth + 1)
    if kind is cst.Name:
        if expr.value in seen:
            return True  # the name's other bindings decide
        bindings = names.bindings(expr.value) or []
        inner = seen | {expr.value}
        return bool(bindings) and all(
            _probability(b.value, names, inner, depth + 1) for b in bindings
        )
    if kind is not cst.Call:
        return False
    func = expr.func
    qualname = names.qualname(func)
    if qualname is not None:
        return qualname.rsplit(".", 1)[-1] in _PROBABILITIES
    return type(func) is cst.Attribute and func.attr.value in _PROBABILITIES
