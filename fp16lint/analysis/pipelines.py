"""Pipelines that share a module an optimizer trains, and their float16 casts.

A diffusers pipeline holds the very module objects it is given (``unet=unwrap_model(unet)``)
and its ``.to(dtype=torch.float16)`` converts each of them in place (data/shared_modules.py),
so a validation pipeline cast to float16 before or inside the training loop leaves training to
run on float16 parameters. ``from_pretrained``'s own ``dtype=`` does not touch components passed to
it: only ``.to`` casts them.

Per function, in source order, ``PipelineTracker`` records the modules optimizers are built
over and the pipelines given modules as keyword arguments (or as ``pipeline.unet = unet``). A
module passed through ``accelerator.unwrap_model(m)`` / ``accelerator.prepare(m)`` (of an
``accelerate.Accelerator``), or through a helper of this file that returns its argument
unwrapped that way, is the same module; ``copy.deepcopy(m)`` or any other call is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from fp16lint.analysis.base import BindingTracker
from fp16lint.analysis.casts import cast_of, constructor_of
from fp16lint.analysis.dtypes import DTypeFact, string_value
from fp16lint.analysis.names import dotted
from fp16lint.analysis.receivers import unwrap_chain
from fp16lint.analysis.training import TrainingTracker
from fp16lint.analysis.tree import walk
from fp16lint.data.shared_modules import (
    PIPELINE_LOADERS,
    SAME_MODULE_METHODS,
    WRAPPED_MODULE_ATTRIBUTES,
    is_diffusers_pipeline,
)

_MAX_DEPTH = 4


@dataclass(frozen=True)
class Shared:
    """A module a pipeline was given: ``keyword=value``, ``value`` being the module ``key``."""

    keyword: str
    key: str
    value: cst.BaseExpression


@dataclass(frozen=True)
class Recast:
    """A float16 cast of a pipeline that holds a trained module, with training still to run."""

    shared: Shared
    optimizer: cst.Call  # the optimizer built over the module's parameters
    dtype: DTypeFact


@dataclass
class _Frame:
    trained: dict[str, cst.Call] = field(default_factory=dict)  # module key -> optimizer
    pipelines: dict[str, list[Shared]] = field(default_factory=dict)  # pipeline key -> modules


class PipelineTracker(BindingTracker):
    """``ctx.get(PipelineTracker).recast(call)``: does ``call`` cast a trained module to fp16
    through a pipeline that shares it, while training goes on?"""

    requires = (TrainingTracker,)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.frames: list[_Frame] = [_Frame()]
        # No pipeline can be named in a file without this text (an alias is imported by it),
        # and a recast needs a ``.backward(...)`` call after it: library files have none.
        self.active = "Pipeline" in ctx.text and "backward" in ctx.text
        self._helpers: dict[int, bool] = {}  # id(helper function) -> returns its argument
        self._backward_calls: dict[int, bool] = {}  # id(node) -> it calls backward

    @property
    def frame(self) -> _Frame:
        return self.frames[-1]

    # --- queries ----------------------------------------------------------------------------
    def recast(self, call: cst.Call) -> Recast | None:
        if not self.active or not self.frame.trained:
            return None
        site = cast_of(call, self.ctx.names)
        if site is None or site.method != "to" or not site.to_fp16 or site.dtype is None:
            return None
        fp16_models = self.ctx.get(TrainingTracker).frame.models
        for shared in self._pipeline_modules(site.receiver) or ():
            optimizer = self.frame.trained.get(shared.key)
            # A module already trained in float16 is FP108's optimizer finding, not this one.
            if optimizer is not None and shared.key not in fp16_models:
                return Recast(shared, optimizer, site.dtype) if self._training_follows() else None
        return None

    def same_module(self, expr: cst.BaseExpression, _depth: int = 0) -> str | None:
        """The key (``unet``, ``self.unet``) of the module ``expr`` is, through calls that hand
        back the module they are given; None for anything else."""
        inner = unwrap_chain(expr)
        key = dotted(inner)
        if key is not None or type(inner) is not cst.Call or _depth > _MAX_DEPTH:
            return key
        if len(inner.args) != 1 or inner.args[0].keyword is not None or inner.args[0].star:
            return None
        func = inner.func
        if self._hands_back(func) or (
            type(func) is cst.Name and self._is_unwrap_helper(func.value)
        ):
            return self.same_module(inner.args[0].value, _depth + 1)
        return None

    # --- what hands a module back -----------------------------------------------------------
    def _hands_back(self, func: cst.BaseExpression) -> bool:
        """``accelerator.unwrap_model`` / ``accelerator.prepare`` of an ``Accelerator(...)``."""
        if type(func) is not cst.Attribute:
            return False
        methods = SAME_MODULE_METHODS.get(constructor_of(func.value, self.ctx) or "", ())
        return func.attr.value in methods

    def _is_unwrap_helper(self, name: str) -> bool:
        """``name`` is this file's function that returns its first argument unwrapped, in
        straight-line code: ``m = accelerator.unwrap_model(m)``, ``m = m._orig_mod if
        is_compiled_module(m) else m``, ``return m`` (diffusers' training scripts)."""
        bindings = self.ctx.names.bindings(name) or []
        fn = bindings[0].node if len(bindings) == 1 else None
        if type(fn) is not cst.FunctionDef:
            return False
        known = self._helpers.get(id(fn))
        if known is None:
            known = self._helpers[id(fn)] = self._returns_argument(fn)
        return known

    def _returns_argument(self, fn: cst.FunctionDef) -> bool:
        if not fn.params.params or type(fn.body) is not cst.IndentedBlock:
            return False
        param = fn.params.params[0].name.value
        returned = False
        for statement in fn.body.body:
            if type(statement) is not cst.SimpleStatementLine:
                return False
            for small in statement.body:
                if type(small) is cst.Expr and string_value(small.value) is not None:
                    continue  # the docstring
                if type(small) is cst.Assign and all(
                    dotted(t.target) == param for t in small.targets
                ):
                    if not self._unwraps(small.value, param):
                        return False
                elif type(small) is cst.Return and small.value is not None:
                    if not self._unwraps(small.value, param):
                        return False
                    returned = True
                else:
                    return False
        return returned

    def _unwraps(self, value: cst.BaseExpression, param: str) -> bool:
        if type(value) is cst.Name:
            return value.value == param
        if type(value) is cst.IfExp:
            return self._unwraps(value.body, param) and self._unwraps(value.orelse, param)
        if type(value) is cst.Attribute:
            return value.attr.value in WRAPPED_MODULE_ATTRIBUTES and self._unwraps(
                value.value, param
            )
        if type(value) is cst.Call and len(value.args) == 1 and self._hands_back(value.func):
            return self._unwraps(value.args[0].value, param)
        return False

    # --- pipelines --------------------------------------------------------------------------
    def _pipeline_modules(self, expr: cst.BaseExpression) -> list[Shared] | None:
        """The modules the pipeline ``expr`` holds: a pipeline built here (``Pipe(...)``,
        ``Pipe.from_pretrained(...)``, through ``.to(...)``), or a name bound to one."""
        inner = unwrap_chain(expr)
        if type(inner) is cst.Call and self._builds_pipeline(inner):
            shared = []
            for arg in inner.args:
                if arg.keyword is not None:
                    key = self.same_module(arg.value)
                    if key is not None:
                        shared.append(Shared(arg.keyword.value, key, arg.value))
            return shared
        key = dotted(inner)
        return self.frame.pipelines.get(key) if key is not None else None

    def _builds_pipeline(self, call: cst.Call) -> bool:
        func = call.func
        if type(func) is cst.Attribute and func.attr.value in PIPELINE_LOADERS:
            func = func.value
        return is_diffusers_pipeline(self.ctx.names.qualname(func))

    def _training_follows(self) -> bool:
        """A ``backward`` call of this function runs after the node in hand: in a statement
        after it, or in a loop around it (the next iteration). A cast after the last one (the
        final inference of a script) leaves training alone."""
        stack = self.ctx.stack
        for index in range(len(stack) - 2, -1, -1):
            node = stack[index]
            if type(node) in (cst.FunctionDef, cst.ClassDef, cst.Lambda):
                return False
            if type(node) in (cst.For, cst.While) and self._trains(node.body):
                return True
            if type(node) in (cst.IndentedBlock, cst.Module):
                later = node.body[node.body.index(stack[index + 1]) + 1 :]
                if any(self._trains(statement) for statement in later):
                    return True
        return False

    def _trains(self, node: cst.CSTNode) -> bool:
        found = self._backward_calls.get(id(node))
        if found is None:
            found = self._backward_calls[id(node)] = any(
                type(n) is cst.Call
                and type(n.func) is cst.Attribute
                and n.func.attr.value == "backward"
                for n in walk(node)
            )
        return found

    # --- events -----------------------------------------------------------------------------
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.frames.append(_Frame())

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.frames.pop()

    def visit_Call(self, node: cst.Call) -> None:
        if not self.active:
            return
        owners = self.ctx.get(TrainingTracker).optimized_modules(node)
        for owner in owners or ():
            key = self.same_module(owner)
            if key is not None:
                self.frame.trained[key] = node

    def bind(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        key = dotted(target)
        if key is None or not self.active:
            return
        frame = self.frame
        owner, _, attribute = key.rpartition(".")
        if owner in frame.pipelines:  # pipeline.unet = unwrap_model(unet)
            module = self.same_module(value)
            if module is not None:
                frame.pipelines[owner] = [
                    *frame.pipelines[owner],
                    Shared(attribute, module, value),
                ]
            return
        shared = self._pipeline_modules(value)
        if shared is not None:
            frame.pipelines[key] = shared
        else:
            frame.pipelines.pop(key, None)
        if key in frame.trained and self.same_module(value) != key:
            del frame.trained[key]
