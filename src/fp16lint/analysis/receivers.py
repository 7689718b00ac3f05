"""Receiver kinds: is ``x`` in ``x.half()`` a module (a model) or a tensor?

``Module.half()`` converts the model in place; ``Tensor.half()`` returns a new tensor. Rules
need to know which one they see, and unknown must stay unknown: the evidence is only what the
code shows — constructors of ``nn.Module`` classes (torch's, and this file's own subclasses),
model loaders (``from_pretrained``, ``timm.create_model``, ``torch.hub.load``,
``torchvision.models.*``), ``self`` in a module's methods, tensor factories, ``torch.Tensor``
annotations, tensor arithmetic, and conversions of something already known.

Project classes defined in other files are resolved by the project pass (``analysis.index``).
"""

from __future__ import annotations

from enum import Enum

import libcst as cst

from fp16lint.analysis.base import Tracker
from fp16lint.analysis.names import NameResolver

_MAX_DEPTH = 6


class Kind(str, Enum):
    MODULE = "module"
    TENSOR = "tensor"
    UNKNOWN = "unknown"


# Functions whose result is a tensor (torch.* factories and ops commonly used to make inputs).
TENSOR_FACTORIES = frozenset(
    f"torch.{name}"
    for name in (
        "tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "rand", "randn",
        "randint", "randperm", "arange", "linspace", "logspace", "eye", "zeros_like",
        "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like",
        "cat", "concat", "stack", "where", "matmul", "bmm", "mm", "einsum", "softmax",
        "exp", "log", "sigmoid", "tanh", "relu", "sum", "mean", "load",
    )
) - {"torch.load"}
# Methods that return the receiver's own kind (modules return self; tensors a new tensor).
SAME_KIND_METHODS = frozenset({"half", "float", "double", "bfloat16", "to", "cuda", "cpu", "type"})
MODULE_ONLY_METHODS = frozenset(
    {"eval", "train", "requires_grad_", "named_modules", "modules", "children", "apply",
     "load_state_dict", "register_buffer", "register_module", "zero_grad"}
)
TENSOR_ONLY_METHODS = frozenset(
    {"detach", "clone", "contiguous", "view", "reshape", "permute", "transpose", "unsqueeze",
     "squeeze", "flatten", "numpy", "item", "masked_fill", "softmax", "exp", "pow", "sum",
     "mean", "sqrt", "rsqrt", "abs", "max", "min", "argmax", "long", "int", "bool", "expand",
     "repeat", "t", "matmul", "norm", "new_zeros", "new_ones", "new_full", "new_empty"}
)
MODULE_FACTORIES = frozenset(
    {"timm.create_model", "torch.hub.load", "torch.jit.load"}
)
MODULE_BASES = frozenset(
    {
        "torch.nn.Module",
        "torch.nn.modules.module.Module",
        "transformers.PreTrainedModel",
        "transformers.modeling_utils.PreTrainedModel",
        "diffusers.ModelMixin",
        "diffusers.models.modeling_utils.ModelMixin",
        "pytorch_lightning.LightningModule",
        "lightning.LightningModule",
        "lightning.pytorch.LightningModule",
    }
)
# from_pretrained on these returns no model.
_NOT_MODELS = ("Tokenizer", "Processor", "Config", "FeatureExtractor", "Scheduler")


def is_nn_class(qualname: str | None) -> bool:
    """``torch.nn.LayerNorm``, ``torch.nn.Sequential``...: a torch module class."""
    if not qualname or not qualname.startswith("torch.nn."):
        return False
    last = qualname.rsplit(".", 1)[-1]
    return last[:1].isupper() and last not in ("Parameter", "ParameterList", "ParameterDict")


def local_module_classes(module: cst.Module, names: NameResolver) -> set[str]:
    """Names of classes in this file that derive from ``nn.Module`` (directly or through
    another such class of this file)."""
    classes = [s for s in module.body if isinstance(s, cst.ClassDef)]
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for cls in classes:
            if cls.name.value in found:
                continue
            for base in cls.bases:
                qualname = names.qualname(base.value)
                if (
                    qualname in MODULE_BASES
                    or is_nn_class(qualname)
                    or (isinstance(base.value, cst.Name) and base.value.value in found)
                ):
                    found.add(cls.name.value)
                    changed = True
                    break
    return found


