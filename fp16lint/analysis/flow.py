"""Local dtype flow: which values in a function are float16, which are surely not, and which
are unknown.

A value is float16 after ``.half()``, ``.to(torch.float16)``, a factory with
``dtype=torch.float16``, arithmetic on float16 values (with Python numbers or integer tensors),
a call of something cast to float16 (``model = Net().half(); out = model(x)``), and, inside an
fp16 autocast region, the outputs of autocast's float16 ops (``matmul``, ``linear``, ``bmm``...:
float16 again even when their inputs were upcast), while the outputs of its float32 ops
(``softmax``, ``sum``, ``exp``..., CUDA's list) there are float32. It stops being float16 after ``.float()``,
``.double()``, ``.to(torch.float32)``, ``.type(torch.float32)`` or an op given
``dtype=torch.float32``. Factories without a dtype make float32 (the default dtype) or integer
tensors; comparisons make bool tensors.

Inside a method of a class, the inputs (parameters other than ``self``) and what is computed
from them — by torch ops, submodule calls, helpers they are passed to — are *activations*
(``ACT``): their dtype is not seen here, but it is the model's own, so they are float16 when the
class runs in float16 (``analysis.index`` decides). Anything else not seen being made
(attributes, results of unrelated calls) is ``UNKNOWN`` and never reported.

Outside any autocast region, an autocast float16 op (or a ``self.proj = nn.Linear(...)`` layer
called) makes ``AC16``: an activation that is float16 whenever the function runs under fp16
autocast (``analysis.exposure`` decides whether it does, from the callers); elementwise ops keep
it. An autocast float32 op on such a value (or on an activation) makes ``AC32``: an activation
that is float32 under fp16 autocast. Both are activations (``act``) to everything else.

The analysis follows statements in source order as the engine walks them: branches of an ``if``
are joined (float16 on one branch only is *may-be* float16), a dtype guard pins a name on each
branch (``if x.dtype == torch.float16: x = x.float()`` leaves ``x`` not float16 after the
``if``), and loops are read once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.base import Tracker
from fp16lint.analysis.casts import cast_of
from fp16lint.analysis.dtypes import DType, DTypeFact, dtype_of
from fp16lint.analysis.guards import dtype_guards
from fp16lint.analysis.names import dotted
from fp16lint.analysis.tree import children, walk
from fp16lint.data.amp_ops import (
    AUTOCAST_FP16_MODULES,
    AUTOCAST_FP16_OPS,
    AUTOCAST_FP32_MODULES,
    AUTOCAST_FP32_OPS,
)
from fp16lint.data.hf_outputs import FLOAT32_OUTPUTS

_MAX_DEPTH = 40


class Dt(str, Enum):
    F16 = "float16"
    MAYBE16 = "float16?"  # float16 on some branch, or a dtype chosen at run time
    WIDE = "wide"  # float32, float64 or bfloat16 tensor
    INT = "int"  # integer or bool tensor
    SCALAR = "scalar"  # Python number
    ACT = "activation"  # derived from a method's inputs: the model's dtype
    AC16 = "float16 under autocast"  # an activation, and float16 under fp16 autocast
    AC32 = "float32 under autocast"  # an activation, but float32 under fp16 autocast
    UNKNOWN = "unknown"

    @property
    def is16(self) -> bool:
        return self in (Dt.F16, Dt.MAYBE16)

    @property
    def safe(self) -> bool:
        """Surely not float16."""
        return self in (Dt.WIDE, Dt.INT, Dt.SCALAR)

    @property
    def act(self) -> bool:
        """An activation: the model's dtype (``AC16``/``AC32`` say more under autocast)."""
        return self in (Dt.ACT, Dt.AC16, Dt.AC32)


def _from_fact(fact: DTypeFact | None) -> Dt:
    if fact is None:
        return Dt.UNKNOWN
    if fact.dtype is DType.FP16:
        return Dt.MAYBE16 if fact.maybe else Dt.F16
    return Dt.UNKNOWN if fact.maybe else Dt.WIDE


def join(a: Dt, b: Dt) -> Dt:
    """The dtype after branches that gave ``a`` and ``b``."""
    if a is b:
        return a
    if a.is16 or b.is16:
        return Dt.MAYBE16
    if a.safe and b.safe:
        return Dt.WIDE if Dt.WIDE in (a, b) else Dt.UNKNOWN if {a, b} == {Dt.INT, Dt.SCALAR} else a
    if Dt.AC16 in (a, b):
        return Dt.AC16  # float16 under autocast on one branch
    if a.act and b.act:
        return Dt.ACT
    return Dt.UNKNOWN


