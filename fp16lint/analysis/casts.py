"""Cast calls in every spelling: ``x.half()``, ``x.to(torch.float16)``, ``x.to(dtype=...)``,
``x.to(device, torch.half)``, ``x.to(device=..., dtype=...)``, ``x.type(torch.HalfTensor)``,
``x.bfloat16()``, ``x.float()``... — what they convert to and where.

Whether the receiver is a module (in-place, whole model) or a tensor (a new tensor) is the
receiver analysis' question (``analysis.receivers``), not this one's.

``CastFacts`` records what the project pass needs from each file (JSON-able, in ``ctx.facts``):

``ctx.facts["casts"]``: one dict per fp16 cast (may-be fp16 included) whose receiver is a module
or unknown — never a known tensor, nor a cast that only runs on data already fp16
(``if x.dtype == torch.float16: model.half()``):

- ``span``: ``[line, col, end_line, end_col]`` of the cast call; ``call``: its text, shortened;
- ``method``: ``half``, ``to`` or ``type``; ``dtype``: ``"float16"``; ``maybe``: the dtype is
  chosen at run time (``weight_dtype``);
- ``autocast``: the cast sits inside an fp16 autocast region;
- ``receiver``: ``"module"`` or ``"unknown"`` as this file alone can tell;
- ``ctor``: the qualified name of what made the receiver when it is ``Cls(...)`` or a name
  bound to ``Cls(...)`` or to ``build(...)`` (``"demo_models.encoder.Encoder"``,
  ``"train.build_model"``: a class or a function; the project index tells which), else None;
- ``loader``: ``"transformers.T5ForConditionalGeneration"`` (the class text, resolved through
  imports when possible) when the receiver comes from ``from_pretrained``, else None;
- ``device``: a literal device given with the cast (``"cpu"``, ``"cuda"``), else None.

``ctx.facts["model_casts"]``: casts the project join resolves to a model class (``index``):
``model.apply(fn)`` with ``fn`` a function that casts to float16 (``method`` ``"apply"``), a cast
of a loop variable over ``model.parameters()`` / ``.modules()`` / ``.buffers()`` (``p.data =
p.data.half()``), each with the ``ctor`` of ``model``; and module casts of a function's
parameter (``def to_half(m): m.half()``), with ``param``: ``[function key, name]``, whose
callers tell the class. Each has ``span``, ``method``, ``maybe``, ``autocast``; ``parts``: the
cast converts the model tensor by tensor (its buffers keep their dtype).

``ctx.facts["classes"]``: one dict per top-level class: ``name``, ``qualname``
(``module_name.Class``), ``bases`` (qualified names; this file's classes as ``module.Class``,
unresolvable bases left out), ``module`` (this file alone shows it is an ``nn.Module``) and
``span`` (of the class name).

``ctx.facts["reexports"]`` (package ``__init__`` files): ``{"package": "pkg", "names": {local
name: qualified name}}`` for module-level ``from ... import`` bindings, so that
``from pkg import Encoder`` resolves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.base import Tracker
from fp16lint.analysis.calls import argument, literal_bool
from fp16lint.analysis.dtypes import DType, DTypeFact, device_of, dtype_of
from fp16lint.analysis.guards import follows_fp16_data
from fp16lint.analysis.receivers import (
    MODULE_BASES,
    Kind,
    ReceiverTracker,
    is_nn_class,
    loader_owner,
    local_module_classes,
    unwrap_chain,
)
from fp16lint.analysis.tree import walk
from fp16lint.data.hf_keep_fp32 import DIFFUSERS_KEEP_IN_FP32, KEEP_IN_FP32

_METHOD_DTYPES = {
    "half": DType.FP16,
    "bfloat16": DType.BF16,
    "float": DType.FP32,
    "double": DType.FP64,
}
CAST_METHODS = frozenset({*_METHOD_DTYPES, "to", "type", "cuda", "cpu"})
# a model's methods that iterate over its parts (``for p in model.parameters()``)
_MODULE_PARTS = frozenset(
    {"parameters", "named_parameters", "buffers", "named_buffers", "modules", "named_modules",
     "children", "named_children"}
)  # fmt: skip


@dataclass(frozen=True)
class CastSite:
    call: cst.Call
    receiver: cst.BaseExpression
    method: str  # half, to, type, bfloat16, float, double, cuda, cpu
    dtype: DTypeFact | None  # None: no dtype change we can see (see ``opaque``)
    device: str | None  # a literal device ("cuda", "cpu", "cuda:0"), "?" for a run-time one
    opaque: bool = False  # an argument that may be a dtype or a tensor we cannot see

    @property
    def to_fp16(self) -> bool:
        return self.dtype is not None and self.dtype.is_fp16

    @property
    def keeps_dtype(self) -> bool:
        """The call evidently moves the value without changing its dtype."""
        return self.dtype is None and not self.opaque


def cast_of(call: cst.Call, names) -> CastSite | None:
    """The cast ``call`` performs, or None if it is not a cast method call."""
    func = call.func
    if type(func) is not cst.Attribute or func.attr.value not in CAST_METHODS:
        return None
    method = func.attr.value
    if method in _METHOD_DTYPES:
        return CastSite(call, func.value, method, DTypeFact(_METHOD_DTYPES[method]), None)
    if method in ("cuda", "cpu"):
        return CastSite(call, func.value, method, None, method)
    if method == "type":
        if not call.args:
            return None  # x.type() returns the type name
        dtype = dtype_of(call.args[0].value, names, strings=True)
        return CastSite(call, func.value, method, dtype, None, opaque=dtype is None)
    dtype: DTypeFact | None = None
    device: str | None = None
    opaque = False
    for arg in call.args:
        if arg.star:
            opaque = True
            continue
        keyword = arg.keyword.value if arg.keyword is not None else None
        if keyword == "dtype":
            dtype = dtype_of(arg.value, names)
            opaque = opaque or dtype is None
        elif keyword == "device":
            device = device_of(arg.value, names) or "?"
        elif keyword is None:
            found = dtype_of(arg.value, names)
            if found is not None:
                dtype = found
                continue
            where = device_of(arg.value, names)
            if where is not None and device is None:
                device = where
            elif where is None:
                opaque = True
    return CastSite(call, func.value, method, dtype, device, opaque)


def short_code(ctx, node: cst.CSTNode, limit: int = 60) -> str:
    """The source of ``node`` on one line, cut to ``limit`` characters for messages."""
    text = " ".join(ctx.code(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def constructor_of(expr: cst.BaseExpression, ctx) -> str | None:
    """The qualified name of the class or function whose call made ``expr``: ``Encoder()``,
    ``m`` after ``m = Encoder(); m = m.to(dev)``, ``build_model(cfg).eval()``."""
    expr = unwrap_chain(expr)
    if type(expr) is cst.Call:
        return _callee_qualname(expr.func, ctx)
    if type(expr) is not cst.Name:
        return None
    found = set()
    for value in ctx.names.values(expr.value):
        inner = unwrap_chain(value) if value is not None else None
        if type(inner) is cst.Name and inner.value == expr.value:
            continue  # m = m.to(dev)
        if type(inner) is not cst.Call:
            return None
        found.add(_callee_qualname(inner.func, ctx))
    return found.pop() if len(found) == 1 else None


def _callee_qualname(func: cst.BaseExpression, ctx) -> str | None:
    if type(func) is cst.Name:
        bindings = ctx.names.bindings(func.value) or []
        if bindings and all(type(b.node) in (cst.ClassDef, cst.FunctionDef) for b in bindings):
            return f"{ctx.module_name}.{func.value}" if ctx.module_name else func.value
    return ctx.names.qualname(func)


def loader_of(expr: cst.BaseExpression, ctx) -> cst.Call | None:
    """The ``X.from_pretrained(...)`` call (of a model, not a tokenizer) that made ``expr``,
    directly or through a name every binding of which is one."""
    expr = unwrap_chain(expr)
    if type(expr) is cst.Call:
        return expr if loader_owner(expr) is not None else None
    if type(expr) is not cst.Name:
        return None
    calls = []
    for value in ctx.names.values(expr.value):
        inner = unwrap_chain(value) if value is not None else None
        if type(inner) is cst.Name and inner.value == expr.value:
            continue
        if type(inner) is not cst.Call or loader_owner(inner) is None:
            return None
        calls.append(inner)
    return calls[-1] if calls else None


def loader_class(call: cst.Call, ctx) -> str:
    """``transformers.T5ForConditionalGeneration`` for ``T5ForConditionalGeneration.from_...``
    when imports resolve it, else the owner's text."""
    owner = call.func.value  # type: ignore[attr-defined]
    return ctx.names.qualname(owner) or loader_owner(call) or ""