class Receivers:
    """Kind inference for one file; ``module_classes`` are this file's nn.Module subclasses."""

    def __init__(self, names: NameResolver, module_classes: set[str]):
        self.names = names
        self.module_classes = module_classes

    def kind_of(self, expr: cst.BaseExpression, _depth: int = 0) -> Kind:
        if _depth > _MAX_DEPTH:
            return Kind.UNKNOWN
        if isinstance(expr, cst.Call):
            return self._call_kind(expr, _depth)
        if isinstance(expr, cst.Name):
            return self._name_kind(expr, _depth)
        if isinstance(expr, cst.BinaryOperation):
            sides = {self.kind_of(expr.left, _depth + 1), self.kind_of(expr.right, _depth + 1)}
            return Kind.TENSOR if Kind.TENSOR in sides and Kind.MODULE not in sides else Kind.UNKNOWN
        return Kind.UNKNOWN

    def _call_kind(self, call: cst.Call, depth: int) -> Kind:
        func = call.func
        qualname = self.names.qualname(func)
        if qualname in TENSOR_FACTORIES or (qualname or "").startswith("torch.nn.functional."):
            return Kind.TENSOR
        if qualname in MODULE_FACTORIES or is_nn_class(qualname):
            return Kind.MODULE
        if (qualname or "").startswith("torchvision.models.") and qualname[-1:].islower():
            return Kind.MODULE
        if isinstance(func, cst.Name) and func.value in self.module_classes:
            if self.names.bindings(func.value) and qualname is None:
                return Kind.MODULE
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method == "from_pretrained":
                owner = func.value
                owner_name = owner.attr.value if isinstance(owner, cst.Attribute) else getattr(owner, "value", "")
                if isinstance(owner_name, str) and owner_name and not any(
                    word in owner_name for word in _NOT_MODELS
                ):
                    return Kind.MODULE
                return Kind.UNKNOWN
            if method in MODULE_ONLY_METHODS:
                return Kind.MODULE
            if method in TENSOR_ONLY_METHODS:
                return Kind.TENSOR
            if method in SAME_KIND_METHODS:
                return self.kind_of(func.value, depth + 1)
        return Kind.UNKNOWN

    def _name_kind(self, name: cst.Name, depth: int) -> Kind:
        bindings = self.names.bindings(name.value)
        if not bindings:
            return Kind.UNKNOWN
        kinds = set()
        for binding in bindings:
            if isinstance(binding.node, cst.Param):
                kinds.add(self._param_kind(binding.node))
            elif binding.value is not None:
                kinds.add(self.kind_of(binding.value, depth + 1))
            else:
                kinds.add(Kind.UNKNOWN)
        return kinds.pop() if len(kinds) == 1 else Kind.UNKNOWN

    def _param_kind(self, param: cst.Param) -> Kind:
        scope_node = self.names.scope.node
        if param.name.value == "self" and isinstance(scope_node, cst.FunctionDef):
            owner = self._enclosing_class()
            if owner is not None and owner in self.module_classes:
                return Kind.MODULE
        if param.annotation is not None:
            qualname = self.names.qualname(param.annotation.annotation)
            if qualname in ("torch.Tensor", "torch.FloatTensor", "torch.HalfTensor"):
                return Kind.TENSOR
            if qualname in MODULE_BASES or is_nn_class(qualname):
                return Kind.MODULE
        return Kind.UNKNOWN

    def _enclosing_class(self) -> str | None:
        for scope in reversed(self.names.scopes):
            if scope.kind == "class" and isinstance(scope.node, cst.ClassDef):
                return scope.node.name.value
        return None


class ReceiverTracker(Tracker):
    """Per-file receiver-kind analysis shared by rules: ``ctx.get(ReceiverTracker).kind_of(x)``."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.receivers = Receivers(ctx.names, local_module_classes(ctx.module, ctx.names))

    def kind_of(self, expr: cst.BaseExpression) -> Kind:
        return self.receivers.kind_of(expr)
