"""Attention logits: q·kᵀ products that feed a softmax, and whether they are computed in float16.

A *logit site* is a ``q @ k``, ``torch.matmul``, ``mm``, ``bmm``, ``baddbmm`` or ``einsum``
(function or method) whose result reaches the input of a softmax (``torch.softmax``,
``F.softmax``, ``x.softmax(...)``, ``self.softmax(...)``) in the same function: through
names, scaling, masking (``+ mask``, ``masked_fill``, ``torch.where``), views and casts. A
cast or ``softmax(..., dtype=torch.float32)`` after the product does not help: an overflow to
inf has already happened (``tests/facts/test_attention_logits.py``).

Each site is classified when the walk reaches the product (the local dtype flow is current
there):

- ``autocast``: inside an enabled fp16 autocast region, where autocast runs the product in
  float16 whatever its inputs (CPU checked, CUDA cited: ../shared/FACTS.md §4);
- ``fp16``: an operand is float16 in this function (``analysis.flow``);
- a site whose q or k is scaled before the product (``(q * scale) @ k.T``, Whisper's
  ``d**-0.25`` on both) is marked ``scaled``: 8 to 11 times more headroom, no guarantee;
- not a site: both operands are unit vectors (cosine logits, at most 1): ``F.normalize``-d,
  divided by their own norm, concatenations of such, or a ``self.queue`` the class only ever
  assigns normalised values (contrastive momentum queues);
- ``sdpa``: the product is the fallback branch of an ``if`` whose other branch calls
  ``F.scaled_dot_product_attention`` (timm's ``if self.fused_attn:``): protected;
- ``upcast``: an operand is surely float32 (``q.float()``, ``k.to(torch.float32)``) outside
  fp16 autocast: protected;
- ``activation``: the operands are a method's activations, float16 when the class runs in
  float16 (the project index decides);
- ``function``: the operands are a free function's inputs (``eager_attention_forward(module,
  query, key, ...)``): float16 only in library mode.

Outside any autocast region, ``activation``, ``function`` and ``upcast`` sites are also float16
whenever their function runs under fp16 autocast (autocast runs the product in float16 whatever
its inputs): their op record carries the ``@autocast`` pseudo-parameter of
``analysis.exposure``, which the project pass resolves from the callers.

A *linear-attention site* is a product of keys and values (``k.transpose(-1, -2) @ v``,
``torch.einsum('bhdn,bhen->bhde', k, v)``, ``torch.matmul(value, key)``): keys and values
share only the token axis, so their product sums over every token (the key·value state of
linear attention), softmax or not. It is classified like a logit site and recorded with
``kind: "linear"``. The operands are told by their names, through views and casts: a key
(``k``, ``key``, ``keys``, ``key_states``...) and a value (``v``, ``value``...).

A *rotary site* is a product of positions and rotary inverse frequencies (``analysis.rotary``):
the rotation angles. It is classified like a logit site, except that integer positions do not
make it safe and a disabled autocast region does, and recorded as an FP206 op site.

``ctx.facts["attention"]`` keeps every site (``span``, ``text``, ``status``) and the number
of ``F.scaled_dot_product_attention`` calls (``sdpa``), for measurements. Unprotected sites are
also recorded as FP205 op sites in ``ctx.facts["ops"]`` (``analysis.hazards``' format, with
``owner``/``method`` or ``local``), so that the project index reports them where the class runs
in float16 and lists them inside cast models (FP101).
"""

from __future__ import annotations

from typing import Any

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.base import Tracker
from fp16lint.analysis.exposure import AUTOCAST
from fp16lint.analysis.flow import Dt, FlowTracker
from fp16lint.analysis.hazards import HazardTracker
from fp16lint.analysis.names import dotted
from fp16lint.analysis.rotary import in_float64, is_inverse_frequencies
from fp16lint.analysis.tree import latest_value, statements, walk

