"""Which dtype a tensor value may have, as far as the code shows: fp16 or not.

Rules about numbers float16 cannot hold fire only where the tensor may be fp16. This analysis
says when it cannot be: a float32/float64/bfloat16 tensor (``x.float()``, ``dtype=torch.float32``,
a fp32 class attribute built from numpy), an integer or bool tensor (``mask.long()``, ``~m``,
comparisons), a tensor made from Python data (``torch.tensor(values)``), numpy arrays, and
results that inherit those dtypes — through method chains (``x.float().pow(2).mean()``), type
promotion (``fp16 * fp32`` is fp32), ``torch`` functions, unpacking (``y, x =
torch.meshgrid(y, x)``, ``q, k = q.float(), k.float()``), ``.to(device)`` and activation
modules (``ACT2FN[...]``). Names follow the binding in effect in straight-line code. It extends
``dtypes.tensor_dtype`` (which it asks first) with the "not fp16" answers rules need.
"""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.calls import argument
from fp16lint.analysis.constants import ConstantEvaluator
from fp16lint.analysis.dtypes import DTYPE_PRESERVING, dtype_of, tensor_dtype
from fp16lint.analysis.names import NameResolver

_MAX_DEPTH = 12  # dtype evidence often sits a few bindings and calls away
# Results whose dtype is not a float that could be fp16.
_INTEGER_METHODS = frozenset({"long", "int", "bool", "byte", "short", "char"})
# Methods whose result has the receiver's dtype (beyond dtypes.DTYPE_PRESERVING).
# fmt: off
_SAME_DTYPE_MATH = frozenset(
    {"pow", "mean", "sum", "sqrt", "rsqrt", "abs", "exp", "var", "std", "norm", "square",
     "neg", "reciprocal", "sigmoid", "tanh", "softmax", "log_softmax", "amax", "amin",
     "cumsum", "masked_fill", "expand_as", "view_as", "reshape_as", "triu", "tril",
     "sub", "mul", "div", "add", "sub_", "mul_", "div_", "add_", "pow_", "clamp", "clamp_min",
     "gather", "index_select", "masked_select", "take", "take_along_dim", "roll", "flip",
     "narrow", "repeat_interleave", "scatter", "scatter_add", "nan_to_num", "cumprod", "prod",
     "logsumexp", "sigmoid_", "exp_", "sqrt_", "relu", "relu_", "unflatten"}
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
# Name -> activation-module tables (transformers/activations.py: ``ACT2FN = ClassInstantier(
# ACT2CLS)``, every entry an elementwise activation that keeps its input's dtype).
ACTIVATION_TABLES = frozenset({"transformers.activations.ACT2FN"})
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


class ValueDtypes:
    """Dtype evidence for the values of one file, at the current point of the walk."""

    def __init__(self, names: NameResolver, constants: ConstantEvaluator):
        self.names = names
        self.constants = constants

    def may_be_fp16(self, expr: cst.BaseExpression) -> bool:
        """False when the code shows ``expr``'s dtype is not fp16 (or not floating)."""
        return self._dtype_class(expr, 0, {}) == _MAYBE

    def _dtype_class(self, expr: cst.BaseExpression, depth: int, seen: dict[str, int]) -> str:
        """``_WIDE`` (float32/float64/bfloat16: it makes ``fp16 (op) it`` wide too), ``_OTHER``
        (not fp16: integer, bool, or a default-dtype tensor of unknown shape) or ``_MAYBE``."""
        if depth > _MAX_DEPTH:
            return _MAYBE
        if type(expr) is cst.Comparison:
            return _OTHER
        if type(expr) is cst.UnaryOperation:
            if type(expr.operator) in (cst.Not, cst.BitInvert):
                return _OTHER  # `~` exists only for integer and bool tensors
            return self._dtype_class(expr.expression, depth + 1, seen)
        if type(expr) is cst.Subscript:
            return self._dtype_class(expr.value, depth + 1, seen)
        if type(expr) is cst.Attribute and expr.attr.value in _SAME_DTYPE_ATTRIBUTES:
            return self._dtype_class(expr.value, depth + 1, seen)
        if type(expr) is cst.Attribute:
            return self._attribute_class(expr, depth)
        if type(expr) is cst.BinaryOperation:
            return self._combine((expr.left, expr.right), depth, seen)
        if type(expr) is cst.Name:
            if seen is _NO_NAMES:
                return _MAYBE
            value, index = self._visible_value(expr.value, seen)
            if value is None:
                return _MAYBE
            return self._dtype_class(value, depth + 1, {**seen, expr.value: index})
        if type(expr) is cst.Call:
            return self._call_class(expr, depth, seen)
        return _MAYBE

    def _attribute_class(self, expr: cst.Attribute, depth: int) -> str:
        """``self.X`` assigned once in the class, from a call whose dtype shows without the
        assigning method's local names (``torch.from_numpy(np.asarray(f, dtype=np.float32))``)."""
        values = self.constants.attribute_values(expr)
        if not values or len(values) != 1 or type(values[0]) is not cst.Call:
            return _MAYBE
        return self._dtype_class(values[0], depth + 1, _NO_NAMES)

    def _combine(self, operands, depth: int, seen: dict[str, int]) -> str:
        """Type promotion: a wide float operand makes the result wide; an fp16-capable one may
        keep it fp16; constants and integer tensors do neither."""
        classes = {
            self._dtype_class(operand, depth + 1, seen)
            for operand in operands
            if self.constants.value_of(operand) is None and not isinstance(operand, cst.BaseString)
        }
        for result in (_WIDE, _MAYBE):
            if result in classes:
                return result
        return _OTHER

    def _call_class(self, call: cst.Call, depth: int, seen: dict[str, int]) -> str:
        positional = [a.value for a in call.args if a.keyword is None and not a.star]
        method = call.func.attr.value if type(call.func) is cst.Attribute else None
        if method == "view" and len(positional) == 1:
            fact = dtype_of(positional[0], self.names)  # a reinterpretation as that dtype
            if fact is not None:
                return _MAYBE if fact.is_fp16 or fact.maybe else _WIDE
        fact = tensor_dtype(call, self.names)
        if fact is not None:
            return _MAYBE if fact.is_fp16 or fact.maybe else _WIDE
        dtype = argument(call, "dtype")
        if dtype is not None:
            return self._dtype_class_of(dtype, depth + 1, seen)
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
            if type(items) in (cst.Tuple, cst.List):
                return self._combine([e.value for e in items.elements], depth, seen)
        if qualname.startswith("torch.nn.functional.") and positional:
            return self._dtype_class(positional[0], depth + 1, seen)
        if positional and self._is_activation(call.func):
            return self._dtype_class(positional[0], depth + 1, seen)
        if type(call.func) is cst.Attribute and not qualname:
            method = call.func.attr.value
            if method in _INTEGER_METHODS:
                return _OTHER
            if method == "type_as" and positional:
                return self._dtype_class(positional[0], depth + 1, seen)
            if method in _SAME_DTYPE_MATH or method in DTYPE_PRESERVING - {"to"}:
                return self._dtype_class(call.func.value, depth + 1, seen)
            if method == "to" and all(self._is_device(arg) for arg in positional):
                return self._dtype_class(call.func.value, depth + 1, seen)
        return _MAYBE

    def explicit_fp16(self, target: cst.BaseExpression | None) -> bool:
        """The code shows ``target`` is an fp16 tensor (integer constants need this much)."""
        fact = tensor_dtype(target, self.names) if target is not None else None
        return fact is not None and fact.is_fp16

    def _is_activation(self, func: cst.BaseExpression) -> bool:
        """``ACT2FN["silu"]`` or ``self.act`` set to it: an activation module, which keeps its
        input's dtype."""
        if type(func) is cst.Attribute:
            values = self.constants.attribute_values(func)
            func = values[0] if values and len(values) == 1 and values[0] is not None else func
        if type(func) is cst.Subscript:
            return self.names.qualname(func.value) in ACTIVATION_TABLES
        return False

    def _is_device(self, expr: cst.BaseExpression) -> bool:
        """``"cuda"``, ``x.device``, ``torch.device(...)``, or a parameter declared ``str``
        or ``torch.device`` (or defaulting to a string): ``.to(it)`` keeps the dtype."""
        if isinstance(expr, cst.BaseString) or (
            type(expr) is cst.Attribute and expr.attr.value == "device"
        ):
            return True
        if type(expr) is cst.Call:
            return self.names.qualname(expr.func) == "torch.device"
        if type(expr) is cst.Name:
            found = self.names.bindings(expr.value) or []
            if len(found) == 1 and type(found[0].node) is cst.Param:
                param = found[0].node
                annotation = param.annotation.annotation if param.annotation else None
                declared = self.names.qualname(annotation) if annotation is not None else None
                return declared in ("builtins.str", "torch.device") or isinstance(
                    param.default, cst.BaseString
                )
        return False

    def dtype_may_be_fp16(self, dtype: cst.BaseExpression) -> bool:
        return self._dtype_class_of(dtype, 0, {}) == _MAYBE

    def _dtype_class_of(self, dtype: cst.BaseExpression, depth: int, seen: dict[str, int]) -> str:
        """The class of a tensor made with ``dtype=<dtype>`` (``dtype=q.dtype``: ``q``'s, when
        the code shows it, e.g. ``q = q.float()``). Depth and visible bindings carry on: in
        ``x = torch.cat([x, torch.zeros(n, dtype=x.dtype)])`` the inner ``x`` is the earlier one."""
        if self.names.qualname(dtype) in _INTEGER_DTYPES:
            return _OTHER
        if type(dtype) is cst.Attribute and dtype.attr.value == "dtype":
            subject = self._dtype_class(dtype.value, depth + 1, seen)
            if subject != _MAYBE:
                return subject
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
        if type(node) is cst.Assign and type(node.value) in (cst.Tuple, cst.List):
            return _element_value(node, name), index
        if type(node) is cst.Assign and type(node.value) is cst.Call:
            call = node.value
            if self.names.qualname(call.func) in _SAME_DTYPE_TUPLES and call.args:
                return call.args[0].value, index
            if type(call.func) is cst.Attribute and call.func.attr.value in _SPLITS:
                return call.func.value, index
        return None, index


def _element_value(node: cst.Assign, name: str) -> cst.BaseExpression | None:
    """``b``'s value in ``a, b = x.float(), y.float()``."""
    values = node.value.elements  # type: ignore[attr-defined]
    for target in node.targets:
        if type(target.target) in (cst.Tuple, cst.List):
            elements = target.target.elements
            for position, element in enumerate(elements):
                inner = element.value
                if type(inner) is cst.Name and inner.value == name and len(values) == len(elements):
                    value = values[position]
                    return None if type(value) is cst.StarredElement else value.value
    return None
