"""Where a model cast to float16 goes beyond the function that casts it (FP107's project part).

A model cast in one function and run in another is held by a class attribute
(``self.model = Net().half()`` in ``__init__``), a module global (``model = Net().half()`` at
the top level), or a function's result (``def build(): return Net().half()``, used as
``model = build()``, in this file or another). ``CastFlow`` records, per file, JSON-able facts
for the project pass in ``ctx.facts["cast_flow"]``:

- ``returns``: ``{function qualname: {"cast": cast}}`` for top-level functions every ``return``
  of which gives a model cast to float16 in that function;
- ``uses``: each place a holder is run under an fp16 autocast region (``self.model(x)``,
  ``model.generate(...)``) or its parameters are stepped by a GradScaler
  (``scaler.step(opt)`` with ``opt = AdamW(self.model.parameters())``) in a function other
  than the one that cast it: ``kind`` (``autocast``/``step``), ``span``, ``text``, ``holder``
  (``"self.model"``) and its origin.

An origin is ``{"cast": cast}`` (a cast in this file: ``span``, ``call`` text, ``maybe`` for a
dtype chosen at run time, ``module`` when this file shows the receiver is a module, else
``ctor``, what made it, for the project index to tell) or ``{"call": qualname}`` (the result of
that function, looked up in the project's ``returns``).

Precision first, so a holder's value counts only when nothing leaves it in doubt: an attribute
gets it in ``__init__`` and no other method assigns or casts it (a ``half()``/``export()``
method that casts it is the legitimate "fp16 for export, autocast for training" split); a global
gets it at module level and no function casts it or declares it ``global``; no step that gives
the value is conditional (under ``if``, a loop, ``try``, ``and``/``or``; the
``if __name__ == "__main__":`` block counts as run). A function that assigns or casts the
holder itself decides its dtype there: the same-function case is FP107's per-file check.

A file with no fp16 cast, autocast or GradScaler spelling in its text is skipped (``_TOKENS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from fp16lint.analysis.amp import GradScalerTracker
from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.base import BindingTracker
from fp16lint.analysis.casts import cast_of, constructor_of, loader_of, short_code
from fp16lint.analysis.guards import follows_fp16_data
from fp16lint.analysis.names import dotted
from fp16lint.analysis.receivers import Kind, ReceiverTracker, unwrap_chain
from fp16lint.analysis.training import RUN_METHODS, TrainingTracker, chain_calls

FACT = "cast_flow"
# A file without one of these has no fp16 cast, autocast region or GradScaler to record.
_TOKENS = (".half", "float16", "fp16", "Half", "autocast", "GradScaler")
_STEP_METHODS = frozenset({"step", "unscale_"})
_BRANCHES = frozenset(
    {
        cst.If,
        cst.IfExp,
        cst.For,
        cst.While,
        cst.Try,
        cst.TryStar,
        cst.Match,
        cst.BooleanOperation,
        cst.ListComp,
        cst.SetComp,
        cst.DictComp,
        cst.GeneratorExp,
        cst.Lambda,
    }
)
_NOT_BUILDERS = ("torch.", "builtins.")
_MAX_DEPTH = 4

# A holder: ("attr", id(class), name), ("global", name) or ("local", id(function), name).
Holder = tuple
# An origin: ("cast", id(call)), ("call", qualname), ("opt", ((holder, key), ...)),
# ("holder", holder) (whatever that attribute or global holds), or None (unknown, or no model).
Origin = tuple | None


@dataclass
class _Frame:
    node: cst.CSTNode  # a FunctionDef, or the Module
    owner: cst.ClassDef | None = None  # the class of a method
    self_name: str | None = None
    events: list[tuple] = field(default_factory=list)
    declared_global: set[str] = field(default_factory=set)
    returns: list[Origin] = field(default_factory=list)
    top_level: bool = False
    generator: bool = False

    def sets(self, holder: Holder) -> bool:
        return any(e[0] == "set" and e[1] == holder for e in self.events)


class CastFlow(BindingTracker):
    """Records the ``cast_flow`` facts (see the module docstring)."""

    requires = (ReceiverTracker, AutocastTracker, GradScalerTracker, TrainingTracker)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.frames: list[_Frame] = [_Frame(ctx.module)]
        self.done: list[_Frame] = []
        # id(cast call) -> (call, dtype maybe, receiver is a module, ctor, frame node)
        self.casts: dict[int, tuple[cst.Call, bool, bool, str | None, cst.CSTNode]] = {}
        self._cast_facts: dict[int, dict[str, Any]] = {}
        self._finals: dict[Holder, Origin] = {}
        self.active = any(token in ctx.text for token in _TOKENS)

    @property
    def frame(self) -> _Frame:
        return self.frames[-1]

    # --- scopes -------------------------------------------------------------------------------
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if not self.active:
            return
        scopes = self.ctx.names.scopes
        frame = _Frame(node, top_level=len(scopes) == 2)  # the module's and this function's
        decorators = {dotted(d.decorator) for d in node.decorators}
        if (
            len(scopes) > 1
            and scopes[-2].kind == "class"
            and node.params.params
            and not decorators & {"staticmethod", "classmethod"}
        ):
            frame.owner = scopes[-2].node  # type: ignore[assignment]
            frame.self_name = node.params.params[0].name.value
        self.frames.append(frame)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        if self.active:
            self.done.append(self.frames.pop())

    def visit_Global(self, node: cst.Global) -> None:
        if self.active:
            self.frame.declared_global.update(n.name.value for n in node.names)

    def visit_Yield(self, node: cst.Yield) -> None:
        if self.active:
            self.frame.generator = True

    # --- events -------------------------------------------------------------------------------
    def _holder(self, key: str | None, binding: bool = False) -> Holder | None:
        """The holder ``key`` (``model``, ``self.model``) names here; None for anything else."""
        if key is None or self.ctx.names.scope.kind == "class":
            return None
        frame = self.frame
        head, _, rest = key.partition(".")
        if rest:
            if head == frame.self_name and "." not in rest:
                return ("attr", id(frame.owner), rest)
            return None
        if frame.node is self.ctx.module or key in frame.declared_global:
            return ("global", key)
        if binding:
            return ("local", id(frame.node), key)
        scope = self.ctx.names.scope_of(key)
        if scope is not None and scope.kind == "module":
            return ("global", key)
        if scope is not None and scope.node is frame.node:
            return ("local", id(frame.node), key)
        return None  # a closure's variable

    def _conditional(self) -> bool:
        for node in reversed(self.ctx.stack):
            if type(node) in (cst.FunctionDef, cst.Module):
                return False
            if type(node) in _BRANCHES and not _is_main_guard(node):
                return True
        return False

    def visit_Call(self, node: cst.Call) -> None:
        if not self.active:
            return
        site = cast_of(node, self.ctx.names)
        if site is not None:
            if site.to_fp16:
                self._note_cast(node, site)
            if site.dtype is not None or site.opaque:  # casts a module in place
                holder = self._holder(dotted(unwrap_chain(site.receiver)))
                if holder is not None:
                    origin = ("cast", id(node)) if id(node) in self.casts else None
                    self.frame.events.append(("set", holder, origin, self._conditional()))
            return
        func = node.func
        region = self.ctx.get(AutocastTracker).current
        if region is not None and region.is_fp16:
            run = (
                func.value
                if type(func) is cst.Attribute and func.attr.value in RUN_METHODS
                else func
            )
            key = dotted(run)
            holder = self._holder(key)
            if holder is not None:
                self.frame.events.append(("autocast", holder, node, key))
        if (
            type(func) is cst.Attribute
            and func.attr.value in _STEP_METHODS
            and len(node.args) == 1
            and self.ctx.get(GradScalerTracker).is_scaler(func.value)
        ):
            holder = self._holder(dotted(node.args[0].value))
            if holder is not None:
                self.frame.events.append(("step", holder, node, None))

    def _note_cast(self, node: cst.Call, site) -> None:
        kind = self.ctx.get(ReceiverTracker).kind_of(site.receiver)
        if kind is Kind.TENSOR or follows_fp16_data(self.ctx.stack, self.ctx.names):
            return
        module = kind is Kind.MODULE or loader_of(site.receiver, self.ctx) is not None
        ctor = None if module else constructor_of(site.receiver, self.ctx)
        self.casts[id(node)] = (node, site.dtype.maybe, module, ctor, self.frame.node)

    def bind(self, target: cst.BaseExpression, value: cst.BaseExpression | None) -> None:
        """``value`` None: an element of an unpacked tuple (bound to something unknown)."""
        if not self.active:
            return
        if type(target) in (cst.Tuple, cst.List):
            for element in target.elements:
                self.bind(element.value, None)
            return
        holder = self._holder(dotted(target), binding=True)
        if holder is not None:
            origin = self._origin(value) if value is not None else None
            self.frame.events.append(("set", holder, origin, self._conditional()))

    def leave_Return(self, node: cst.Return) -> None:
        if self.active and self.frame.top_level:
            self.frame.returns.append(self._origin(node.value) if node.value else None)

    def _origin(self, value: cst.BaseExpression) -> Origin:
        """What ``value`` is, here: a cast model, a function's result, an optimizer, or the
        value a holder has."""
        if type(value) is cst.Call:
            owners = self.ctx.get(TrainingTracker).optimized_modules(value)
            if owners is not None:
                keys = [dotted(unwrap_chain(o)) for o in owners]
                return ("opt", tuple((h, k) for k in keys if (h := self._holder(k)) is not None))
        for call in chain_calls(value):
            site = cast_of(call, self.ctx.names)
            if site is not None and (site.dtype is not None or site.opaque):
                return ("cast", id(call)) if id(call) in self.casts else None
        inner = unwrap_chain(value)
        if type(inner) is cst.Call:
            qualname = constructor_of(inner, self.ctx)
            if qualname is None or qualname.startswith(_NOT_BUILDERS):
                return None
            return ("call", qualname)
        holder = self._holder(dotted(inner))
        if holder is None:
            return None
        for event in reversed(self.frame.events):
            if event[0] == "set" and event[1] == holder:
                return None if event[3] else event[2]
        return ("holder", holder) if holder[0] != "local" else None

    # --- the facts ------------------------------------------------------------------------------
    def leave_Module(self, node: cst.Module) -> None:
        if not self.active:
            return
        self.done.append(self.frames[0])
        uses = [use for frame in self.done for use in self._uses(frame)]
        returns = {}
        for frame in self.done:
            found = self._returns(frame)
            if found is not None:
                name = frame.node.name.value  # type: ignore[attr-defined]
                module = self.ctx.module_name
                returns[f"{module}.{name}" if module else name] = found
        if uses or returns:
            self.ctx.facts[FACT] = {"uses": uses, "returns": returns}

    def _final(self, holder: Holder, depth: int = 0) -> Origin:
        """What an attribute or global holds wherever a function uses it without setting it:
        set only in its home (``__init__``, the module body), unconditionally."""
        if holder in self._finals:
            return self._finals[holder]
        self._finals[holder] = None  # a cycle (``a = b``, ``b = a``) stays unknown
        setters = [f for f in self.done if f.sets(holder)]
        if len(setters) != 1 or not self._is_home(setters[0], holder):
            return None
        state: Origin = None
        for event in setters[0].events:
            if event[0] == "set" and event[1] == holder:
                state = None if event[3] else event[2]
        if state is not None and state[0] == "holder" and depth < _MAX_DEPTH:
            state = self._final(state[1], depth + 1)
        self._finals[holder] = state
        return state

    def _is_home(self, frame: _Frame, holder: Holder) -> bool:
        if holder[0] == "global":
            return frame.node is self.ctx.module
        return (
            holder[0] == "attr"
            and id(frame.owner) == holder[1]
            and frame.node.name.value == "__init__"  # type: ignore[attr-defined]
        )

    def _value(self, holder: Holder, local: dict[Holder, Origin], frame: _Frame) -> Origin:
        """What ``holder`` has at this point of ``frame``: set earlier here, or its final value
        when ``frame`` never sets it."""
        if holder in local:
            origin = local[holder]
        elif holder[0] == "local" or frame.sets(holder):
            return None
        else:
            origin = ("holder", holder)
        if origin is not None and origin[0] == "holder":
            origin = self._final(origin[1])
        return origin

    def _uses(self, frame: _Frame) -> list[dict[str, Any]]:
        local: dict[Holder, Origin] = {}
        seen: set[Origin] = set()
        out = []
        for kind, holder, payload, extra in frame.events:
            if kind == "set":
                local[holder] = None if extra else payload
                continue
            candidates = [(holder, extra)]
            if kind == "step":
                opt = self._value(holder, local, frame)
                candidates = list(opt[1]) if opt is not None and opt[0] == "opt" else []
            for owner, key in candidates:
                origin = self._value(owner, local, frame)
                if origin is None or origin[0] not in ("cast", "call") or origin in seen:
                    continue
                if origin[0] == "cast" and self.casts[origin[1]][4] is frame.node:
                    continue  # cast and used in one function: FP107's per-file check
                seen.add(origin)
                out.append(
                    {
                        "kind": kind,
                        "span": self.ctx.span_ref(payload),
                        "text": short_code(self.ctx, payload, 40),
                        "holder": key,
                        **self._origin_fact(origin),
                    }
                )
                break
        return out

    def _returns(self, frame: _Frame) -> dict[str, Any] | None:
        if not frame.top_level or frame.generator or not frame.returns:
            return None
        origins = []
        for origin in frame.returns:
            if origin is not None and origin[0] == "holder":
                origin = self._final(origin[1])
            origins.append(origin)
        if all(o is not None and o[0] == "cast" for o in origins):
            return self._origin_fact(origins[0])
        return None

    def _origin_fact(self, origin: tuple) -> dict[str, Any]:
        if origin[0] == "call":
            return {"call": origin[1]}
        if origin[1] not in self._cast_facts:
            call, maybe, module, ctor, _ = self.casts[origin[1]]
            self._cast_facts[origin[1]] = {
                "span": self.ctx.span_ref(call),
                "call": short_code(self.ctx, call, 40),
                "maybe": maybe,
                "module": module,
                "ctor": ctor,
            }
        return {"cast": self._cast_facts[origin[1]]}


def _is_main_guard(node: cst.CSTNode) -> bool:
    """``if __name__ == "__main__":``, which runs when the file is run as a script."""
    if type(node) is not cst.If or type(node.test) is not cst.Comparison:
        return False
    test = node.test
    return (
        type(test.left) is cst.Name
        and test.left.value == "__name__"
        and len(test.comparisons) == 1
        and type(test.comparisons[0].operator) is cst.Equal
        and type(test.comparisons[0].comparator) is cst.SimpleString
        and test.comparisons[0].comparator.evaluated_value == "__main__"
    )
