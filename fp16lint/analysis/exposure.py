"""Float16 exposure: can a value be float16 at run time, and why.

Rules ask this instead of guessing from local syntax. The answer comes with a *chain*: the
source locations from a float16 origin to the value (``.half()`` of a model, an fp16 autocast
region, a tensor made float16) through the calls that carry it, across functions and files.

Per file, ``ExposureTracker`` follows, in each top-level function and method of a top-level
class, which parameters every local name depends on (assignments, tuple unpacking, ``for``
targets, augmented assignments) and which names hold float16 (``analysis.flow`` says so, or a
model is called inside an fp16 autocast region, whose output layer autocast runs in float16).
A later reassignment replaces a name's state only for the code after it (the walk is in source
order). Its JSON-able facts:

- ``ctx.facts["functions"]``: ``{key: [parameter, ...]}`` (``module.func``,
  ``module.Class.method``; ``self`` left out);
- ``ctx.facts["calls"]``: calls that pass float16 values or parameters on
  (``{"callee": [kind, name], "in": key, "span": ..., "args": [[slot, state], ...]}``, kind
  ``f`` a function, ``i`` an instance made by ``Class(...)`` (its ``__call__`` or
  ``forward`` runs), ``s`` ``self.name(...)`` (a method, or a submodule the class keeps);
  slot an int or a keyword; state
  ``{"origin": step}`` or ``{"params": [...]}``);
- ``ctx.facts["instance_args"]``: calls passing project instances (``train(Net())``), and the
  classes a parameter is declared to hold (annotation, ``assert isinstance``; callee
  ``["k", key]``); ``ctx.facts["dtype_args"]``: calls giving a parameter a float16 dtype
  (``analysis.index`` resolves casts to it);
- ``ctx.facts["fed"]``: what this file's calls pass each callee (``"kind name"``, the name
  ``.func`` for ``module.func`` of this file's own ``ctx.facts["module"]``):
  ``[maybe, signature, ...]``, ``maybe`` the argument slots they may fill with float16 (``*``:
  a star argument), then each distinct argument signature (``call_guards.signature``: the
  slots given, literals marked); read by ``call_guards`` (casts guarded by parameters) and by
  ``Exposure.callers`` (the constant rules' caller judgement, ``judged()``);
  ``"escaped"``: project callables referenced other than by a call; ``"unresolved"``: method
  names called on receivers it cannot resolve;
  ``"vanish"``: per project callee (``"kind name"``, in full), the slots a call fills with a
  value that can be 0 (``analysis.zeros``, FP304);
- ``ctx.facts["upcast_returns"]``: per function whose every return is no float16 (upcast
  with ``.float()``/``.to(torch.float32)``, an integer) or a project call's result, those
  callees (``"kind name"``; empty: none); a dependency carried through a project call is
  tagged with its callee (``x>i m.Net``, ``GATE``), and the join drops it where the callee
  returns no float16 (``Exposure.live``);
- ``ctx.facts["exposure"]``: sites that per-file rules reported and the project pass judges
  (``{"rule", "span", "origin"}`` or ``{"rule", "span", "fn", "params"}``).

``ExposureTracker.judge(expr)`` answers at the node in hand: ``None`` (float16 is not seen to
reach it), ``Local`` (float16 by this function's own flow, with its origin) or ``Pending``
(float16 when a parameter of the enclosing function is; the project pass decides).

The project pass (``exposure_of(project)``) seeds the parameters of methods that a class made
float16 runs (``analysis.index``: casts, or every module class with ``assume-fp16``) and of the
callees of calls that pass float16 values, then follows the calls that pass parameters on,
to a fixed point. Under autocast, a module's submodules run under it with their parent's
activations as input; a model kept by a trainer that only the project's users build may be any
top-level model of its module. ``chain_for(key, params)`` gives the ``Chain``; ``with_chain`` appends its
clause to a message and ``Chain.related()`` lists its steps as related locations.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.base import Tracker
from fp16lint.analysis.call_guards import fed_callee, given_slots, signature
from fp16lint.analysis.constants import literal_number
from fp16lint.analysis.dtypes import dtype_of
from fp16lint.analysis.flow import Dt, FlowTracker, is_shape, returns_index_pair
from fp16lint.analysis.names import dotted
from fp16lint.analysis.switches import TOKENS as SWITCH_TOKENS
from fp16lint.analysis.switches import argparse_options, condition
from fp16lint.analysis.tree import children
from fp16lint.analysis.zeros import ZeroEvidence
from fp16lint.findings import Finding, Position, Related, Span

_MAX_CHAIN = 8
_DOTTED = re.compile(r"[A-Za-z_][\w.]*")  # a string annotation naming a class
# A dependency carried through a project call is tagged with that call's callee: ``x>i m.Net``
# (the join drops it where every return of the callee is upcast; one tag: the first call)
GATE = ">"
AUTOCAST = "@autocast"  # the pseudo-parameter "this function runs under fp16 autocast"
FORWARDED = "@p "  # an ``instance_args`` entry: the caller's parameter ``key:param``, passed on
FP16_GIVEN = "@float16"  # ``dtype_args``: the slot is given a float16 dtype
_DTYPE_WORDS = ("dtype", "float16", "half", "fp16")
# What a file needs to hold a float16 origin (casts, fp16 dtypes, autocast regions): rules
# judged on the exposure add these to their ``tokens``, so files with origins are read.
ORIGIN_TOKENS = ("half", "float16", "autocast", "fp16", *SWITCH_TOKENS)
_NOT_TENSOR_ATTRIBUTES = frozenset({"shape", "dtype", "device", "ndim", "is_cuda", "requires_grad"})
_NOT_FLOAT_EXPRESSIONS = (cst.Comparison, cst.BooleanOperation, cst.Lambda)
_NOT_CALLEES = ("torch.", "builtins.", "numpy.", "math.", "typing.", "functools.", "os.")
# methods that return the module they are called on
_KEEP_INSTANCE = frozenset({"to", "cuda", "cpu", "train", "eval", "float", "requires_grad_"})


def _slots(call: cst.Call) -> list[tuple[int | str, cst.BaseExpression]]:
    """The call's arguments up to the first ``*``/``**``, each with its slot: the position of a
    positional argument, the name of a keyword one."""
    slots: list[tuple[int | str, cst.BaseExpression]] = []
    position = 0
    for arg in call.args:
        if arg.star:
            break
        if arg.keyword is None:
            slots.append((position, arg.value))
            position += 1
        else:
            slots.append((arg.keyword.value, arg.value))
    return slots


def _dtype_of_value(arg: cst.Arg) -> cst.BaseExpression | None:
    """``x`` in the argument ``dtype=x.dtype``: what is made takes ``x``'s dtype."""
    value = arg.value
    if (
        arg.keyword is not None
        and arg.keyword.value == "dtype"
        and type(value) is cst.Attribute
        and value.attr.value == "dtype"
    ):
        return value.value
    return None


def _collapse(deps: frozenset[str]) -> frozenset[str]:
    """One entry per parameter, so that facts stay small: its one tagged form (``x>i m.Net``:
    the first project call it went through), or the parameter itself where it also reaches
    the value directly or through calls of another callee."""
    if not any(GATE in dep for dep in deps):
        return deps
    forms: dict[str, set[str]] = {}
    for dep in deps:
        forms.setdefault(dep.split(GATE, 1)[0], set()).add(dep)
    return frozenset(next(iter(f)) if len(f) == 1 else base for base, f in forms.items())


@dataclass(frozen=True)
class Local:
    """Float16 by this function's own flow; ``origin`` is a step fact (see ``_step``)."""

    origin: dict[str, Any]


@dataclass(frozen=True)
class Pending:
    """Float16 when one of ``params`` of the function ``key`` is (the project pass decides).
    ``AUTOCAST`` among them: when the function runs under fp16 autocast. ``not_under_autocast``:
    an autocast float32 op made the value, so only a chain outside autocast makes it float16."""

    key: str
    params: tuple[str, ...]
    not_under_autocast: bool = False


Verdict = Local | Pending | None


@dataclass
class _Frame:
    key: str | None  # the function's key; None for the module and nested functions
    deps: dict[str, frozenset[str]]
    origins: dict[str, dict[str, Any]]
    cls: str | None = None  # in a method: its class


