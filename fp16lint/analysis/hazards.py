"""FP2xx op sites: calls that are unsafe on float16 data, with their protection decided here.

For each call of an op in ``data.amp_ops`` (``torch.exp(x)``, ``F.softmax(x)``, ``x.sum()``,
``x ** 3``, ``criterion(logits, y)`` for a loss module), for each hand-written norm
(``x.pow(2).mean(-1)``) and for each op without float16 support (``torch.quantile``), this
analysis asks what the op's input is (``analysis.flow``) and whether the op is protected:

- its input is surely not float16 (upcast with ``.float()``, made in float32, integer);
- it is told to compute in float32 (``dtype=torch.float32`` on softmax, sum, cumsum...);
- it runs inside an enabled autocast region that puts it on the float32 list (CUDA's list, or
  CPU's much shorter one for ``torch.autocast("cpu", ...)``); ``enabled=False`` is no
  protection, in-place ops never are, and the square in ``(x * x).mean()`` is not an
  autocast op;
- it sits under a dtype guard (``if x.dtype == torch.float16:`` or a branch where the tested
  value is not float16);
- its input is bounded so that nothing overflows (``exp(x - x.max(...))``, a power inside
  ``tanh``; ``analysis.magnitude``'s bounds: ``(sigmoid(x) * 2) ** 2``, ``log(p.clamp(min=1e-4))``);
- it is a sum whose only use is ``.backward()``: its gradient is ones whatever its value;
  or one compared with 0 (inf keeps its sign);
- its result is thrown away (a bare ``torch.sum(w)`` statement).

Unprotected sites are recorded as ``ctx.facts["ops"]`` (JSON-able): those whose input is
float16 in this function (``local``), and those whose input is unknown inside a method of a
class (``owner``/``method``), which the project pass reports only when the class runs in
float16 (``analysis.index``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.base import Tracker
from fp16lint.analysis.constants import literal_number
from fp16lint.analysis.dtypes import DType
from fp16lint.analysis.exposure import (
    AUTOCAST,
    GATE,
    ExposureTracker,
    Local,
    Pending,
    Verdict,
)
from fp16lint.analysis.flow import Dt, FlowTracker
from fp16lint.analysis.guards import dtype_guards
from fp16lint.analysis.magnitude import Interval, Magnitudes, finite_in_float16, power
from fp16lint.analysis.names import NameResolver, dotted
from fp16lint.analysis.raw_scale import raw_scale
from fp16lint.analysis.receivers import Kind, ReceiverTracker
from fp16lint.analysis.tree import children, walk
from fp16lint.data.amp_ops import (
    NO_FP16_METHODS,
    NO_FP16_SUPPORT,
    OPS_BY_FUNCTION,
    OPS_BY_METHOD,
    OPS_BY_MODULE,
    POW,
    RTRUEDIV,
    UnsafeOp,
)
from fp16lint.data.op_ranges import VALUE_PRESERVING

_REDUCTIONS = frozenset({"mean", "sum", "nanmean", "nansum"})
_SATURATING = frozenset({"tanh", "sigmoid", "erf", "softsign", "hardtanh"})
_MAXIMA = frozenset(
    {"max", "amax", "logsumexp", "cummax", "adaptive_max_pool1d", "adaptive_max_pool2d",
     "adaptive_max_pool3d"}
)  # fmt: skip
_LOG_PROBABILITIES = frozenset({"log_softmax", "logsigmoid"})
_CLAMPS = frozenset({"clamp", "clip", "clamp_min", "max", "maximum"})
_GRADIENTS = frozenset({"torch.autograd.grad", "torch.autograd.backward"})
# What shows a value can be large (library mode asks for it before an exp or a power overflow,
# where float16 is only assumed): dot products of activations (attention scores, similarity
# matrices, pairwise distances), and for a power also a projection layer's output.
_DOT_PRODUCTS = frozenset(
    {"matmul", "bmm", "mm", "baddbmm", "addmm", "addbmm", "einsum", "cdist", "tensordot"}
)
_PROJECTIONS = frozenset(
    {"linear", "bilinear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
     "conv_transpose3d"}
)  # fmt: skip
_PROJECTION_LAYERS = frozenset(
    f"torch.nn.{c}"
    for c in ("Linear", "Bilinear", "LazyLinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
              "ConvTranspose2d", "ConvTranspose3d")
)  # fmt: skip
# What does not carry a tensor's values (``_value_parts``): shape, dtype and device reads, and
# factories whose values do not depend on their arguments' magnitude.
_NOT_VALUES = frozenset({"shape", "size", "dtype", "device", "ndim", "dim", "numel"})
_UNIT_FACTORIES = frozenset(
    f"torch.{n}" for n in ("randn", "rand", "zeros", "ones", "empty", "randn_like", "rand_like",
                           "zeros_like", "ones_like", "empty_like")
)  # fmt: skip
# Below these, the op's result is finite in float16 (data/amp_ops.py RISKS; FACTS.md §2).
_EXP_LIMIT = 11.09  # exp(11.09) < 65504 < exp(11.1)
_COSH_LIMIT = 11.78
_SMALLEST = {"log": 6e-8, "rsqrt": 6e-8, "reciprocal": 1.53e-5}
# Parameters that by name hold masks, token ids, indices, lengths, sizes or counts
# (``attention_mask``, ``input_ids``, ``seq_lens``, ``image_grid_thw``, ``is_valid``,
# ``num_tokens``): callers pass them as bool or
# integer tensors (the HF docs type ``attention_mask``/``input_ids`` as LongTensor), and a model's
# ``.half()`` converts its parameters, never its arguments. A value computed only from them is
# no float16 data, even in library mode, where every method's inputs are otherwise assumed so;
# so is a local name of that form (``video_mask = input_ids == video_token_id``).
_NOT_DATA = re.compile(
    r"(?:^|_)(?:mask|masks|ids|indices|idx|lengths|lens|counts|indicator|thw|sizes|shapes)$"
    r"|^(?:is|has|num|n)_"
)

# Annotations of parameters that hold Python scalars or strings, never float16 tensors.
_SCALAR_TYPES = frozenset({"int", "bool", "str", "float"})
# Parameters that by name hold probabilities or likelihoods (``probs``, ``likelihoods_w``):
# values that underflow to 0 in float16, as a sigmoid's or softmax's do (``_vanishes``).
_PROBABILITY_NAMES = re.compile(r"(?:^|_)(?:probs?|probabilities|likelihoods?)(?:_|$)")
_GUARD_CLAMPS = frozenset({"clamp", "clip", "clamp_min"})
_MEANS = frozenset({"mean", "nanmean"})


def _positional(
    call: cst.Call, index: int, keyword: str | None = None
) -> cst.BaseExpression | None:
    if keyword is not None:
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == keyword:
                return arg.value
    positional = [a.value for a in call.args if a.keyword is None and not a.star]
    return positional[index] if index < len(positional) else None


def _direct_kernel(call: cst.Call) -> str | None:
    """Why ``torch.cdist(x1, x2, p, compute_mode)`` takes its direct kernel, as the call shows
    it: a ``p`` other than 2, or ``compute_mode="donot_use_mm_for_euclid_dist"``. None where it
    may use the matrix multiply (p=2 and over 25 rows, which the code rarely shows)."""
    p = _positional(call, 2, "p")
    if p is not None and (value := literal_number(p)) is not None and value != 2:
        return f"`p={value:g}`"
    mode = _positional(call, 3, "compute_mode")
    if type(mode) is cst.SimpleString and mode.evaluated_value == "donot_use_mm_for_euclid_dist":
        return '`compute_mode="donot_use_mm_for_euclid_dist"`'
    return None


def _has_dim(call: cst.Call, function: bool) -> bool:
    """A reduction told which dimensions to reduce (``x.sum(-1)``, ``torch.sum(x, dim=1)``)."""
    positional = [a for a in call.args if a.keyword is None and not a.star]
    return len(positional) > int(function) or any(
        a.star or (a.keyword is not None and a.keyword.value in ("dim", "axis")) for a in call.args
    )


def _norm_has_dim(call: cst.Call, function: bool) -> bool:
    """A norm told which dimensions to reduce: its first positional argument after the
    tensor is the order ``p`` (``x.norm(2, 1)``, ``torch.norm(x, 2, 1)``), the next ``dim``."""
    positional = [a for a in call.args if a.keyword is None and not a.star]
    return len(positional) > 1 + int(function) or any(
        a.star or (a.keyword is not None and a.keyword.value in ("dim", "axis")) for a in call.args
    )


def _root_name(call: cst.Call, names) -> str | None:
    """``rsqrt``/``sqrt`` for ``torch.rsqrt(...)``, ``t.sqrt()``: the root a norm takes."""
    qualname = names.qualname(call.func)
    name = qualname.removeprefix("torch.") if qualname else _method_name(call)
    return name if name in ("rsqrt", "sqrt") else None


def returns_small(module: cst.Module, cls: cst.ClassDef, place: int, smallest: float) -> bool:
    """Some ``return`` of ``cls.forward`` has, at tuple position ``place``, a value whose bound
    (read in that method) reaches below ``smallest`` while above 0 or bounded."""
    forward = next(
        (s for s in cls.body.body if type(s) is cst.FunctionDef and s.name.value == "forward"),
        None,
    )
    if forward is None:
        return False
    names = NameResolver(module)
    for statement in module.body:
        names.bind_statement(statement)
    names.push("class", cls)
    names.push("function", forward)
    names.bind_parameters(forward.params)
    for statement in forward.body.body:
        names.bind_statement(statement)
    for statement in forward.body.body:
        for node in walk(statement):
            if type(node) is cst.Return and type(node.value) is cst.Tuple:
                elements = node.value.elements
                if place >= len(elements):
                    continue
                # the path to the return, as the walk's stack, for the assignments before it
                stack = (module, cls, cls.body, forward, forward.body, statement, node)
                found = Magnitudes(names, stack).bound(elements[place].value)
                if (
                    found is not None
                    and found[0] < smallest
                    and (found[0] > 0 or found[1] < math.inf)
                ):
                    return True
    return False


def _asks_for_sum(test: cst.BaseExpression) -> bool:
    """``reduction == "sum"`` (``self.reduction``, either side)."""
    if type(test) is not cst.Comparison or len(test.comparisons) != 1:
        return False
    target = test.comparisons[0]
    if type(target.operator) is not cst.Equal:
        return False
    sides = (test.left, target.comparator)
    return any(
        type(a) is cst.SimpleString
        and a.evaluated_value == "sum"
        and (dotted(b) or "").rsplit(".", 1)[-1] == "reduction"
        for a, b in (sides, sides[::-1])
    )


def _gradient(expr: cst.BaseExpression | None) -> bool:
    """``p.grad`` (``p.grad.data``, ``p.grad.detach().flatten()``): a parameter's gradient."""
    while expr is not None:
        if type(expr) is cst.Attribute:
            if expr.attr.value == "grad":
                return True
            expr = expr.value if expr.attr.value == "data" else None
        elif type(expr) is cst.Call and type(expr.func) is cst.Attribute:
            method = expr.func.attr.value
            expr = expr.func.value if method in VALUE_PRESERVING else None
        else:
            return False
    return False