@dataclass(frozen=True)
class HfLoad:
    """A model from a Hugging Face ``from_pretrained``: the load call, its class's qualified
    name, and the modules an fp16 load keeps in float32 (``()``: the class declares none;
    None: not known, e.g. ``AutoModel`` or a diffusers pipeline)."""

    call: cst.Call
    qualname: str
    keep_in_fp32: tuple[str, ...] | None

    @property
    def loses_fp32_modules(self) -> bool:
        """Whether casting after the load may convert modules an fp16 load keeps in fp32."""
        return self.keep_in_fp32 is None or bool(self.keep_in_fp32)


_HF_PACKAGES = ("transformers.", "diffusers.")
# Loads that apply ``_keep_in_fp32_modules``; ``from_config`` builds every module in one dtype.
_KEEPING_LOADERS = frozenset({"from_pretrained", "from_single_file"})


def hf_load_of(expr: cst.BaseExpression, ctx) -> HfLoad | None:
    """The transformers / diffusers load that made ``expr``, if any (``from_config`` keeps
    nothing in float32, so a cast after it is an ordinary model cast)."""
    call = loader_of(expr, ctx)
    if call is None or call.func.attr.value not in _KEEPING_LOADERS:  # type: ignore[attr-defined]
        return None
    qualname = loader_class(call, ctx)
    if not qualname.startswith(_HF_PACKAGES):
        return None
    name = qualname.rsplit(".", 1)[-1]
    keep: tuple[str, ...] | None = None
    if name.startswith("Auto") and not name.startswith("Autoencoder"):
        if _remote_checkpoint(call, ctx):
            keep = ()  # the checkpoint's own model code, which the table cannot speak for
    elif qualname.startswith("transformers."):
        keep = KEEP_IN_FP32.get(name, ())
    elif "Pipeline" not in name:  # a pipeline holds models of any class (T5 text encoders)
        keep = DIFFUSERS_KEEP_IN_FP32.get(name, ())
    return HfLoad(call, qualname, keep)