_PRODUCTS = frozenset({"matmul", "mm", "bmm", "baddbmm", "einsum"})
_SOFTMAX = frozenset({"torch.softmax", "torch.nn.functional.softmax", "torch.special.softmax"})
_SDPA = "torch.nn.functional.scaled_dot_product_attention"
# Methods and torch functions a logit passes through on its way to the softmax (receiver or
# first argument): views, casts, scaling, masking, clamping.
_THROUGH = frozenset(
    {
        "view", "reshape", "transpose", "permute", "contiguous", "squeeze", "unsqueeze",
        "flatten", "unflatten", "expand", "float", "half", "to", "type", "type_as", "masked_fill",
        "masked_fill_", "clamp", "clip", "clamp_", "add", "add_", "mul", "mul_", "div", "div_",
        "sub", "sub_", "where", "tanh",
    }
)  # fmt: skip
_VIEWS = frozenset({"view", "reshape", "transpose", "permute", "contiguous", "flatten", "mT"})
# What a key or value passes through before a linear-attention product: views and casts.
_KV_THROUGH = _VIEWS | {"float", "half", "to", "type", "type_as", "mT", "T"}
_KEY_WORDS = frozenset({"k", "key", "keys"})
_VALUE_WORDS = frozenset({"v", "value", "values"})
_ANY_AXIS = 0  # a softmax dimension counted from the front
_NORMALIZE = "torch.nn.functional.normalize"
# What keeps unit vectors unit: views, transposes and copies.
_UNIT_THROUGH = _VIEWS | {"t", "clone", "detach"}
_CONCAT = frozenset({"torch.cat", "torch.concat", "torch.stack"})
_NORMS = frozenset({"torch.norm", "torch.linalg.norm", "torch.linalg.vector_norm"})
_MAX_DEPTH = 12


def _method(call: cst.Call) -> str | None:
    return call.func.attr.value if type(call.func) is cst.Attribute else None


def _norm_of(expr: cst.BaseExpression, x: cst.BaseExpression, names) -> bool:
    """``expr`` is the norm of ``x`` (``x.norm(...)``, ``torch.linalg.norm(x, ...)``), maybe
    kept off zero (``+ eps``, ``.clamp(min=eps)``, ``.clamp_min(eps)``)."""
    if type(expr) is cst.BinaryOperation and type(expr.operator) is cst.Add:
        expr = expr.left
    while type(expr) is cst.Call and _method(expr) in ("clamp", "clamp_min", "add"):
        expr = expr.func.value  # type: ignore[attr-defined]
    if type(expr) is not cst.Call:
        return False
    if names.qualname(expr.func) in _NORMS:
        return bool(expr.args) and expr.args[0].value.deep_equals(x)
    return _method(expr) == "norm" and expr.func.value.deep_equals(x)  # type: ignore[attr-defined]


def _normalized(expr: cst.BaseExpression, names) -> bool:
    """``F.normalize(...)`` or ``x / x.norm(...)`` written out (no names followed)."""
    if type(expr) is cst.BinaryOperation and type(expr.operator) is cst.Divide:
        return _norm_of(expr.right, expr.left, names)
    return type(expr) is cst.Call and names.qualname(expr.func) == _NORMALIZE


