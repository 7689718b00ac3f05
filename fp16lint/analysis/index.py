"""The project index: which models run in float16, what they contain, and why.

Per file, ``ModelFacts`` extends the class and cast facts of ``analysis.casts.CastFacts``
(``ctx.facts["classes"]``, ``["casts"]``, ``["reexports"]``) with what the index needs, all
JSON-able:

- per class: ``subs`` — the modules its methods construct and keep
  (``self.x = nn.LayerNorm(...)``, ``self.x = Block(...)``, ``nn.Sequential(...)``,
  ``nn.ModuleList([Block(d) for _ in range(n)])``, ``nn.ModuleDict``, literal
  ``setattr``/``add_module``, lists built up in a local name; a constructor passed as a
  parameter counts by its default, ``norm_layer=nn.LayerNorm``) — and ``methods``: for each,
  the ``self.method(...)`` / ``super().method(...)`` calls it makes, whether it upcasts, and
  ``upcast_calls``: the submodules it runs on an upcast input (``self.norm(x.float())``);
- ``returns``: what each module-level function returns when that is a constructor call
  (``def build_model(): return Encoder(...)``), and the class a ``@property`` returns
  (``Config.norm_class`` returning ``RMSNorm``: ``self.norm = config.norm_class(d)`` with
  ``config: Config`` constructs one);
- ``returned``: what else a module-level function returns that a caller's switch or region
  reads: ``{"strings": [[value, parameter, truthy], ...]}`` (the fp16 switch values it may
  return, ``analysis.switches.returned_strings``) and ``{"autocast": {...}}`` (an autocast
  callable, ``analysis.autocast.returned_autocast``);
- ``aliases``: module-level names bound to another qualified name (``Enc = Encoder``, imports
  in non-package modules; package ``__init__`` imports are ``CastFacts``' ``reexports``);
- ``ops``: the unprotected FP2xx op sites (``analysis.hazards``);
- on a cast fact, ``runs_under_autocast`` when every call of the cast model's name in the same
  scope sits in an enabled autocast region (``m.half()`` then ``with autocast(): m(x)``:
  autocast still runs its float32 ops in float32, FP107 reports the mix).

The project pass joins them once (``index_of(project)``): classes resolved through imports,
relative imports, re-exports and aliases; which ones are ``nn.Module`` subclasses; which class
each fp16 cast converts (``Encoder().half()``, ``m = build_model(); m.to(torch.float16)``,
following a function's return through up to four calls; ``model.apply(to_fp16)``; a cast of
a function's parameter converts what its callers pass there: ``model_casts`` of
``analysis.casts``); and which classes are **fp16-resident** — reached by a cast that is not under autocast, directly or as a (transitive,
inherited) submodule — with the cast that makes them so. With ``assume-fp16`` every module class
is resident. A framework's switch that casts the model it is handed (``fp16_entries`` of kind
``cast``, ``analysis.switches``: DeepSpeed fp16, Lightning ``"16-true"``, ``fp16_full_eval``)
makes its class resident as a cast would, after the casts; it is no cast call, so the cast rules
(FP101, FP108) never see it, and DeepSpeed's, which keeps buffers, spares BatchNorm's running
statistics. A class from a package outside the linted paths is simply unknown.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker, returned_autocast
from fp16lint.analysis.base import Tracker
from fp16lint.analysis.casts import CastFacts, cast_of
from fp16lint.analysis.dtypes import DType
from fp16lint.analysis.exposure import FORWARDED, FP16_GIVEN
from fp16lint.analysis.hazards import HazardTracker
from fp16lint.analysis.names import dotted, self_attribute
from fp16lint.analysis.receivers import MODULE_BASES, is_nn_class, unwrap_chain
from fp16lint.analysis.switches import SwitchTracker, condition, resolved, returned_strings
from fp16lint.analysis.tree import walk
from fp16lint.data.amp_ops import (
    FP32_ACCUMULATING_NORMS,
    OPS_BY_MODULE,
    RISKS,
    UNSAFE_LAYERS,
    UnsafeLayer,
)
from fp16lint.findings import Finding, Severity

_MAX_DEPTH = 8
_SUB_METHODS = frozenset({"add_module", "register_module"})
_LIST_METHODS = frozenset({"append", "extend", "insert"})
_PARTIAL = frozenset({"functools.partial"})


# --- per-file facts --------------------------------------------------------------------------
class ModelFacts(Tracker):
    """Adds ``subs``, ``methods``, ``returns`` and ``aliases`` to the cast/class facts."""

    requires = (CastFacts, HazardTracker, AutocastTracker, SwitchTracker)

    def __init__(self, ctx):
        super().__init__(ctx)
        ctx.facts["module"] = ctx.module_name
        self.classes = {c["name"]: c for c in ctx.facts.get("classes", ())}
        self.returns: dict[str, list[str]] = {}
        self.returned: dict[str, dict[str, Any]] = {}
        self.cls: dict[str, Any] | None = None
        self.method: dict[str, Any] | None = None
        self.method_node: cst.FunctionDef | None = None
        self.self_name = "self"
        self.locals: dict[str, list[dict[str, Any]]] = {}
        self.uses: dict[tuple[int, str], list[bool]] = {}  # (scope, name) -> autocast on
        self.seen_casts: set[int] = set()
        self.named_casts: list[tuple[dict[str, Any], int, str]] = []
        aliases = self._aliases()
        if aliases:
            ctx.facts["aliases"] = aliases

    def _aliases(self) -> dict[str, str]:
        out = {}
        for name, found in self.ctx.names.scopes[0].bindings.items():
            if len(found) != 1:
                continue
            binding = found[0]
            if type(binding.node) is cst.ImportFrom and not self.ctx.is_package:
                target = binding.qualname
            elif type(binding.node) is cst.Assign and isinstance(
                binding.value, (cst.Name, cst.Attribute)
            ):
                target = self._ref(binding.value)
            else:
                continue
            if target is not None and target != self._local(name):
                out[name] = target
        return out

    def _local(self, name: str) -> str:
        return f"{self.ctx.module_name}.{name}" if self.ctx.module_name else name

    def _ref(self, expr: cst.BaseExpression, depth: int = 0) -> str | None:
        """The qualified name a class/function reference stands for (this file's own classes
        and functions as ``module.Name``, through aliases such as ``Net = Classifier``)."""
        if type(expr) is cst.Name and depth < _MAX_DEPTH:
            bindings = self.ctx.names.bindings(expr.value) or []
            if bindings and all(type(b.node) in (cst.ClassDef, cst.FunctionDef) for b in bindings):
                return self._local(expr.value)
            if len(bindings) == 1 and type(bindings[0].value) in (cst.Name, cst.Attribute):
                return self._ref(bindings[0].value, depth + 1)
        return self.ctx.names.qualname(expr)

    def _made_by(self, expr: cst.BaseExpression) -> str | None:
        """What made ``expr``: the callee of ``Cls(...)``, directly or through the value a
        name is bound to (``model = Net(c); return model``)."""
        expr = unwrap_chain(expr)
        if type(expr) is cst.Call:
            return self._ref(expr.func)
        if type(expr) is not cst.Name:
            return None
        made = set()
        for value in self.ctx.names.values(expr.value):
            inner = unwrap_chain(value) if value is not None else None
            if type(inner) is cst.Name and inner.value == expr.value:
                continue  # model = model.eval()
            if type(inner) is not cst.Call:
                return None
            made.add(self._ref(inner.func))
        return made.pop() if len(made) == 1 else None

    # --- scopes ------------------------------------------------------------------------------
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if len(self.ctx.names.scopes) == 2:
            self.cls = self.classes.get(node.name.value)
            if self.cls is not None:
                self.cls.update(subs=[], methods={})

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        if len(self.ctx.names.scopes) == 1:
            self.cls = None

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        scopes = self.ctx.names.scopes
        if self.cls is not None and len(scopes) == 3 and scopes[1].kind == "class":
            self.method = {"calls": [], "upcasts": False}
            self.cls["methods"][node.name.value] = self.method
            self.method_node = node
            params = node.params.params
            self.self_name = params[0].name.value if params else "self"
            self.locals = {}

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        if node is self.method_node:
            self.method = self.method_node = None

    def visit_Return(self, node: cst.Return) -> None:
        scopes = self.ctx.names.scopes
        if self._in_method() and node.value is not None and self._property():
            # ``@property def norm_class(self): return RMSNorm``: ``config.norm_class(d)``
            # makes what the property returns (a class)
            value = node.value
            if (
                type(value) is cst.Call
                and value.args
                and (self.ctx.names.qualname(value.func) in _PARTIAL)
            ):
                value = value.args[0].value  # ``return partial(RMSNorm, eps=...)``
            made = self._ref(value) if type(value) in (cst.Name, cst.Attribute) else None
            if made is not None and self.cls is not None:
                name = f"{self.cls['qualname']}.{self.method_node.name.value}"  # type: ignore[union-attr]
                self.returns.setdefault(name, []).append(made)
        if len(scopes) == 2 and scopes[1].kind == "function" and node.value is not None:
            name = self._local(scopes[1].node.name.value)
            made = self._made_by(node.value)
            if made is not None:
                self.returns.setdefault(name, []).append(made)
            strings = returned_strings(node.value, self.ctx)
            if strings:
                self.returned.setdefault(name, {}).setdefault("strings", []).extend(strings)
            if "autocast" in self.ctx.text:
                found = returned_autocast(node.value, self.ctx)
                if found is not None:
                    known = self.returned.setdefault(name, {}).get("autocast")
                    self.returned[name]["autocast"] = {**found, **(known or {})}

    def _property(self) -> bool:
        node = self.method_node
        return node is not None and any(
            type(d.decorator) is cst.Name and d.decorator.value == "property"
            for d in node.decorators
        )

    def _in_method(self) -> bool:
        return self.method is not None and len(self.ctx.names.scopes) == 3

    # --- what a method constructs -----------------------------------------------------------
    def _ctor(self, call: cst.Call) -> tuple[str, str | None] | None:
        """``(qualified name, parameter)`` of the class or function ``call`` calls; the
        parameter is set when the callee is a parameter's default (``norm_layer(dim)``)."""
        func = call.func
        param = None
        if type(func) is cst.Name:
            bindings = self.ctx.names.bindings(func.value) or []
            if len(bindings) == 1 and type(bindings[0].node) is cst.Param:
                default = bindings[0].node.default
                if default is None:
                    return None
                param, func = func.value, default
        if type(func) is cst.Call and self.ctx.names.qualname(func.func) in _PARTIAL and func.args:
            func = func.args[0].value
        qualname = self._ref(func) or self._annotated(func)
        if qualname is None or qualname.startswith(("builtins.", "math.", "typing.")):
            return None
        if qualname.startswith("torch.") and not is_nn_class(qualname):
            return None
        return qualname, param

    def _annotated(self, func: cst.BaseExpression) -> str | None:
        """``Config.norm_class`` for ``config.norm_class`` with ``config: Config`` a parameter
        (a class chosen by a property of the configuration: ``ModelFacts.visit_Return``)."""
        if type(func) is not cst.Attribute or type(func.value) is not cst.Name:
            return None
        bindings = self.ctx.names.bindings(func.value.value) or []
        if len(bindings) != 1 or type(bindings[0].node) is not cst.Param:
            return None
        annotation = bindings[0].node.annotation
        owner = self._ref(annotation.annotation) if annotation is not None else None
        return f"{owner}.{func.attr.value}" if owner is not None else None

    def _collect(self, expr: cst.BaseExpression) -> list[dict[str, Any]]:
        """The module constructions in ``expr`` (containers, comprehensions, local lists)."""
        found = []
        for node in walk(expr):
            if type(node) is cst.Lambda:
                continue
            if type(node) is cst.Name and node.value in self.locals:
                found.extend(self.locals[node.value])
            elif type(node) is cst.Call and unwrap_chain(node) is node:
                ctor = self._ctor(node)
                if ctor is not None:
                    record = {"cls": ctor[0], "span": self.ctx.span_ref(node)}
                    if ctor[1] is not None:
                        record["param"] = ctor[1]
                    found.append(record)
        return found

    def _add_subs(self, attr: str, expr: cst.BaseExpression) -> None:
        assert self.cls is not None
        for record in self._collect(expr):
            self.cls["subs"].append({"attr": attr, **record})

    def leave_Assign(self, node: cst.Assign) -> None:
        if not self._in_method():
            return
        for target in node.targets:
            attr = self_attribute(target.target, self.self_name)
            if attr is not None:
                self._add_subs(attr, node.value)
            elif type(target.target) is cst.Name:
                self.locals[target.target.value] = self._collect(node.value)

    def leave_AugAssign(self, node: cst.AugAssign) -> None:
        if self._in_method() and type(node.target) is cst.Name and node.target.value in self.locals:
            self.locals[node.target.value].extend(self._collect(node.value))

    # --- casts of models that are then only run under autocast -----------------------------
    def _note_use(self, node: cst.Call) -> None:
        """Record calls ``model(...)`` (is autocast on?) and fp16 casts of a named model."""
        scope = id(self.ctx.names.scope.node)
        if type(node.func) is cst.Name:
            region = self.ctx.get(AutocastTracker).current
            on = region is not None and region.enabled is not False and region.lowers_precision
            self.uses.setdefault((scope, node.func.value), []).append(on)
        casts = self.ctx.facts.get("casts") or []
        if not casts or id(casts[-1]) in self.seen_casts:
            return
        self.seen_casts.add(id(casts[-1]))
        site = cast_of(node, self.ctx.names)
        if site is None or not site.to_fp16:
            return
        name = dotted(unwrap_chain(site.receiver))
        parent = self.ctx.parent()
        if type(parent) is cst.Assign and len(parent.targets) == 1:
            name = dotted(parent.targets[0].target) or name
        if name is not None and "." not in name:
            self.named_casts.append((casts[-1], scope, name))

    def visit_Call(self, node: cst.Call) -> None:
        self._note_use(node)
        if not self._in_method():
            return
        assert self.method is not None
        func = node.func
        if type(func) is cst.Attribute:
            owner, name = func.value, func.attr.value
            if type(owner) is cst.Name and owner.value == self.self_name:
                if name in _SUB_METHODS and len(node.args) >= 2:
                    self._literal_sub(node.args[0].value, node.args[1].value)
                else:
                    self.method["calls"].append(name)
                    if node.args and self._upcast(node.args[0].value):
                        self.method.setdefault("upcast_calls", []).append(name)
            elif type(owner) is cst.Call and dotted(owner.func) == "super":
                self.method["calls"].append(f"super.{name}")
            elif type(owner) is cst.Name and owner.value in self.locals and name in _LIST_METHODS:
                for arg in node.args:
                    self.locals[owner.value].extend(self._collect(arg.value))
            elif name in _LIST_METHODS and self_attribute(owner, self.self_name) is not None:
                for arg in node.args:  # ``self.blocks.append(Block(d))``
                    self._add_subs(owner.attr.value, arg.value)
        elif (
            self.ctx.names.qualname(func) == "builtins.setattr"
            and len(node.args) == 3
            and dotted(node.args[0].value) == self.self_name
        ):
            self._literal_sub(node.args[1].value, node.args[2].value)
        site = cast_of(node, self.ctx.names)
        if (
            site is not None
            and site.dtype is not None
            and site.dtype.dtype in (DType.FP32, DType.FP64)
        ):
            self.method["upcasts"] = True

    def _upcast(self, expr: cst.BaseExpression, depth: int = 0) -> bool:
        """``x.float()``, ``x.to(torch.float32)``, or a name every value of which is one."""
        if type(expr) is cst.Name and depth < 3:
            values = self.ctx.names.values(expr.value)
            return bool(values) and all(v is not None and self._upcast(v, 1) for v in values)
        if type(expr) is not cst.Call:
            return False
        site = cast_of(expr, self.ctx.names)
        return site is not None and site.dtype is not None and site.dtype.dtype is DType.FP32

    def _literal_sub(self, name: cst.BaseExpression, value: cst.BaseExpression) -> None:
        if type(name) is cst.SimpleString and name.prefix.lower() in ("", "r", "u"):
            self._add_subs(name.raw_value, value)

    def leave_Module(self, node: cst.Module) -> None:
        if self.returns:
            self.ctx.facts["returns"] = self.returns
        # an autocast callable counts where one return may open an fp16 region ("device")
        returned = {
            name: found
            for name, found in self.returned.items()
            if "strings" in found or "device" in found.get("autocast", {})
        }
        if returned:
            self.ctx.facts["returned"] = returned
        for cast, scope, name in self.named_casts:
            runs = self.uses.get((scope, name), [])
            if runs and all(runs):
                cast["runs_under_autocast"] = True  # the cast model only runs under autocast