def promote(a: Dt, b: Dt) -> Dt:
    """The dtype of ``a <op> b`` for elementwise arithmetic (torch's type promotion; a float16
    tensor meeting a float32 one is unknown, since a 0-dim float32 tensor does not promote it).
    An upcast value meeting an unknown one (``variance + self.eps``) stays wide: either the
    unknown is a number or a tensor of at most its width, or the code mixes dtypes knowingly.
    Under autocast, ``AC16`` with numbers stays float16 and with a float32 tensor does not."""
    if a is Dt.SCALAR and b is Dt.SCALAR:
        return Dt.SCALAR
    for x, y in ((a, b), (b, a)):
        if x.is16 and (y.is16 or y in (Dt.SCALAR, Dt.INT) or y.act):
            return Dt.MAYBE16 if Dt.MAYBE16 in (x, y) else Dt.F16
        if x is Dt.WIDE and (y in (Dt.WIDE, Dt.SCALAR, Dt.INT, Dt.UNKNOWN) or y.act):
            return Dt.WIDE
        if x in (Dt.AC16, Dt.AC32) and y in (x, Dt.SCALAR, Dt.INT):
            return x
        if x is Dt.AC32 and y is Dt.AC16:
            return Dt.AC32  # float16 and float32 tensors make float32
    for x, y in ((a, b), (b, a)):
        if x.act and (y.act or y in (Dt.SCALAR, Dt.INT, Dt.UNKNOWN)):
            return Dt.ACT
    if a is Dt.INT and b is Dt.INT:
        return Dt.INT
    return Dt.UNKNOWN


def carries(values: list[Dt]) -> Dt:
    """What an opaque call returns given its arguments: an activation when one goes in."""
    return Dt.ACT if any(v.is16 or v.act for v in values) else Dt.UNKNOWN


# Factories without a dtype argument: float ones make the default dtype (float32).
_FLOAT_FACTORIES = frozenset(
    f"torch.{n}" for n in ("zeros", "ones", "empty", "rand", "randn", "linspace", "logspace", "eye")
)
_INT_FACTORIES = frozenset(f"torch.{n}" for n in ("randint", "randperm"))
_LIKE_FACTORIES = frozenset(
    f"torch.{n}_like" for n in ("zeros", "ones", "empty", "full", "rand", "randn", "randint")
)
_INT_RESULTS = frozenset(
    {"argmax", "argmin", "argsort", "nonzero", "searchsorted", "bucketize", "isnan", "isinf",
     "isfinite", "isneginf", "isposinf", "eq", "ne", "gt", "ge", "lt", "le", "logical_and",
     "logical_or", "logical_not", "logical_xor", "any", "all", "count_nonzero", "bincount",
     "long", "int", "bool", "byte", "short", "char", "multinomial", "randint_like", "one_hot"}
)  # fmt: skip
_SCALAR_RESULTS = frozenset(
    {"item", "size", "dim", "numel", "ndimension", "nelement", "tolist", "element_size"}
)
_SCALAR_FUNCTIONS = frozenset({"builtins.len", "builtins.int", "builtins.float", "builtins.abs",
                               "builtins.min", "builtins.max", "builtins.round", "builtins.sum"})  # fmt: skip
_WIDE_METHODS = {"float": Dt.WIDE, "double": Dt.WIDE, "bfloat16": Dt.WIDE, "half": Dt.F16}
_SAME_ATTRIBUTES = frozenset({"T", "mT", "H", "mH", "data", "values", "real"})
INT_DTYPES = frozenset(
    f"torch.{n}"
    for n in ("int8", "int16", "int32", "int64", "uint8", "short", "int", "long", "bool")
)
_INT_ANNOTATIONS = frozenset(
    {"torch.LongTensor", "torch.IntTensor", "torch.BoolTensor", "torch.ByteTensor"}
)
_TENSOR_ANNOTATIONS = frozenset(
    {"torch.Tensor", "torch.FloatTensor", "torch.HalfTensor", "torch.nn.Parameter"}
)


# Calls returning ``(values, indices)``: the values keep the input's dtype, the indices are int64.
INDEX_PAIRS = frozenset(
    {"max", "min", "sort", "topk", "kthvalue", "median", "mode", "cummax", "cummin", "nanmedian"}
)


