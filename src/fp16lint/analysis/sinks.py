"""Constant sinks: where a constant is written into, or combined with, a tensor that may be fp16.

Two families share this analysis:

- *values* (FP301, FP302): ``masked_fill(_)``, ``fill_``, ``index_fill(_)``, ``new_full``,
  ``torch.full(_like)`` and ``clamp`` bounds raise for a value outside float16's range; the value
  branches of ``torch.where``, subscript assignment (``logits[..., banned] = -1e10``), ``+ - *``
  with a tensor, and 0-dim tensors kept on a module (``torch.tensor(-1e9)`` as a buffer) turn it
  into ±inf silently (tests/facts/test_constant_sinks.py).
- *epsilons* (FP304): a positive constant that keeps a tensor away from zero — added to a
  denominator, inside ``log``/``sqrt``/``rsqrt``, a ``clamp(min=...)`` bound, or the ``eps`` of
  ``F.normalize``/``F.cosine_similarity`` (which compute in the input's dtype). Norm layers'
  ``eps`` is not a sink: their kernels keep it in fp32 (FACTS.md §3).

A sink needs a tensor: the receiver of a tensor-only method, ``torch.where``'s other branch, or
an operand the receiver analysis knows is a tensor. Tensors whose dtype is evidently not fp16
(``x.float()``, integer and bool tensors, float32 factories) and branches of a dtype test that
exclude fp16 are not sinks. numpy and Python numbers never are.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from fp16lint.analysis.base import Tracker
from fp16lint.analysis.constants import SCALAR_TENSORS, Constant, ConstantTracker
from fp16lint.analysis.dtypes import DTYPE_PRESERVING, dtype_of, tensor_dtype
from fp16lint.analysis.guards import in_non_fp16_branch
from fp16lint.analysis.names import dotted
from fp16lint.analysis.receivers import Kind, ReceiverTracker

_MAX_DEPTH = 12  # dtype evidence often sits a few bindings and calls away

# method -> (position of the value argument, its keyword); all raise on overflow in fp16.
FILL_METHODS = {
    "masked_fill": (1, "value"),
    "masked_fill_": (1, "value"),
    "fill_": (0, "value"),
    "index_fill": (2, "value"),
    "index_fill_": (2, "value"),
    "new_full": (1, "fill_value"),
}
CLAMP_METHODS = {
    "clamp": ("min", "max"),
    "clamp_": ("min", "max"),
    "clip": ("min", "max"),
    "clip_": ("min", "max"),
    "clamp_min": ("min",),
    "clamp_min_": ("min",),
    "clamp_max": ("max",),
    "clamp_max_": ("max",),
}
_CLAMP_FUNCTIONS = {
    f"torch.{name}": bounds for name, bounds in CLAMP_METHODS.items() if not name.endswith("_")
}
_ARITHMETIC = (cst.Add, cst.Subtract, cst.Multiply)
_AUGMENTED = (cst.AddAssign, cst.SubtractAssign, cst.MultiplyAssign)
# Results whose dtype is not a float that could be fp16.
_INTEGER_METHODS = frozenset({"long", "int", "bool", "byte", "short", "char"})
# Methods whose result has the receiver's dtype (beyond dtypes.DTYPE_PRESERVING).
# fmt: off
_SAME_DTYPE_MATH = frozenset(
    {"pow", "mean", "sum", "sqrt", "rsqrt", "abs", "exp", "var", "std", "norm", "square",
     "neg", "reciprocal", "sigmoid", "tanh", "softmax", "log_softmax", "amax", "amin",
     "cumsum", "masked_fill", "expand_as", "view_as", "reshape_as", "type_as", "triu", "tril",
     "sub", "mul", "div", "add", "sub_", "mul_", "div_", "add_", "pow_", "clamp", "clamp_min"}
)
# fmt: on
_MAYBE, _WIDE, _OTHER = "maybe fp16", "wide float", "not fp16"
_SAME_DTYPE_ATTRIBUTES = frozenset({"T", "mT", "H", "mH", "data"})
_INTEGER_DTYPES = frozenset(
    f"torch.{name}"
    for name in ("long", "int", "int64", "int32", "int16", "int8", "uint8", "short", "bool")
)
_NEW_TENSORS = frozenset({"torch.tensor", "torch.arange"})  # without dtype=: never fp16
_FROM_ARRAYS = frozenset({"torch.from_numpy", "torch.as_tensor"})  # keep the array's dtype
_SEQUENCE_FUNCTIONS = frozenset({"torch.stack", "torch.cat", "torch.concat", "torch.concatenate"})
_NO_NAMES: dict[str, int] = {}  # a ``seen`` marker: names of another scope, not visible
# Decorators that run the function in float32 for low-precision inputs
# (torch/_decomp/decompositions.py: ``partial(type_casts, ..., compute_dtype_only=True)``).
FP32_COMPUTE_DECORATORS = frozenset(
    {
        "torch._decomp.decompositions.pw_cast_for_opmath",
        "torch._decomp.decompositions.pw_cast_for_opmath_non_tensor_args",
    }
)
_SAME_DTYPE_TUPLES = frozenset({"torch.meshgrid", "torch.broadcast_tensors"})
_SPLITS = frozenset({"chunk", "split", "unbind", "tensor_split"})
# torch functions whose result has the promoted dtype of their tensor arguments.
_PROMOTING_FUNCTIONS = frozenset(
    f"torch.{name}"
    for name in (
        "log", "log1p", "log2", "log10", "exp", "sqrt", "rsqrt", "abs", "sin", "cos", "tanh",
        "sigmoid", "square", "neg", "reciprocal", "pow", "clamp", "clip", "clamp_min",
        "clamp_max", "cross", "matmul", "mm", "bmm", "einsum", "mul", "add", "sub", "div",
        "maximum", "minimum", "outer", "cdist", "unsqueeze", "squeeze", "flatten", "reshape",
        "permute", "transpose", "sum", "mean", "norm", "var", "std", "amax", "amin", "cumsum",
        "nan_to_num", "where", "atan2", "lerp", "baddbmm", "addmm", "tensordot", "softmax",
        "log_softmax", "linalg.norm", "linalg.vector_norm", "linalg.cross",
    )
)  # fmt: skip
# Functions and methods whose argument an epsilon must keep away from zero.
_ZERO_GUARDED = frozenset({"log", "log2", "log10", "sqrt", "rsqrt", "reciprocal"})
_DIVISIONS = frozenset({"torch.div", "torch.divide", "torch.true_divide"})
_EPS_FUNCTIONS = {  # computing in the input's dtype; (position of eps, its keyword)
    "torch.nn.functional.normalize": 3,
    "torch.nn.functional.cosine_similarity": 3,
    "torch.cosine_similarity": 3,
}


@dataclass(frozen=True)
class Sink:
    """A constant at a tensor use.

    ``node`` is the constant's expression at the use; ``target`` the tensor it is written into
    or combined with (when one expression is it); ``operation`` names the use for messages
    (``masked_fill``, ``torch.where``, ``*``, ``a subscript assignment``, ``sqrt``...);
    ``raises`` tells fill-style ops (an exception in fp16) from silent ones (±inf);
    ``dtype_expr`` is the expression whose ``finfo`` fits the target (``x.dtype`` text), when
    a fix can write it.
    """

    node: cst.BaseExpression
    constant: Constant
    operation: str
    target: cst.BaseExpression | None
    raises: bool = False
    dtype_expr: str | None = None

    def target_text(self, code) -> str | None:
        """The target's source when it is short enough to quote."""
        if self.target is None:
            return None
        text = code(self.target)
        return text if len(text) <= 40 and "\n" not in text else None