class ExposureTracker(Tracker):
    """``ctx.get(ExposureTracker).judge(expr)``; records the call facts of the project join."""

    requires = (FlowTracker, AutocastTracker)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.flow: FlowTracker = ctx.get(FlowTracker)
        self.frames = [_Frame(None, {}, {})]
        self.functions: dict[str, list[str]] = {}
        self.calls: list[dict[str, Any]] = []
        self.sites: list[dict[str, Any]] = []
        self.prefix = f"{ctx.module_name}." if ctx.module_name else ""
        self.torch_attributes: set[str] = set()  # ``self.x = nn.Linear(...)`` in this file
        # the call graph: per function key, the project callees it calls outside autocast
        # regions (``[kind, name, *span]``, once each); calls made inside fp16 regions
        self.callees: dict[str, list[list[Any]]] = {}
        self._callee_seen: set[tuple[str, str, str]] = set()
        self.autocast_calls: list[dict[str, Any]] = []
        # which project instance a parameter or attribute holds: ``self.model = model`` in
        # ``__init__`` (class -> {attribute: parameter}); calls passing instances
        # (``Trainer(GaussianDiffusion(...))``, ``train(model)`` with ``model = Net()``)
        self.attr_params: dict[str, dict[str, str]] = {}
        self.instance_args: list[list[Any]] = []
        self.dtype_args: list[list[Any]] = []  # [callee, [[slot, FP16_GIVEN], ...]]
        # what the calls of this file pass each callee (``"kind name"``): the slots whose
        # value may be float16 (``*``: a star argument), then each argument signature once;
        # project callables referenced other than by a call (callers the graph cannot see);
        # method names called on receivers it cannot resolve (``obj.m(x)``)
        self.fed: dict[str, list[Any]] = {}  # [[maybe slot, ...], signature, ...]
        self._dests: list[str] | None = None  # this file's argparse destinations, when known
        self.escaped: set[tuple[str, str]] = set()
        self.unresolved: set[str] = set()
        self._methods: dict[int, frozenset[str]] = {}
        # per project callee, the slots a call fills with a value that can be 0 (FP304)
        self.zeros = ZeroEvidence(ctx.names, ctx.stack)
        self.vanish: dict[str, list[int | str]] = {}
        # per function key whose every return is no float16 (``.float()``, an int) or the
        # result of a project call: those callees (``_gate``), which must then return none
        self.returns: dict[str, list[str]] = {}
        self._mixed: set[str] = set()

    @property
    def frame(self) -> _Frame:
        return self.frames[-1]

    # --- scopes ------------------------------------------------------------------------------
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        scopes = self.ctx.names.scopes
        params = [*node.params.posonly_params, *node.params.params]
        key = cls = None
        if len(scopes) == 2:
            key = self.prefix + node.name.value
        elif len(scopes) == 3 and scopes[1].kind == "class":
            cls = self.prefix + scopes[1].node.name.value
            key = f"{cls}.{node.name.value}"
            if params and not any(
                type(d.decorator) is cst.Name and d.decorator.value == "staticmethod"
                for d in node.decorators
            ):
                params = params[1:]
        names = [p.name.value for p in [*params, *node.params.kwonly_params]]
        if key is not None:
            self.functions[key] = names
            self._declared(key, node, [*params, *node.params.kwonly_params])
        self.frames.append(_Frame(key, {n: frozenset((n,)) for n in names}, {}, cls))

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.frames.pop()

    def _declared(self, key: str, node: cst.FunctionDef, params: list[cst.Param]) -> None:
        """Record the project classes a parameter is declared to hold, as ``instance_args``
        of the pseudo-callee ``["k", key]``: its annotation (``model: Net``,
        ``Optional[Net]``), or an ``assert isinstance(model, Net)`` heading the body."""
        found: list[list[Any]] = []
        for param in params:
            if param.annotation is not None:
                made = self._declared_class(param.annotation.annotation)
                if made is not None:
                    found.append([param.name.value, made])
        body = node.body.body if type(node.body) is cst.IndentedBlock else ()
        for statement in body:
            line = statement.body[0] if type(statement) is cst.SimpleStatementLine else None
            test = line.test if type(line) is cst.Assert else None
            if (
                type(test) is cst.Call
                and dotted(test.func) == "isinstance"
                and len(test.args) == 2
                and type(test.args[0].value) is cst.Name
            ):
                kinds = test.args[1].value
                elements = (
                    [e.value for e in kinds.elements] if type(kinds) is cst.Tuple else [kinds]
                )
                made = {self._declared_class(e) for e in elements}
                if None not in made:
                    found.append([test.args[0].value.value, "|".join(sorted(made))])
        if found:
            self.instance_args.append([["k", key], found])

    def _declared_class(self, expr: cst.BaseExpression) -> str | None:
        """The project class an annotation names (``Net``, ``Optional[Net]``, ``Net | None``,
        and those written as strings: ``model: "Whisper"`` with the class imported only under
        ``TYPE_CHECKING``)."""
        if type(expr) is cst.SimpleString:
            text = expr.evaluated_value
            if not isinstance(text, str) or not _DOTTED.fullmatch(text.strip()):
                return None
            expr = cst.parse_expression(text.strip())
        if type(expr) is cst.Subscript and dotted(expr.value) in ("Optional", "typing.Optional"):
            expr = expr.slice[0].slice.value  # type: ignore[attr-defined]
        elif (
            type(expr) is cst.BinaryOperation
            and type(expr.operator) is cst.BitOr
            and dotted(expr.right) == "None"
        ):
            expr = expr.left
        if type(expr) not in (cst.Name, cst.Attribute):
            return None
        return self._qualified(expr)

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self.frames.append(_Frame(None, {}, {}))

    def leave_Lambda(self, node: cst.Lambda) -> None:
        self.frames.pop()

    # --- what a value depends on ----------------------------------------------------------
    def _sources(self, expr: cst.BaseExpression) -> tuple[frozenset[str], dict[str, Any] | None]:
        """The parameters ``expr`` depends on, and the origin of a float16 name in it. Parts
        that are no float tensor do not count: attribute names, ``x.shape``/``x.dtype`` (but
        ``dtype=x.dtype`` makes a value of ``x``'s dtype), ``x.size()``, a Hugging Face model's
        float32 ``outputs.loss``, comparisons and ``and``/``or``/``not``
        (``int(x.shape[0]) == 1``)."""
        deps: frozenset[str] = frozenset()
        origin = None
        frame = self.frame
        if not frame.deps and not frame.origins:
            return deps, origin
        stack: list[cst.CSTNode] = [expr]
        while stack:
            node = stack.pop()
            kind = type(node)
            if kind is cst.Name:
                found = frame.deps.get(node.value)
                if found:
                    deps = deps | found
                if origin is None:
                    origin = frame.origins.get(node.value)
            elif kind is cst.Attribute:
                if node.attr.value not in _NOT_TENSOR_ATTRIBUTES and not (
                    self.flow.float32_output(node)
                ):
                    stack.append(node.value)
            elif kind is cst.Call and (gate := self._gate(node)) is not None:
                for part in children(node):  # the call's result: its callee's returns decide
                    inner, found = self._sources(part)
                    deps = deps | {dep if GATE in dep else f"{dep}{GATE}{gate}" for dep in inner}
                    if origin is None:
                        origin = found
            elif kind is cst.Arg and _dtype_of_value(node) is not None:
                stack.append(_dtype_of_value(node))  # ``torch.ones(n, dtype=x.dtype)``: x's
            elif not (
                kind in _NOT_FLOAT_EXPRESSIONS
                or is_shape(node)
                or (kind is cst.UnaryOperation and type(node.operator) is cst.Not)
            ):
                stack.extend(children(node))
        return _collapse(deps), origin

    def _gate(self, call: cst.Call) -> str | None:
        """The project callee a call runs (``model(x)``, ``self.block(x)``, ``helper(x)``),
        as ``"kind name"``: whether its result can be float16 is its returns' (the join's)."""
        func = call.func
        if type(func) is cst.Attribute:
            if func.attr.value == "to" or (
                type(func.value) is cst.Name and func.attr.value in self.torch_attributes
            ):
                return None
        elif type(func) is not cst.Name:
            return None
        callee = self._callee(func)
        return None if callee is None else f"{callee[0]} {callee[1]}"

    def _step(self, node: cst.CSTNode, what: str, text: str = "") -> dict[str, Any]:
        step: dict[str, Any] = {"what": what, "span": self.ctx.span_ref(node)}
        if text:
            step["text"] = text
        return step

    def _region_step(self) -> dict[str, Any] | None:
        """The step of the enabled fp16 autocast region around the node, if any."""
        region = self.ctx.get(AutocastTracker).current
        if region is not None and region.is_fp16 and region.lowers_precision:
            stack = self.ctx.stack
            for index in range(len(stack) - 1, -1, -1):
                if type(stack[index]) in (cst.With, cst.FunctionDef):
                    span = self.ctx.span_ref(region.node, within=tuple(stack[: index + 1]))
                    return {"what": "autocast", "span": span}
        return None

    def _origin_of(self, expr: cst.BaseExpression) -> dict[str, Any] | None:
        """Where a value made float16 at ``expr`` comes from (an autocast region or ``expr``)."""
        region = self._region_step()
        if region is not None:
            return region
        text = self.ctx.code(expr)
        return self._step(expr, "value", text if len(text) <= 30 and "\n" not in text else "")

    def _model_call_in_autocast(self, expr: cst.BaseExpression) -> bool:
        """``model(x)`` / ``self.model(x)`` in an fp16 autocast region: its output layer
        (linear, conv) is on autocast's float16 list."""
        if type(expr) is not cst.Call:
            return False
        region = self.ctx.get(AutocastTracker).current
        if region is None or not region.is_fp16 or not region.lowers_precision:
            return False
        func = expr.func
        if type(func) is cst.Name:
            return (self.ctx.names.qualname(func) or "").startswith(_NOT_CALLEES) is False
        return (
            type(func) is cst.Attribute
            and type(func.value) is cst.Name
            and (func.value.value in ("self", "model"))
        )

    def judge(self, expr: cst.BaseExpression | None) -> Verdict:
        """Can ``expr`` be float16 here, and why (see the module docstring)."""
        if expr is None:
            return None
        dt = self.flow.dtype(expr)
        if dt.safe:
            return None
        deps, origin = self._sources(expr)
        if dt.is16:
            return Local(origin or self._origin_of(expr))
        if origin is not None:
            return Local(origin)
        key = self.frame.key
        if key is not None and dt is Dt.AC16:
            return Pending(key, tuple(sorted(deps | {AUTOCAST})))
        if deps and key is not None:
            return Pending(key, tuple(sorted(deps)), dt is Dt.AC32)
        return None

    def note(
        self,
        rule: str,
        node: cst.CSTNode,
        target: cst.BaseExpression | None,
        weak: bool = False,
        protected: bool = False,
        default: str | None = None,
        zero: bool = False,
        rows: bool = True,
    ) -> None:
        """Note a site a per-file rule reports at ``node`` on the value ``target`` (when one
        expression is it), for ``judged`` to keep with its chain or drop in the project pass.
        ``weak``: the site stands only if float16 reaches it, in library mode too.
        ``protected``: an op on autocast's float32 list runs the site (``F.normalize``'s eps),
        so only float16 from outside autocast counts. ``default``: the parameter of the
        enclosing function whose default the site's constant is (``def f(x, eps=1e-12)``): the
        site stands only where a call leaves it out. ``zero``: in library mode, a site float16
        reaches only by its assumption stands where the value (an epsilon's guarded sum) can
        be 0 (``analysis.zeros``; recorded as 1, 0, or the parameters it vanishes with).
        ``rows=False``: a mask value float16 turns into ``-inf`` silently, with no evidence
        that a whole row can be masked (``mask_use.masks_whole_rows``): in library mode it
        stands only where float16 reaches it by more than the assumption."""
        if target is None:
            return
        site: dict[str, Any] = {"rule": rule, "span": self.ctx.span_ref(node)}
        if weak:
            site["weak"] = True
        if not rows:
            site["rows"] = 0
        key = self.frame.key
        if default is not None and key is not None and default in self.functions[key]:
            site["default"] = default
            site.setdefault("fn", key)
        if zero:
            found = self.zeros.of(target)
            site["zero"] = 1 if isinstance(found, str) else sorted(found or ())
            if found and key is not None:
                site.setdefault("fn", key)
        verdict = self.judge(target)
        if isinstance(verdict, Local):
            site["origin"] = verdict.origin
        elif isinstance(verdict, Pending):
            site["fn"], site["params"] = verdict.key, list(verdict.params)
            if verdict.not_under_autocast or protected:
                site["no_autocast"] = True
        self.sites.append(site)

    # --- bindings --------------------------------------------------------------------------
    def _bind(self, target: cst.BaseExpression, deps: frozenset[str], origin: Any) -> None:
        frame = self.frame
        if type(target) is cst.Name:
            if deps:
                frame.deps[target.value] = deps
            else:
                frame.deps.pop(target.value, None)
            if origin is not None:
                frame.origins[target.value] = origin
            else:
                frame.origins.pop(target.value, None)
        elif type(target) in (cst.Tuple, cst.List):
            for element in target.elements:
                inner = element.value
                self._bind(
                    inner.value if type(inner) is cst.StarredElement else inner, deps, origin
                )

    def _assign(self, targets: list[cst.BaseExpression], value: cst.BaseExpression) -> None:
        if is_shape(value):
            for target in targets:
                self._bind(target, frozenset(), None)  # ``b, n, d = q.shape``: numbers
            return
        deps, origin = self._sources(value)
        dt = self.flow.dtype(value)
        if dt.safe:
            origin = None
        elif origin is None and (dt.is16 or self._model_call_in_autocast(value)):
            origin = self._origin_of(value)
        pairs = returns_index_pair(value)
        for target in targets:
            if pairs and type(target) in (cst.Tuple, cst.List) and target.elements:
                self._bind(target.elements[0].value, deps, origin)
                for element in target.elements[1:]:
                    self._bind(element.value, frozenset(), None)  # indices
            else:
                self._bind(target, deps, origin)

    def leave_Assign(self, node: cst.Assign) -> None:
        self._assign([t.target for t in node.targets], node.value)
        value = node.value
        self._escape(value)
        frame = self.frame
        if (
            type(value) is cst.Name
            and frame.cls is not None
            and frame.key == f"{frame.cls}.__init__"
            and value.value in self.functions[frame.key]
        ):
            for target in node.targets:
                place = target.target
                if type(place) is cst.Attribute and dotted(place.value) == "self":
                    self.attr_params.setdefault(frame.cls, {})[place.attr.value] = value.value
        if self.frame.cls is not None and type(value) is cst.Call:
            for target in node.targets:
                place = target.target
                if (
                    type(place) is cst.Attribute
                    and type(place.value) is cst.Name
                    and place.value.value == "self"
                    and (self.ctx.names.qualname(value.func) or "").startswith("torch.")
                ):
                    self.torch_attributes.add(place.attr.value)

    def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._assign([node.target], node.value)

    def leave_AugAssign(self, node: cst.AugAssign) -> None:
        if type(node.target) is cst.Name:
            deps, origin = self._sources(node.value)
            name = node.target.value
            frame = self.frame
            if deps:
                frame.deps[name] = _collapse(frame.deps.get(name, frozenset()) | deps)
            if origin is not None and name not in frame.origins:
                frame.origins[name] = origin

    def visit_For(self, node: cst.For) -> None:
        deps, origin = self._sources(node.iter)
        self._bind(node.target, deps, origin)

    # --- calls ------------------------------------------------------------------------------
    def callee(self, func: cst.BaseExpression) -> list[str] | None:
        """The call graph's ``[kind, name]`` for a call of ``func`` here, or None."""
        return self._callee(func)

    def _callee(self, func: cst.BaseExpression) -> list[str] | None:
        if (
            type(func) is cst.Attribute
            and func.attr.value == "forward"
            and type(func.value) is cst.Name
            and func.value.value != "self"
        ):
            func = func.value  # ``model.forward(x)`` runs what ``model(x)`` runs
        if type(func) is cst.Name:
            bindings = self.ctx.names.bindings(func.value) or []
            if bindings and all(type(b.node) in (cst.FunctionDef, cst.ClassDef) for b in bindings):
                if (
                    len(self.ctx.names.scopes) > 1
                    and self.ctx.names.scope_of(func.value) is not (self.ctx.names.scopes[0])
                ):
                    return None  # a nested function
                return ["f", self.prefix + func.value]
            made = self._instance(func)
            if made is not None:
                return ["i", made]
            key = self.frame.key
            if key is not None and func.value in self.functions[key] and len(bindings) == 1:
                return ["p", f"{key}:{func.value}"]  # ``def train(model): model(x)``
            made = self._qualified(func)
            return ["f", made] if made is not None else None
        if type(func) is cst.Attribute and type(func.value) is cst.Name:
            if func.value.value == "self":
                cls = self.frame.cls
                return ["s", f"{cls}.{func.attr.value}"] if cls is not None else None
            made = self._qualified(func)
            return ["f", made] if made is not None else None
        return None

    def _instance(self, name: cst.Name) -> str | None:
        """What ``name`` holds when every value bound to it is a call: the project callables
        made it, alternatives joined by ``|`` (``model = Net().to(device)``, then maybe
        ``model = DDP(model)``; the project pass keeps the project classes)."""
        values = [
            _unpacked(b.node, name.value) if b.value is None and b.qualname is None else b.value
            for b in self.ctx.names.bindings(name.value) or ()
        ]
        if not values or not all(type(v) is cst.Call for v in values):
            return None
        made = {self._made_by(value) for value in values} - {None}  # type: ignore[arg-type]
        return "|".join(sorted(made)) if made else None  # type: ignore[arg-type]

    def _made_by(self, call: cst.Call) -> str | None:
        """The project callable a call runs, through ``Net().to(device)`` (same instance);
        ``module.*`` for a builder looked up in a module's namespace by a run-time name
        (``vits.__dict__[args.arch](...)``: any of the module's builders)."""
        while (
            type(call.func) is cst.Attribute
            and type(call.func.value) is cst.Call
            and call.func.attr.value in _KEEP_INSTANCE
        ):
            call = call.func.value
        func = call.func
        if (
            type(func) is cst.Subscript
            and type(func.value) is cst.Attribute
            and func.value.attr.value == "__dict__"
        ):
            module = self._qualified(func.value.value)
            return f"{module}.*" if module is not None else None
        return self._qualified(func)

    def _owner_key(self) -> str | None:
        return next((f.key for f in reversed(self.frames) if f.key is not None), None)

    def _qualified(self, func: cst.BaseExpression) -> str | None:
        if type(func) is cst.Name:
            bindings = self.ctx.names.bindings(func.value) or []
            if bindings and all(type(b.node) in (cst.FunctionDef, cst.ClassDef) for b in bindings):
                return self.prefix + func.value
        name = self.ctx.names.qualname(func)
        if name is None or name.startswith(_NOT_CALLEES):
            return None
        return name

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if type(func) is cst.Attribute and (
            func.attr.value == "to"
            or (type(func.value) is cst.Name and func.attr.value in self.torch_attributes)
        ):
            return  # a device move, or a torch module kept on ``self`` (``self.proj(x)``)
        callee = self._callee(func)
        if callee is None:
            if (
                type(func) is cst.Attribute
                and dotted(func.value) != "self"
                and self.ctx.names.qualname(func) is None  # ``torch.stft`` is no project method
            ):
                self.unresolved.add(func.attr.value)
            return
        self._graph(node, callee)
        args = []
        for slot, value in _slots(node):
            state = self._state(value)
            if state is not None:
                args.append([slot, state])
        self._fed(node, callee, {slot for slot, state in args if "params" in state})
        if not node.args:
            return
        self._instance_args(node, callee)
        self._dtype_args(node, callee)
        if not args:
            return
        record = {"callee": callee, "span": self.ctx.span_ref(node), "args": args}
        if self.frame.key is not None:
            record["in"] = self.frame.key
        region = self.ctx.get(AutocastTracker).current
        if region is not None and region.is_fp16 and region.lowers_precision:
            record["autocast"] = region.device or "cuda"
        self.calls.append(record)

    def _graph(self, node: cst.Call, callee: list[str]) -> None:
        """Record the call in the call graph: a seed when inside an fp16 autocast region,
        nothing inside a region that turns it off (or runs bfloat16)."""
        tracker = self.ctx.get(AutocastTracker)
        region = tracker.current
        if region is None and tracker.returned and tracker.returned[-1][0] is not node:
            opened, function = tracker.returned[-1]  # the project join decides: it may be fp16
            stack = self.ctx.stack
            index = next(
                i
                for i in range(len(stack) - 1, -1, -1)
                if type(stack[i]) is cst.With and any(w.item is opened for w in stack[i].items)
            )
            self.autocast_calls.append(
                {"callee": callee, "span": self.ctx.span_ref(node), "via": function,
                 "region": self.ctx.span_ref(opened, within=tuple(stack[: index + 1]))}
            )  # fmt: skip
        if region is not None:
            step = self._region_step()
            if step is not None:
                self.autocast_calls.append(
                    {
                        "callee": callee,
                        "span": self.ctx.span_ref(node),
                        "region": step["span"],
                        "device": region.device or "cuda",
                    }
                )
            return
        key = self._owner_key()
        if key is None or (key, *callee) in self._callee_seen or self._constructs(node.func):
            return
        self._callee_seen.add((key, *callee))
        # the ref itself (filled after the walk), not a copy of its zeros
        self.callees.setdefault(key, []).append([*callee, self.ctx.span_ref(node)])

    def _constructs(self, func: cst.BaseExpression) -> bool:
        """``func`` names a class of this file: the call graph's autocast pass runs no
        constructor (``Exposure.resolve`` finds none), so its span is not asked for."""
        if type(func) is not cst.Name:
            return False
        bindings = self.ctx.names.bindings(func.value) or []
        return bool(bindings) and all(type(b.node) is cst.ClassDef for b in bindings)

    def _fed(self, node: cst.Call, callee: list[str], passed: set[int | str]) -> None:
        """Add the call to ``fed``: which slots may hold float16 by this function's own flow
        (not through its parameters: ``passed``, which ``calls`` records), and its argument
        signature."""
        maybe: set[int | str] = set()
        if any(arg.star for arg in node.args):
            maybe.add("*")
            if self._dests is None and any(arg.star == "**" for arg in node.args):
                options, complete = argparse_options(self.ctx.module, self.ctx.text)
                self._dests = list(options) if complete else []
        vanish: set[int | str] = set()
        for slot, value in _slots(node):
            if literal_number(value) is not None:
                continue
            if isinstance(self.zeros.of(value), str):
                vanish.add(slot)
            if slot not in passed and not self.flow.dtype(value).safe:
                maybe.add(slot)
        kind, name = callee
        if vanish:
            slots = self.vanish.setdefault(f"{kind} {name}", [])
            slots[:] = sorted(set(slots) | vanish, key=str)
        if self.prefix and name.startswith(self.prefix):
            name = name[len(self.prefix) - 1 :]  # ``.run``: this module's (``fed_callee``)
        known = self.fed.setdefault(f"{kind} {name}", [[]])
        if maybe - set(known[0]):
            known[0] = sorted(set(known[0]) | maybe, key=str)
        sig = signature(node, self._dests)
        if sig not in known:
            known.append(sig)

    def _escape(self, expr: cst.BaseExpression | None) -> None:
        """Record a project function or method ``expr`` names outside a call's callee
        (``partial(f, ...)``, ``self.fn = self.method``, ``{"l1": l1}``): its callers are unseen."""
        kind = type(expr)
        if kind in (cst.Tuple, cst.List, cst.Set):
            for element in expr.elements:
                self._escape(element.value)
        elif kind is cst.Dict:
            for element in expr.elements:
                self._escape(getattr(element, "value", None))
        elif kind is cst.IfExp:
            self._escape(expr.body)
            self._escape(expr.orelse)
        elif kind is cst.Name:
            bindings = self.ctx.names.bindings(expr.value) or []
            if bindings and all(type(b.node) is cst.FunctionDef for b in bindings):
                self.escaped.add(("f", self.prefix + expr.value))
            elif bindings and all(b.qualname for b in bindings):
                name = self._qualified(expr)
                if name is not None:
                    self.escaped.add(("f", name))
        elif kind is cst.Attribute:
            if dotted(expr.value) == "self":
                cls = self.frame.cls
                if cls is not None and expr.attr.value in self._class_methods():
                    self.escaped.add(("s", f"{cls}.{expr.attr.value}"))
            elif type(expr.value) is cst.Name:
                name = self._qualified(expr)
                if name is not None:
                    self.escaped.add(("f", name))

    def _class_methods(self) -> frozenset[str]:
        """The methods the enclosing top-level class defines."""
        node = self.ctx.names.scopes[1].node
        found = self._methods.get(id(node))
        if found is None:
            body = node.body.body if type(node.body) is cst.IndentedBlock else ()
            found = frozenset(s.name.value for s in body if type(s) is cst.FunctionDef)
            self._methods[id(node)] = found
        return found

    def visit_Arg(self, node: cst.Arg) -> None:
        self._escape(node.value)

    def visit_Return(self, node: cst.Return) -> None:
        self._escape(node.value)
        key = self.frame.key
        if key is None or key in self._mixed or node.value is None:
            return
        value = node.value
        gate = self._gate(value) if type(value) is cst.Call else None
        if gate is not None:
            delegates = self.returns.setdefault(key, [])
            if gate not in delegates:
                delegates.append(gate)
        elif self.flow.dtype(value).safe:
            self.returns.setdefault(key, [])
        else:
            self._mixed.add(key)
            self.returns.pop(key, None)

    def visit_Param(self, node: cst.Param) -> None:
        self._escape(node.default)

    def _instance_args(self, node: cst.Call, callee: list[str]) -> None:
        """Record the arguments of ``node`` that are project instances (``Trainer(model)``)."""
        if callee[0] == "p":
            return
        found = []
        for slot, value in _slots(node):
            made = self._instance(value) if type(value) is cst.Name else None
            if made is None and type(value) is cst.Call:
                made = self._made_by(value)  # ``Trainer(Net())``
            if made is None and type(value) is cst.Name:
                made = self._forwarded(value)  # ``def train(model): step(model, x)``
            if made is not None:
                found.append([slot, made])
        if found:
            self.instance_args.append([callee, found])

    def _forwarded(self, name: cst.Name) -> str | None:
        """``@p key:param`` for a parameter of the current function passed on unchanged: it
        holds what its own callers give (``_instances`` follows it)."""
        key = self.frame.key
        if key is None or name.value not in self.functions[key]:
            return None
        bindings = self.ctx.names.bindings(name.value) or []
        return f"{FORWARDED}{key}:{name.value}" if len(bindings) == 1 else None

    def _dtype_args(self, node: cst.Call, callee: list[str]) -> None:
        """Record the slots of ``node`` given a float16 dtype (``prepare(unet,
        dtype=weight_dtype)``, ``weight_dtype`` float16 on some branch): a cast to that
        parameter's dtype is a float16 cast (``index``)."""
        found = []
        for slot, value in _slots(node):
            if type(value) not in (cst.Name, cst.Attribute):
                continue
            text = dotted(value) or ""
            if not any(w in text or w in str(slot) for w in _DTYPE_WORDS):
                continue
            fact = dtype_of(value, self.ctx.names)
            if fact is not None and fact.is_fp16:
                found.append([slot, FP16_GIVEN])
        if found:
            self.dtype_args.append([callee, found])

    def _state(self, value: cst.BaseExpression) -> dict[str, Any] | None:
        if type(value) in (cst.Integer, cst.Float, cst.SimpleString, cst.Lambda):
            return None
        deps, origin = self._sources(value)
        if not deps and origin is None and not self._maybe_origin(value):
            return None
        dt = self.flow.dtype(value)
        if dt.safe:
            return None
        if origin is not None or dt.is16 or self._model_call_in_autocast(value):
            return {"origin": origin or self._origin_of(value)}
        if self.frame.key is None:
            return None
        if dt is Dt.AC16:
            return {"params": sorted(deps | {AUTOCAST})}
        if deps:
            return (
                {"params": sorted(deps), "no_autocast": True}
                if dt is Dt.AC32
                else {"params": sorted(deps)}
            )
        return None

    def _maybe_origin(self, value: cst.BaseExpression) -> bool:
        """Cheap test before asking the flow: a call or attribute may make float16 inline, a
        name may hold a value float16 under autocast."""
        return type(value) in (
            cst.Call,
            cst.BinaryOperation,
            cst.Subscript,
            cst.Attribute,
            cst.Name,
        )

    def leave_Module(self, node: cst.Module) -> None:
        facts = {
            "functions": self.functions,
            "calls": self.calls,
            "exposure": self.sites,
            "callees": self.callees,
            "autocast_calls": self.autocast_calls,
            "attr_params": self.attr_params,
            "instance_args": self.instance_args,
            "dtype_args": self.dtype_args,
            "fed": self.fed,
            "vanish": self.vanish,
            "upcast_returns": self.returns,
            "module": self.ctx.module_name,  # the prefix of ``fed``'s relative names
            "escaped": sorted(self.escaped),
            "unresolved": sorted(self.unresolved),
        }
        self.ctx.facts.update((name, value) for name, value in facts.items() if value)