class AttentionTracker(Tracker):
    """Finds logit sites (see the module docstring)."""

    requires = (FlowTracker, AutocastTracker, HazardTracker)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.flow: FlowTracker = ctx.get(FlowTracker)
        self.hazards: HazardTracker = ctx.get(HazardTracker)
        self.sites: list[dict[str, Any]] = []
        self.sdpa = 0
        # id(product node) -> (node, status, stack at the product), per function
        self._products: list[dict[int, tuple[cst.CSTNode, str, tuple, bool, bool]]] = [{}]
        self._done: set[int] = set()
        text = ctx.text
        self.active = (  # else nothing to find
            "softmax" in text
            or "Softmax" in text
            or any(op in text for op in ("einsum", "matmul", "bmm", " @ "))
        )

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._products.append({})

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._products.pop()

    # --- products ----------------------------------------------------------------------------
    def _operands(self, node: cst.CSTNode) -> list[cst.BaseExpression] | None:
        """q and k of a product node, or None when ``node`` is not one."""
        if type(node) is cst.BinaryOperation:
            if type(node.operator) is cst.MatrixMultiply:
                return [node.left, node.right]
            return None
        if type(node) is not cst.Call:
            return None
        qualname = self.ctx.names.qualname(node.func)
        positional = [a.value for a in node.args if a.keyword is None and not a.star]
        if qualname is not None:
            short = qualname.rsplit(".", 1)[-1]
            if not qualname.startswith("torch.") or short not in _PRODUCTS:
                return None
            if short == "einsum":
                rest = positional[1:]
                if len(rest) == 1 and type(rest[0]) in (cst.List, cst.Tuple):
                    return [e.value for e in rest[0].elements]  # type: ignore[attr-defined]
                return rest
            return positional[1:3] if short == "baddbmm" else positional[:2]
        method = _method(node)
        if method in ("matmul", "mm", "bmm") and positional:
            return [node.func.value, positional[0]]  # type: ignore[attr-defined]
        if method == "baddbmm" and len(positional) >= 2:
            return positional[:2]
        return None

    def _unit_vectors(self, expr: cst.BaseExpression, depth: int = 0) -> bool:
        """Unit vectors (through views, ``.t()``/``.T``, ``clone``/``detach`` and names):
        ``F.normalize(x)``, ``x / x.norm(...)`` (``+ eps`` or ``.clamp(min=eps)`` on the norm)
        or a ``torch.cat``/``stack`` of them. Entries of a product of two are cosines, at most
        1, whatever the dtype (XCiT/EdgeNeXt, cosine attention, CLIP-style contrastive
        similarities)."""
        while True:
            if type(expr) is cst.Call and _method(expr) in _UNIT_THROUGH:
                expr = expr.func.value  # type: ignore[attr-defined]
            elif type(expr) is cst.Attribute and expr.attr.value in ("T", "mT"):
                expr = expr.value
            else:
                break
        if type(expr) is cst.Name and depth < 3:
            values = self.ctx.names.values(expr.value)
            return bool(values) and all(
                v is not None and self._unit_vectors(v, depth + 1) for v in values
            )
        if type(expr) is cst.BinaryOperation and type(expr.operator) is cst.Divide:
            return _norm_of(expr.right, expr.left, self.ctx.names)
        if type(expr) is cst.Attribute and type(expr.value) is cst.Name:
            return expr.value.value == "self" and self._unit_attribute(expr.attr.value)
        if type(expr) is not cst.Call:
            return False
        qualname = self.ctx.names.qualname(expr.func)
        if qualname in _CONCAT and expr.args and depth < 3:
            items = expr.args[0].value
            return type(items) in (cst.List, cst.Tuple) and all(
                type(item) is cst.Element and self._unit_vectors(item.value, depth + 1)
                for item in items.elements  # type: ignore[attr-defined]
            )
        return qualname == _NORMALIZE

    def _unit_attribute(self, attr: str) -> bool:
        """``self.queue`` of a class that assigns it only normalised values
        (``self.queue = F.normalize(self.queue, dim=0)``): the momentum queues of MoCo-style
        contrastive models. Row stores (``self.queue[:, i:j] = keys.T``) keep the invariant
        the class declares; any plain assignment of something else breaks it."""
        cls = next((n for n in reversed(self.ctx.stack) if type(n) is cst.ClassDef), None)
        if cls is None:
            return False
        seen = False
        for statement in statements(cls):
            if type(statement) is not cst.Assign:
                continue
            for target in statement.targets:
                node = target.target
                if (
                    type(node) is cst.Attribute
                    and node.attr.value == attr
                    and dotted(node.value) == "self"
                ):
                    if not _normalized(statement.value, self.ctx.names):
                        return False
                    seen = True
        return seen

    def _sdpa_branch(self) -> bool:
        """The product is the fallback branch of an ``if`` whose other branch calls SDPA
        (``if self.fused_attn: F.scaled_dot_product_attention(...) else: q @ k...``)."""
        stack = self.ctx.stack
        for index, node in enumerate(stack[:-1]):
            if type(node) is not cst.If:
                continue
            child = stack[index + 1]
            other = (
                node.orelse if child is node.body else node.body if child is node.orelse else None
            )
            if other is not None and any(
                type(n) is cst.Call and self.ctx.names.qualname(n.func) == _SDPA
                for n in walk(other)
            ):
                return True
        return False

    def _status(self, operands: list[cst.BaseExpression]) -> str | None:
        if len(operands) == 2 and all(self._unit_vectors(op) for op in operands):
            return None
        if self._sdpa_branch():
            return "sdpa"
        region = self.ctx.get(AutocastTracker).current
        if region is not None and region.is_fp16:
            return "autocast"
        dts = [self.flow.dtype(op) for op in operands]
        if any(dt is Dt.WIDE for dt in dts):
            return "upcast"
        if any(dt.is16 for dt in dts):
            return "fp16"
        if any(dt.safe for dt in dts):
            return None  # integer or scalar operands: not attention logits
        if any(dt.act for dt in dts) and _owner_of(self.ctx.stack, None)[0] is not None:
            return "activation"
        if len(self.ctx.names.scopes) > 1 and self.ctx.names.scopes[-1].kind == "function":
            return "function"
        return None

    def _derived(self, key: cst.BaseExpression, value: cst.BaseExpression) -> bool:
        """The "value" is computed from the "key" (``value = 1 / s * key.transpose(-1, -2)``
        in Nystromformer's pseudo-inverse iteration): not two projections of the tokens."""
        key_name, value_name = _kv_name(key), _kv_name(value)
        return any(
            bound is not None
            and any(type(n) is cst.Name and n.value == key_name for n in walk(bound))
            for bound in self.ctx.names.values(value_name or "")
        )

    def _rotary_status(self, node: cst.CSTNode, operands: list) -> str | None:
        """Like ``_status``, for rotary angles: integer positions do not make the product
        safe, a disabled (or bfloat16) autocast region does, and in a method the module's own
        ``inv_freq`` buffer follows the module's cast (``activation``). CPU autocast leaves an
        einsum without a summed index (the usual outer product) in float32. A float64
        operand makes the product float64, autocast or not."""
        if any(in_float64(op, self.ctx.stack, self.ctx.names) for op in operands):
            return None
        if any(self.flow.dtype(op).is16 for op in operands):
            return "fp16"
        region = self.ctx.get(AutocastTracker).current
        if region is not None:
            cpu_einsum = region.device == "cpu" and type(node) is cst.Call
            return "autocast" if region.is_fp16 and not cpu_einsum else None
        if any(self.flow.dtype(op) is Dt.WIDE for op in operands):
            return "upcast"
        if _owner_of(self.ctx.stack, None)[0] is not None:
            return "activation"
        if len(self.ctx.names.scopes) > 1 and self.ctx.names.scopes[-1].kind == "function":
            return "function"
        return None

    def _averaged(self, node: cst.CSTNode, operands: list, key: int) -> bool:
        """The key is a softmax over the token axis the product sums over (``k =
        k.softmax(dim=-1)`` before ``einsum('bhdn,bhen->bhde', k, v)``): the product is then a
        weighted average of the values, no larger than they are. A softmax whose dimension is
        counted from the front (``dim=2``: the rank is unknown here) is taken to be over the
        tokens, as linear attention normalises its keys."""
        axis, expr = _summed_axis(node, operands, key)
        if axis is None or type(expr) is not cst.Name:
            return False
        value = latest_value(self.ctx.stack, expr.value)
        dim = None if value is None else _softmax_dim(value, self.ctx.names)
        return dim in (axis, _ANY_AXIS)

    def _scaled(self, expr: cst.BaseExpression, depth: int = 0) -> bool:
        """``q * scale``, ``q / math.sqrt(d)`` (through views and names): scaled by a number
        or a ``scale``-named value before the product."""
        while type(expr) is cst.Call and _method(expr) in _VIEWS:
            expr = expr.func.value  # type: ignore[attr-defined]
        if type(expr) is cst.Name and depth < 3:
            values = self.ctx.names.values(expr.value)
            return any(v is not None and self._scaled(v, depth + 1) for v in values)
        if type(expr) is not cst.BinaryOperation or type(expr.operator) not in (
            cst.Multiply,
            cst.Divide,
        ):
            return False
        sides = (expr.right,) if type(expr.operator) is cst.Divide else (expr.left, expr.right)
        return any(
            self.flow.dtype(side) is Dt.SCALAR or "scal" in (dotted(side) or "").lower()
            for side in sides
        )

    def _product(self, node: cst.CSTNode) -> None:
        operands = self._operands(node)
        if not operands or len(operands) < 2:
            return  # ``einsum("ijbn->bnij", mask)`` permutes, it multiplies nothing
        if len(operands) == 2 and any(
            is_inverse_frequencies(op, self.ctx.stack, self.ctx.names) for op in operands
        ):
            status = self._rotary_status(node, operands)
            if status is not None:
                free = self.ctx.get(AutocastTracker).current is None
                self._site((node, status, tuple(self.ctx.stack), False, free), kind="rotary")
            return
        status = self._status(operands)
        if status is not None:
            scaled = any(self._scaled(op) for op in operands[:2])
            free = self.ctx.get(AutocastTracker).current is None  # autocast may run it
            found = (node, status, tuple(self.ctx.stack), scaled, free)
            self._products[-1][id(node)] = found
            roles = [_role(op) for op in operands]
            if (
                len(operands) == 2
                and set(roles) == {"k", "v"}
                and not self._averaged(node, operands, roles.index("k"))
                and not self._derived(operands[roles.index("k")], operands[roles.index("v")])
            ):
                self._site(found, kind="linear")

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if self.active and type(node.operator) is cst.MatrixMultiply:
            self._product(node)

    def visit_Call(self, node: cst.Call) -> None:
        if not self.active:
            return
        if self.ctx.names.qualname(node.func) == _SDPA:
            self.sdpa += 1
            return
        self._product(node)

    def leave_Call(self, node: cst.Call) -> None:
        """A softmax, once the products inside its own arguments are recorded."""
        if not self.active:
            return
        logits = self._softmax_input(node, self.ctx.names.qualname(node.func))
        if logits is not None:
            for found in self._sources(logits, 0, set()):
                self._site(found)

    # --- softmax inputs ----------------------------------------------------------------------
    def _softmax_input(self, call: cst.Call, qualname: str | None) -> cst.BaseExpression | None:
        if qualname in _SOFTMAX:
            for arg in call.args:
                if (arg.keyword is None and not arg.star) or (
                    arg.keyword is not None and arg.keyword.value == "input"
                ):
                    return arg.value
            return None
        if qualname is not None or type(call.func) is not cst.Attribute:
            return None
        name = call.func.attr.value
        if name == "softmax":
            owner = call.func.value
            if type(owner) is cst.Name and owner.value == "self":
                return call.args[0].value if call.args else None
            return owner
        if "softmax" in name.lower() and "log" not in name.lower() and call.args:
            owner = call.func.value
            if type(owner) is cst.Name and owner.value == "self":  # self.softmax = nn.Softmax()
                return call.args[0].value
        return None

    def _sources(self, expr: cst.BaseExpression, depth: int, seen: set[str]) -> list[tuple]:
        """The recorded products ``expr`` is computed from (through names in this function)."""
        if depth > _MAX_DEPTH:
            return []
        found = self._products[-1].get(id(expr))
        if found is not None:
            return [found]
        kind = type(expr)
        if kind is cst.BinaryOperation:
            if type(expr.operator) is cst.MatrixMultiply:
                return []
            return self._sources(expr.left, depth + 1, seen) + self._sources(
                expr.right, depth + 1, seen
            )
        if kind is cst.UnaryOperation:
            return self._sources(expr.expression, depth + 1, seen)
        if kind is cst.Subscript:
            return self._sources(expr.value, depth + 1, seen)
        if kind is cst.Name:
            if expr.value in seen:
                return []
            seen.add(expr.value)
            out: list[tuple] = []
            for value in self.ctx.names.values(expr.value):
                if value is not None:
                    out += self._sources(value, depth + 1, seen)
            return out
        if kind is cst.Call:
            qualname = self.ctx.names.qualname(expr.func)
            if qualname is not None:
                short = qualname.rsplit(".", 1)[-1]
                if not qualname.startswith("torch.") or short not in _THROUGH:
                    return []
                args = [a.value for a in expr.args if a.keyword is None]
                if short == "where":
                    args = args[1:]
                return [s for a in args[:2] for s in self._sources(a, depth + 1, seen)]
            if _method(expr) in _THROUGH:
                return self._sources(expr.func.value, depth + 1, seen)  # type: ignore[attr-defined]
        return []

    # --- recording ---------------------------------------------------------------------------
    def _site(self, found: tuple, kind: str | None = None) -> None:
        node, status, stack, scaled, free = found
        if id(node) in self._done:
            return
        self._done.add(id(node))
        span = self.ctx.span_ref(node, stack)
        text = self.hazards._text(node) if type(node) is cst.Call else _short(self.ctx.code(node))
        site = {"span": span, "text": text, "status": status}
        if kind is not None:
            site["kind"] = kind
        self.sites.append(site)
        key = self.hazards.exposure.frame.key if free else None
        if status == "sdpa" or (status == "upcast" and key is None and kind != "rotary"):
            return  # rotary angles on float32 inputs: float16 under autocast (library mode)
        owner, method = _owner_of(stack, self.ctx.module_name)
        record = {
            "rule": "FP206" if kind == "rotary" else "FP205",
            "span": span,
            "owner": owner if status == "activation" else None,
            "method": method if status == "activation" else None,
            "local": status in ("fp16", "autocast"),
            "maybe": False,
            "op": "rotary" if kind == "rotary" else "attention",
            "text": text,
            "status": status,
        }
        if kind is not None:
            record["kind"] = kind
        elif scaled:
            record["scaled"] = True
        if status == "function" or (status == "upcast" and kind == "rotary"):
            record["function"] = _function_of(stack)
        if key is not None and status != "fp16":
            record["fn"], record["params"] = key, [AUTOCAST]
        self.hazards.ops.append(record)

    def leave_Module(self, node: cst.Module) -> None:
        if self.sites or self.sdpa:
            self.ctx.facts["attention"] = {"sites": self.sites, "sdpa": self.sdpa}