def _remote_checkpoint(call: cst.Call, ctx) -> bool:
    """``AutoModel.from_pretrained("org/name", trust_remote_code=True)``: a named checkpoint
    that needs its own model code. transformers' classes that keep modules in float32 (T5,
    BLIP-2, RWKV...) load without remote code, so the table has nothing to say — unless the name
    says it is one of those (``"google/flan-t5-xl"``). A generic loader passing
    ``trust_remote_code=True`` for any path (a variable) still counts."""
    if literal_bool(argument(call, "trust_remote_code"), default=False) is not True:
        return False
    checkpoint = argument(call, "pretrained_model_name_or_path", 0)
    values = ctx.names.values(checkpoint.value) if type(checkpoint) is cst.Name else [checkpoint]
    names = [v.evaluated_value for v in values if isinstance(v, cst.SimpleString)]
    if not values or len(names) != len(values):
        return False
    return not any(family in _letters(name) for name in names for family in _keeping_families())


def _letters(text: object) -> str:
    return "".join(c for c in str(text).lower() if c.isalnum())


@cache
def _keeping_families() -> frozenset[str]:
    """The model families whose transformers classes keep modules in float32, as checkpoint names
    write them (``T5ForConditionalGeneration`` → ``t5``, ``Blip2Model`` → ``blip2``)."""
    head = re.compile(r"(.+?)(?:PreTrained|For[A-Z]|Model|Encoder|Decoder|Stack|$)")
    return frozenset(
        _letters(found.group(1))
        for name, kept in KEEP_IN_FP32.items()
        if kept and (found := head.match(name))
    )