# --- the project join -----------------------------------------------------------------------
Step = tuple[str, tuple[int, ...], str]  # (path, span, what happens there)


@dataclass(frozen=True)
class Chain:
    """How float16 reaches a value: ``steps[0]`` is the origin, the rest the calls carrying
    it. ``autocast`` names the device of the enabled autocast region the first call sits in
    (the callees then run under it too, so ops on its float32 list are protected)."""

    steps: tuple[Step, ...]
    autocast: str | None = None

    def then(self, step: Step, autocast: str | None) -> Chain:
        """The chain carried on by the call ``step`` (made in a region of ``autocast``); a
        chain that starts at an autocast region or switch stays under it."""
        inside = self.autocast if len(self.steps) > 1 or self.autocast else autocast
        return Chain((*self.steps, step), inside)

    @property
    def clause(self) -> str:
        """The short clause a finding's message ends with: "float16 here: called from the
        autocast region at train.py:316"."""
        verb = "called from" if len(self.steps) > 1 else "from"
        return f"float16 here: {verb} {self.steps[0][2]}"

    @property
    def assumed(self) -> bool:
        """The chain starts at library mode's assumption (an origin with no place)."""
        return not self.steps[0][0]

    def related(self) -> list[tuple[str, list[int], str]]:
        """The chain as related locations: the origin, then each call that carries float16
        (an origin with no place, ``assume-fp16``, and a step with no place, such as a
        submodule's forward reached under its parent's autocast, are left out: a related
        location needs a line)."""
        path, span, label = self.steps[0]
        out = [(path, list(span), f"float16 origin: {label}")] if path else []
        return out + [(p, list(s), label) for p, s, label in self.steps[1:] if p and s and s[0]]