def _kv_name(expr: cst.BaseExpression) -> str | None:
    """The name under views and casts (``k.transpose(-1, -2)``, ``key.float()``), or None."""
    while True:
        if type(expr) is cst.Call and type(expr.func) is cst.Attribute:
            if expr.func.attr.value not in _KV_THROUGH:
                return None
            expr = expr.func.value
        elif type(expr) is cst.Attribute and expr.attr.value in _KV_THROUGH:
            expr = expr.value
        else:
            break
    return expr.value if type(expr) is cst.Name else None


def _role(expr: cst.BaseExpression) -> str | None:
    """ "k" for a key, "v" for a value, told by the name under views and casts
    (``k.transpose(-1, -2)``, ``key.float()``, ``value_states``), else None."""
    name = _kv_name(expr)
    if name is None:
        return None
    word = name.strip("_").lower().split("_")[0]
    return "k" if word in _KEY_WORDS else "v" if word in _VALUE_WORDS else None


def _int(expr: cst.BaseExpression | None) -> int | None:
    if type(expr) is cst.Integer:
        return int(expr.value)
    if type(expr) is cst.UnaryOperation and type(expr.operator) is cst.Minus:
        inner = _int(expr.expression)
        return None if inner is None else -inner
    return None


def _transposed(expr: cst.BaseExpression) -> cst.BaseExpression | None:
    """``k`` for ``k.transpose(-1, -2)``/``(-2, -1)`` and ``k.mT``, else None."""
    if type(expr) is cst.Attribute and expr.attr.value == "mT":
        return expr.value
    if (
        type(expr) is cst.Call
        and type(expr.func) is cst.Attribute
        and expr.func.attr.value == "transpose"
        and {_int(a.value) for a in expr.args} == {-1, -2}
    ):
        return expr.func.value
    return None