# --- the project index -----------------------------------------------------------------------
@dataclass(frozen=True)
class Cast:
    """A cast of a module to float16 (``analysis.casts`` facts plus where it is)."""

    path: str
    span: tuple[int, ...]
    method: str
    maybe: bool
    autocast: bool  # cast inside an autocast region, or the model only runs under one
    ctor: str | None
    text: str = ""  # a framework's switch (``method == "switch"``): how it reads
    when: str = ""  # a command-line option turns it on (``if args.half:``, a switch's option)
    keeps_buffers: bool = False  # DeepSpeed casts parameters only (buffers keep their dtype)
    may: str = ""  # the switch takes what a function may return (``switches.resolved``)

    @property
    def spelling(self) -> str:
        if self.method == "switch":
            return f"`{self.text}`"
        return {"half": "`.half()`", "to": "`.to(torch.float16)`"}.get(
            self.method, f"`.{self.method}(...)`"
        )

    @property
    def given(self) -> str:
        """ " when --half is given" for a cast a command-line flag turns on."""
        return condition(self.when, self.may)

    @classmethod
    def of_switch(cls, path: str, entry: dict[str, Any]) -> Cast:
        """A framework's fp16 switch that casts the model it is handed (an ``fp16_entries``
        fact of ``analysis.switches``: DeepSpeed fp16, Lightning ``"16-true"``,
        ``fp16_full_eval``)."""
        step = entry["step"]
        return cls(
            path, tuple(step["span"]), "switch", "when" in entry or "may" in entry, False,
            entry["target"][1], step["text"], entry.get("when", ""),
            entry.get("params_only", False), entry.get("may", ""),
        )  # fmt: skip