def _label(path: str, step: dict[str, Any]) -> str:
    line = step["span"][0]
    if step["what"] == "autocast":
        return f"the autocast region at {path}:{line}"
    if step.get("text"):
        return f"`{step['text']}` at {path}:{line}"
    return f"a float16 value at {path}:{line}"


def origin_chain(path: str, step: dict[str, Any]) -> Chain:
    """The one-step chain of a value made float16 in this file."""
    return Chain(((path, tuple(step["span"]), _label(path, step)),))


def with_chain(message: str, chain: Chain | None) -> str:
    """``message`` with the chain's clause appended: the one place every rule formats it."""
    if chain is None:
        return message
    return f"{message.rstrip('.')}; {chain.clause}."


def related(chain: Chain | None) -> list[tuple[str, list[int], str]]:
    return chain.related() if chain is not None else []


class Exposure:
    """Which parameters of which functions can be float16, each with its chain."""

    def __init__(self, project: Any):
        from fp16lint.analysis.index import index_of  # the index's trackers read this module

        self.index = index_of(project)
        self.functions: dict[str, list[str]] = {}
        self.calls_in: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.exposed: dict[str, dict[str, Chain]] = {}
        self.sites: dict[tuple[str, str, int, int], tuple[str, dict[str, Any]]] = {}
        self.callees: dict[str, tuple[str, list[list[Any]]]] = {}
        self.attr_params: dict[str, dict[str, str]] = {}
        instance_args: list[list[Any]] = []
        self._given: list[tuple[list[str], list[Any]]] = []  # callee, [maybe, sig, ...]
        self._escaped: list[list[str]] = []
        self._vanish: list[tuple[list[str], list[int | str]]] = []
        self.unresolved: set[str] = set()
        self.returns: dict[str, list[str]] = {}
        self._no_fp16: dict[str, bool] = {}
        self._overrides: dict[str, list[str]] = {}  # ``_run_keys`` per ``self.m`` callee
        seeds: list[tuple[str, dict[str, Any]]] = []
        regions: list[tuple[str, dict[str, Any]]] = []
        entries = [(path, e) for path, e in self.index.entries if e["kind"] == "autocast"]
        for path, summary in project.summaries.items():
            facts = summary.facts
            self.functions.update(facts.get("functions", {}))
            for call in facts.get("calls", ()):
                if "in" in call:
                    self.calls_in.setdefault(call["in"], []).append((path, call))
                seeds.append((path, call))
            for site in facts.get("exposure", ()):
                self.sites[(site["rule"], path, site["span"][0], site["span"][1])] = (path, site)
            for key, called in facts.get("callees", {}).items():
                self.callees[key] = (path, called)
            regions.extend((path, call) for call in facts.get("autocast_calls", ()))
            self.attr_params.update(facts.get("attr_params", {}))
            instance_args.extend(facts.get("instance_args", ()))
            for key, slots in facts.get("fed", {}).items():
                self._given.append((list(fed_callee(key, facts.get("module"))), slots))
            self._escaped.extend(facts.get("escaped", ()))
            self._vanish.extend((c.split(" ", 1), v) for c, v in facts.get("vanish", {}).items())
            self.unresolved.update(facts.get("unresolved", ()))
            self.returns.update(facts.get("upcast_returns", {}))
        self.instances: dict[tuple[str, str], set[str]] = {}
        self.instances = self._instances(instance_args)
        queue: deque[str] = deque()
        self._autocast_seeds(regions, entries, queue)
        for cls, reason in self.index.resident.items():
            if reason.cast is None:
                step: Step = ("", (1, 1, 1, 1), "`assume-fp16`")
            else:
                cast, root = reason.cast, reason.root.rsplit(".", 1)[-1]
                label = f"{cast.spelling} of `{root}` at {cast.path}:{cast.span[0]}{cast.given}"
                step = (cast.path, tuple(cast.span), label)
            for owner, method in self.index.reached(cls):
                key = f"{owner}.{method}"
                for param in self.functions.get(key, ()):
                    self._expose(key, param, Chain((step,)), queue)
        for path, call in seeds:
            for slot, state in call["args"]:
                if "origin" in state:
                    self._pass(path, call, slot, origin_chain(path, state["origin"]), queue)
        while queue:
            key = queue.popleft()
            for path, call in self.calls_in.get(key, ()):
                for slot, state in call["args"]:
                    chain = self.chain_for(
                        key, state.get("params", ()), state.get("no_autocast", False)
                    )
                    if chain is not None and len(chain.steps) < _MAX_CHAIN:
                        self._pass(path, call, slot, chain, queue)
            under = self.exposed.get(key, {}).get(AUTOCAST)
            if under is None or len(under.steps) >= _MAX_CHAIN:
                continue
            if key in self.callees:
                path, called = self.callees[key]
                for kind, name, span in called:
                    self._run_under(path, [kind, name], span, under, queue)
            self._submodules_under(key, under, queue)

    @cached_property
    def callers(self) -> dict[str, tuple[set[str], set[str]] | None]:
        """Per function key, what its project callers give it: the parameters they may pass
        float16 in and the ones every call gives; None when a caller is unseen (the function
        is referenced as a value, or is a method called on a receiver the graph cannot
        resolve) or a call passes ``*args``."""
        out: dict[str, tuple[set[str], set[str]] | None] = {}
        for callee, (maybe, *gives) in self._given:
            for key in self._run_keys(callee):
                if key in out and out[key] is None:
                    continue
                params = self.functions.get(key, [])
                if "*" in maybe:
                    out[key] = None
                    continue
                maybe_params = {_param(params, slot) for slot in maybe} - {None}
                given_params = set(params)
                for sig in gives:
                    given_params &= {_param(params, slot) for slot in given_slots(sig)}
                known = out.get(key)
                if known is not None:
                    maybe_params |= known[0]
                    given_params &= known[1]
                out[key] = (maybe_params, given_params)  # type: ignore[assignment]
        for callee in self._escaped:
            key = self._runs(callee)
            if key is not None:
                out[key] = None
        for key in out:
            owner, _, method = key.rpartition(".")
            if owner in self.index.classes and method in self.unresolved:
                out[key] = None
        return out

    @cached_property
    def open(self) -> set[tuple[str, str]]:
        """The parameters ``(key, name)`` that may be float16 by what their callers pass: a
        value their own flow does not show float32, or a parameter of the caller that is
        open itself (to a fixed point). Functions whose callers are not all seen are left out
        (``callers_avoid`` keeps them)."""
        callers = self.callers
        out = {(key, param) for key, found in callers.items() if found for param in found[0]}
        passes: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for caller, calls in self.calls_in.items():
            for _, call in calls:
                for key in self._run_keys(call["callee"]):
                    for slot, state in call["args"]:
                        param = _param(self.functions.get(key, []), slot)
                        if param is None or callers.get(key) is None:
                            continue
                        for source in self.live(state.get("params", ())):
                            if source == AUTOCAST or callers.get(caller) is None:
                                out.add((key, param))
                            else:
                                passes.setdefault((caller, source), []).append((key, param))
        queue = deque(out)
        while queue:
            for found in passes.get(queue.popleft(), ()):
                if found not in out:
                    out.add(found)
                    queue.append(found)
        return out

    @cached_property
    def vanishing(self) -> set[tuple[str, str]]:
        """The parameters ``(key, name)`` some project call fills with a value that can be 0
        (``analysis.zeros``)."""
        out = set()
        for callee, slots in self._vanish:
            key = self._runs(callee)
            for slot in slots:
                param = _param(self.functions.get(key or "", []), slot)
                if param is not None:
                    out.add((key, param))
        return out

    def may_vanish(self, record: dict[str, Any]) -> bool:
        """A noted site's value can be 0: by its own evidence, or a call passes a value
        that can be in a parameter it vanishes with."""
        zero = record["zero"]
        if zero == 1:
            return True
        return bool(zero) and any((record.get("fn"), param) in self.vanishing for param in zero)

    def callers_avoid(self, key: str | None, params: Any) -> bool:
        """``key`` has project callers, all seen, and none passes float16 in ``params``."""
        if self.callers.get(key or "") is None or AUTOCAST in params:
            return False
        return not any((key, param) in self.open for param in self.live(params))

    def callers_give(self, key: str | None, param: str) -> bool:
        """``key`` has project callers, all seen, and every one gives ``param``."""
        found = self.callers.get(key or "")
        return found is not None and param in found[1]

    def _autocast_seeds(
        self,
        regions: list[tuple[str, dict[str, Any]]],
        entries: list[tuple[str, dict[str, Any]]],
        queue: deque[str],
    ) -> None:
        """Functions that run under fp16 autocast: callees of calls made in an enabled fp16
        region, and the methods a framework's fp16 switch runs under it (``fp16_entries``)."""
        for path, call in regions:
            step = {"what": "autocast", "span": call["region"]}
            label, device = _label(path, step), call.get("device")
            if "via" in call:  # ``with scope():``, ``scope = get_autocast(...)``
                found = self.index.returned_autocast(call["via"])
                if found is None:
                    continue
                verb = "may return" if found.get("null") else "returns"
                label += f" (`{call['via'].rsplit('.', 1)[-1]}()` {verb} an fp16 autocast)"
                device = found["device"]
            origin = Chain(((path, tuple(call["region"]), label),), device or "cuda")
            self._run_under(path, call["callee"], call["span"], origin, queue)
        for path, entry in entries:
            step = entry["step"]
            label = f"`{step['text']}` at {path}:{step['span'][0]}"
            label += condition(entry.get("when"), entry.get("may"))
            origin = Chain(((path, tuple(step["span"]), label),), "cuda")
            for cls in sorted(self.index.targets(entry["target"][1])):  # a class or a builder
                for method in entry.get("methods", ()):
                    found = self.index.find_method(cls, method)
                    if found is not None:
                        self._expose(f"{found[0]}.{found[1]}", AUTOCAST, origin, queue)

    def _submodules_under(self, key: str, chain: Chain, queue: deque[str]) -> None:
        """A module whose ``forward`` runs under autocast runs its submodules under it too,
        however it calls them (``for block in self.blocks: x = block(x)``). A submodule's
        input is an activation of its parent, which autocast's float16 ops (linear, conv)
        made: its first parameter may be float16 (under autocast, so its float32-list ops
        stay protected)."""
        owner, _, method = key.rpartition(".")
        if method != "forward" or owner not in self.index.classes:
            return
        for defining, sub in self.index.subs_of(owner):
            path = self.index.classes[defining].path
            for made in self.index.targets(sub["cls"]):
                found = self._called(made) if made in self.index.classes else None
                if found is not None:
                    label = f"`{_short_key(found, self.index)}` runs under autocast as a submodule"
                    step = (path, tuple(sub["span"]), label)
                    under = chain.then(step, chain.autocast)
                    self._expose(found, AUTOCAST, under, queue)
                    params = self.functions.get(found)
                    if params:
                        self._expose(found, params[0], under, queue)

    def _run_under(
        self, path: str, callee: list[str], span: list[int], chain: Chain, queue: deque[str]
    ) -> None:
        """The function ``callee`` stands for runs under the autocast of ``chain``; a model
        the callers give as one of several classes (``assert isinstance(m, (A, B))``), each."""
        key = self.resolve(callee)
        keys = [key] if key is not None else self._alternatives(callee)
        if not keys:
            self._users_model_under(path, callee, span, chain, queue)
        for key in keys:
            label = f"`{_short_key(key, self.index)}` runs under autocast here"
            self._expose(
                key, AUTOCAST, chain.then((path, tuple(span), label), chain.autocast), queue
            )

    def _alternatives(self, callee: list[str]) -> list[str]:
        """What calling a parameter (or an attribute ``__init__`` stores it in) that holds one
        of several project classes runs: each class's ``__call__``/``forward``."""
        kind, name = callee
        held: set[str] = set()
        if kind == "p":
            key, _, param = name.partition(":")
            held = self.instances.get((key, param), set())
        elif kind == "s":
            owner, _, attr = name.rpartition(".")
            for cls in self.index.mro(self.index.canonical(owner)):
                param = self.attr_params.get(cls, {}).get(attr)
                if param is not None:
                    held = self.instances.get((f"{cls}.__init__", param), set())
                    break
        return sorted(k for k in map(self._called, held) if k is not None)

    def _users_model_under(
        self, path: str, callee: list[str], span: list[int], chain: Chain, queue: deque[str]
    ) -> None:
        """A model kept by a class that only the project's users build (a trainer given
        ``model`` in ``__init__``, never constructed in the project) and run under autocast
        may be any top-level model defined next to it (its module): those run under it."""
        if callee[0] != "s":
            return
        owner, _, attr = callee[1].rpartition(".")
        owner = self.index.canonical(owner)
        if owner not in self.index.classes or self.index.find_method(owner, attr) is not None:
            return
        for cls in self.index.mro(owner):
            param = self.attr_params.get(cls, {}).get(attr)
            init = f"{cls}.__init__"
            if param is None:
                continue
            if init in self.callers or (init, param) in self.instances:
                return  # the project builds it: its model is what the callers pass
            module = owner.rpartition(".")[0]
            for root in self.index.roots():
                found = self._called(root) if root.rpartition(".")[0] == module else None
                if found is not None:
                    label = (
                        f"`{_short_key(found, self.index)}` runs under autocast here, if it is"
                        f" the `{param}` given to `{cls.rsplit('.', 1)[-1]}`"
                    )
                    step = (path, tuple(span), label)
                    self._expose(found, AUTOCAST, chain.then(step, chain.autocast), queue)
            return

    def _expose(self, key: str, param: str, chain: Chain, queue: deque[str]) -> None:
        params = self.exposed.setdefault(key, {})
        known = params.get(param)
        # a chain outside autocast wins over one inside (it protects fewer ops), then a real
        # origin over library mode's assumption (library mode keeps what default mode finds)
        if known is None or _rank(chain) < _rank(known):
            params[param] = chain
            queue.append(key)

    def _instances(self, records: list[list[Any]]) -> dict[tuple[str, str], set[str]]:
        """``(function key, parameter) -> project classes`` passed to it as instances."""
        out: dict[tuple[str, str], set[str]] = {}
        forwards: list[tuple[tuple[str, str], tuple[str, str]]] = []
        for callee, args in records:
            key = self._target(callee)
            params = self.functions.get(key or "")
            if not params:
                continue
            for slot, made in args:
                param = _param(params, slot)
                if param is None:
                    continue
                if made.startswith(FORWARDED):  # a caller's own parameter, passed on
                    source, _, name = made[len(FORWARDED) :].rpartition(":")
                    forwards.append(((key, param), (source, name)))  # type: ignore[arg-type]
                    continue
                classes = self._classes(made)
                if classes:
                    out.setdefault((key, param), set()).update(classes)  # type: ignore[arg-type]
        for _ in range(_MAX_CHAIN):  # along chains of calls passing it on
            changed = False
            for target, source in forwards:
                held = out.get(source)
                if held and not held <= out.get(target, set()):
                    out.setdefault(target, set()).update(held)
                    changed = True
            if not changed:
                break
        return out

    def _target(self, callee: list[str]) -> str | None:
        """The function a call runs, constructors (``__init__``) included; ``k``: the
        function key itself (a declared parameter class, ``_declared``)."""
        if callee[0] == "k":
            return callee[1]
        if callee[0] in ("f", "i"):
            for name in callee[1].split("|"):
                name = self.index.canonical(name)
                if name in self.index.classes:
                    found = self.index.find_method(name, "__init__")
                    return f"{found[0]}.{found[1]}" if found is not None else None
        return self.resolve(callee)

    def _run_keys(self, callee: list[str]) -> list[str]:
        """The functions a call of ``callee`` may run: the one it resolves to and, for
        ``self.m(...)``, the overrides of ``m`` in project subclasses, which the call runs on
        their instances (``Base.forward`` calls ``self._norm(x.float())``; a subclass defines
        its own ``_norm``)."""
        key = self._runs(callee)
        if key is None:
            return []
        if callee[0] != "s":
            return [key]
        found = self._overrides.get(callee[1])
        if found is None:
            owner, _, method = callee[1].rpartition(".")
            keys = {key}
            for heir in self._heirs.get(self.index.canonical(owner), ()):
                override = self.index.find_method(heir, method)
                if override is not None:
                    keys.add(f"{override[0]}.{override[1]}")
            found = self._overrides[callee[1]] = [key, *sorted(keys - {key})]
        return found

    @cached_property
    def _heirs(self) -> dict[str, list[str]]:
        """Per project class, the project classes deriving from it."""
        out: dict[str, list[str]] = {}
        for cls in self.index.classes:
            for base in self.index.mro(cls)[1:]:
                out.setdefault(base, []).append(cls)
        return out

    def _runs(self, callee: list[str]) -> str | None:
        """The function a call (or a reference) of ``callee`` runs, constructors included."""
        return self._target(callee) if callee[0] == "f" else self.resolve(callee)

    def _classes(self, made: str) -> set[str]:
        """The project classes a call of one of ``made`` (``a|b``) makes."""
        found: set[str] = set()
        for name in made.split("|"):
            found |= {t for t in self.index.targets(name) if t in self.index.classes}
        return found

    def _held(self, key: str, param: str) -> str | None:
        """The project class the parameter holds, when all callers agree on one."""
        classes = self.instances.get((key, param), set())
        return next(iter(classes)) if len(classes) == 1 else None

    def resolve(self, callee: list[str]) -> str | None:
        """The function key a call's callee stands for."""
        kind, name = callee
        index = self.index
        if kind == "p":  # a parameter holding an instance: ``def train(model): model(x)``
            key, _, param = name.partition(":")
            held = self._held(key, param)
            return self._called(held) if held is not None else None
        if kind == "s":
            owner, _, method = name.rpartition(".")
            owner = index.canonical(owner)
            found = index.find_method(owner, method)
            if found is not None:
                return f"{found[0]}.{found[1]}"
            made = [t for _, sub in index.subs_of(owner) if sub["attr"] == method
                    for t in index.targets(sub["cls"])]  # fmt: skip
            if len(made) == 1:
                return self._called(made[0])
            for cls in index.mro(owner):  # ``self.model = model`` in ``__init__``
                param = self.attr_params.get(cls, {}).get(method)
                if param is not None:
                    held = self._held(f"{cls}.__init__", param)
                    return self._called(held) if held is not None else None
            return None
        if kind == "f" and index.canonical(name) in self.functions:
            return index.canonical(name)
        if kind == "i":
            for alternative in name.split("|"):
                found = self._called(index.canonical(alternative))
                if found is not None:
                    return found
        return None

    def _called(self, cls: str) -> str | None:
        """The method that calling an instance of ``cls`` runs: ``__call__``, else ``forward``
        (``cls`` may be a function that returns an instance: ``model = build_model()``)."""
        if cls not in self.index.classes:
            made = self.index.targets(cls)
            if len(made) != 1:
                return None
            cls = next(iter(made))
            if cls not in self.index.classes:
                return None
        for method in ("__call__", "forward"):
            found = self.index.find_method(cls, method)
            if found is not None:
                return f"{found[0]}.{found[1]}"
        return None

    def _pass(
        self, path: str, call: dict[str, Any], slot: int | str, chain: Chain, queue: deque[str]
    ) -> None:
        key = self._runs(call["callee"])
        if key is None:
            return
        param = _param(self.functions.get(key, []), slot)
        if param is not None:
            name = _short_key(key, self.index)
            step = (path, tuple(call["span"]), f"float16 passed to `{name}` here")
            self._expose(key, param, chain.then(step, call.get("autocast")), queue)

    def chain_for(self, key: str | None, params: Any, outside: bool = False) -> Chain | None:
        """The chain by which one of ``params`` of function ``key`` can be float16, or None;
        ``outside``: only a chain outside autocast (the value is float32 under it)."""
        exposed = self.exposed.get(key or "")
        if not exposed:
            return None
        for param in self.live(params):
            chain = exposed.get(param)
            if chain is not None and not (outside and chain.autocast is not None):
                return chain
        return None

    def live(self, params: Any) -> Iterator[str]:
        """The parameters a value depends on, less those that reach it only through a project
        call whose result is no float16 (``returns_float16``): ``logits = model(mel)`` with a
        model whose forward ends in ``.float()`` does not carry ``mel``'s float16."""
        for param in params:
            base, *gates = param.split(GATE)
            if not any(not self.returns_float16(gate) for gate in gates):
                yield base

    def returns_float16(self, gate: str) -> bool:
        """A call of ``gate`` (``"kind name"``, ``ExposureTracker._gate``) may return float16:
        unless the function it runs returns only values that are no float16 (``.float()``,
        ``.to(torch.float32)``, integers) or the results of calls that return none."""
        known = self._no_fp16.get(gate)
        if known is None:
            self._no_fp16[gate] = False  # a recursive call: may return float16
            key = self.resolve(gate.split(" ", 1))  # type: ignore[arg-type]
            delegates = self.returns.get(key or "")
            known = delegates is not None and not any(map(self.returns_float16, delegates))
            self._no_fp16[gate] = known
        return not known

    def site(self, rule: str, path: str, line: int, column: int) -> tuple[str, Chain | None]:
        """For a site a per-file rule noted: ("" not noted, "noted", or "weak"; its chain)."""
        found = self.sites.get((rule, path, line, column))
        if found is None:
            return "", None
        where, site = found
        noted = "weak" if site.get("weak") else "noted"
        if "origin" in site:
            return noted, origin_chain(where, site["origin"])
        return noted, self.record_chain(where, site)

    def record_chain(self, path: str, record: dict[str, Any]) -> Chain | None:
        """The chain of an op site fact (``analysis.hazards``)."""
        if "origin" in record:
            return origin_chain(path, record["origin"])
        return self.chain_for(
            record.get("fn"), record.get("params", ()), record.get("no_autocast", False)
        )