def returns_index_pair(expr: cst.BaseExpression) -> bool:
    """``x.max(dim)``, ``torch.topk(x, k)``...: unpacked as ``values, indices``."""
    return (
        type(expr) is cst.Call
        and type(expr.func) is cst.Attribute
        and expr.func.attr.value in INDEX_PAIRS
        and bool(expr.args)
    )


def is_shape(expr: cst.BaseExpression) -> bool:
    """``x.shape`` or ``x.size()``: Python ints (``b, n, d = q.shape`` unpacks numbers)."""
    if type(expr) is cst.Attribute:
        return expr.attr.value == "shape"
    return (
        type(expr) is cst.Call
        and type(expr.func) is cst.Attribute
        and expr.func.attr.value == "size"
    )


def _is_upcast(expr: cst.BaseExpression, names) -> bool:
    """``x.float()``, ``x.to(torch.float32)``, ``x.type(torch.float32)`` written in place."""
    site = cast_of(expr, names) if type(expr) is cst.Call else None
    return (
        site is not None
        and site.dtype is not None
        and not site.dtype.maybe
        and (site.dtype.dtype in (DType.FP32, DType.FP64))
    )


def _class_facts(cls: cst.ClassDef, names) -> tuple[dict[str, set[int]], dict[str, str]]:
    """For each method, the positional parameters (after ``self``) that every
    ``self.method(...)`` call in the class passes upcast (``self._norm(x.float())``); and the
    attributes kept as a torch layer on autocast's float16 (``"16"``: ``self.proj =
    nn.Linear(...)``) or float32 (``"32"``: ``nn.LayerNorm``) list."""
    found: dict[str, list[set[int]]] = {}
    layers: dict[str, str] = {}
    stack: list[cst.CSTNode] = [cls.body]
    while stack:  # every node of the body, in any order (a plain loop: this runs ahead of
        node = stack.pop()  # the walk on every class, so it must cost little)
        stack += children(node)
        if type(node) is cst.Assign and type(node.value) is cst.Call:
            made = names.qualname(node.value.func)
            kind = "16" if made in AUTOCAST_FP16_MODULES else "32"
            if made in AUTOCAST_FP16_MODULES or made in AUTOCAST_FP32_MODULES:
                for target in node.targets:
                    place = target.target
                    if type(place) is cst.Attribute and dotted(place.value) == "self":
                        layers[place.attr.value] = kind
            continue
        if not (
            type(node) is cst.Call
            and type(node.func) is cst.Attribute
            and type(node.func.value) is cst.Name
            and node.func.value.value == "self"
        ):
            continue
        positional = [a.value for a in node.args if a.keyword is None and not a.star]
        upcast = {i for i, value in enumerate(positional) if _is_upcast(value, names)}
        found.setdefault(node.func.attr.value, []).append(upcast)
    return {name: set.intersection(*calls) for name, calls in found.items()}, layers


@dataclass
class Frame:
    """The flow state of one function (or of the module's top level)."""

    values: dict[str, Dt] = field(default_factory=dict)
    dtype_vars: dict[str, Dt] = field(default_factory=dict)  # name = x.dtype: x's dtype then
    branches: list[tuple[dict, dict, list]] = field(default_factory=list)
    self_name: str | None = None  # in a method: its first parameter
    autocast_off: bool = False  # ``@custom_fwd(cast_inputs=...)``: runs with autocast off

    def snapshot(self) -> tuple[dict, dict]:
        return dict(self.values), dict(self.dtype_vars)