def _summed_axis(
    node: cst.CSTNode, operands: list, key: int
) -> tuple[int | None, cst.BaseExpression]:
    """The axis of the key (negative, counted from the end) that the product sums over, and
    the key under a transpose: from the einsum subscripts, or -1/-2 of a matmul's left/right
    operand (swapped by a transpose of the last two axes)."""
    expr = operands[key]
    if type(node) is cst.Call and node.args and isinstance(node.args[0].value, cst.SimpleString):
        spec = node.args[0].value.evaluated_value
        if not isinstance(spec, str) or "->" not in spec or "." in spec:
            return None, expr
        inputs, output = spec.replace(" ", "").split("->")
        terms = inputs.split(",")
        if len(terms) != 2:
            return None, expr
        summed = [i for i, c in enumerate(terms[key]) if c not in output]
        return (summed[0] - len(terms[key]) if len(summed) == 1 else None), expr
    axis = -1 if key == 0 else -2
    inner = _transposed(expr)
    return (axis, expr) if inner is None else (-3 - axis, inner)


def _softmax_dim(value: cst.BaseExpression, names: Any) -> int | None:
    """``dim`` of ``name.softmax(dim=d)`` / ``torch.softmax(name, dim=d)``; ``_ANY_AXIS`` for a
    dimension counted from the front (the rank is unknown), None when not a softmax."""
    if type(value) is not cst.Call:
        return None
    args = value.args
    if names.qualname(value.func) in _SOFTMAX:
        args = args[1:]
    elif type(value.func) is not cst.Attribute or value.func.attr.value != "softmax":
        return None
    dims = [a.value for a in args if a.keyword is None or a.keyword.value == "dim"]
    dim = _int(dims[0]) if dims else None
    return None if dim is None else dim if dim < 0 else _ANY_AXIS


def _short(text: str, limit: int = 50) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _owner_of(stack, module_name: str | None) -> tuple[str | None, str | None]:
    """The top-level class and its method that ``stack`` is directly in."""
    defs = [n for n in stack if type(n) in (cst.ClassDef, cst.FunctionDef)]
    if (
        len(defs) == 2
        and type(defs[0]) is cst.ClassDef
        and type(defs[1]) is cst.FunctionDef
        and stack[1] is defs[0]
    ):
        prefix = f"{module_name}." if module_name else ""
        return prefix + defs[0].name.value, defs[1].name.value
    return None, None


def _function_of(stack: tuple) -> str:
    defs = [n.name.value for n in stack if type(n) in (cst.ClassDef, cst.FunctionDef)]
    return ".".join(defs)