def _unpacked(node: cst.CSTNode | None, name: str) -> cst.BaseExpression | None:
    """The element a tuple assignment gives ``name`` (``model, head = model.cuda(), ...``)."""
    if type(node) is not cst.Assign or len(node.targets) != 1:
        return None
    target, value = node.targets[0].target, node.value
    if type(target) not in (cst.Tuple, cst.List) or type(value) not in (cst.Tuple, cst.List):
        return None
    names, values = target.elements, value.elements  # type: ignore[attr-defined]
    if len(names) != len(values) or any(
        type(e) is cst.StarredElement or type(e.value) is cst.StarredElement
        for e in (*names, *values)
    ):
        return None
    for element, given in zip(names, values, strict=True):
        if type(element.value) is cst.Name and element.value.value == name:
            return given.value
    return None


def _rank(chain: Chain) -> tuple[bool, bool]:
    """Which of two chains to a parameter to keep: the lower (outside autocast, then placed)."""
    return chain.autocast is not None, chain.assumed


def _param(params: list[str], slot: int | str) -> str | None:
    """The parameter a call's slot (a position or a keyword) fills."""
    if isinstance(slot, int):
        return params[slot] if slot < len(params) else None
    return slot if slot in params else None


def _short_key(key: str, index: Any) -> str:
    """``Class.method`` for a method, ``function`` for a function."""
    owner, _, name = key.rpartition(".")
    return f"{owner.rsplit('.', 1)[-1]}.{name}" if owner in index.classes else name