class FlowTracker(Tracker):
    """``ctx.get(FlowTracker).dtype(expr)``: the dtype of ``expr`` at the node in hand."""

    requires = (AutocastTracker,)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.frames: list[Frame] = [Frame()]
        self._memo: dict[int, Dt] = {}
        # per enclosing class: method -> positions of parameters every caller upcasts; and
        # attribute -> "16"/"32" for torch layers on autocast's lists (``_class_facts``)
        self.upcast_params: list[dict[str, set[int]]] = [{}]
        self.layer_kinds: list[dict[str, str]] = [{}]
        # Hugging Face code: transformers itself, or a file that imports it
        self.hf = ctx.module_name.startswith("transformers.") or (
            "transformers" in ctx.text
            and any(
                (b.qualname or "").startswith("transformers")
                for found in ctx.names.scopes[0].bindings.values()
                for b in found
            )
        )

    @property
    def frame(self) -> Frame:
        return self.frames[-1]

    # --- scopes ------------------------------------------------------------------------------
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        upcast, layers = _class_facts(node, self.ctx.names)
        self.upcast_params.append(upcast)
        self.layer_kinds.append(layers)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self.upcast_params.pop()
        self.layer_kinds.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        frame = Frame()
        scopes = self.ctx.names.scopes
        if len(scopes) >= 2 and scopes[-2].kind == "class":
            params = [*node.params.posonly_params, *node.params.params]
            static = any(dotted(d.decorator) == "staticmethod" for d in node.decorators)
            if params and not static:
                frame.self_name = params[0].name.value
                params = params[1:]
            inputs = self._cast_inputs(node)
            frame.autocast_off = inputs is not Dt.ACT
            upcast = self.upcast_params[-1].get(node.name.value, set()) if not static else set()
            for index, param in enumerate([*params, *node.params.kwonly_params]):
                if index in upcast:
                    frame.values[param.name.value] = Dt.WIDE  # every caller passes x.float()
                elif self._annotated(param, _INT_ANNOTATIONS):
                    frame.values[param.name.value] = Dt.INT
                elif self._is_number(param):
                    frame.values[param.name.value] = Dt.SCALAR
                elif self._is_input(param):
                    frame.values[param.name.value] = inputs
        self.frames.append(frame)
        self._memo.clear()

    def _cast_inputs(self, node: cst.FunctionDef) -> Dt:
        """``@custom_fwd(cast_inputs=torch.float32)`` casts a method's tensor inputs."""
        for decorator in node.decorators:
            call = decorator.decorator
            if type(call) is not cst.Call:
                continue
            name = self.ctx.names.qualname(call.func) or ""
            if name.rsplit(".", 1)[-1] != "custom_fwd" or not name.startswith("torch."):
                continue
            for arg in call.args:
                if arg.keyword is not None and arg.keyword.value == "cast_inputs":
                    found = _from_fact(dtype_of(arg.value, self.ctx.names))
                    return Dt.ACT if found is Dt.UNKNOWN else found
        return Dt.ACT

    def _is_number(self, param: cst.Param) -> bool:
        """Annotated ``int``/``float``/``bool``, or defaulting to a number (``scale=2``)."""
        default = param.default
        if type(default) is cst.UnaryOperation:
            default = default.expression
        if type(default) in (cst.Integer, cst.Float):
            return True
        annotation = param.annotation
        return annotation is not None and self.ctx.names.qualname(annotation.annotation) in (
            "builtins.int",
            "builtins.float",
            "builtins.bool",
        )

    def _is_input(self, param: cst.Param) -> bool:
        """A parameter that may carry an activation: unannotated, or annotated as a tensor
        (``new_size: Tuple[int, int]``, ``dtype: torch.dtype`` do not)."""
        return param.annotation is None or self._annotated(param, _TENSOR_ANNOTATIONS)

    def _annotated(self, param: cst.Param, types: frozenset[str]) -> bool:
        """Whether the annotation names one of ``types`` (``Optional[torch.LongTensor]``)."""
        if param.annotation is None:
            return False
        return any(
            self.ctx.names.qualname(node) in types
            for node in walk(param.annotation.annotation)
            if type(node) in (cst.Name, cst.Attribute)
        )

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.frames.pop()
        self._memo.clear()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self.frames.append(Frame())
        self._memo.clear()

    leave_Lambda = leave_FunctionDef

    # --- bindings -----------------------------------------------------------------------------
    def _set(self, target: cst.BaseExpression, value: Dt, dtype_of_value: Dt | None = None) -> None:
        if type(target) is cst.Name:
            self.frame.values[target.value] = value
            if dtype_of_value is None:
                self.frame.dtype_vars.pop(target.value, None)
            else:
                self.frame.dtype_vars[target.value] = dtype_of_value
        elif type(target) in (cst.Tuple, cst.List):
            # unpacking ``q, k, v = qkv.chunk(3)``: activations stay activations
            element_dt = Dt.ACT if value.is16 or value in (Dt.ACT, Dt.AC32) else value
            if element_dt not in (Dt.SCALAR, Dt.ACT, Dt.AC16):
                element_dt = Dt.UNKNOWN
            for element in target.elements:
                inner = element.value
                self._set(inner.value if type(inner) is cst.StarredElement else inner, element_dt)
        self._memo.clear()

    def _dtype_source(self, value: cst.BaseExpression | None) -> Dt | None:
        """For ``name = x.dtype``: x's dtype."""
        if type(value) is cst.Attribute and value.attr.value == "dtype":
            return self.dtype(value.value)
        return None

    def leave_Assign(self, node: cst.Assign) -> None:
        value = self.dtype(node.value)
        source = self._dtype_source(node.value)
        pair = returns_index_pair(node.value)
        for target in node.targets:
            place = target.target
            if type(place) in (cst.Tuple, cst.List) and is_shape(node.value):
                self._set(place, Dt.SCALAR)
            elif pair and type(place) in (cst.Tuple, cst.List) and len(place.elements) == 2:
                self._set(place.elements[0].value, value)  # values, indices = x.max(-1)
                self._set(place.elements[1].value, Dt.INT)
            elif (unpacked := self._unpacked(place, node.value)) is not None and all(
                dt.safe or dt.is16 for dt in unpacked
            ):  # known dtypes only: activations keep the unpacking rule of ``_set``
                for element, dt in zip(place.elements, unpacked, strict=True):
                    self._set(element.value, dt)
            else:
                self._set(place, value, source)

    def _unpacked(self, place: cst.BaseExpression, value: cst.BaseExpression) -> list[Dt] | None:
        """Each target's dtype in ``q, k = q.float(), k.float()``, in
        ``q, k = [x.to(torch.float32) for x in (q, k)]`` (one ``for`` over a literal) and in
        ``u, s, vh = torch.linalg.svd(x.float())``."""
        if type(place) not in (cst.Tuple, cst.List):
            return None
        size = len(place.elements)
        if any(type(e) is cst.StarredElement for e in place.elements):
            return None
        if type(value) in (cst.Tuple, cst.List) and len(value.elements) == size:
            if any(type(e) is cst.StarredElement for e in value.elements):
                return None
            return [self.dtype(e.value) for e in value.elements]
        if type(value) is cst.Call and self.dtype(value) is Dt.WIDE:
            return [Dt.WIDE] * size  # ``u, s, vh = torch.linalg.svd(x.float())``: float32 (or int)
        if type(value) not in (cst.ListComp, cst.GeneratorExp):
            return None
        loop = value.for_in
        items = loop.iter
        if (
            loop.inner_for_in is not None
            or loop.ifs
            or type(loop.target) is not cst.Name
            or type(items) not in (cst.Tuple, cst.List)
            or len(items.elements) != size
            or any(type(e) is cst.StarredElement for e in items.elements)
        ):
            return None
        name, values = loop.target.value, self.frame.values
        saved = values.get(name)
        out = []
        for item in items.elements:
            values[name] = self.dtype(item.value)
            self._memo.clear()
            out.append(self.dtype(value.elt))
        if saved is None:
            values.pop(name, None)
        else:
            values[name] = saved
        self._memo.clear()
        return out

    def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._set(node.target, self.dtype(node.value), self._dtype_source(node.value))

    def leave_AugAssign(self, node: cst.AugAssign) -> None:
        self._set(node.target, promote(self.dtype(node.target), self.dtype(node.value)))

    def visit_For(self, node: cst.For) -> None:
        self._set(node.target, Dt.UNKNOWN)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._set(node.asname.name, Dt.UNKNOWN)

    # --- branches: the state after an ``if`` joins its branches ----------------------------
    def visit_If(self, node: cst.If) -> None:
        self._enter_else(node)
        values, dtype_vars = self.frame.snapshot()
        self.frame.branches.append((values, dtype_vars, []))
        self._refine(node, True, self.frame.values)

    def _refine(self, node: cst.If, body: bool, values: dict[str, Dt]) -> None:
        """Pin a name's dtype on a branch of ``if x.dtype == torch.float16:`` (or ``!=``...)."""
        branch = node.body if body else node.orelse
        for guard in dtype_guards((node, branch), self.ctx.names):
            if not guard.on_value or type(guard.subject) is not cst.Name:
                continue
            if guard.excludes_fp16:
                values[guard.subject.value] = Dt.WIDE
            elif guard.known is DType.FP16:
                values[guard.subject.value] = Dt.F16
        self._memo.clear()

    def visit_Else(self, node: cst.Else) -> None:
        self._enter_else(node)

    def _enter_else(self, node: cst.CSTNode) -> None:
        parent = self.ctx.parent()
        if type(parent) is cst.If and parent.orelse is node and self.frame.branches:
            values, dtype_vars, ends = self.frame.branches[-1]
            ends.append(self.frame.snapshot())
            self.frame.values, self.frame.dtype_vars = dict(values), dict(dtype_vars)
            self._refine(parent, False, self.frame.values)

    def leave_If(self, node: cst.If) -> None:
        if not self.frame.branches:
            return
        values, dtype_vars, ends = self.frame.branches.pop()
        ends.append(self.frame.snapshot())
        if node.orelse is None:
            implicit = dict(values)
            self._refine(node, False, implicit)
            ends.append((implicit, dtype_vars))
        joined: dict[str, Dt] = {}
        for name in {n for end, _ in ends for n in end}:
            found = [end.get(name, values.get(name, Dt.UNKNOWN)) for end, _ in ends]
            result = found[0]
            for other in found[1:]:
                result = join(result, other)
            joined[name] = result
        self.frame.values = joined
        self.frame.dtype_vars = {
            k: v for k, v in ends[0][1].items() if all(d.get(k) is v for _, d in ends)
        }
        self._memo.clear()

    # --- evaluation ---------------------------------------------------------------------------
    def dtype(self, expr: cst.BaseExpression) -> Dt:
        """The dtype of ``expr`` here."""
        return self._eval(expr, 0)

    def _eval(self, expr: cst.BaseExpression, depth: int) -> Dt:
        if depth > _MAX_DEPTH:
            return Dt.UNKNOWN
        key = id(expr)
        found = self._memo.get(key)
        if found is None:
            found = self._compute(expr, depth + 1)
            self._memo[key] = found
        return found

    def _compute(self, expr: cst.BaseExpression, depth: int) -> Dt:
        if type(expr) in (cst.Integer, cst.Float, cst.Imaginary):
            return Dt.SCALAR
        if type(expr) is cst.Name:
            return self._name(expr)
        if type(expr) is cst.Comparison:
            return Dt.INT
        if type(expr) is cst.UnaryOperation:
            if type(expr.operator) is cst.Not:
                return Dt.UNKNOWN
            if type(expr.operator) is cst.BitInvert:
                return Dt.INT  # ~ exists only for bool and integer tensors
            return self._eval(expr.expression, depth)
        if type(expr) is cst.BinaryOperation:
            return self._binary(expr, depth)
        if type(expr) is cst.IfExp:
            return join(self._eval(expr.body, depth), self._eval(expr.orelse, depth))
        if type(expr) is cst.Subscript:
            if type(expr.value) is cst.Attribute and expr.value.attr.value == "shape":
                return Dt.SCALAR
            return self._eval(expr.value, depth)
        if type(expr) is cst.Attribute:
            if expr.attr.value in _SAME_ATTRIBUTES:
                return self._eval(expr.value, depth)
            return Dt.WIDE if self.float32_output(expr) else Dt.UNKNOWN
        if type(expr) is cst.Call:
            return self._call(expr, depth)
        return Dt.UNKNOWN

    def float32_output(self, expr: cst.Attribute) -> bool:
        """``outputs.loss`` / ``model(**batch).loss`` in Hugging Face code: a field of a model's
        output that is float32 whatever the model's dtype (``data.hf_outputs``)."""
        if not self.hf or expr.attr.value not in FLOAT32_OUTPUTS:
            return False
        value = expr.value
        if type(value) is cst.Name:
            values = self.ctx.names.values(value.value)
            value = values[0] if values and len(values) == 1 else None
        if type(value) is not cst.Call:
            return False
        qualname = self.ctx.names.qualname(value.func) or ""
        return not qualname.startswith(("torch.", "builtins."))

    def _name(self, name: cst.Name) -> Dt:
        found = self.frame.values.get(name.value)
        if found is not None:
            return found
        values = self.ctx.names.values(name.value)
        if values and all(type(v) in (cst.Integer, cst.Float) for v in values):
            return Dt.SCALAR
        return Dt.UNKNOWN

    def _binary(self, expr: cst.BinaryOperation, depth: int) -> Dt:
        operator = type(expr.operator)
        if operator is cst.MatrixMultiply:
            return self._autocast16(
                lambda: promote(self._eval(expr.left, depth), self._eval(expr.right, depth))
            )
        left, right = self._eval(expr.left, depth), self._eval(expr.right, depth)
        if operator is cst.Divide and left is Dt.INT and right in (Dt.INT, Dt.SCALAR):
            return Dt.WIDE  # true division of integers gives the default float dtype
        if operator is cst.Power or (operator is cst.Divide and left is Dt.SCALAR):
            return self._autocast32(promote(left, right))  # ``__pow__``, ``__rtruediv__``
        return promote(left, right)

    def _fp16_autocast(self) -> Dt | None:
        """F16 (or MAYBE16) inside a region where autocast's float16 ops output float16."""
        region = self.ctx.get(AutocastTracker).current
        if region is None or region.enabled is False:
            return None
        if region.dtype is None:
            return Dt.MAYBE16 if region.device is None else None
        if region.dtype.dtype is DType.FP16:
            return Dt.MAYBE16 if region.dtype.maybe or region.enabled is None else Dt.F16
        return None

    def _autocast16(self, computed) -> Dt:
        """The output of an op on autocast's float16 list, ``computed()`` from its inputs
        where autocast does not run it: float16 in an fp16 region, ``AC16`` outside any."""
        inside = self._fp16_autocast()
        if inside is not None:
            return inside
        found = computed()
        if self._may_run_under_autocast() and not (found.is16 or found in (Dt.INT, Dt.SCALAR)):
            return Dt.AC16  # upcast inputs too: autocast casts them back to float16
        return found

    def _autocast32(self, computed: Dt) -> Dt:
        """The output of an op on CUDA autocast's float32 list, given its inputs' dtype:
        float32 in an fp16 region (CUDA or unknown device), ``AC32`` for an activation (or a
        free function's input) outside any region."""
        if computed in (Dt.INT, Dt.SCALAR, Dt.WIDE):
            return computed
        region = self.ctx.get(AutocastTracker).current
        if region is None:
            if not self._may_run_under_autocast():
                return computed
            if computed.act or (computed is Dt.UNKNOWN and self._in_free_function()):
                return Dt.AC32
            return computed
        if region.is_fp16 and region.device != "cpu":
            return Dt.WIDE
        return computed

    def _may_run_under_autocast(self) -> bool:
        """Outside any region, where a caller's autocast may still be on."""
        return self.ctx.get(AutocastTracker).current is None and not self.frame.autocast_off

    def _in_free_function(self) -> bool:
        return len(self.frames) > 1 and self.frame.self_name is None

    def _layer(self, attribute: str) -> str | None:
        """``"16"``/``"32"`` for ``self.<attribute>`` kept as a torch layer on autocast's
        float16/float32 list."""
        return self.layer_kinds[-1].get(attribute)

    def _explicit_dtype(self, call: cst.Call, depth: int = 0) -> Dt | None:
        """What a ``dtype=`` argument makes (None: no such argument). ``dtype=x.dtype`` and a
        name bound to ``x.dtype`` follow ``x``: unknown when ``x`` is (not the factory's
        float32)."""
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == "dtype":
                value = arg.value
                if type(value) is cst.Attribute and value.attr.value == "dtype":
                    return self._eval(value.value, depth)
                if type(value) is cst.Name and value.value in self.frame.dtype_vars:
                    return self.frame.dtype_vars[value.value]
                return self.dtype_argument(value)
        return None

    def dtype_argument(self, expr: cst.BaseExpression) -> Dt:
        """What a ``dtype=`` argument makes: float16, a wider float, an integer type."""
        if self.ctx.names.qualname(expr) in INT_DTYPES:
            return Dt.INT
        return _from_fact(dtype_of(expr, self.ctx.names))

    def _call(self, call: cst.Call, depth: int) -> Dt:
        explicit = self._explicit_dtype(call, depth)
        if explicit is not None and explicit is not Dt.UNKNOWN:
            return explicit
        qualname = self.ctx.names.qualname(call.func)
        if explicit is Dt.UNKNOWN and qualname in _FLOAT_FACTORIES:
            return Dt.UNKNOWN  # ``torch.eye(n, dtype=q.dtype)``: q's dtype, not the default
        if qualname is not None:
            return self._function(call, qualname, depth)
        func = call.func
        if type(func) is cst.Attribute:
            if type(func.value) is cst.Name and func.value.value == self.frame.self_name:
                kind = self._layer(func.attr.value)
                if kind == "16":
                    return self._autocast16(lambda: self._opaque(call, depth))
                if kind == "32":
                    return self._autocast32(self._opaque(call, depth))
                return self._opaque(call, depth)  # a submodule or helper method of the model
            return self._method(call, func.attr.value, func.value, depth)
        if type(func) is cst.Name:
            if func.value == self.frame.self_name:  # ``self(x)``: the model's output layer
                return self._autocast16(lambda: self._opaque(call, depth))
            callee = self._name(func)
            if callee.is16:
                return callee  # calling a float16 model
        return self._opaque(call, depth)

    def _opaque(self, call: cst.Call, depth: int) -> Dt:
        return carries([self._eval(arg.value, depth) for arg in call.args])

    def _first_arg(self, call: cst.Call) -> cst.BaseExpression | None:
        for arg in call.args:
            if arg.keyword is None and not arg.star:
                return arg.value
            if arg.keyword is not None and arg.keyword.value == "input":
                return arg.value
        return None

    def _function(self, call: cst.Call, qualname: str, depth: int) -> Dt:
        if qualname in _SCALAR_FUNCTIONS or qualname.startswith("math."):
            return Dt.SCALAR
        if not qualname.startswith("torch."):
            return self._opaque(call, depth)
        short = qualname.rsplit(".", 1)[1]
        if qualname in _FLOAT_FACTORIES:
            return Dt.WIDE
        if qualname in _INT_FACTORIES:
            return Dt.INT
        if qualname == "torch.arange":
            kinds = {type(a.value) for a in call.args if a.keyword is None}
            if cst.Float in kinds:
                return Dt.WIDE
            return Dt.INT if kinds == {cst.Integer} else Dt.UNKNOWN
        if qualname == "torch.where":  # the values chosen, not the condition
            args = [a for a in call.args if not a.star]
            picked = [a.value for a in args[1:] if a.keyword is None or a.keyword.value in
                      ("input", "other")]  # fmt: skip
            if len(picked) == 2:
                return promote(self._eval(picked[0], depth), self._eval(picked[1], depth))
            return Dt.INT if len(args) == 1 else Dt.UNKNOWN  # ``torch.where(c)``: indices
        if qualname == "torch.full":
            fill = [a.value for a in call.args if a.keyword is None][1:2]
            return self._eval(fill[0], depth) if fill and type(fill[0]) is cst.Float else Dt.UNKNOWN
        if short in AUTOCAST_FP16_OPS:
            return self._autocast16(lambda: self._fp16_op_inputs(call, short, depth))
        if short in _INT_RESULTS:
            return Dt.INT
        if qualname in _LIKE_FACTORIES or qualname.count(".") <= 3:
            first = self._first_arg(call)
            found = self._eval(first, depth) if first is not None else Dt.UNKNOWN
            if qualname.startswith("torch.linalg."):
                short = f"linalg_{short}"
            return self._autocast32(found) if short in AUTOCAST_FP32_OPS else found
        return Dt.UNKNOWN

    def _fp16_op_inputs(self, call: cst.Call, short: str, depth: int) -> Dt:
        """What an autocast float16 op makes from its inputs where autocast does not run."""
        args = [self._eval(a.value, depth) for a in call.args if a.keyword is None][:2]
        if short == "einsum" or not args:
            return Dt.UNKNOWN
        return args[0] if len(args) == 1 else promote(args[0], args[1])

    def _method(self, call: cst.Call, method: str, receiver: cst.BaseExpression, depth: int) -> Dt:
        if method in _SCALAR_RESULTS:
            return Dt.SCALAR
        if method in _INT_RESULTS:
            return Dt.INT
        if method in _WIDE_METHODS and not call.args:
            return _WIDE_METHODS[method]
        if method in ("to", "type") and call.args:
            return self._conversion(call, receiver, depth)
        if method == "type_as" and call.args:
            return self._eval(call.args[0].value, depth)
        if method in AUTOCAST_FP16_OPS:
            return self._autocast16(lambda: self._eval(receiver, depth))
        if method in AUTOCAST_FP32_OPS:
            return self._autocast32(self._eval(receiver, depth))
        return self._eval(receiver, depth)

    def _conversion(self, call: cst.Call, receiver: cst.BaseExpression, depth: int) -> Dt:
        """``x.to(...)`` / ``x.type(...)``."""
        site = cast_of(call, self.ctx.names)
        if site is not None and site.dtype is not None:
            return _from_fact(site.dtype)
        for arg in call.args:
            value = arg.value
            if type(value) is cst.Attribute and value.attr.value == "dtype":
                return self._eval(value.value, depth)  # x.to(other.dtype)
            if type(value) is cst.Name and value.value in self.frame.dtype_vars:
                return self.frame.dtype_vars[value.value]  # x.to(input_dtype)
        if site is not None and site.keeps_dtype:
            return self._eval(receiver, depth)  # a device move keeps the dtype
        return Dt.UNKNOWN