@dataclass(frozen=True)
class Reason:
    """Why a class runs in float16: the cast and the class it converts (None: assume-fp16)."""

    cast: Cast | None
    root: str

    def because(self) -> str:
        """Completes "... runs in float16 because ..."."""
        if self.cast is None:
            return "`assume-fp16` treats every module class as running in float16"
        cast = self.cast
        where = f"{cast.path}:{cast.span[0]}{cast.given}"
        if cast.method == "switch":
            return f"`{short(self.root)}` is cast to float16 by {cast.spelling} at {where}"
        verb = (
            "may be cast to float16 (when mixed precision is fp16)"
            if self.cast.maybe
            else "is cast"
        )
        return f"`{short(self.root)}` {verb} with {self.cast.spelling} at {where}"

    def related(self) -> list[tuple[str, list[int], str]]:
        if self.cast is None:
            return []
        by = f" by {self.cast.spelling}" if self.cast.method == "switch" else ""
        label = f"`{short(self.root)}` is cast to float16{by} here"
        return [(self.cast.path, list(self.cast.span), label)]


def short(qualname: str) -> str:
    return qualname.rsplit(".", 1)[-1]


@dataclass
class ClassInfo:
    qualname: str
    path: str
    facts: dict[str, Any]

    @property
    def bases(self) -> list[str]:
        return self.facts.get("bases", [])

    @property
    def subs(self) -> list[dict[str, Any]]:
        return self.facts.get("subs", [])

    @property
    def methods(self) -> dict[str, Any]:
        return self.facts.get("methods", {})


