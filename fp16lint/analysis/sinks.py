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
from fp16lint.analysis.calls import argument
from fp16lint.analysis.constants import SCALAR_TENSORS, Constant, ConstantTracker
from fp16lint.analysis.dtypes import dtype_of
from fp16lint.analysis.exposure import ExposureTracker
from fp16lint.analysis.guards import in_non_fp16_branch
from fp16lint.analysis.learned import Learned, learned
from fp16lint.analysis.names import dotted
from fp16lint.analysis.receivers import Kind, ReceiverTracker
from fp16lint.analysis.tree import walk
from fp16lint.analysis.value_dtypes import ValueDtypes

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
_ARITHMETIC = frozenset({cst.Add, cst.Subtract, cst.Multiply})
_AUGMENTED = frozenset({cst.AddAssign, cst.SubtractAssign, cst.MultiplyAssign})
# Decorators that run the function in float32 for low-precision inputs
# (torch/_decomp/decompositions.py: ``partial(type_casts, ..., compute_dtype_only=True)``).
FP32_COMPUTE_DECORATORS = frozenset(
    {
        "torch._decomp.decompositions.pw_cast_for_opmath",
        "torch._decomp.decompositions.pw_cast_for_opmath_non_tensor_args",
    }
)
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
    a fix can write it; ``subject`` is ``x`` when a fill takes ``x``'s dtype
    (``torch.full(s, -1e9, dtype=x.dtype)``): whether float16 reaches ``x`` decides the site.
    """

    node: cst.BaseExpression
    constant: Constant
    operation: str
    target: cst.BaseExpression | None
    raises: bool = False
    dtype_expr: str | None = None
    subject: cst.BaseExpression | None = None

    @property
    def default(self) -> str | None:
        """The parameter whose default the constant is, when it comes straight from one
        (``def f(x, eps=1e-12)``)."""
        origin = self.constant.origin
        node = origin[0][0] if origin else None
        return node.name.value if type(node) is cst.Param else None

    def target_text(self, code) -> str | None:
        """The target's source when it is short enough to quote."""
        if self.target is None:
            return None
        text = code(self.target)
        return text if len(text) <= 40 and "\n" not in text else None


def _dtype_subject(dtype: cst.BaseExpression | None) -> cst.BaseExpression | None:
    """``x`` in ``dtype=x.dtype``."""
    if type(dtype) is cst.Attribute and dtype.attr.value == "dtype":
        return dtype.value
    return None


def _positional(call: cst.Call, index: int, keyword: str | None) -> cst.BaseExpression | None:
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for arg in call.args:
        if keyword is not None and arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    return positional[index].value if index < len(positional) else None