class CastFacts(Tracker):
    """Records ``casts``, ``classes`` and ``reexports`` facts (see the module docstring)."""

    requires = (ReceiverTracker, AutocastTracker)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.casts: list[dict[str, Any]] = []
        ctx.facts["casts"] = self.casts
        self.model_casts: list[dict[str, Any]] = []
        ctx.facts["classes"] = self._classes()
        if ctx.is_package and ctx.module_name:
            ctx.facts["reexports"] = {
                "package": ctx.module_name,
                "names": {
                    name: found[0].qualname
                    for name, found in ctx.names.scopes[0].bindings.items()
                    if len(found) == 1
                    and type(found[0].node) is cst.ImportFrom
                    and found[0].qualname is not None
                },
            }

    def _classes(self) -> list[dict[str, Any]]:
        names = self.ctx.names
        modules = local_module_classes(self.ctx.module, names)
        local = {s.name.value for s in self.ctx.module.body if type(s) is cst.ClassDef}
        prefix = f"{self.ctx.module_name}." if self.ctx.module_name else ""
        out = []
        for statement in self.ctx.module.body:
            if type(statement) is not cst.ClassDef:
                continue
            bases = []
            for base in statement.bases:
                if base.keyword is not None:
                    continue
                if type(base.value) is cst.Name and base.value.value in local:
                    bases.append(prefix + base.value.value)
                elif (qualname := names.qualname(base.value)) is not None:
                    bases.append(qualname)
            name = statement.name.value
            out.append(
                {
                    "name": name,
                    "qualname": prefix + name,
                    "bases": bases,
                    "module": name in modules,
                    "span": self.ctx.span_ref(statement.name, (self.ctx.module, statement)),
                }
            )
        return out

    def visit_Call(self, node: cst.Call) -> None:
        site = cast_of(node, self.ctx.names)
        if site is None:
            if self._halves_modules(node):  # ``model.apply(to_fp16)``
                self._model_cast(node, node.func.value, "apply", False)  # type: ignore[attr-defined]
            return
        if not site.to_fp16:
            dtype = self._dtype_parameter(site)
            if dtype is not None:  # ``def prepare(unet, dtype): unet.to(device, dtype=dtype)``
                self._model_cast(node, site.receiver, site.method, True, own=False, dtype=dtype)
            return
        if follows_fp16_data(self.ctx.stack, self.ctx.names):
            return
        model = self._looped_model(site.receiver)
        if model is not None:  # ``for p in model.parameters(): p.data = p.data.half()``
            self._model_cast(node, model, site.method, site.dtype.maybe)
        kind = self.ctx.get(ReceiverTracker).kind_of(site.receiver)
        if kind is Kind.TENSOR:
            return
        if model is None:
            self._model_cast(node, site.receiver, site.method, site.dtype.maybe, own=False)
        loader = loader_of(site.receiver, self.ctx)
        autocast = self.ctx.get(AutocastTracker)
        self.casts.append(
            {
                "span": self.ctx.span_ref(node),
                "call": short_code(self.ctx, node),
                "method": site.method,
                "dtype": site.dtype.dtype.value,
                "maybe": site.dtype.maybe,
                "autocast": autocast.in_fp16_region,
                "receiver": kind.value,
                "ctor": constructor_of(site.receiver, self.ctx) if loader is None else None,
                "loader": loader_class(loader, self.ctx) if loader is not None else None,
                "device": site.device if site.device != "?" else None,
            }
        )

    # --- casts of a model the project join resolves (``model_casts``) -----------------------
    def _model_cast(
        self,
        node: cst.Call,
        receiver: cst.BaseExpression,
        method: str,
        maybe: bool,
        own: bool = True,
        dtype: list[str] | None = None,
    ) -> None:
        """Record a cast of the model ``receiver`` for the project join: one converting it
        part by part (``own``), a plain cast of a function's parameter (the callers tell
        which class it converts), or a cast to a dtype a parameter gives (``dtype``: the
        callers tell whether it is float16)."""
        receiver = unwrap_chain(receiver)
        param = self._parameter(receiver)
        ctor = constructor_of(receiver, self.ctx) if own or dtype is not None else None
        if (ctor is None and param is None) or (
            dtype is not None and self.ctx.get(ReceiverTracker).kind_of(receiver) is Kind.TENSOR
        ):
            return
        fact: dict[str, Any] = {
            "span": self.ctx.span_ref(node),
            "method": method,
            "maybe": maybe,
            "autocast": self.ctx.get(AutocastTracker).in_fp16_region,
            "ctor": ctor,
        }
        if own:
            fact["parts"] = True  # tensor by tensor: parameters, not buffers
        if param is not None:
            fact["param"] = param
        if dtype is not None:
            fact["dtype"] = dtype
        self.model_casts.append(fact)

    def _dtype_parameter(self, site: CastSite) -> list[str] | None:
        """``[function key, name]`` when a ``.to(...)`` cast takes its dtype from a parameter
        of the enclosing function (``dtype=torch_dtype``, or a positional ``dtype``)."""
        if site.method != "to" or site.dtype is not None or not site.opaque:
            return None
        for arg in site.call.args:
            keyword = arg.keyword.value if arg.keyword is not None else None
            if keyword == "dtype" or (keyword is None and type(arg.value) is cst.Name
                                      and "dtype" in arg.value.value):  # fmt: skip
                return self._parameter(arg.value)
        return None

    def _parameter(self, expr: cst.BaseExpression) -> list[str] | None:
        """``[function key, name]`` when ``expr`` is a parameter of a top-level function or a
        method of a top-level class (keys as ``analysis.exposure`` writes them)."""
        names = self.ctx.names
        if type(expr) is not cst.Name:
            return None
        bindings = names.bindings(expr.value) or []
        if len(bindings) != 1 or type(bindings[0].node) is not cst.Param:
            return None
        scopes, scope = names.scopes, names.scope_of(expr.value)
        prefix = f"{self.ctx.module_name}." if self.ctx.module_name else ""
        if len(scopes) > 1 and scope is scopes[1] and scope.kind == "function":
            return [prefix + scope.node.name.value, expr.value]
        if len(scopes) > 2 and scope is scopes[2] and scopes[1].kind == "class":
            return [f"{prefix}{scopes[1].node.name.value}.{scope.node.name.value}", expr.value]
        return None

    def _looped_model(self, receiver: cst.BaseExpression) -> cst.BaseExpression | None:
        """``model`` when ``receiver`` is (an attribute of) a loop variable over its
        parameters, buffers or modules: ``p.data`` in ``for p in model.parameters()``."""
        while type(receiver) in (cst.Attribute, cst.Subscript):
            receiver = receiver.value  # type: ignore[attr-defined]
        if type(receiver) is not cst.Name:
            return None
        bindings = self.ctx.names.bindings(receiver.value) or []
        if len(bindings) != 1 or type(bindings[0].node) is not cst.For:
            return None
        loop = bindings[0].node.iter  # type: ignore[attr-defined]
        if (
            type(loop) is cst.Call
            and type(loop.func) is cst.Attribute
            and loop.func.attr.value in _MODULE_PARTS
        ):
            return loop.func.value
        return None

    def _halves_modules(self, node: cst.Call) -> bool:
        """``model.apply(fn)`` with ``fn`` a function of this file that casts to float16 (what
        it is given: every submodule in turn)."""
        func = node.func
        if not (
            type(func) is cst.Attribute
            and func.attr.value == "apply"
            and len(node.args) == 1
            and type(node.args[0].value) is cst.Name
        ):
            return False
        bindings = self.ctx.names.bindings(node.args[0].value.value) or []  # type: ignore[attr-defined]
        if len(bindings) != 1 or type(bindings[0].node) is not cst.FunctionDef:
            return False
        for inner in walk(bindings[0].node.body):  # type: ignore[attr-defined]
            if type(inner) is cst.Call:
                site = cast_of(inner, self.ctx.names)
                if site is not None and site.to_fp16:
                    return True
        return False

    def leave_Module(self, node: cst.Module) -> None:
        if self.model_casts:
            self.ctx.facts["model_casts"] = self.model_casts