def _positional(call: cst.Call, index: int, keyword: str | None) -> cst.BaseExpression | None:
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for arg in call.args:
        if keyword is not None and arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    return positional[index].value if index < len(positional) else None


def _keyword(call: cst.Call, name: str) -> cst.BaseExpression | None:
    return next((a.value for a in call.args if a.keyword and a.keyword.value == name), None)


class ConstantSinks(Tracker):
    """``ctx.get(ConstantSinks).values(node)`` / ``.epsilons(node)`` for a Call,
    BinaryOperation, Assign or AugAssign node at the current point of the walk."""

    requires = (ConstantTracker, ReceiverTracker)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.names = ctx.names
        self.constants: ConstantTracker = ctx.get(ConstantTracker)
        self.receivers: ReceiverTracker = ctx.get(ReceiverTracker)
        self._last: tuple[int, list[Sink]] | None = None

    # --- shared helpers -------------------------------------------------------------------
    def value_of(self, expr: cst.BaseExpression | None) -> Constant | None:
        return self.constants.value_of(expr) if expr is not None else None

    def may_be_fp16(self, expr: cst.BaseExpression) -> bool:
        """False when the code shows ``expr``'s dtype is not fp16 (or not floating)."""
        return self._dtype_class(expr, 0, {}) is _MAYBE

    def _dtype_class(self, expr: cst.BaseExpression, depth: int, seen: dict[str, int]) -> str:
        """``_WIDE`` (float32/float64/bfloat16: it makes ``fp16 (op) it`` wide too), ``_OTHER``
        (not fp16: integer, bool, or a default-dtype tensor of unknown shape) or ``_MAYBE``."""
        if depth > _MAX_DEPTH:
            return _MAYBE
        if isinstance(expr, cst.Comparison):
            return _OTHER
        if isinstance(expr, cst.UnaryOperation):
            if isinstance(expr.operator, (cst.Not, cst.BitInvert)):
                return _OTHER  # `~` exists only for integer and bool tensors
            return self._dtype_class(expr.expression, depth + 1, seen)
        if isinstance(expr, cst.Subscript):
            return self._dtype_class(expr.value, depth + 1, seen)
        if isinstance(expr, cst.Attribute) and expr.attr.value in _SAME_DTYPE_ATTRIBUTES:
            return self._dtype_class(expr.value, depth + 1, seen)
        if isinstance(expr, cst.Attribute):
            return self._attribute_class(expr, depth)
        if isinstance(expr, cst.BinaryOperation):
            return self._combine((expr.left, expr.right), depth, seen)
        if isinstance(expr, cst.Name):
            if seen is _NO_NAMES:
                return _MAYBE
            value, index = self._visible_value(expr.value, seen)
            if value is None:
                return _MAYBE
            return self._dtype_class(value, depth + 1, {**seen, expr.value: index})
        if isinstance(expr, cst.Call):
            return self._call_class(expr, depth, seen)
        return _MAYBE

    def _attribute_class(self, expr: cst.Attribute, depth: int) -> str:
        """``self.X`` assigned once in the class, from a call whose dtype shows without the
        assigning method's local names (``torch.from_numpy(np.asarray(f, dtype=np.float32))``)."""
        values = self.constants.evaluator.attribute_values(expr)
        if not values or len(values) != 1 or not isinstance(values[0], cst.Call):
            return _MAYBE
        return self._dtype_class(values[0], depth + 1, _NO_NAMES)

    def _combine(self, operands, depth: int, seen: dict[str, int]) -> str:
        """Type promotion: a wide float operand makes the result wide; an fp16-capable one may
        keep it fp16; constants and integer tensors do neither."""
        classes = {
            self._dtype_class(operand, depth + 1, seen)
            for operand in operands
            if self.value_of(operand) is None and not isinstance(operand, cst.BaseString)
        }
        for result in (_WIDE, _MAYBE):
            if result in classes:
                return result
        return _OTHER

    def _call_class(self, call: cst.Call, depth: int, seen: dict[str, int]) -> str:
        positional = [a.value for a in call.args if a.keyword is None and not a.star]
        method = call.func.attr.value if isinstance(call.func, cst.Attribute) else None
        if method == "view" and len(positional) == 1:
            fact = dtype_of(positional[0], self.names)  # a reinterpretation as that dtype
            if fact is not None:
                return _MAYBE if fact.is_fp16 or fact.maybe else _WIDE
        fact = tensor_dtype(call, self.names)
        if fact is not None:
            return _MAYBE if fact.is_fp16 or fact.maybe else _WIDE
        dtype = _keyword(call, "dtype")
        if dtype is not None:
            return self._dtype_class_of(dtype)
        qualname = self.names.qualname(call.func) or ""
        if qualname in _NEW_TENSORS:
            return _OTHER  # float32 or int64 from Python data
        if qualname.startswith("numpy."):
            return _OTHER  # numpy's default dtypes are float64 and int64
        if qualname in _SAME_DTYPE_TUPLES | _FROM_ARRAYS and positional:
            return self._dtype_class(positional[0], depth + 1, seen)
        if qualname in _PROMOTING_FUNCTIONS:
            return self._combine(positional, depth, seen)
        if qualname in _SEQUENCE_FUNCTIONS and positional:
            items = positional[0]
            if isinstance(items, (cst.Tuple, cst.List)):
                return self._combine([e.value for e in items.elements], depth, seen)
        if qualname.startswith("torch.nn.functional.") and positional:
            return self._dtype_class(positional[0], depth + 1, seen)
        if isinstance(call.func, cst.Attribute) and not qualname:
            method = call.func.attr.value
            if method in _INTEGER_METHODS:
                return _OTHER
            if method in _SAME_DTYPE_MATH or method in DTYPE_PRESERVING - {"to"}:
                return self._dtype_class(call.func.value, depth + 1, seen)
            if method == "to" and all(self._is_device(arg) for arg in positional):
                return self._dtype_class(call.func.value, depth + 1, seen)
        return _MAYBE

    def _explicit_fp16(self, target: cst.BaseExpression | None) -> bool:
        """The code shows ``target`` is an fp16 tensor (integer constants need this much)."""
        fact = tensor_dtype(target, self.names) if target is not None else None
        return fact is not None and fact.is_fp16

    def _is_device(self, expr: cst.BaseExpression) -> bool:
        """``"cuda"``, ``x.device``, ``torch.device(...)``, or a parameter declared ``str``
        or ``torch.device`` (or defaulting to a string): ``.to(it)`` keeps the dtype."""
        if isinstance(expr, cst.BaseString) or (
            isinstance(expr, cst.Attribute) and expr.attr.value == "device"
        ):
            return True
        if isinstance(expr, cst.Call):
            return self.names.qualname(expr.func) == "torch.device"
        if isinstance(expr, cst.Name):
            found = self.names.bindings(expr.value) or []
            if len(found) == 1 and isinstance(found[0].node, cst.Param):
                param = found[0].node
                annotation = param.annotation.annotation if param.annotation else None
                declared = self.names.qualname(annotation) if annotation is not None else None
                return declared in ("builtins.str", "torch.device") or isinstance(
                    param.default, cst.BaseString
                )
        return False

    def _dtype_may_be_fp16(self, dtype: cst.BaseExpression) -> bool:
        return self._dtype_class_of(dtype) is _MAYBE

    def _dtype_class_of(self, dtype: cst.BaseExpression) -> str:
        """The class of a tensor made with ``dtype=<dtype>``."""
        if self.names.qualname(dtype) in _INTEGER_DTYPES:
            return _OTHER
        fact = dtype_of(dtype, self.names)
        return _MAYBE if fact is None or fact.is_fp16 or fact.maybe else _WIDE

    def _visible_value(
        self, name: str, seen: dict[str, int]
    ) -> tuple[cst.BaseExpression | None, int]:
        """The value of the binding of ``name`` in effect in straight-line code (bindings
        after ``seen[name]`` are not visible from inside an earlier one), and its index.
        Unpacking ``a, b = x.chunk(2)`` or ``y, x = torch.meshgrid(y, x)`` gives an element
        with the dtype of ``x``."""
        bindings = self.names.bindings(name) or []
        index = min(seen.get(name, len(bindings)), len(bindings)) - 1
        if index < 0 or bindings[index].qualname is not None:
            return None, index
        binding = bindings[index]
        if binding.value is not None:
            return binding.value, index
        node = binding.node
        if isinstance(node, cst.Assign) and isinstance(node.value, (cst.Tuple, cst.List)):
            return _element_value(node, name), index
        if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
            call = node.value
            if self.names.qualname(call.func) in _SAME_DTYPE_TUPLES and call.args:
                return call.args[0].value, index
            if isinstance(call.func, cst.Attribute) and call.func.attr.value in _SPLITS:
                return call.func.value, index
        return None, index

    def is_tensor(self, expr: cst.BaseExpression) -> bool:
        return self.receivers.kind_of(expr) is Kind.TENSOR

    def _fp16_tensor(self, expr: cst.BaseExpression | None, *, evident: bool) -> bool:
        """``expr`` is (``evident``: is known to be) a tensor that may be fp16."""
        if expr is None or self.value_of(expr) is not None:
            return False
        kind = self.receivers.kind_of(expr)
        if kind is Kind.MODULE or (evident and kind is not Kind.TENSOR):
            return False
        return self.may_be_fp16(expr)

    def _guarded(self) -> bool:
        """Under a dtype test that excludes fp16, or in a function that computes in fp32."""
        if in_non_fp16_branch(self.ctx.stack, self.names):
            return True
        for scope in self.names.scopes:
            if isinstance(scope.node, cst.FunctionDef):
                for decorator in scope.node.decorators:
                    name = dotted(decorator.decorator)
                    qualname = self.names.qualname(decorator.decorator)
                    local = f"{self.names.module_name}.{name}" if name else None
                    if {qualname, local} & FP32_COMPUTE_DECORATORS:
                        return True
        return False

    def _dtype_expr(self, target: cst.BaseExpression | None) -> str | None:
        if target is None or dotted(target) is None:
            return None
        return f"{self.ctx.code(target)}.dtype"

    # --- values (FP301, FP302) ------------------------------------------------------------
    def values(self, node: cst.CSTNode) -> list[Sink]:
        """Constants written into or combined with a tensor at ``node``."""
        if self._last is not None and self._last[0] == id(node):
            return self._last[1]
        found: list[Sink] = []
        if isinstance(node, cst.Call):
            found = self._call_values(node)
        elif isinstance(node, cst.BinaryOperation):
            found = self._arithmetic(node)
        elif isinstance(node, cst.AugAssign):
            found = self._augmented(node)
        elif isinstance(node, cst.Assign):
            found = self._assignment(node)
        found = [s for s in found if not (s.constant.tensor and s.constant.attribute)]
        if found and self._guarded():
            found = []
        self._last = (id(node), found)
        return found

    def _sink(self, expr, operation, target, *, raises=False, fixable=False, dtype_expr=None):
        """A one-element list for a constant ``expr``; ``fixable`` uses write the target's
        ``finfo`` (``dtype_expr``, or ``<target>.dtype``) in place of the constant."""
        constant = self.value_of(expr)
        if constant is None or (constant.integral and not self._explicit_fp16(target)):
            return []
        if fixable and dtype_expr is None:
            dtype_expr = self._dtype_expr(target)
        return [Sink(expr, constant, operation, target, raises, dtype_expr)]

    def _call_values(self, call: cst.Call) -> list[Sink]:
        func = call.func
        qualname = self.names.qualname(func)
        if (
            qualname in ("torch.full", "torch.full_like", "torch.where")
            or qualname in _CLAMP_FUNCTIONS
        ):
            return self._torch_function(call, qualname)
        if not isinstance(func, cst.Attribute) or (qualname or "").startswith(("torch.", "numpy.")):
            return []
        method, receiver = func.attr.value, func.value
        if method in FILL_METHODS:
            dtype = _keyword(call, "dtype") if method == "new_full" else None
            if dtype is not None:
                if not self._dtype_may_be_fp16(dtype):
                    return []
            elif not self._fp16_tensor(receiver, evident=False):
                return []
            position, keyword = FILL_METHODS[method]
            value = _positional(call, position, keyword)
            return self._sink(value, method, receiver, raises=True, fixable=True)
        if method in CLAMP_METHODS:
            if not self._fp16_tensor(receiver, evident=method.startswith("clip")):
                return []
            return self._clamp_bounds(call, method, receiver, CLAMP_METHODS[method], 0)
        if method == "where" and self._fp16_tensor(receiver, evident=True):
            return self._sink(_positional(call, 1, "other"), "where", receiver, fixable=True)
        if method in ("to", "type", "half"):
            return self._cast_of_constants(call, method, receiver)
        if method == "register_buffer":
            value = _positional(call, 1, "tensor")
            constant = self.value_of(value)
            if constant is not None and constant.tensor and not constant.attribute:
                return [Sink(value, constant, "register_buffer", None)]
        return []

    def _torch_function(self, call: cst.Call, qualname: str) -> list[Sink]:
        name = qualname.removeprefix("torch.")
        if qualname in _CLAMP_FUNCTIONS:
            target = _positional(call, 0, "input")
            if not self._fp16_tensor(target, evident=False):
                return []
            return self._clamp_bounds(call, name, target, _CLAMP_FUNCTIONS[qualname], 1)
        if qualname == "torch.where":
            cond_and_branches = [_positional(call, i, k) for i, k in ((1, "input"), (2, "other"))]
            found = []
            for index, value in enumerate(cond_and_branches):
                other = cond_and_branches[1 - index]
                if value is not None and self._fp16_tensor(other, evident=False):
                    found += self._sink(value, "torch.where", other, fixable=True)
            return found
        dtype = _keyword(call, "dtype")
        target = _positional(call, 0, "input") if name == "full_like" else None
        if dtype is not None:
            if not self._dtype_may_be_fp16(dtype):
                return []
            dtype_text = self.ctx.code(dtype) if dotted(dtype) is not None else None
        elif target is not None and self._fp16_tensor(target, evident=False):
            dtype_text = self._dtype_expr(target)
        else:
            return []  # torch.full without dtype= makes the default dtype (float32)
        value = _positional(call, 1, "fill_value")
        return self._sink(value, qualname, target, raises=True, dtype_expr=dtype_text)

    def _cast_of_constants(self, call: cst.Call, method: str, made: cst.BaseExpression):
        """``torch.where(m > 0, 0.0, -1e10).to(h.dtype)``, ``torch.tensor(-1e9).half()``:
        a tensor made of constants, cast to a dtype that may be fp16."""
        if method == "half":
            dtype = None
        else:
            dtype = _keyword(call, "dtype") or _positional(call, 0, None)
            is_dtype = isinstance(dtype, cst.Attribute) and dtype.attr.value == "dtype"
            fact = dtype_of(dtype, self.names) if dtype is not None else None
            if not is_dtype and (fact is None or not (fact.is_fp16 or fact.maybe)):
                return []
        if not isinstance(made, cst.Call):
            return []
        qualname = self.names.qualname(made.func)
        if qualname == "torch.where":
            values = [_positional(made, i, k) for i, k in ((1, "input"), (2, "other"))]
        elif qualname == "torch.full" and _keyword(made, "dtype") is None:
            values = [_positional(made, 1, "fill_value")]
        elif qualname in SCALAR_TENSORS:
            values = [made]
        else:
            return []
        constants = [self.value_of(v) for v in values]
        if any(c is None for c in constants):
            return []
        dtype_text = self.ctx.code(dtype) if dtype is not None and dotted(dtype) else None
        dtype_text = dtype_text or ("torch.float16" if method == "half" else None)
        return [
            Sink(v, c, "a cast", None, dtype_expr=dtype_text)
            for v, c in zip(values, constants, strict=True)
        ]

    def _clamp_bounds(self, call, name, target, bounds, offset) -> list[Sink]:
        found = []
        for index, keyword in enumerate(bounds):
            value = _positional(call, offset + index, keyword)
            found += self._sink(value, name, target, raises=True, fixable=True)
        return found

    def _arithmetic(self, node: cst.BinaryOperation) -> list[Sink]:
        if not isinstance(node.operator, _ARITHMETIC):
            return []
        symbol = self.ctx.code(node.operator).strip()
        for value, other in ((node.right, node.left), (node.left, node.right)):
            if self._fp16_tensor(other, evident=True):
                sinks = self._sink(value, symbol, other)
                if sinks:
                    return sinks
        return []

    def _augmented(self, node: cst.AugAssign) -> list[Sink]:
        if not isinstance(node.operator, _AUGMENTED) or not self._fp16_tensor(
            node.target, evident=True
        ):
            return []
        return self._sink(node.value, self.ctx.code(node.operator).strip(), node.target)

    def _assignment(self, node: cst.Assign) -> list[Sink]:
        found = []
        for target in node.targets:
            place = target.target
            if isinstance(place, cst.Subscript) and self._fp16_tensor(place.value, evident=True):
                found += self._sink(node.value, "a subscript assignment", place.value, fixable=True)
            elif (
                isinstance(place, cst.Attribute)
                and isinstance(place.value, cst.Name)
                and place.value.value == "self"
            ):
                constant = self.value_of(node.value)
                if constant is not None and constant.tensor and not constant.attribute:
                    found.append(Sink(node.value, constant, "a module attribute", None))
        return found

    # --- epsilons (FP304) -------------------------------------------------------------------
    def epsilons(self, node: cst.CSTNode) -> list[Sink]:
        """Positive constants meant to keep a tensor away from zero at ``node``."""
        found: list[Sink] = []
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
            found = self._guarding_sum(node)
        elif isinstance(node, cst.Call):
            found = self._guarding_call(node)
        found = [s for s in found if s.constant.underflows]
        if found and self._guarded():
            return []
        return found

    def _guarding_sum(self, node: cst.BinaryOperation) -> list[Sink]:
        """``t + eps`` in a denominator or under ``log``/``sqrt``/``rsqrt``."""
        for value, other in ((node.right, node.left), (node.left, node.right)):
            if self._fp16_tensor(other, evident=True) and self.value_of(value) is not None:
                use = self._zero_guarded_use()
                if use is not None:
                    return self._sink(value, use, other)
        return []

    def _zero_guarded_use(self) -> str | None:
        """How the expression on top of the stack is used: ``a denominator``, ``log``,
        ``sqrt``... or None when nothing needs it to be non-zero."""
        stack = self.ctx.stack
        child = stack[-1]
        for index in range(len(stack) - 2, -1, -1):
            parent = stack[index]
            if isinstance(parent, cst.Arg):
                child = parent
                continue
            if isinstance(parent, cst.BinaryOperation):
                if (
                    isinstance(parent.operator, (cst.Divide, cst.FloorDivide))
                    and parent.right is child
                ):
                    return "a denominator"
                if isinstance(parent.operator, cst.Power) and parent.left is child:
                    exponent = self.value_of(parent.right)
                    if exponent is not None and exponent.value < 0:
                        return "a negative power"
                    child = parent
                    continue
                return None
            if isinstance(parent, cst.Call):
                qualname = self.names.qualname(parent.func) or ""
                name = qualname.removeprefix("torch.")
                if (
                    isinstance(child, cst.Arg)
                    and qualname.startswith("torch.")
                    and name in _ZERO_GUARDED
                ):
                    return name
                if qualname in _DIVISIONS and len(parent.args) > 1 and parent.args[1] is child:
                    return "a denominator"
                return None
            if isinstance(parent, cst.Attribute) and parent.value is child and index > 0:
                call = stack[index - 1]
                method = parent.attr.value.removesuffix("_")
                if isinstance(call, cst.Call) and call.func is parent and method in _ZERO_GUARDED:
                    return method
                return None
            return None
        return None

    def _guarding_call(self, call: cst.Call) -> list[Sink]:
        func = call.func
        qualname = self.names.qualname(func)
        if qualname in _EPS_FUNCTIONS:
            target = _positional(call, 0, "input" if "normalize" in qualname else "x1")
            if not self._fp16_tensor(target, evident=False):
                return []
            name = qualname.rsplit(".", 1)[1]
            return self._sink(_positional(call, _EPS_FUNCTIONS[qualname], "eps"), name, target)
        if qualname in ("torch.clamp", "torch.clip", "torch.clamp_min"):
            target = _positional(call, 0, "input")
            if self._fp16_tensor(target, evident=False):
                return self._sink(
                    _positional(call, 1, "min"), qualname.removeprefix("torch."), target
                )
            return []
        if (
            isinstance(func, cst.Attribute)
            and qualname is None
            and func.attr.value in CLAMP_METHODS
        ):
            method, receiver = func.attr.value, func.value
            bounds = CLAMP_METHODS[method]
            if "min" in bounds and self._fp16_tensor(receiver, evident=method.startswith("clip")):
                return self._sink(_positional(call, 0, "min"), method, receiver)
        return []


def _element_value(node: cst.Assign, name: str) -> cst.BaseExpression | None:
    """``b``'s value in ``a, b = x.float(), y.float()``."""
    values = node.value.elements  # type: ignore[attr-defined]
    for target in node.targets:
        if isinstance(target.target, (cst.Tuple, cst.List)):
            elements = target.target.elements
            for position, element in enumerate(elements):
                inner = element.value
                if (
                    isinstance(inner, cst.Name)
                    and inner.value == name
                    and len(values) == len(elements)
                ):
                    value = values[position]
                    return None if isinstance(value, cst.StarredElement) else value.value
    return None
