"""Which models are float16 at this point of a function, and what the function does with them.

A model is fp16 after a cast of a known module (``model.half()``, ``model = Net().to(dev,
torch.float16)``, ``unet.to(device, dtype=weight_dtype)`` when ``weight_dtype`` may be fp16) or
a load with an fp16 dtype (``from_pretrained(..., dtype=torch.float16)``), and stops being fp16
when it is cast to another dtype, rebound, or its parameters are upcast
(``cast_training_params(model, dtype=torch.float32)``, a loop over ``model.parameters()`` that
casts them to float32). The walk is in source order, so "at this point" means "after the
statements above it in the same function" — a loop's later statements are not seen going round.

Each function (and the module body) has a ``Frame`` with its fp16 models, the optimizers built
over them, the calls made to them under an fp16 autocast region, GradScaler steps of their
optimizers, and the losses computed under fp16 autocast. Rules read ``frame`` while the walk is
inside the function and in their own ``leave_FunctionDef`` / ``leave_Module`` (which run before
this tracker's).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import libcst as cst

from fp16lint.analysis.amp import grad_scaler_call
from fp16lint.analysis.autocast import AutocastTracker, Region
from fp16lint.analysis.base import BindingTracker
from fp16lint.analysis.calls import argument
from fp16lint.analysis.casts import CastSite, cast_of, loader_of
from fp16lint.analysis.dtypes import DType, DTypeFact, cpu_choice, dtype_of
from fp16lint.analysis.guards import follows_fp16_data
from fp16lint.analysis.names import dotted
from fp16lint.analysis.receivers import Kind, ReceiverTracker, loader_owner, unwrap_chain
from fp16lint.analysis.tree import statements, walk
from fp16lint.data.optimizers import MODEL_OPTIMIZER_FACTORIES, is_optimizer_class

_PARAMETER_METHODS = frozenset({"parameters", "named_parameters"})
RUN_METHODS = frozenset({"forward", "generate"})
_WRAPPERS = frozenset({"torch.compile"})  # ``model = torch.compile(model)`` runs the same model
_LOAD_DTYPE_KEYWORDS = ("dtype", "torch_dtype")
_MAX_DEPTH = 3


@dataclass
class Fp16Model:
    """One way a model became fp16: ``node`` is the cast (or load) call."""

    key: str  # the name that holds it: "model", "self.unet"
    node: cst.Call
    dtype: DTypeFact
    how: str  # "cast" or "load"
    under_autocast: bool = False

    @property
    def spelling(self) -> str:
        return "loaded in float16" if self.how == "load" else "cast to float16"


@dataclass
class Frame:
    node: cst.CSTNode  # the function (or module)
    models: dict[str, Fp16Model] = field(default_factory=dict)
    casts: list[Fp16Model] = field(default_factory=list)  # every fp16 model cast, in order
    optimizers: dict[str, list[Fp16Model]] = field(default_factory=dict)
    autocast_calls: list[tuple[Fp16Model, cst.Call, Region]] = field(default_factory=list)
    scaler_steps: list[tuple[Fp16Model, cst.Call]] = field(default_factory=list)
    fp16_losses: dict[str, Region] = field(default_factory=dict)
    backward_calls: list[tuple[cst.Call, Region]] = field(default_factory=list)
    scaled: bool = False  # a GradScaler (or a framework's scaled backward) is used here
    devices: dict[str, tuple[str, cst.Call]] = field(default_factory=dict)  # literal moves
    # models placed where a device variable may be the CPU (``device_map={"": device}`` with
    # ``device = "cuda" if ... else "cpu"``): key -> (placement, the variable's name)
    cpu_paths: dict[str, tuple[cst.Call, str]] = field(default_factory=dict)


def _definite_fp16(region: Region | None) -> bool:
    return (
        region is not None
        and region.enabled is True
        and region.dtype is not None
        and region.dtype.dtype is DType.FP16
        and not region.dtype.maybe
    )


class TrainingTracker(BindingTracker):
    """``ctx.get(TrainingTracker)``: fp16 models, optimizers and scaled steps per function."""

    requires = (ReceiverTracker, AutocastTracker)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.frames: list[Frame] = [Frame(ctx.module)]
        self._cast_models: dict[int, Fp16Model] = {}  # id(cast call) -> the model it made fp16

    @property
    def frame(self) -> Frame:
        return self.frames[-1]

    # --- queries ----------------------------------------------------------------------------
    def model(self, expr: cst.BaseExpression) -> Fp16Model | None:
        """The fp16 model ``expr`` (a name or ``self.x``) holds here, if any."""
        key = dotted(unwrap_chain(expr))
        if key is None:
            return None
        holder = self.holder(key)
        return holder.models.get(key) if holder is not None else None

    def holder(self, key: str) -> Frame | None:
        """The frame whose name ``key`` is: this function's, or the module's or an enclosing
        function's (``model.generate`` in a closure of the function that made ``model``)."""
        if key in self.frame.models or len(self.frames) == 1:
            return self.frame
        scope = self.ctx.names.scope_of(key.split(".")[0])
        if scope is None or scope.kind not in ("module", "function"):
            return self.frame
        if scope.kind == "module":
            return self.frames[0]
        return next((f for f in reversed(self.frames) if f.node is scope.node), self.frame)

    def called_model(self, call: cst.Call) -> Fp16Model | None:
        """The fp16 model ``call`` runs: ``model(x)``, ``model.generate(...)``."""
        func = call.func
        if type(func) is cst.Attribute and func.attr.value in RUN_METHODS:
            func = func.value
        return self.model(func) if type(func) in (cst.Name, cst.Attribute) else None

    def parameter_owners(
        self, expr: cst.BaseExpression, _depth: int = 0
    ) -> list[cst.BaseExpression]:
        """The modules whose parameters ``expr`` holds: ``model`` in ``model.parameters()``,
        ``filter(lambda p: p.requires_grad, unet.parameters())``, ``[{"params": ...}]``, or a
        name bound to one of those."""
        found: list[cst.BaseExpression] = []
        for node in walk(expr):
            if (
                type(node) is cst.Call
                and type(node.func) is cst.Attribute
                and node.func.attr.value in _PARAMETER_METHODS
            ):
                found.append(node.func.value)
            elif type(node) is cst.Call and type(node.func) is cst.Name and _depth < _MAX_DEPTH:
                found += self._returned_parameters(node)
            elif type(node) is cst.Name and _depth < _MAX_DEPTH and node is not expr:
                for value in self.ctx.names.values(node.value):
                    if value is not None and type(value) is not cst.Lambda:
                        found += self.parameter_owners(value, _depth + 1)
        if type(expr) is cst.Name and _depth < _MAX_DEPTH:
            for value in self.ctx.names.values(expr.value):
                if value is not None:
                    found += self.parameter_owners(value, _depth + 1)
        return found

    def _returned_parameters(self, call: cst.Call) -> list[cst.BaseExpression]:
        """``get_trainable_params(model)``: a function of this file that returns the
        parameters of one of its own parameters (``[p for p in model.parameters() if
        p.requires_grad]``) holds those of the argument it is given."""
        found: list[cst.BaseExpression] = []
        for binding in self.ctx.names.bindings(call.func.value) or ():  # type: ignore[attr-defined]
            function = binding.node
            if type(function) is not cst.FunctionDef:
                continue
            names = [param.name.value for param in function.params.params]
            for statement in statements(function.body, nested_scopes=False):
                if type(statement) is not cst.Return or statement.value is None:
                    continue
                for node in walk(statement.value):
                    if (
                        type(node) is cst.Call
                        and type(node.func) is cst.Attribute
                        and node.func.attr.value in _PARAMETER_METHODS
                        and type(node.func.value) is cst.Name
                        and node.func.value.value in names
                    ):
                        name = node.func.value.value
                        given = argument(call, name, names.index(name))
                        if given is not None:
                            found.append(given)
        return found

    def optimized_modules(self, call: cst.Call) -> list[cst.BaseExpression] | None:
        """For an optimizer construction, the modules whose parameters it optimizes (as far as
        the code shows); None when ``call`` builds no optimizer."""
        qualname = self.ctx.names.qualname(call.func)
        positional = [a.value for a in call.args if a.keyword is None and not a.star]
        if qualname in MODEL_OPTIMIZER_FACTORIES:
            model = self._arg(call, "model_or_params", positional, 0)
            return [model] if model is not None else []
        if not is_optimizer_class(qualname):
            return None
        params = self._arg(call, "params", positional, 0)
        return self.parameter_owners(params) if params is not None else []

    def optimizer_models(self, call: cst.Call) -> list[Fp16Model] | None:
        """For an optimizer construction, the fp16 models it optimizes ([] for none); None when
        ``call`` builds no optimizer."""
        owners = self.optimized_modules(call)
        return self._models(owners) if owners is not None else None

    def _models(self, owners: list[cst.BaseExpression]) -> list[Fp16Model]:
        found: list[Fp16Model] = []
        for owner in owners:
            model = self.model(owner)
            if model is not None and model not in found:
                found.append(model)
        return found

    @staticmethod
    def _arg(call: cst.Call, keyword: str, positional: list, index: int):
        value = argument(call, keyword)
        if value is None and len(positional) > index:
            value = positional[index]
        return value

    # --- scopes -----------------------------------------------------------------------------
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.frames.append(Frame(node))

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.frames.pop()

    # --- events -----------------------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        frame = self.frame
        region = self.ctx.get(AutocastTracker).current
        site = cast_of(node, self.ctx.names)
        if site is not None:
            self._cast(site)
        func = node.func
        qualname = self.ctx.names.qualname(func)
        if (qualname or "").endswith(".cast_training_params") and node.args:
            dtype = dtype_of(argument(node, "dtype"), self.ctx.names)
            if dtype is None or not dtype.is_fp16:
                self._forget(node.args[0].value)
        if grad_scaler_call(node, self.ctx.names) is not None:
            frame.scaled = True
        if site is None and region is not None and region.is_fp16:
            model = self.called_model(node)
            if model is not None:
                frame.autocast_calls.append((model, node, region))
        if type(func) is cst.Attribute:
            self._method_call(node, func)

    def _method_call(self, node: cst.Call, func: cst.Attribute) -> None:
        frame = self.frame
        method = func.attr.value
        if method in ("scale", "unscale_") or (method == "backward" and node.args):
            frame.scaled = True  # GradScaler.scale, accelerator.backward(loss)
        if method in ("step", "unscale_") and len(node.args) == 1:
            held = dotted(node.args[0].value)
            for model in frame.optimizers.get(held or "", []):
                frame.scaler_steps.append((model, node))
        if method == "backward" and not node.args and type(func.value) is cst.Name:
            loss = frame.fp16_losses.get(func.value.value)
            if loss is not None:
                frame.backward_calls.append((node, loss))

    def _cast(self, site: CastSite) -> None:
        receiver = unwrap_chain(site.receiver)
        key = dotted(receiver)
        if key is not None and site.device not in (None, "?"):
            self.frame.devices[key] = (site.device, site.call)
        if site.to_fp16:
            kind = self.ctx.get(ReceiverTracker).kind_of(site.receiver)
            is_model = kind is Kind.MODULE or loader_of(site.receiver, self.ctx) is not None
            if not is_model or follows_fp16_data(self.ctx.stack, self.ctx.names):
                return
            model = Fp16Model(key or "", site.call, site.dtype, "cast", self._in_fp16_region())
            self._cast_models[id(site.call)] = model
            self.frame.casts.append(model)
            if key is not None:
                self.frame.models[key] = model
        elif site.dtype is not None and not site.dtype.maybe and key is not None:
            self.frame.models.pop(key, None)

    def _used_as_model(self, key: str) -> bool:
        """``model = Encoder().half()`` with ``Encoder`` from elsewhere: ``model`` is a model
        when the function uses it as one (``model.parameters()``)."""
        if follows_fp16_data(self.ctx.stack, self.ctx.names):
            return False
        return self.ctx.get(ReceiverTracker).receivers.used_as(key) is Kind.MODULE

    def _in_fp16_region(self) -> bool:
        region = self.ctx.get(AutocastTracker).current
        return region is not None and region.is_fp16

    def _forget(self, expr: cst.BaseExpression) -> None:
        if type(expr) is cst.Name:
            values = self.ctx.names.values(expr.value)
            if len(values) == 1 and type(values[0]) in (cst.List, cst.Tuple):
                expr = values[0]  # models = [unet, text_encoder]
        targets = expr.elements if type(expr) in (cst.List, cst.Tuple) else None
        for item in [e.value for e in targets] if targets is not None else [expr]:
            key = dotted(item)
            if key is not None:
                self.frame.models.pop(key, None)

    def bind(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        key = dotted(target)
        if key is None:
            return
        frame = self.frame
        region = self.ctx.get(AutocastTracker).current
        if _definite_fp16(region):
            frame.fp16_losses[key] = region
        else:
            frame.fp16_losses.pop(key, None)
        for call in chain_calls(value):
            site = cast_of(call, self.ctx.names)
            if site is not None and site.device not in (None, "?"):
                frame.devices[key] = (site.device, call)
                break
        inner = unwrap_chain(value)
        if type(inner) is cst.Call and loader_owner(inner) is not None:
            self._place(key, inner, argument(inner, "device_map"))
        model = self._model_made_by(key, value)
        if model is not None:
            frame.models[key] = Fp16Model(
                key, model.node, model.dtype, model.how, model.under_autocast
            )
            if model.how == "cast" and all(c.node is not model.node for c in frame.casts):
                frame.casts.append(frame.models[key])
        elif not self._keeps(key, value):
            frame.models.pop(key, None)
        if type(value) is cst.Call:
            models = self.optimizer_models(value)
            if models:
                frame.optimizers[key] = models
            else:
                frame.optimizers.pop(key, None)

    def _keeps(self, key: str, value: cst.BaseExpression) -> bool:
        """``model = model.to(device)`` and the like keep what ``model`` was, and so does
        ``model = torch.compile(model)``."""
        inner = unwrap_chain(value)
        if (
            type(inner) is cst.Call
            and inner.args
            and self.ctx.names.qualname(inner.func) in _WRAPPERS
            and dotted(inner.args[0].value) == key
        ):
            return True
        return dotted(inner) == key and inner is not value

    def _place(self, key: str, call: cst.Call, device: cst.BaseExpression | None) -> None:
        """A load that places the model (``device_map``): on the CPU, or maybe (a variable)."""
        where = cpu_choice(device, self.ctx.names)
        if where == "":
            self.frame.devices[key] = ("cpu", call)
        elif where is not None:
            self.frame.cpu_paths[key] = (call, where)
        else:
            self.frame.cpu_paths.pop(key, None)

    def _model_made_by(self, key: str, value: cst.BaseExpression) -> Fp16Model | None:
        for call in chain_calls(value):
            found = self._cast_models.get(id(call))
            if found is not None:
                return found
            site = cast_of(call, self.ctx.names)
            if site is not None and site.to_fp16 and self._used_as_model(key):
                return Fp16Model(key, call, site.dtype, "cast", self._in_fp16_region())
            if site is not None and site.dtype is not None:
                return None  # a later cast to another dtype wins
        inner = unwrap_chain(value)
        if type(inner) is cst.Call and loader_owner(inner) is not None:
            for keyword in _LOAD_DTYPE_KEYWORDS:
                dtype = dtype_of(argument(inner, keyword), self.ctx.names, strings=True)
                if dtype is not None and dtype.is_fp16:
                    return Fp16Model("", inner, dtype, "load")
        if type(inner) in (cst.Name, cst.Attribute) and inner is value:
            return self.model(inner)
        return None

    def leave_For(self, node: cst.For) -> None:
        """A loop over a model's parameters that casts them to float32 upcasts that model."""
        models = self._models(self.parameter_owners(node.iter))
        if not models:
            return
        for inner in walk(node.body):
            if type(inner) is cst.Call:
                site = cast_of(inner, self.ctx.names)
                if site is not None and site.dtype is not None and site.dtype.dtype is DType.FP32:
                    for model in models:
                        self.frame.models.pop(model.key, None)
                    return


def chain_calls(expr: cst.BaseExpression) -> Iterator[cst.Call]:
    """The calls of a method chain, outermost first: ``Net().half().to(dev)``."""
    while type(expr) is cst.Call:
        yield expr
        if type(expr.func) is not cst.Attribute:
            return
        expr = expr.func.value