@dataclass(frozen=True)
class Layer:
    """An fp16-unsafe layer constructed in a class (FP201), or an op module (FP202)."""

    owner: str  # the class whose method constructs it
    attr: str
    layer: str  # ``torch.nn.LayerNorm``
    path: str
    span: tuple[int, ...]
    param: str | None  # constructed through this parameter's default
    made: str  # what is constructed: the torch class, or a project subclass of it

    @property
    def label(self) -> str:
        kind = f"`nn.{short(self.layer)}`"
        if not self.made.startswith("torch."):
            kind = f"`{short(self.made)}`, an {kind}"
        if self.param is not None:
            kind = f"{kind}, the default of `{self.param}`"
        return f"`{short(self.owner)}.{self.attr}` ({kind})"


@dataclass
class ProjectIndex:
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    returns: dict[str, list[str]] = field(default_factory=dict)
    returned: dict[str, dict[str, Any]] = field(default_factory=dict)  # ModelFacts' "returned"
    entries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # fp16_entries, on
    aliases: dict[str, str] = field(default_factory=dict)
    casts: list[Cast] = field(default_factory=list)
    ops: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, op fact)
    resident: dict[str, Reason] = field(default_factory=dict)
    _module: dict[str, bool] = field(default_factory=dict)
    _mro: dict[str, list[str]] = field(default_factory=dict)
    _roots: list[str] | None = None

    # --- building ------------------------------------------------------------------------------
    @classmethod
    def build(cls, project: Any) -> ProjectIndex:
        index = cls()
        model_casts: list[tuple[str, dict[str, Any]]] = []
        functions: dict[str, list[str]] = {}
        instance_args: list[list[Any]] = []
        dtype_args: list[list[Any]] = []
        for path, summary in project.summaries.items():
            facts = summary.facts
            module = facts.get("module", "")
            for record in facts.get("classes", ()):
                index.classes.setdefault(
                    record["qualname"], ClassInfo(record["qualname"], path, record)
                )
            reexports = facts.get("reexports", {})
            for name, target in {**reexports.get("names", {}), **facts.get("aliases", {})}.items():
                index.aliases[f"{module}.{name}" if module else name] = target
            for name, made in facts.get("returns", {}).items():
                index.returns.setdefault(name, made)
            for record in facts.get("casts", ()):
                index.casts.append(
                    Cast(
                        path,
                        tuple(record["span"]),
                        record["method"],
                        record.get("maybe", False),
                        record.get("autocast", False) or record.get("runs_under_autocast", False),
                        record.get("ctor"),
                        when=record.get("when", ""),
                    )
                )
            model_casts.extend((path, record) for record in facts.get("model_casts", ()))
            functions.update(facts.get("functions", {}))
            instance_args.extend(facts.get("instance_args", ()))
            dtype_args.extend(facts.get("dtype_args", ()))
            index.ops.extend((path, record) for record in facts.get("ops", ()))
            index.returned.update(facts.get("returned", {}))
            index.entries.extend((path, e) for e in facts.get("fp16_entries", ()))
        on = ((path, index._resolved(entry)) for path, entry in index.entries)
        index.entries = [(path, entry) for path, entry in on if entry is not None]
        index._model_casts(model_casts, functions, instance_args, dtype_args)
        switches = [Cast.of_switch(path, e) for path, e in index.entries if e["kind"] == "cast"]
        for cast in index.casts:
            if not cast.autocast:
                for root in index.targets(cast.ctor):
                    index._spread(root, Reason(cast, root))
        for cast in switches:  # after the casts: a class both cast and switched shows its cast
            for root in index.targets(cast.ctor):
                if index.is_module(root):
                    index._spread(root, Reason(cast, root))
        # After the casts and switches: a class one reaches keeps that reason in library mode too.
        if getattr(project.settings, "assume_fp16", False):
            for name in sorted(index.classes):
                if index.is_module(name):
                    index.resident.setdefault(name, Reason(None, name))
        return index

    def _model_casts(
        self,
        records: list[tuple[str, dict[str, Any]]],
        functions: dict[str, list[str]],
        instance_args: list[list[Any]],
        dtype_args: list[list[Any]],
    ) -> None:
        """Add the casts that convert a model part by part (``model.apply(to_fp16)``, a loop
        over its parameters) and those of a function's parameter, one per class the
        function's callers pass there (``def to_half(m): m.half()``, ``to_half(Net())``), or
        to a dtype parameter some caller gives float16 (``dtype_args``)."""
        passed: dict[tuple[str, str], set[str]] = {}
        if records:
            for (kind, name), args in [*instance_args, *dtype_args]:
                key = self.canonical(name) if kind in ("f", "s", "k") else ""
                for slot, made in args:
                    params = functions.get(key, [])
                    param = params[slot] if isinstance(slot, int) and slot < len(params) else slot
                    if param in params and not made.startswith(FORWARDED):
                        passed.setdefault((key, param), set()).update(made.split("|"))
        for path, record in records:
            if "dtype" in record:
                key, param = record["dtype"]
                if FP16_GIVEN not in passed.get((self.canonical(key), param), ()):
                    continue  # no caller gives it float16
            if record["ctor"] is not None:
                made = [record["ctor"]]
            else:
                key, param = record["param"]
                made = sorted(passed.get((self.canonical(key), param), ()))
            for ctor in made:  # a cast part by part converts parameters, not buffers
                self.casts.append(
                    Cast(path, tuple(record["span"]), record["method"], record["maybe"],
                         record["autocast"], ctor, keeps_buffers=record.get("parts", False))
                )  # fmt: skip

    def _resolved(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """A switch entry on in this project (one taking a function's result: when the
        function may return its fp16 value)."""
        returned = entry.get("returned")
        if returned is None:
            return entry
        found = self.returned.get(self.canonical(returned["fn"]), {})
        return resolved(entry, found.get("strings"))

    def returned_autocast(self, function: str) -> dict[str, Any] | None:
        """What ``with f(...)():`` opens when ``function`` is ``f`` (``returned_autocast``)."""
        found = self.returned.get(self.canonical(function), {}).get("autocast")
        return found if found is not None and "device" in found else None

    def _spread(self, root: str, reason: Reason) -> None:
        """Mark ``root`` and its (transitive, inherited) submodule classes resident."""
        queue = deque([root])
        while queue:
            name = queue.popleft()
            if name in self.resident or name not in self.classes:
                continue
            self.resident[name] = reason
            for _, sub in self.subs_of(name):
                queue.extend(t for t in self.targets(sub["cls"]) if t in self.classes)

    # --- resolution ----------------------------------------------------------------------------
    def canonical(self, qualname: str) -> str:
        """``qualname`` after following re-exports and aliases (``pkg.Encoder`` →
        ``pkg.encoder.Encoder``)."""
        for _ in range(_MAX_DEPTH):
            if qualname in self.classes or qualname in self.returns or qualname in self.returned:
                return qualname
            target = self.aliases.get(qualname)
            if target is None:
                parts = qualname.split(".")
                for cut in range(len(parts) - 1, 0, -1):
                    head = ".".join(parts[:cut])
                    if head in self.aliases:
                        target = f"{self.aliases[head]}.{'.'.join(parts[cut:])}"
                        break
            if target is None or target == qualname:
                return qualname
            qualname = target
        return qualname

    def targets(self, qualname: str | None, depth: int = 0) -> set[str]:
        """The classes a call of ``qualname`` makes: the class itself, or what a function
        returns (through up to four calls)."""
        if qualname is None or depth > 4:
            return set()
        if qualname.endswith(".*"):
            return self._registry(qualname[:-2], depth)
        qualname = self.canonical(qualname)
        if qualname in self.classes or qualname.startswith("torch."):
            return {qualname}
        found: set[str] = set()
        for made in self.returns.get(qualname, ()):
            found |= self.targets(made, depth + 1)
        return found

    def _registry(self, module: str, depth: int) -> set[str]:
        """The model classes the builder functions of ``module`` make (a registry looked up
        by a run-time name: ``vits.__dict__[args.arch](...)``); its classes themselves are
        left out (helpers such as ``Block`` are no choice a user makes)."""
        module = self.canonical(module)
        found: set[str] = set()
        for name in self.returns:
            owner, _, short = name.rpartition(".")
            if owner == module and not short.startswith("_"):
                found |= {t for t in self.targets(name, depth + 1) if self.is_module(t)}
        return {t for t in found if t in self.classes}

    def is_module(self, qualname: str, _seen: frozenset = frozenset()) -> bool:
        """An ``nn.Module`` subclass (torch's, or a project class deriving from one)."""
        qualname = self.canonical(qualname)
        if qualname in MODULE_BASES or is_nn_class(qualname):
            return True
        info = self.classes.get(qualname)
        if info is None or qualname in _seen:
            return False
        if qualname not in self._module:
            self._module[qualname] = bool(info.facts.get("module")) or any(
                self.is_module(b, _seen | {qualname}) for b in info.bases
            )
        return self._module[qualname]

    def mro(self, qualname: str) -> list[str]:
        """The project classes ``qualname`` inherits from, itself first (depth first)."""
        if qualname not in self._mro:
            out: list[str] = []
            stack = [qualname]
            while stack and len(out) < 64:
                name = self.canonical(stack.pop())
                if name in self.classes and name not in out:
                    out.append(name)
                    stack.extend(reversed(self.classes[name].bases))
            self._mro[qualname] = out
        return self._mro[qualname]

    def torch_base(self, qualname: str) -> str | None:
        """The ``torch.nn`` class ``qualname`` is or derives from, as ``torch.nn.Name``."""
        for name in [qualname, *(b for c in self.mro(qualname) for b in self.classes[c].bases)]:
            name = self.canonical(name)
            if is_nn_class(name):
                return f"torch.nn.{short(name)}"
        return None

    def subs_of(self, qualname: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(defining class, sub fact)`` for the submodules of ``qualname``, inherited too."""
        for name in self.mro(qualname):
            for sub in self.classes[name].subs:
                yield name, sub

    def unsafe_construction(self, ctor: str) -> tuple[str, str, UnsafeLayer | None] | None:
        """``(class made, torch class, layer risk)`` when constructing ``ctor`` makes an
        fp16-unsafe layer, or (risk None) an ``nn.Softmax``-style op module. A project subclass
        that upcasts in ``forward`` is safe."""
        for target in self.targets(ctor):
            base = self.torch_base(target)
            if base not in UNSAFE_LAYERS and base not in OPS_BY_MODULE:
                continue
            if target in self.classes and self._upcasts(target):
                continue
            return target, base, UNSAFE_LAYERS.get(base)
        return None

    def _runs_upcast(self, qualname: str, attr: str) -> bool:
        """A method of ``qualname`` runs its submodule ``attr`` on an upcast input (a wrapper
        that keeps a norm or a loss in float32)."""
        return any(
            attr in method.get("upcast_calls", ())
            for owner in self.mro(qualname)
            for method in self.classes[owner].methods.values()
        )

    def _upcasts(self, qualname: str) -> bool:
        method = self.find_method(qualname, "forward")
        return method is not None and self.classes[method[0]].methods[method[1]].get(
            "upcasts", False
        )

    def find_method(
        self, qualname: str, name: str, after: str | None = None
    ) -> tuple[str, str] | None:
        order = self.mro(qualname)
        if after is not None and after in order:
            order = order[order.index(after) + 1 :]
        for owner in order:
            if name in self.classes[owner].methods:
                return owner, name
        return None

    def roots(self) -> list[str]:
        """The module classes with a ``forward`` that no project class keeps as a submodule:
        the models a user of the project builds."""
        if self._roots is None:
            kept = {t for c in self.classes for _, sub in self.subs_of(c)
                    for t in self.targets(sub["cls"])}  # fmt: skip
            self._roots = [
                name
                for name in sorted(self.classes)
                if name not in kept
                and self.is_module(name)
                and self.find_method(name, "forward") is not None
            ]
        return self._roots

    def reached(self, qualname: str) -> set[tuple[str, str]]:
        """``(defining class, method)`` pairs that ``forward`` runs, through ``self.m(...)`` and
        ``super().m(...)`` calls."""
        start = self.find_method(qualname, "forward")
        seen: set[tuple[str, str]] = set()
        queue = deque([start] if start else [])
        while queue:
            owner, name = queue.popleft()
            if (owner, name) in seen:
                continue
            seen.add((owner, name))
            for call in self.classes[owner].methods[name].get("calls", ()):
                if call.startswith("super."):
                    found = self.find_method(qualname, call[6:], after=owner)
                else:
                    found = self.find_method(qualname, call)
                if found is not None:
                    queue.append(found)
        return seen

    # --- what runs in float16 --------------------------------------------------------------------
    def layers(
        self, classes: dict[str, Reason] | None = None
    ) -> Iterator[tuple[Layer, UnsafeLayer | str, Reason]]:
        """Each fp16-unsafe layer (or op module, as its torch class name) constructed in a
        resident class, once, with the reason."""
        seen: set[tuple[str, tuple]] = set()
        for name, reason in (classes if classes is not None else self.resident).items():
            for owner, sub in self.subs_of(name):
                key = (self.classes[owner].path, tuple(sub["span"]))
                if key in seen:
                    continue
                found = self.unsafe_construction(sub["cls"])
                if found is None or self._runs_upcast(name, sub["attr"]):
                    continue  # a wrapper runs it on ``x.float()``
                if reason.cast is not None and reason.cast.method == "apply":
                    continue  # ``model.apply(fn)``: ``fn`` may convert some layer types only
                if (
                    reason.cast is not None
                    and reason.cast.keeps_buffers
                    and "BatchNorm" in found[1]
                ):
                    continue  # its risk is its running statistics: buffers this cast keeps
                seen.add(key)
                made, base, risk = found
                layer = Layer(owner, sub["attr"], base, key[0], key[1], sub.get("param"), made)
                yield layer, risk if risk is not None else base, reason

    def resident_ops(
        self, classes: dict[str, Reason] | None = None
    ) -> Iterator[tuple[str, dict[str, Any], Reason | None]]:
        """Each recorded op site that runs in float16: on a float16 tensor (reason None), or in
        a method that a resident class's ``forward`` runs."""
        where: dict[tuple[str, str], Reason] = {}
        for name, reason in (classes if classes is not None else self.resident).items():
            for pair in self.reached(name):
                where.setdefault(pair, reason)
        for path, record in self.ops:
            owner = record.get("owner")
            reason = where.get((owner, record.get("method"))) if owner else None
            if (
                reason is not None
                and record.get("op") in _NORM_KERNELS
                and self.torch_base(owner) in UNSAFE_LAYERS
            ):
                continue  # a norm layer's own kernel call: FP201 reports the layer
            if reason is not None:
                yield path, record, reason
            elif record.get("local") and classes is None:
                yield path, record, None

    def contents_of(
        self, path: str, span: list[int] | tuple[int, ...], inference: bool = False
    ) -> list[str]:
        """What is fp16-unsafe in the model a cast at ``path``/``span`` converts, most severe
        first: labels such as "`x.pow(2).mean(-1)` in `Block.forward`", "`Block.norm`
        (`nn.BatchNorm1d`)" (for FP101/FP501 messages); never the norm layers whose kernels
        accumulate in float32, but BatchNorm, whose float16 running statistics training
        updates. ``inference``: only what fails in a model that is not trained (warnings and
        errors; no BatchNorm)."""
        cast = next(
            (c for c in self.casts if c.path == path and c.span[:2] == tuple(span[:2])), None
        )
        if cast is None:
            return []
        saved, self.resident = self.resident, {}
        try:
            for root in self.targets(cast.ctor):
                self._spread(root, Reason(cast, root))
            classes = self.resident
        finally:
            self.resident = saved
        items = []
        for layer, risk, _ in self.layers(classes):
            if isinstance(risk, str):
                severity = RISKS[OPS_BY_MODULE[risk].risk].severity
            else:
                severity = risk.risk.severity
            if layer.layer in FP32_ACCUMULATING_NORMS and (
                inference or "BatchNorm" not in layer.layer
            ):
                continue  # a float32 kernel; training updates BatchNorm's float16 statistics
            if inference and severity is Severity.INFO:
                continue
            items.append((_RANK[severity], layer.path, layer.span, layer.label))
        for path, record, _ in self.resident_ops(classes):
            severity = _op_severity(record)
            if inference and severity is Severity.INFO:
                continue
            label = f"`{record['text']}` in `{short(record['owner'])}.{record['method']}`"
            items.append((_RANK[severity], path, tuple(record["span"]), label))
        return [label for *_, label in sorted(items)]


_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
_NORM_KERNELS = frozenset({"layer_norm", "group_norm", "rms_norm", "batch_norm", "instance_norm"})


def _op_severity(record: dict[str, Any]) -> Severity:
    if record["rule"] == "FP203":
        return Severity.ERROR
    if record["rule"] in ("FP204", "FP205", "FP206"):
        return Severity.WARNING
    return RISKS[record["risk"]].severity


def index_of(project: Any) -> ProjectIndex:
    """The one project index every project rule shares."""
    return project.derived("index", ProjectIndex.build)


def listing(labels: list[str], limit: int = 5) -> str:
    """ "a, b, c and 2 more" (FP101/FP501 messages); a label repeated (two alike ops in one
    forward) is listed once."""
    labels = list(dict.fromkeys(labels))
    if len(labels) <= limit:
        head, rest = labels, 0
    else:
        head, rest = labels[:limit], len(labels) - limit
    if rest:
        return f"{', '.join(head)} and {rest} more"
    if len(head) <= 1:
        return "".join(head)
    return f"{', '.join(head[:-1])} and {head[-1]}"


def unsafe_contents(
    project: Any,
    path: str,
    span: list[int] | tuple[int, ...],
    limit: int = 5,
    inference: bool = False,
) -> str:
    """For FP101/FP501 messages: "" when the cast model contains nothing fp16-unsafe, else
    e.g. "`Block.bn` (`nn.BatchNorm1d`), `x.pow(2).mean(-1)` in `Block.forward` and 3 more"
    (``inference``: see ``ProjectIndex.contents_of``)."""
    return listing(index_of(project).contents_of(path, span, inference), limit)


def with_unsafe_contents(project: Any, finding: Finding) -> Finding:
    """``finding`` (an FP101/FP501 cast) with the fp16-unsafe layers and ops of the model it
    casts appended to its message; unchanged when there are none."""
    start = finding.span.start
    inside = unsafe_contents(project, finding.path, [start.line, start.column])
    if not inside:
        return finding
    message = f"{finding.message.rstrip('.')}; fp16-unsafe inside it: {inside}."
    return replace(finding, message=message)