def exposure_of(project: Any) -> Exposure:
    """The one exposure join every project rule shares."""
    return project.derived("exposure", Exposure)


def judged(project: Any, finding: Finding) -> Finding | None:
    """A per-file finding whose site was noted (``ExposureTracker.note``) judged on the
    exposure: with its chain when float16 reaches it; dropped when not, unless
    ``assume-fp16`` (library mode keeps a site its callers may reach with float16, as a
    library's callers are unseen). Dropped in both modes when every project call overrides the
    parameter default its constant comes from. A site noted with ``zero`` that float16 reaches
    only by library mode's assumption stands only where its value can be 0 (``may_vanish``),
    unless ``library-info`` asks for every one; so does a site noted with ``rows`` (a mask
    value whose ``-inf`` is harmless unless a whole row is masked)."""
    start = finding.span.start
    exposure = exposure_of(project)
    noted, chain = exposure.site(finding.code, finding.path, start.line, start.column)
    if not noted:
        return finding
    _, record = exposure.sites[(finding.code, finding.path, start.line, start.column)]
    fn = record.get("fn")
    if "default" in record and exposure.callers_give(fn, record["default"]):
        return None
    settings = project.settings
    library = getattr(settings, "assume_fp16", False)
    if (
        "zero" in record
        and library
        and (chain is None or chain.assumed)
        and not getattr(settings, "library_info", False)
        and not exposure.may_vanish(record)
    ):
        return None  # float16 only by assumption, on a value that is never 0 in practice
    if (
        "rows" in record
        and library
        and (chain is None or chain.assumed)
        and not getattr(settings, "library_info", False)
    ):
        return None  # float16 only by assumption; its -inf masks no whole row seen
    if chain is None:
        if not library or noted == "weak" or _built_or_fed_float32(exposure, record):
            return None
        return finding
    extra = tuple(
        Related(path, Span(Position(*span[:2]), Position(*span[2:4])), message)
        for path, span, message in chain.related()
    )
    return replace(
        finding, message=with_chain(finding.message, chain), related=finding.related + extra
    )


def _built_or_fed_float32(exposure: Exposure, record: dict[str, Any]) -> bool:
    """A site that float16 reaches only through its function's parameters, where those are no
    activations: a constructor's (hyperparameters, and the module is cast only after it is
    built), or a function whose project callers, all seen, pass no float16 in them."""
    fn = record.get("fn")
    if fn is None or "params" not in record:
        return False
    return fn.endswith(".__init__") or exposure.callers_avoid(fn, record["params"])