def _mean_of_all(call: cst.Call, names: NameResolver) -> bool:
    """``x.pow(2).mean()``, ``torch.mean(x**2)``: a mean of every element, which reduces in
    float32 (a loss term such as a z-loss or an L2 penalty; a norm reduces along rows)."""
    qualname = names.qualname(call.func)
    if qualname is not None:
        return qualname in ("torch.mean", "torch.nanmean") and not _has_dim(call, True)
    return _method_name(call) in ("mean", "nanmean") and not _has_dim(call, False)


def _reduction_name(call: cst.Call, names: NameResolver) -> str | None:
    """``mean`` for ``x.mean(-1)`` and ``torch.mean(x, -1)``."""
    qualname = names.qualname(call.func)
    return qualname.removeprefix("torch.") if qualname else _method_name(call)


def _method_name(call: cst.Call) -> str | None:
    return call.func.attr.value if type(call.func) is cst.Attribute else None


class HazardTracker(Tracker):
    """Collects the unprotected FP2xx op sites of a file into ``ctx.facts["ops"]``."""

    requires = (FlowTracker, AutocastTracker, ReceiverTracker, ExposureTracker)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.ops: list[dict[str, Any]] = []
        ctx.facts["ops"] = self.ops
        self.flow: FlowTracker = ctx.get(FlowTracker)
        self.exposure: ExposureTracker = ctx.get(ExposureTracker)
        self.magnitudes = Magnitudes(ctx.names, ctx.stack)
        self._why: Verdict = None  # the exposure of the operand ``_input`` last judged
        # The operand's dtype is unknown and only its dependence on a parameter made it a
        # candidate: reported where a chain shows float16 reaching it, never on residence alone.
        self._inferred = False
        self._consumed: set[int] = set()  # square nodes reported as part of an FP203
        # Per function: names bound to a square, and to a reported reduction of one.
        self._squares: list[dict[str, tuple[cst.CSTNode, cst.BaseExpression, int | None]]] = [{}]
        self._norm_vars: list[set[str]] = [set()]
        # Per function: norm variables whose FP203 fix waits for its rsqrt/sqrt (see _cast_back).
        self._pending_fixes: list[dict[str, tuple[int, str]]] = [{}]
        # Per function: names bound to a float16 ``var(...)`` (their FP202 record), which a
        # later ``sqrt``/``rsqrt`` turns into a hand-written norm (FP203).
        self._var_sites: list[dict[str, int]] = [{}]

    # --- where we are ----------------------------------------------------------------------
    def _owner(self) -> tuple[str | None, str | None]:
        """The class and method when the node is directly in a method of a top-level class."""
        scopes = self.ctx.names.scopes
        if len(scopes) == 3 and scopes[1].kind == "class" and scopes[2].kind == "function":
            cls, method = scopes[1].node, scopes[2].node
            prefix = f"{self.ctx.module_name}." if self.ctx.module_name else ""
            return prefix + cls.name.value, method.name.value
        return None, None

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._squares.append({})
        self._norm_vars.append(set())
        self._pending_fixes.append({})
        self._var_sites.append({})

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._squares.pop()
        self._norm_vars.pop()
        self._var_sites.pop()
        self._drop_pending_fixes()

    # --- protection ------------------------------------------------------------------------
    def _autocast_protects(self, op: UnsafeOp, inplace: bool) -> bool:
        region = self.ctx.get(AutocastTracker).current
        if region is None or region.enabled is False or inplace:
            return False
        return op.cpu_fp32 if region.device == "cpu" else op.cuda_fp32

    def _guarded(self) -> bool:
        """Under a dtype guard: an fp16-specific branch, or one where the value is not fp16."""
        return any(
            guard.excludes_fp16 or DType.FP16 in guard.dtypes
            for guard in dtype_guards(self.ctx.stack, self.ctx.names)
        )

    def _computes_wide(self, call: cst.Call, op: UnsafeOp) -> bool:
        """``dtype=torch.float32`` (or ``torch.int32``, or a positional dtype) on an op that
        takes one."""
        if not op.dtype_kwarg:
            return False
        return any(
            self.flow.dtype_argument(arg.value).safe
            for arg in call.args
            if arg.keyword is None or arg.keyword.value == "dtype"
        )

    def _cannot_overflow(
        self, risk: str, operand: cst.BaseExpression | None, result: cst.BaseExpression
    ) -> bool:
        """The operand's (or for a sum the result's) bound keeps the op finite in float16:
        ``exp`` of at most 11.09, a power or sum of bounded values, ``log``/``rsqrt``/``1/x``
        of values float16 holds away from 0."""
        if risk == "sum":
            return (
                finite_in_float16(self.magnitudes.bound(result))
                or self._only_differentiated()
                or self._compared_with_zero(result)
            )
        found = self.magnitudes.bound(operand)
        if found is None:
            return False
        if risk == "exp":
            return found[1] <= _EXP_LIMIT
        if risk == "cosh":
            return max(abs(found[0]), abs(found[1])) <= _COSH_LIMIT
        if risk in _SMALLEST:
            return found[0] >= _SMALLEST[risk] or (risk == "reciprocal" and found[1] <= -1.53e-5)
        return False

    def _power_bounded(self, base: cst.BaseExpression | None, exponent: float | None) -> bool:
        """``(sigmoid(x) * 2) ** 2``: a power of a bounded base that stays below 65504."""
        found: Interval | None = self.magnitudes.bound(base)
        if found is None:
            return False
        if exponent is None:  # any exponent: only a base within [-1, 1] is safe
            return found[0] >= -1 and found[1] <= 1
        return finite_in_float16(power(found, exponent))

    def _compared_with_zero(self, result: cst.BaseExpression) -> bool:
        """``if w.sum() == 0:``: an overflow to inf keeps the sum's sign, so a comparison with
        0 comes out the same."""
        parent = self.ctx.stack[-2] if len(self.ctx.stack) >= 2 else None
        return (
            type(parent) is cst.Comparison
            and parent.left is result
            and len(parent.comparisons) == 1
            and literal_number(parent.comparisons[0].comparator) == 0
        )

    def _only_differentiated(self) -> bool:
        """``(...).sum().backward()``, ``torch.autograd.grad(loss.sum(), params)``: the sum's
        gradient is ones whatever its value (an inf total included: tests/facts/
        test_op_ranges.py), so its overflow harms nothing."""
        stack = self.ctx.stack
        if (
            len(stack) >= 4
            and type(stack[-2]) is cst.Arg
            and type(stack[-3]) is cst.Call
            and self.ctx.names.qualname(stack[-3].func) in _GRADIENTS
        ):  # ``torch.autograd.grad(loss.sum(), params)``: the outputs' gradients, ones
            arg = stack[-2]
            if arg.keyword is None:
                return arg is stack[-3].args[0]
            return arg.keyword.value in ("outputs", "tensors")
        return (
            len(stack) >= 3
            and type(stack[-2]) is cst.Attribute
            and stack[-2].attr.value == "backward"
            and type(stack[-3]) is cst.Call
            and stack[-3].func is stack[-2]
        )

    def _input(self, expr: cst.BaseExpression | None) -> Dt | None:
        """The input's dtype, or None when the op cannot be a float16 hazard here."""
        if expr is None:
            return None
        if type(expr) is cst.Name and expr.value in ("self", "cls"):
            return None
        dt = self.flow.dtype(expr)
        if dt.safe:
            return None
        self._why = why = self.exposure.judge(expr)
        self._inferred = False
        if (type(expr) is cst.Name and _NOT_DATA.search(expr.value)) or (
            isinstance(why, Pending)
            and all(self._not_data(p.split(GATE, 1)[0]) for p in why.params)
        ):
            return None  # a mask, ids, lengths or counts, or made only from them: no data
        if dt is Dt.UNKNOWN:
            if isinstance(why, Local):
                return Dt.MAYBE16  # a model's output in an fp16 autocast region
            if not isinstance(why, Pending):
                return None
            dt = Dt.ACT  # float16 when the function's caller passes float16 (the project pass)
            self._inferred = True
        elif dt.act:
            # float16 under autocast (or an autocast float32 op's output): when it depends on
            # no parameter (``self.w @ self.v``), only a chain reports it, not residence
            self._inferred = isinstance(why, Pending) and set(why.params) <= {AUTOCAST}
            dt = Dt.ACT
        if dt is Dt.ACT:
            if self._owner()[0] is None and not isinstance(why, Pending):
                return None
            if type(expr) in (cst.Name, cst.Attribute):
                if dotted(expr) is not None and self.ctx.names.qualname(expr) is not None:
                    return None  # a module or imported object, not a tensor
                if self.ctx.get(ReceiverTracker).kind_of(expr) is Kind.MODULE:
                    return None
        return dt

    def _not_data(self, param: str) -> bool:
        """A parameter that holds no float16 data: named as a mask, ids, lengths or counts, or
        annotated as a Python scalar (``kernel_size: int``), which no cast makes a tensor."""
        if _NOT_DATA.search(param):
            return True
        bindings = self.ctx.names.bindings(param) or ()
        return any(
            type(b.node) is cst.Param
            and b.node.annotation is not None
            and type(b.node.annotation.annotation) is cst.Name
            and b.node.annotation.annotation.value in _SCALAR_TYPES
            for b in bindings
        )

    # --- recording -------------------------------------------------------------------------
    def _record(
        self,
        rule: str,
        node: cst.CSTNode,
        dt: Dt,
        **fields: Any,
    ) -> int:
        owner, method = self._owner()
        why = self._why
        if not dt.is16 and owner is None and not isinstance(why, Pending):
            return -1
        record = {
            "rule": rule,
            "span": self.ctx.span_ref(node),
            "owner": owner,
            "method": method,
            "local": dt.is16,
            "maybe": dt is Dt.MAYBE16,
            **fields,
        }
        if isinstance(why, Local) and dt.is16:
            record["origin"] = why.origin
        elif isinstance(why, Pending):
            record["fn"], record["params"] = why.key, list(why.params)
            if why.not_under_autocast:
                record["no_autocast"] = True
            if self._inferred:
                record["inferred"] = True
        self.ops.append(record)
        return len(self.ops) - 1

    def _text(self, call: cst.Call) -> str:
        """The call as written when short, else ``func(...)``."""
        whole = self.ctx.code(call)
        if len(whole) <= 50 and "\n" not in whole:
            return whole
        func = self.ctx.code(call.func)
        if len(func) <= 50 and "\n" not in func:
            return f"{func}(...)"
        method = _method_name(call)
        return f".{method}(...)" if method else "call(...)"

    # --- ops -------------------------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        self._root_of_norm(node)
        if self._norm(node):
            return
        qualname = self.ctx.names.qualname(node.func)
        method = _method_name(node) if qualname is None else None
        if qualname in NO_FP16_SUPPORT or (method in NO_FP16_METHODS and method is not None):
            self._no_fp16(node, qualname or NO_FP16_METHODS[method], qualname is None)
            return
        op: UnsafeOp | None = None
        operand: cst.BaseExpression | None = None
        if qualname is not None:
            op = OPS_BY_FUNCTION.get(qualname)
            operand = _positional(node, 0, "input")
        elif type(node.func) is cst.Name:
            op, operand = self._loss_module_call(node)
        elif method is not None:
            op = OPS_BY_METHOD.get(method)
            operand = node.func.value  # type: ignore[attr-defined]
        if op is None or id(node) in self._consumed:
            return
        inplace = method is not None and method.endswith("_")
        if not inplace and type(self.ctx.stack[-2]) is cst.Expr:
            return  # a bare ``torch.sum(w)`` statement: its value is thrown away
        dt = self._input(operand)
        if dt is None or self._computes_wide(node, op) or self._autocast_protects(op, inplace):
            return
        if op.name == "var" and raw_scale(operand, self.ctx.names):
            return  # the variance of pixels or audio samples: a few units at most
        what = None
        risk = op.risk
        exponent = None
        if op.name in ("pow", "square"):
            exponent = (
                2.0
                if op.name == "square"
                else literal_number(_positional(node, 0 if method else 1, "exponent"))
            )
            what = self._pow_risk(exponent)
            if what == "" or self._saturated():
                return
            if exponent is None:
                risk = "pow_any"
        if op.name == "norm" and self._full_norm(node, method is None) and _gradient(operand):
            risk = "grad_norm"  # ``torch.norm(p.grad)``: scaled float16 gradients, all of them
        if op.risk == "exp" and self._bounded_exp(operand):
            return
        if op.name in ("pow", "square") and self._power_bounded(operand, exponent):
            return
        if self._cannot_overflow(op.risk, operand, node):
            return
        if op.risk == "log" and self._stable_sum_of_exps(operand):
            return
        if op.risk == "rsqrt" and self._from_manual_norm(operand):
            return
        if self._guarded():
            return
        fields = {"op": op.name, "risk": risk, "text": self._text(node)}
        if what:
            fields["what"] = what
        if op.name in ("pow", "square") and exponent == 2 and self._is_residual(operand):
            fields["residual"] = True  # ``(a - b).pow(2)``: a hand-written loss term
        if risk == "norm" and not _norm_has_dim(node, method is None):
            fields["full"] = True  # every element (FP202 lists a row's norm with library-info)
        if (
            op.name in ("sum", "nansum", "var")
            and not _has_dim(node, method is None)
            and not self._row_statistic(operand)
            and not self._normalizer(node)
            and not self._summing_reduction(node)
        ):
            fields["full"] = True  # every element: library mode keeps it (amp_ops)
        if risk in _SMALLEST and self._small(operand, _SMALLEST[risk]):
            fields["small"] = True  # library mode asks for it (amp_ops.quiet_in_library)
            guarded = self._guarded_value(operand, _SMALLEST[risk])
            if guarded is not None:
                fields["zero"] = self._vanishes(guarded)
        if risk in ("exp", "pow") and self._overflow_shown(operand, exponent, risk == "pow"):
            fields["large"] = True  # library mode asks for it (amp_ops.quiet_in_library)
        if op.name == "var" and self._inside_root():
            self._record("FP203", node, dt, text=fields["text"])  # ``(x.var(-1) + eps).sqrt()``
            return
        index = self._record("FP202", node, dt, **fields)
        if op.name == "var" and index >= 0:
            self._note_var(index)
        if op.name in ("pow", "square") and index >= 0:
            self._pending_square = (node, index)

    def _loss_module_call(
        self, call: cst.Call
    ) -> tuple[UnsafeOp | None, cst.BaseExpression | None]:
        """``criterion(logits, y)`` where ``criterion = nn.CrossEntropyLoss()``."""
        values = self.ctx.names.values(call.func.value)  # type: ignore[attr-defined]
        if not values:
            return None, None
        ops = set()
        for value in values:
            if type(value) is not cst.Call:
                return None, None
            ops.add(OPS_BY_MODULE.get(self.ctx.names.qualname(value.func) or ""))
        op = ops.pop() if len(ops) == 1 else None
        return op, _positional(call, 0, "input") if op is not None else None

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if id(node) in self._consumed:
            return
        if type(node.operator) is cst.Power:
            dt = self._input(node.left)
            if dt is None or self.flow.dtype(node).safe or self._autocast_protects(POW, False):
                return  # ``x ** wide`` promotes to float32
            exponent = literal_number(node.right)
            if self._power_bounded(node.left, exponent):
                return
            what = self._pow_risk(exponent)
            if what == "" or self._saturated() or self._guarded():
                return
            risk = "pow" if exponent is not None else "pow_any"
            text = self.ctx.code(node)
            fields = {"op": "pow", "risk": risk, "text": text if len(text) <= 40 else "**"}
            if exponent == 2 and self._is_residual(node.left):
                fields["residual"] = True  # ``(logits - target) ** 2``: a hand-written loss term
            if what:  # None: the exponent is unknown, and the risk's own text says so
                fields["what"] = what
            if self._overflow_shown(node.left, exponent, True):
                fields["large"] = True
            self._record("FP202", node, dt, **fields)
        elif type(node.operator) is cst.Divide and literal_number(node.left) is not None:
            dt = self.flow.dtype(node.right)  # 1 / x: only on a known float16 tensor
            if dt.is16 and not self._autocast_protects(RTRUEDIV, False) and not self._guarded():
                self._why = self.exposure.judge(node.right)
                self._record(
                    "FP202",
                    node,
                    dt,
                    op="__rtruediv__",
                    risk="reciprocal",
                    text=self.ctx.code(node)[:40],
                )

    def _overflow_shown(
        self, base: cst.BaseExpression | None, exponent: float | None, layers: bool
    ) -> bool:
        """Evidence that an exp or a power can overflow, which library mode asks for: a large
        argument (``_large``), or for a negative power (``x ** -2``, inf only near 0) a base
        shown to come near 0 (``_small``: below 65520 ** (-1 / p), or float16's smallest)."""
        if exponent is not None and exponent < 0:
            return self._small(base, max(65520 ** (1 / exponent), _SMALLEST["log"]))
        return self._large(base, layers)

    def _pow_risk(self, exponent: float | None) -> str | None:
        """The risk text for ``x ** p`` ("" when it cannot overflow), None for the generic one."""
        if exponent is None:
            return None
        if 0 <= exponent <= 1:
            return ""
        if exponent < 0:
            return "it gives inf for inputs near 0 (float16 holds nothing below 2.98e-8 but 0)"
        limit = 65520 ** (1 / exponent)  # 65520 and above round to inf
        return f"it overflows to inf once |x| reaches {limit:.5g}"

    def _saturated(self) -> bool:
        """A power inside ``tanh``/``sigmoid``: inf saturates to the right value (GELU's tanh
        approximation)."""
        for node in reversed(self.ctx.stack[:-1]):
            if type(node) is cst.Call:
                name = self.ctx.names.qualname(node.func) or _method_name(node) or ""
                if name.rsplit(".", 1)[-1] in _SATURATING:
                    return True
            if type(node) in (cst.FunctionDef, cst.SimpleStatementLine):
                return False
        return False

    def _is_maximum(self, expr: cst.BaseExpression, depth: int = 0) -> bool:
        """``x.max(...)``, ``torch.amax(...)``, or a name bound to one."""
        for node in walk(expr):
            if type(node) is cst.Call:
                name = self.ctx.names.qualname(node.func) or _method_name(node) or ""
                if name.rsplit(".", 1)[-1] in _MAXIMA:
                    return True
            elif type(node) is cst.Name and depth == 0:
                values = self.ctx.names.values(node.value)
                if values and all(v is not None and self._is_maximum(v, 1) for v in values):
                    return True
        return False

    def _operand(self, call: cst.Call) -> cst.BaseExpression | None:
        """The tensor an op call works on: the receiver of a method, else the first argument."""
        if self.ctx.names.qualname(call.func) is None and type(call.func) is cst.Attribute:
            return call.func.value
        return _positional(call, 0, "input")

    def _is_log_probability(self, expr: cst.BaseExpression) -> bool:
        """``log_softmax(...)`` / ``logsigmoid(...)``, or a name bound to one: at most 0."""
        if type(expr) is cst.Name:
            values = self.ctx.names.values(expr.value)
            return bool(values) and all(
                v is not None and type(v) is not cst.Name and self._is_log_probability(v)
                for v in values
            )
        if type(expr) is cst.Call:
            name = self.ctx.names.qualname(expr.func) or _method_name(expr) or ""
            return name.rsplit(".", 1)[-1] in _LOG_PROBABILITIES
        return False

    def _decaying_frequencies(self, arg: cst.BaseExpression) -> bool:
        """``exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))``: sinusoidal embedding
        frequencies, a non-negative range times a negated number."""
        if not (type(arg) is cst.BinaryOperation and type(arg.operator) is cst.Multiply):
            return False
        for ramp, factor in ((arg.left, arg.right), (arg.right, arg.left)):
            negated = type(factor) is cst.UnaryOperation and type(factor.operator) is cst.Minus
            if negated and self._is_number_expression(factor):
                return any(
                    type(n) is cst.Call and self.ctx.names.qualname(n.func) == "torch.arange"
                    for n in walk(ramp)
                )
        return False

    def _is_number_expression(self, expr: cst.BaseExpression) -> bool:
        """Arithmetic on numbers and ``math`` calls (names allowed), no tensor op."""
        for node in walk(expr):
            if type(node) is cst.Call:
                name = self.ctx.names.qualname(node.func) or ""
                if not name.startswith("math."):
                    return False
        return self.flow.dtype(expr) is not Dt.F16

    def _bounded_exp(self, arg: cst.BaseExpression | None) -> bool:
        """``exp(x - x.max(...))`` (also scaled, ``exp(r * (x - m))``), ``exp(-x.abs())``,
        ``exp(log_probs)``: the argument is at most 0."""
        if arg is None:
            return False
        if self._is_log_probability(arg) or self._decaying_frequencies(arg):
            return True
        for node in walk(arg):
            if (
                type(node) is cst.BinaryOperation
                and type(node.operator) is cst.Subtract
                and self._is_maximum(node.right)
            ):
                return True
        found = self.magnitudes.bound(arg)  # ``exp(-x.abs())``, ``exp(-sigmoid(x))``
        return found is not None and found[1] <= 0

    def _stable_sum_of_exps(self, arg: cst.BaseExpression | None) -> bool:
        """``log(s)`` where ``s`` sums ``exp(x - max)`` terms (a hand-written logsumexp): the
        term of the maximum is 1, so ``s`` is at least 1 over the number of terms."""
        if arg is None:
            return False
        for node in walk(arg):
            if type(node) is cst.Name:
                values = self.ctx.names.values(node.value)
                if values and all(v is not None and self._has_bounded_exp(v, 1) for v in values):
                    return True
        return self._has_bounded_exp(arg, 0)

    def _has_bounded_exp(self, expr: cst.BaseExpression, depth: int) -> bool:
        for node in walk(expr):
            if type(node) is cst.Call:
                name = self.ctx.names.qualname(node.func) or _method_name(node) or ""
                if name.rsplit(".", 1)[-1] == "exp" and self._bounded_exp(self._operand(node)):
                    return True
            elif type(node) is cst.Name and depth < 2:
                values = self.ctx.names.values(node.value)
                if values and all(
                    v is not None and self._has_bounded_exp(v, depth + 1) for v in values
                ):
                    return True
        return False

    def _normalizer(self, call: cst.Call) -> bool:
        """A full sum only divided by: ``x / (w.sum() + eps)``, or ``n = w.sum().clamp(min=1)``
        with ``n`` only a divisor in this function: a count or total weight that normalises
        something, not a total of per-element values."""
        child: cst.CSTNode = call
        for node in reversed(self.ctx.stack[:-1]):
            kind = type(node)
            if kind is cst.BinaryOperation:
                if type(node.operator) is cst.Divide and node.right is child:
                    return True
                if type(node.operator) is not cst.Add:
                    return False
            elif kind is cst.Call:
                name = self.ctx.names.qualname(node.func) or _method_name(node) or ""
                if node.func is child or name.rsplit(".", 1)[-1] not in _CLAMPS:
                    return False
            elif kind is cst.IfExp:
                if node.test is child:
                    return False
            elif kind is cst.Assign:
                targets = node.targets
                return (
                    len(targets) == 1
                    and type(targets[0].target) is cst.Name
                    and self._only_divides(targets[0].target.value)
                )
            elif kind not in (cst.Arg, cst.Attribute):
                return False
            child = node
        return False

    def _summing_reduction(self, call: cst.Call) -> bool:
        """The sum is the arm of a loss's reduction switch that a caller selects
        (``if self.reduction == "sum": return loss.sum()``, or the conditional expression):
        the total torch's own losses give for ``reduction="sum"``, which library mode lists
        only with library-info, not a total the code always takes."""
        child: cst.CSTNode = call
        for node in reversed(self.ctx.stack[:-1]):
            kind = type(node)
            if kind is cst.FunctionDef:
                return False
            if kind in (cst.If, cst.IfExp) and node.body is child and _asks_for_sum(node.test):
                return True
            child = node
        return False

    def _only_divides(self, name: str) -> bool:
        """Every read of ``name`` in the current function is in a divisor."""
        scope = self.ctx.names.scopes[-1]
        if scope.kind != "function" or type(scope.node) is not cst.FunctionDef:
            return False
        reads, divisors, targets = set(), set(), set()
        for node in walk(scope.node.body):
            kind = type(node)
            if kind is cst.Name and node.value == name:
                reads.add(id(node))
            elif kind is cst.BinaryOperation and type(node.operator) is cst.Divide:
                divisors |= {
                    id(n) for n in walk(node.right) if type(n) is cst.Name and n.value == name
                }
            elif kind in (cst.Assign, cst.AugAssign, cst.AnnAssign, cst.For):
                for target in (
                    [t.target for t in node.targets] if kind is cst.Assign else [node.target]
                ):
                    targets |= {id(n) for n in walk(target) if type(n) is cst.Name}
        reads -= targets
        return bool(reads) and reads <= divisors

    def _full_norm(self, call: cst.Call, function: bool) -> bool:
        """A norm of every element: no ``dim`` (``torch.norm(x, p, dim)``, ``x.norm(p, dim)``)."""
        positional = [a for a in call.args if a.keyword is None and not a.star]
        return len(positional) <= 1 + int(function) and not any(
            a.star or (a.keyword is not None and a.keyword.value in ("dim", "axis"))
            for a in call.args
        )

    def _sum_name(self, call: cst.Call) -> str | None:
        """``sum``/``nansum`` for ``torch.sum(x, ...)``, ``x.sum(...)``."""
        name = (self.ctx.names.qualname(call.func) or _method_name(call) or "").rsplit(".", 1)[-1]
        return name if name in ("sum", "nansum") else None

    def _small(self, expr: cst.BaseExpression | None, smallest: float, depth: int = 0) -> bool:
        """Evidence that ``expr`` can come near 0 (below ``smallest``): a bound whose low end
        is there (a sigmoid or softmax probability, ``p.clamp(min=1e-10)``), or a guard float16
        loses (``x + 1e-8``, ``x + eps`` with ``eps=1e-10``). A noise level, a count or a
        positive scale has no such evidence."""
        found = self.magnitudes.bound(expr)
        if found is not None and found[0] < smallest and (found[0] > 0 or found[1] < math.inf):
            return True  # (a sign alone, ``relu``/``sqrt``/``abs`` >= 0, shows no small value)
        if type(expr) is cst.Name and depth < 2:  # ``mass = probs.sum(1)`` then ``log(mass)``
            values = self.ctx.names.values(expr.value)
            if len(values) == 1 and type(values[0]) is cst.Call and self._sum_name(values[0]):
                return self._small(values[0], smallest, depth + 1)
        if type(expr) is cst.Call and self._sum_name(expr) is not None:
            return self._small(self._operand(expr), smallest, depth + 1)  # terms all can be
        terms = []
        whole = expr
        while type(expr) is cst.BinaryOperation and type(expr.operator) is cst.Add:
            terms.append(expr.right)
            expr = expr.left
        terms.append(expr)
        return any(
            (guard := self.magnitudes.limit(t)) is not None and 0 < guard < smallest for t in terms
        ) or self._returned_small(whole, smallest, depth)

    def _guarded_value(
        self, operand: cst.BaseExpression | None, smallest: float
    ) -> cst.BaseExpression | None:
        """``v`` where the op's operand is a guard written at the op that float16 loses:
        ``v.clamp(min=1e-10)``, ``torch.clamp(v, min=eps)``, ``v + 1e-8`` (the guard's
        number below ``smallest``). Such a guard shows that its author defended the op, not
        that ``v`` comes near 0: whether it does is ``v``'s own evidence (``_vanishes``)."""

        def floor(expr: cst.BaseExpression | None) -> bool:
            found = self.magnitudes.limit(expr) if expr is not None else None
            return found is not None and 0 < found < smallest

        if type(operand) is cst.Call:
            name = (
                _method_name(operand)
                if self.ctx.names.qualname(operand.func) is None
                else (self.ctx.names.qualname(operand.func) or "").removeprefix("torch.")
            )
            if name not in _GUARD_CLAMPS:
                return None
            if (
                type(operand.func) is cst.Attribute
                and self.ctx.names.qualname(operand.func) is None
            ):
                value, low = operand.func.value, _positional(operand, 0, "min")
            else:
                value, low = _positional(operand, 0, "input"), _positional(operand, 1, "min")
            return value if floor(low) else None
        if type(operand) is cst.BinaryOperation and type(operand.operator) is cst.Add:
            if floor(operand.right):
                return operand.left
            if floor(operand.left):
                return operand.right
        return None

    def _vanishes(self, value: cst.BaseExpression) -> int | list[str]:
        """``analysis.zeros``'s evidence that ``value`` can be 0 (as ``ExposureTracker.note``
        records it: 1, or the parameters it vanishes with, which the callers decide), with
        parameters named as probabilities or likelihoods (``_PROBABILITY_NAMES``) as evidence."""
        found = self.exposure.zeros.of(value)
        if isinstance(found, str):
            return 1
        params = sorted(found or ())
        return 1 if any(_PROBABILITY_NAMES.search(p) for p in params) else params

    def _returned_small(self, expr: cst.BaseExpression | None, smallest: float, depth: int) -> bool:
        """``_, loc, scale = self.scaler(x)`` then ``scale.log()``: what the ``forward`` of a
        submodule class defined in this file returns in that place, shown there to come near 0
        (a time-series mean scaler's ``clamp(scale, min=self.minimum_scale)``, 1e-10)."""
        while type(expr) is cst.Call and _method_name(expr) in VALUE_PRESERVING:
            expr = expr.func.value  # type: ignore[attr-defined]
        if type(expr) is cst.IfExp:
            return any(self._returned_small(e, smallest, depth) for e in (expr.body, expr.orelse))
        if type(expr) is not cst.Name or depth > 2:
            return False
        for binding in self.ctx.names.bindings(expr.value) or ():
            node = binding.node
            if binding.value is not None and binding.value is not expr:
                if self._returned_small(binding.value, smallest, depth + 1):
                    return True
                continue
            if type(node) is not cst.Assign or len(node.targets) != 1:
                continue
            target, call = node.targets[0].target, node.value
            if not (
                type(target) is cst.Tuple
                and type(call) is cst.Call
                and type(call.func) is cst.Attribute
                and dotted(call.func.value) == "self"
            ):
                continue
            place = [
                i for i, e in enumerate(target.elements)
                if type(e.value) is cst.Name and e.value.value == expr.value
            ]  # fmt: skip
            for cls in self._submodule_classes(call.func.attr.value):
                if place and returns_small(self.ctx.module, cls, place[0], smallest):
                    return True
        return False

    def _submodule_classes(self, attr: str) -> list[cst.ClassDef]:
        """The classes of this file that ``self.attr = Cls(...)`` assignments make."""
        owner = self._owner()[0]
        if owner is None:
            return []
        values = (
            self.ctx.get(ReceiverTracker)
            .receivers.attributes.get(owner.rsplit(".", 1)[-1], {})
            .get(attr)
            or ()
        )
        made = {
            node.func.value
            for value in values
            if value is not None
            for node in walk(value)  # ``MeanScaler(c) if c.scaling else StdScaler(c)``
            if type(node) is cst.Call and type(node.func) is cst.Name
        }
        return [s for s in self.ctx.module.body if type(s) is cst.ClassDef and s.name.value in made]

    def _row_statistic(self, expr: cst.BaseExpression | None, depth: int = 0) -> bool:
        """``expr`` is computed (here or through the names it reads, in this function) from
        a mean along a dimension or a value divided by a reduction (``loss.mean(1)``,
        ``w / w.sum(-1, keepdim=True)``, a dice ratio), or is a diagonal (``x.diag()``,
        ``x[rows, rows + i]`` with ``rows = torch.arange(n)``: the positive pairs of a
        similarity matrix): one value of its elements' scale per row, so a full sum of it
        adds rows, not elements. Library mode asks a full sum for elements (per-token,
        per-pixel losses) before it reports it."""
        if expr is None or depth > 3:
            return False
        for node in walk(expr):
            kind = type(node)
            if kind is cst.Call:
                name = self.ctx.names.qualname(node.func) or _method_name(node) or ""
                last = name.rsplit(".", 1)[-1]
                if last in ("diag", "diagonal") or (
                    last in ("mean", "nanmean")
                    and _has_dim(node, self.ctx.names.qualname(node.func) is not None)
                ):
                    return True
            elif kind is cst.Subscript and self._diagonal_pick(node):
                return True
            elif kind is cst.BinaryOperation and type(node.operator) is cst.Divide:
                if self._reduced(node.right, depth):
                    return True
            elif kind is cst.Name:
                values = self.ctx.names.values(node.value) or ()
                if any(
                    v is not None and v is not expr and self._row_statistic(v, depth + 1)
                    for v in values
                ):
                    return True
        return False

    def _diagonal_pick(self, node: cst.Subscript) -> bool:
        """``x[rows, i + rows]``: two or more indices, each made from a ``torch.arange``
        (inline, or a name bound to one): one element per index position."""
        if len(node.slice) < 2:
            return False
        for element in node.slice:
            index = element.slice
            if type(index) is not cst.Index or not any(self._arange(n) for n in walk(index.value)):
                return False
        return True

    def _arange(self, node: cst.CSTNode) -> bool:
        """``torch.arange(...)``, or a name every value of which is one."""
        if type(node) is cst.Call:
            return self.ctx.names.qualname(node.func) == "torch.arange"
        if type(node) is cst.Name:
            values = self.ctx.names.values(node.value)
            return bool(values) and all(
                type(v) is cst.Call and self.ctx.names.qualname(v.func) == "torch.arange"
                for v in values
            )
        return False

    def _reduced(self, expr: cst.BaseExpression, depth: int) -> bool:
        """``expr`` holds a sum or mean (``w.sum(-1)``, ``den + 1`` with ``den = a.sum(-1)``)."""
        for node in walk(expr):
            if type(node) is cst.Call:
                name = self.ctx.names.qualname(node.func) or _method_name(node) or ""
                if name.rsplit(".", 1)[-1] in _REDUCTIONS:
                    return True
            elif type(node) is cst.Name and depth < 3:
                values = self.ctx.names.values(node.value) or ()
                if any(v is not None and self._reduced(v, depth + 1) for v in values):
                    return True
        return False

    def _large(self, expr: cst.BaseExpression | None, layers: bool, depth: int = 0) -> bool:
        """Evidence that ``expr`` can be large: it is computed (here or through the names it
        reads, in this function) from a dot product of activations, or with ``layers`` from a
        projection layer's output (``nn.Linear``, ``F.conv2d``). A learned log-scale value,
        a noise level or a decay has no such evidence."""
        if expr is None or depth > 3:
            return False
        for node in self._value_parts(expr):
            kind = type(node)
            if kind is cst.BinaryOperation and type(node.operator) is cst.MatrixMultiply:
                return True
            if kind is cst.Call:
                name = self.ctx.names.qualname(node.func) or _method_name(node) or ""
                last = name.rsplit(".", 1)[-1]
                if last in _DOT_PRODUCTS or (layers and self._projection(node, last)):
                    return True
            elif kind is cst.Name:
                values = self.ctx.names.values(node.value) or ()
                if any(
                    v is not None and v is not expr and self._large(v, layers, depth + 1)
                    for v in values
                ):
                    return True
        return False

    def _value_parts(self, expr: cst.BaseExpression) -> Iterator[cst.CSTNode]:
        """``walk(expr)`` without what does not make its values: shapes, dtypes and devices
        (``x.size(0)``, ``x.shape``, ``dtype=x.dtype``) and the arguments of random and
        constant factories (``torch.randn(n, d)`` is of unit scale whatever ``n`` is)."""
        stack: list[cst.CSTNode] = [expr]
        while stack:
            node = stack.pop()
            yield node
            kind = type(node)
            if kind is cst.Attribute and node.attr.value in _NOT_VALUES:
                continue
            if kind is cst.Call:
                name = self.ctx.names.qualname(node.func) or ""
                if name in _UNIT_FACTORIES or _method_name(node) in _NOT_VALUES:
                    continue
            stack.extend(reversed(children(node)))

    def _projection(self, call: cst.Call, last: str) -> bool:
        """``F.linear(...)``, ``self.proj(x)`` with ``self.proj = nn.Linear(...)``."""
        if last in _PROJECTIONS and self.ctx.names.qualname(call.func):
            return True
        func = call.func
        if not (
            type(func) is cst.Attribute
            and type(func.value) is cst.Name
            and func.value.value == "self"
        ):
            return False
        owner = next(
            (s.node.name.value for s in reversed(self.ctx.names.scopes) if s.kind == "class"),
            None,
        )
        receivers = self.ctx.get(ReceiverTracker).receivers
        values = receivers.attributes.get(owner or "", {}).get(func.attr.value) or ()
        return any(
            type(v) is cst.Call and self.ctx.names.qualname(v.func) in _PROJECTION_LAYERS
            for v in values
        )

    def _from_manual_norm(self, expr: cst.BaseExpression | None) -> bool:
        """``rsqrt(var + eps)`` of an FP203 finding's result: part of that finding."""
        names = self._norm_vars[-1]
        return expr is not None and any(
            (type(n) is cst.Name and n.value in names)
            or (
                type(n) is cst.Call
                and (self._squared_operand(n) is not None or _method_name(n) == "var"
                     or self.ctx.names.qualname(n.func) == "torch.var")
            )
            for n in walk(expr)
        )  # fmt: skip

    # --- FP203: hand-written norms ------------------------------------------------------------
    def _square_base(
        self, expr: cst.BaseExpression
    ) -> tuple[cst.BaseExpression, cst.BaseExpression] | None:
        """``(square node, base)`` for ``a.pow(2)``, ``torch.pow(a, 2)``, ``a.square()``,
        ``a ** 2``, ``a * a``."""
        if type(expr) is cst.BinaryOperation:
            if type(expr.operator) is cst.Power and literal_number(expr.right) == 2:
                return expr, expr.left
            if type(expr.operator) is cst.Multiply and self.ctx.code(expr.left) == self.ctx.code(
                expr.right
            ):
                return expr, expr.left
            return None
        if type(expr) is not cst.Call:
            return None
        qualname = self.ctx.names.qualname(expr.func)
        if qualname in ("torch.pow", "torch.square"):
            base = _positional(expr, 0, "input")
            exponent = (
                2.0
                if qualname == "torch.square"
                else literal_number(_positional(expr, 1, "exponent"))
            )
            return (expr, base) if base is not None and exponent == 2 else None
        method = _method_name(expr) if qualname is None else None
        if method == "square" or (
            method == "pow" and literal_number(_positional(expr, 0, "exponent")) == 2
        ):
            return expr, expr.func.value  # type: ignore[attr-defined]
        return None

    def _is_residual(self, base: cst.BaseExpression | None, depth: int = 0) -> bool:
        """``a - b`` that is no centring (``x - x.mean(...)``, ``x - mu`` with ``mu`` bound to
        a mean): the squared difference of two tensors, a loss or a distance."""
        if type(base) is cst.Name:  # ``diff = a - b`` then ``diff.pow(2).mean()``
            values = self.ctx.names.values(base.value)
            return depth < 2 and len(values) == 1 and self._is_residual(values[0], depth + 1)
        if type(base) is not cst.BinaryOperation or type(base.operator) is not cst.Subtract:
            return False
        right = base.right
        values = self.ctx.names.values(right.value) if type(right) is cst.Name else [right]
        return not any(
            type(v) is cst.Call
            and (self.ctx.names.qualname(v.func) or _method_name(v) or "").rsplit(".", 1)[-1]
            in ("mean", "nanmean", "median")
            for v in values or ()
        )

    def _squared_operand(self, call: cst.Call) -> cst.BaseExpression | None:
        """The operand of a ``mean``/``sum`` call when it is a square (or a name bound to one)."""
        qualname = self.ctx.names.qualname(call.func)
        if qualname in ("torch.mean", "torch.sum", "torch.nanmean", "torch.nansum"):
            operand = _positional(call, 0, "input")
        elif qualname is None and _method_name(call) in _REDUCTIONS:
            operand = call.func.value  # type: ignore[attr-defined]
        else:
            return None
        if operand is None:
            return None
        if type(operand) is cst.Name and operand.value in self._squares[-1]:
            return operand
        return operand if self._square_base(operand) is not None else None

    def _norm(self, call: cst.Call) -> bool:
        """Report ``mean``/``sum`` of a float16 square (FP203); True when reported."""
        operand = self._squared_operand(call)
        if operand is None:
            return False
        found = self._square_base(operand)
        bound: tuple | None = None
        if found is None and type(operand) is cst.Name:
            bound = self._squares[-1].get(operand.value)
            if bound is None:
                return False
            square, base, pending = bound
            dt = self.flow.dtype(operand)  # the square's own dtype, kept by the flow
            self._why = self.exposure.judge(operand)
            if dt is Dt.UNKNOWN and isinstance(self._why, Pending):
                dt = Dt.ACT
        elif found is None:
            return False
        else:
            square, base = found
            pending = None
            dt = self._input(base)
        if dt is None or dt.safe or dt is Dt.UNKNOWN:
            return False
        if finite_in_float16(self.magnitudes.bound(call)):
            return False  # ``F.normalize(x).pow(2).mean(-1)``: at most 1
        mean = _reduction_name(call, self.ctx.names) in _MEANS
        if mean and raw_scale(base, self.ctx.names):
            return False  # the mean square of pixels or audio samples: a few units at most
        is_pow = not (type(square) is cst.BinaryOperation and type(square.operator) is cst.Multiply)
        is_pow = is_pow and not (
            type(square) is cst.Call and "square" in self.ctx.code(square.func)
        )
        if (is_pow and self._autocast_protects(POW, False)) or self._guarded():
            return False
        fields: dict[str, Any] = {"text": self._text(call)}
        if self._is_residual(base):
            fields["residual"] = True  # ``mean((a - b) ** 2)``: a loss or distance, not a norm
        elif _mean_of_all(call, self.ctx.names):
            fields["residual"] = True  # ``x.pow(2).mean()``: a penalty (z-loss), not a norm
        base_text = dotted(base)
        if bound is None and base_text is not None:
            fields["fix"] = [[self.ctx.span_ref(square), f"{base_text}.float().pow(2)"]]
            fields["fixed"] = f"{base_text}.float().pow(2)"
        index = self._record("FP203", call, dt, **fields)
        if "fix" in fields and index >= 0:
            self._cast_back(index, base_text)
        self._consumed.add(id(square))
        if pending is not None and pending >= 0:
            self.ops[pending]["dropped"] = True  # the FP202 on ``sq = x.pow(2)`` is this FP203
        self._mark_norm_var()
        return True

    # The FP203 fix squares in float32 and casts the ``rsqrt``/``sqrt`` built on the reduction
    # back to the input's dtype: without that cast, whatever the norm meets afterwards turns
    # float32 (an fp16 ``Linear`` then raises). No such call in the function: no fix.
    def _cast_back(self, index: int, base: str) -> None:
        """Add the cast-back edit to record ``index`` when the root is around the reduction,
        else wait for it (``_root_of_norm``)."""
        for node in reversed(self.ctx.stack):
            if type(node) is cst.Call and _root_name(node, self.ctx.names) is not None:
                self._add_cast_back(index, node, base)
                return
            if type(node) in (cst.SimpleStatementLine, cst.FunctionDef):
                break
        for node in reversed(self.ctx.stack):
            if type(node) is cst.Assign and len(node.targets) == 1:
                target = node.targets[0].target
                if type(target) is cst.Name:
                    self._pending_fixes[-1][target.value] = (index, base)
                    return
            if type(node) in (cst.SimpleStatementLine, cst.FunctionDef):
                break
        self.ops[index].pop("fix")

    def _inside_root(self) -> bool:
        """The node in hand is inside a ``sqrt``/``rsqrt`` call of the same statement."""
        for node in reversed(self.ctx.stack[:-1]):
            if type(node) is cst.Call and _root_name(node, self.ctx.names) is not None:
                return True
            if type(node) in (cst.SimpleStatementLine, cst.FunctionDef):
                return False
        return False

    def _note_var(self, index: int) -> None:
        """``var = x.var(-1, keepdim=True)``: wait for the root that makes it a norm."""
        for node in reversed(self.ctx.stack):
            if type(node) is cst.Assign and len(node.targets) == 1:
                target = node.targets[0].target
                if type(target) is cst.Name:
                    self._var_sites[-1][target.value] = index
                    self._norm_vars[-1].add(target.value)  # its rsqrt is part of the finding
                return
            if type(node) in (cst.SimpleStatementLine, cst.FunctionDef):
                return

    def _root_of_norm(self, call: cst.Call) -> None:
        """``torch.rsqrt(var + eps)`` of a pending FP203 fix: its cast-back edit; of a
        float16 ``var(...)``: the norm that makes it an FP203."""
        variances = self._var_sites[-1]
        if variances and _root_name(call, self.ctx.names) is not None:
            nodes = list(walk(call))
            attributes = {id(n.attr) for n in nodes if type(n) is cst.Attribute}
            for node in nodes:
                if (
                    type(node) is cst.Name
                    and node.value in variances
                    and id(node) not in attributes
                ):
                    record = self.ops[variances.pop(node.value)]
                    record["rule"] = "FP203"
                    record["span"] = self.ctx.span_ref(call)  # where the norm is taken
                    del record["op"], record["risk"]
        pending = self._pending_fixes[-1]
        if not pending or _root_name(call, self.ctx.names) is None:
            return
        for node in walk(call):
            if type(node) is cst.Name and node.value in pending:
                index, base = pending.pop(node.value)
                self._add_cast_back(index, call, base)
                return

    def _add_cast_back(self, index: int, call: cst.Call, base: str) -> None:
        self.ops[index]["fix"].append([self.ctx.span_ref(call), f".to({base}.dtype)", "after"])

    def _drop_pending_fixes(self) -> None:
        for index, _ in self._pending_fixes.pop().values():
            self.ops[index].pop("fix", None)

    def _mark_norm_var(self) -> None:
        """``var = x.pow(2).mean(-1)``: later ``rsqrt(var + eps)`` is part of this finding."""
        for node in reversed(self.ctx.stack):
            if type(node) is cst.Assign:
                for target in node.targets:
                    if type(target.target) is cst.Name:
                        self._norm_vars[-1].add(target.target.value)
                return
            if type(node) in (cst.SimpleStatementLine, cst.FunctionDef):
                return

    _pending_square: tuple[cst.CSTNode, int] | None = None

    def leave_Assign(self, node: cst.Assign) -> None:
        """Remember ``sq = x * x`` (and ``sq = x.pow(2)``, reported as FP202 unless a
        reduction of ``sq`` turns it into an FP203)."""
        pending, self._pending_square = self._pending_square, None
        if len(node.targets) != 1 or type(node.targets[0].target) is not cst.Name:
            return
        name = node.targets[0].target.value
        found = self._square_base(node.value)
        if found is None:
            self._squares[-1].pop(name, None)
            return
        index = pending[1] if pending is not None and pending[0] is node.value else None
        self._squares[-1][name] = (found[0], found[1], index)

    # --- FP204 ---------------------------------------------------------------------------------
    def _no_fp16(self, call: cst.Call, qualname: str, is_method: bool) -> None:
        kernel = None
        if NO_FP16_SUPPORT[qualname].direct_kernel:
            kernel = _direct_kernel(call)
            if kernel is None:
                return  # it may take the matmul path, which runs in float16
        operand = call.func.value if is_method else _positional(call, 0, "input")  # type: ignore[attr-defined]
        dt = self._input(operand)
        if dt is None and not self.flow.dtype(operand).safe and self._own_tensor(operand):
            dt, self._why, self._inferred = Dt.ACT, None, False
        if dt is None or self._guarded():
            return
        fields = {"kernel": kernel} if kernel else {}
        self._record("FP204", call, dt, op=qualname, text=self._text(call), **fields)

    def _own_tensor(self, operand: cst.BaseExpression | None, depth: int = 0) -> bool:
        """``self.weight``, ``self.lora_A.weight``, ``eye + (self.r - self.r.t())`` (or a name
        bound to one) in a method: computed from parameters or buffers of the module, which a
        float16 cast converts with the class."""
        if operand is None or depth > 2 or self._owner()[0] is None:
            return False  # (the caller checked that the operand is not surely float32)
        receivers = self.ctx.get(ReceiverTracker)
        for node in walk(operand):
            kind = type(node)
            if kind is cst.Attribute:
                text = dotted(node)
                if text and text.startswith("self.") and receivers.kind_of(node) is not Kind.MODULE:
                    return True
            elif kind is cst.Name and node.value != "self":
                values = self.ctx.names.values(node.value) or ()
                if any(self._own_tensor(v, depth + 1) for v in values if v is not None):
                    return True
        return False

    def leave_Module(self, node: cst.Module) -> None:
        self._drop_pending_fixes()
        self.ctx.facts["ops"] = [r for r in self.ops if not r.pop("dropped", False)]