class ConstantSinks(Tracker):
    """``ctx.get(ConstantSinks).values(node)`` / ``.epsilons(node)`` for a Call,
    BinaryOperation, Assign or AugAssign node at the current point of the walk."""

    requires = (ConstantTracker, ReceiverTracker, ExposureTracker)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.exposure: ExposureTracker = ctx.get(ExposureTracker)
        self.by_exposure: set[int] = set()
        self.names = ctx.names
        self.constants: ConstantTracker = ctx.get(ConstantTracker)
        self.receivers: ReceiverTracker = ctx.get(ReceiverTracker)
        self.dtypes = ValueDtypes(ctx.names, self.constants.evaluator)
        self._last: tuple[int, list[Sink]] | None = None

    # --- shared helpers -------------------------------------------------------------------
    def value_of(self, expr: cst.BaseExpression | None) -> Constant | None:
        return self.constants.value_of(expr) if expr is not None else None

    def _fp16_tensor(self, expr: cst.BaseExpression | None, *, evident: bool) -> bool:
        """``expr`` is (``evident``: is known to be) a tensor that may be fp16."""
        if expr is None or self.value_of(expr) is not None:
            return False
        kind = self.receivers.kind_of(expr)
        if kind is Kind.MODULE:
            return False
        if evident and kind is not Kind.TENSOR:
            # not seen to be a tensor here, but float16 values reach it (or may, through the
            # function's parameters: the project pass keeps it only when they do)
            if self.exposure.judge(expr) is None or not self.dtypes.may_be_fp16(expr):
                return False
            self.by_exposure.add(id(expr))
            return True
        return self.dtypes.may_be_fp16(expr)

    def only_by_exposure(self, sink: Sink) -> bool:
        """The sink's target was taken for a tensor only because float16 may reach it."""
        return sink.target is not None and id(sink.target) in self.by_exposure

    def _guarded(self) -> bool:
        """Under a dtype test that excludes fp16, or in a function that computes in fp32."""
        if in_non_fp16_branch(self.ctx.stack, self.names):
            return True
        for scope in self.names.scopes:
            if type(scope.node) is cst.FunctionDef:
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
        if type(node) is cst.Call:
            found = self._call_values(node)
        elif type(node) is cst.BinaryOperation:
            found = self._arithmetic(node)
        elif type(node) is cst.AugAssign:
            found = self._augmented(node)
        elif type(node) is cst.Assign:
            found = self._assignment(node)
        found = [s for s in found if not (s.constant.tensor and s.constant.attribute)]
        if found and self._guarded():
            found = []
        self._last = (id(node), found)
        return found

    def _unrepresentable(self, expr: cst.BaseExpression) -> bool:
        """A constant FP301 or FP302 may report (checked before the costlier tensor questions)."""
        constant = self.value_of(expr)
        return constant is not None and (constant.limit is not None or constant.overflows_fill)

    def _sink(
        self, expr, operation, target, *, raises=False, fixable=False, dtype_expr=None, subject=None
    ):
        """A one-element list for a constant ``expr``; ``fixable`` uses write the target's
        ``finfo`` (``dtype_expr``, or ``<target>.dtype``) in place of the constant."""
        constant = self.value_of(expr)
        if constant is None or (constant.integral and not self.dtypes.explicit_fp16(target)):
            return []
        if fixable and dtype_expr is None:
            dtype_expr = self._dtype_expr(target)
        return [Sink(expr, constant, operation, target, raises, dtype_expr, subject)]

    def _call_values(self, call: cst.Call) -> list[Sink]:
        func = call.func
        qualname = self.names.qualname(func)
        if (
            qualname in ("torch.full", "torch.full_like", "torch.where")
            or qualname in _CLAMP_FUNCTIONS
        ):
            return self._torch_function(call, qualname)
        if type(func) is not cst.Attribute or (qualname or "").startswith(("torch.", "numpy.")):
            return []
        method, receiver = func.attr.value, func.value
        if method in FILL_METHODS:
            position, keyword = FILL_METHODS[method]
            value = _positional(call, position, keyword)
            if not self._unrepresentable(value):
                return []
            dtype = argument(call, "dtype") if method == "new_full" else None
            if dtype is not None:
                if not self.dtypes.dtype_may_be_fp16(dtype):
                    return []
            elif not self._fp16_tensor(receiver, evident=False):
                return []
            return self._sink(value, method, receiver, raises=True, fixable=True)
        if method in CLAMP_METHODS:
            return self._clamp_bounds(call, method, receiver, CLAMP_METHODS[method], 0)
        if method == "where":
            value = _positional(call, 1, "other")
            if self._unrepresentable(value) and self._fp16_tensor(receiver, evident=True):
                return self._sink(value, "where", receiver, fixable=True)
            return []
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
            return self._clamp_bounds(call, name, target, _CLAMP_FUNCTIONS[qualname], 1)
        if qualname == "torch.where":
            cond_and_branches = [_positional(call, i, k) for i, k in ((1, "input"), (2, "other"))]
            found = []
            for index, value in enumerate(cond_and_branches):
                other = cond_and_branches[1 - index]
                if self._unrepresentable(value) and self._fp16_tensor(other, evident=False):
                    found += self._sink(value, "torch.where", other, fixable=True)
            return found
        value = _positional(call, 1, "fill_value")
        if not self._unrepresentable(value):
            return []
        dtype = argument(call, "dtype")
        target = _positional(call, 0, "input") if name == "full_like" else None
        if dtype is not None:
            if not self.dtypes.dtype_may_be_fp16(dtype):
                return []
            dtype_text = self.ctx.code(dtype) if dotted(dtype) is not None else None
        elif target is not None and self._fp16_tensor(target, evident=False):
            dtype_text = self._dtype_expr(target)
        else:
            return []  # torch.full without dtype= makes the default dtype (float32)
        subject = _dtype_subject(dtype)
        return self._sink(
            value, qualname, target, raises=True, dtype_expr=dtype_text, subject=subject
        )

    def _cast_of_constants(self, call: cst.Call, method: str, made: cst.BaseExpression):
        """``torch.where(m > 0, 0.0, -1e10).to(h.dtype)``, ``torch.tensor(-1e9).half()``:
        a tensor made of constants, cast to a dtype that may be fp16."""
        if method == "half":
            dtype = None
        else:
            dtype = argument(call, "dtype") or _positional(call, 0, None)
            is_dtype = type(dtype) is cst.Attribute and dtype.attr.value == "dtype"
            fact = dtype_of(dtype, self.names) if dtype is not None else None
            if not is_dtype and (fact is None or not (fact.is_fp16 or fact.maybe)):
                return []
        if type(made) is not cst.Call:
            return []
        qualname = self.names.qualname(made.func)
        if qualname == "torch.where":
            values = [_positional(made, i, k) for i, k in ((1, "input"), (2, "other"))]
        elif qualname == "torch.full" and argument(made, "dtype") is None:
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
        subject = _dtype_subject(dtype)  # ``.to(h.dtype)``: float16 only where ``h`` is
        return [
            Sink(v, c, "a cast", None, dtype_expr=dtype_text, subject=subject)
            for v, c in zip(values, constants, strict=True)
        ]

    def _clamp_bounds(self, call, name, target, bounds, offset) -> list[Sink]:
        values = [_positional(call, offset + i, keyword) for i, keyword in enumerate(bounds)]
        values = [value for value in values if self._unrepresentable(value)]
        if not values or not self._fp16_tensor(target, evident=name.startswith("clip")):
            return []
        found = []
        for value in values:
            found += self._sink(value, name, target, raises=True, fixable=True)
        return found

    def _arithmetic(self, node: cst.BinaryOperation) -> list[Sink]:
        if type(node.operator) not in _ARITHMETIC:
            return []
        for value, other in ((node.right, node.left), (node.left, node.right)):
            if self._unrepresentable(value) and self._fp16_tensor(other, evident=True):
                sinks = self._sink(value, self.ctx.code(node.operator).strip(), other)
                if sinks:
                    return sinks
        return []

    def _augmented(self, node: cst.AugAssign) -> list[Sink]:
        if type(node.operator) not in _AUGMENTED or not self._unrepresentable(node.value):
            return []
        if not self._fp16_tensor(node.target, evident=True):
            return []
        return self._sink(node.value, self.ctx.code(node.operator).strip(), node.target)

    def _assignment(self, node: cst.Assign) -> list[Sink]:
        found = []
        for target in node.targets:
            place = target.target
            if (
                type(place) is cst.Subscript
                and self._unrepresentable(node.value)
                and self._fp16_tensor(place.value, evident=True)
            ):
                found += self._sink(node.value, "a subscript assignment", place.value, fixable=True)
            elif (
                type(place) is cst.Attribute
                and type(place.value) is cst.Name
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
        if type(node) is cst.BinaryOperation and type(node.operator) is cst.Add:
            found = self._guarding_sum(node)
        elif type(node) is cst.Call:
            found = self._guarding_call(node)
        found = [s for s in found if s.constant.underflows]
        if found and self._guarded():
            return []
        return found

    def _guarding_sum(self, node: cst.BinaryOperation) -> list[Sink]:
        """``t + eps`` in a denominator or under ``log``/``sqrt``/``rsqrt``."""
        for value, other in ((node.right, node.left), (node.left, node.right)):
            constant = self.value_of(value)
            if (
                constant is not None
                and constant.underflows
                and self._fp16_tensor(other, evident=True)
            ):
                use = self._zero_guarded_use() or self._named_then_guarded(node)
                if use is not None and not self._learned_positive(other):
                    return self._sink(value, use, other)
        return []

    def _learned_positive(self, expr: cst.BaseExpression) -> bool:
        """``expr`` is a learned positive scale of the enclosing module (``analysis.learned``),
        not an activation: it does not come near zero."""
        scopes = self.names.scopes
        if len(scopes) < 3 or scopes[1].kind != "class":
            return False
        attributes = self.receivers.receivers.attributes.get(scopes[1].node.name.value, {})
        found = learned(expr, self.names, attributes, tuple(self.ctx.stack))
        return found is Learned.POSITIVE

    def _named_then_guarded(self, node: cst.BinaryOperation) -> str | None:
        """``union = a + b - inter + eps`` then ``inter / union`` (or ``log(union)``) later in
        the function: the sum is kept away from zero for that use."""
        stack = self.ctx.stack
        if len(stack) < 3 or type(stack[-2]) is not cst.Assign or stack[-2].value is not node:
            return None
        targets = stack[-2].targets
        if len(targets) != 1 or type(targets[0].target) is not cst.Name:
            return None
        name = targets[0].target.value
        function = next((n for n in reversed(stack) if type(n) is cst.FunctionDef), None)
        if function is None:
            return None
        for found in walk(function.body):
            if (
                type(found) is cst.BinaryOperation
                and type(found.operator) is cst.Divide
                and type(found.right) is cst.Name
                and found.right.value == name
            ):
                return "a denominator"
        return None

    def _zero_guarded_use(self) -> str | None:
        """How the expression on top of the stack is used: ``a denominator``, ``log``,
        ``sqrt``... or None when nothing needs it to be non-zero."""
        stack = self.ctx.stack
        child = stack[-1]
        for index in range(len(stack) - 2, -1, -1):
            parent = stack[index]
            if type(parent) is cst.Arg:
                child = parent
                continue
            if type(parent) is cst.BinaryOperation:
                if type(parent.operator) in (cst.Divide, cst.FloorDivide) and parent.right is child:
                    return "a denominator"
                if type(parent.operator) is cst.Power and parent.left is child:
                    exponent = self.value_of(parent.right)
                    if exponent is not None and exponent.value < 0:
                        return "a negative power"
                    child = parent
                    continue
                return None
            if type(parent) is cst.Call:
                qualname = self.names.qualname(parent.func) or ""
                name = qualname.removeprefix("torch.")
                if (
                    type(child) is cst.Arg
                    and qualname.startswith("torch.")
                    and name in _ZERO_GUARDED
                ):
                    return name
                if qualname in _DIVISIONS and len(parent.args) > 1 and parent.args[1] is child:
                    return "a denominator"
                return None
            if type(parent) is cst.Attribute and parent.value is child and index > 0:
                call = stack[index - 1]
                method = parent.attr.value.removesuffix("_")
                if type(call) is cst.Call and call.func is parent and method in _ZERO_GUARDED:
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
        if type(func) is cst.Attribute and qualname is None and func.attr.value in CLAMP_METHODS:
            method, receiver = func.attr.value, func.value
            bounds = CLAMP_METHODS[method]
            if "min" in bounds and self._fp16_tensor(receiver, evident=method.startswith("clip")):
                return self._sink(_positional(call, 0, "min"), method, receiver)
        return []