class ProjectClasses:
    """The project's ``nn.Module`` classes, from every file's ``classes`` and ``reexports``
    facts: a class is a module when its own file shows it, or when a base (through project
    classes, re-exports included) is one."""

    def __init__(self, classes, reexports) -> None:
        self.where: dict[str, tuple[str, list[int]]] = {}
        self._bases: dict[str, list[str]] = {}
        self._local: set[str] = set()
        self._aliases: dict[str, str] = {}
        for path, items in classes:
            for item in items:
                self.where[item["qualname"]] = (path, item["span"])
                self._bases[item["qualname"]] = item["bases"]
                if item["module"]:
                    self._local.add(item["qualname"])
        for _, table in reexports:
            for name, target in table["names"].items():
                self._aliases[f"{table['package']}.{name}"] = target
        self._memo: dict[str, bool] = {}

    def resolve(self, qualname: str | None) -> str | None:
        """The defining qualified name of a project class (following re-exports)."""
        for _ in range(8):
            if qualname is None or qualname in self.where:
                return qualname
            qualname = self._aliases.get(qualname)
        return None

    def is_module(self, qualname: str | None, _seen: frozenset[str] = frozenset()) -> bool:
        found = self.resolve(qualname)
        if found is None or found in _seen:
            return False
        if found not in self._memo:
            self._memo[found] = found in self._local or any(
                base in MODULE_BASES or is_nn_class(base) or self.is_module(base, _seen | {found})
                for base in self._bases.get(found, ())
            )
        return self._memo[found]
