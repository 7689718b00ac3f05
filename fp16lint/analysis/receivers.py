"""Receiver kinds: is ``x`` in ``x.half()`` a module (a model) or a tensor?

``Module.half()`` converts the model in place; ``Tensor.half()`` returns a new tensor. Rules
need to know which one they see, and unknown must stay unknown: the evidence is only what the
code shows —

- what a value is made by: constructors of ``nn.Module`` classes (torch's, and this file's own
  subclasses), model loaders (``from_pretrained``, ``timm.create_model``, ``torch.hub.load``,
  ``torchvision.models.*``), tensor factories and ``torch.nn.functional`` ops, tensor
  arithmetic, conversions and module-only calls of something already known
  (``model.eval().half()``);
- what a name is declared as: ``self`` in a module's methods, ``torch.Tensor`` / ``nn.Module``
  annotations, ``isinstance`` tests around the use, attributes that ``__init__`` assigns
  (``self.encoder = nn.Linear(...)``, ``register_buffer``);
- how the function uses a name it cannot see being made (a parameter): module-only methods
  called on it (``model.parameters()``, ``.eval()``, ``.state_dict()``), values fed into a
  known module (``model(images)``: ``images`` is a tensor), targets of loops over a
  ``DataLoader`` or over ``.parameters()`` / ``.modules()``.

Evidence that disagrees leaves the kind unknown. Project classes defined in other files are
resolved by the project pass (``analysis.index``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

import libcst as cst

from fp16lint.analysis.base import Tracker
from fp16lint.analysis.dtypes import LEGACY_TYPES
from fp16lint.analysis.loops import data_loader_calls, unwrap_loop
from fp16lint.analysis.names import Binding, NameResolver, dotted, self_attribute
from fp16lint.analysis.tree import children

_MAX_DEPTH = 6


class Kind(str, Enum):
    MODULE = "module"
    TENSOR = "tensor"
    UNKNOWN = "unknown"


# Functions whose result is a tensor (torch.* factories and ops commonly used to make inputs).
TENSOR_FACTORIES = frozenset(
    f"torch.{name}"
    for name in (
        "tensor",
        "as_tensor",
        "from_numpy",
        "zeros",
        "ones",
        "empty",
        "full",
        "rand",
        "randn",
        "randint",
        "randperm",
        "arange",
        "linspace",
        "logspace",
        "eye",
        "zeros_like",
        "ones_like",
        "empty_like",
        "full_like",
        "rand_like",
        "randn_like",
        "randint_like",
        "cat",
        "concat",
        "stack",
        "where",
        "matmul",
        "bmm",
        "mm",
        "einsum",
        "softmax",
        "exp",
        "log",
        "sigmoid",
        "tanh",
        "relu",
        "sum",
        "mean",
        "clamp",
        "abs",
        "sqrt",
        "rsqrt",
        "pow",
        "baddbmm",
        "addmm",
        "outer",
        "triu",
        "tril",
        "flip",
        "roll",
        "gather",
        "index_select",
        "masked_fill",
        "squeeze",
        "unsqueeze",
        "flatten",
        "reshape",
        "permute",
        "transpose",
        "Tensor",
        "nn.Parameter",
        "nn.parameter.Parameter",
    )
) | frozenset(LEGACY_TYPES)
# Methods that return the receiver's own kind (modules return self; tensors a new tensor).
SAME_KIND_METHODS = frozenset(
    {"half", "float", "double", "bfloat16", "to", "cuda", "cpu", "type", "requires_grad_", "apply"}
)
# Module methods that return the module itself.
MODULE_SELF_METHODS = frozenset({"eval", "train", "to_empty", "share_memory"})
# Methods only a module has: calling one shows the receiver is a module.
MODULE_USE_METHODS = frozenset(
    {
        "eval",
        "train",
        "parameters",
        "named_parameters",
        "buffers",
        "named_buffers",
        "modules",
        "named_modules",
        "children",
        "named_children",
        "state_dict",
        "load_state_dict",
        "register_buffer",
        "register_parameter",
        "register_module",
        "add_module",
        "get_submodule",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
    }
)
# Tensor methods whose result is a tensor.
TENSOR_ONLY_METHODS = frozenset(
    {
        "detach",
        "clone",
        "contiguous",
        "view",
        "reshape",
        "permute",
        "transpose",
        "unsqueeze",
        "squeeze",
        "flatten",
        "masked_fill",
        "softmax",
        "exp",
        "pow",
        "sum",
        "mean",
        "sqrt",
        "rsqrt",
        "abs",
        "argmax",
        "long",
        "int",
        "bool",
        "expand",
        "repeat",
        "t",
        "matmul",
        "norm",
        "new_zeros",
        "new_ones",
        "new_full",
        "new_empty",
        "new_tensor",
    }
)
TENSOR_ATTRIBUTES = frozenset({"data", "grad", "T", "mT", "H", "real", "imag"})
# More ``torch.*`` ops whose result is a tensor (issue 5: operands of constant arithmetic).
TENSOR_OPS = frozenset(
    f"torch.{name}"
    for name in (
        "var",
        "std",
        "norm",
        "logsumexp",
        "cumsum",
        "maximum",
        "minimum",
        "square",
        "neg",
        "reciprocal",
        "log_softmax",
        "erf",
        "sin",
        "cos",
        "sign",
        "diag",
        "tensordot",
        "cdist",
        "add",
        "sub",
        "mul",
        "div",
        "amax",
        "amin",
        "addcmul",
        "addcdiv",
        "lerp",
        "log1p",
        "expm1",
        "linalg.norm",
        "linalg.vector_norm",
        "special.expit",
    )
)
# Methods of a tensor whose result is not a tensor (or a tuple of them); any other method
# called on a known tensor returns one.
NON_TENSOR_RESULTS = frozenset(
    {
        "item",
        "tolist",
        "numpy",
        "size",
        "dim",
        "ndimension",
        "numel",
        "nelement",
        "stride",
        "data_ptr",
        "element_size",
        "is_contiguous",
        "is_floating_point",
        "is_complex",
        "get_device",
        "equal",
        "allclose",
        "unbind",
        "split",
        "chunk",
        "tensor_split",
        "max",
        "min",
        "sort",
        "topk",
        "kthvalue",
        "mode",
        "median",
        "unique",
        "backward",
        "register_hook",
        "storage",
        "untyped_storage",
        "untyped",
        "__len__",
        "__iter__",
        "apply_",
        "map_",
        "qr",
        "svd",
        "slogdet",
        "aminmax",
        "frexp",
        "histogram",
        "register_post_accumulate_grad_hook",
    }
)
# Methods only torch tensors have (numpy, pandas and builtins have none of these): a name
# they are called on is a tensor (issue 5).
TENSOR_USE_METHODS = frozenset(
    {
        "unsqueeze",
        "permute",
        "contiguous",
        "masked_fill",
        "masked_fill_",
        "size",
        "dim",
        "numel",
        "type_as",
        "expand",
        "expand_as",
        "view_as",
        "new_zeros",
        "new_ones",
        "new_full",
        "new_empty",
        "new_tensor",
        "softmax",
        "log_softmax",
        "detach",
        "is_floating_point",
        "masked_select",
        "index_select",
        "narrow",
        "unbind",
        "bmm",
        "sigmoid",
        "rsqrt",
        "clamp",
        "clamp_",
        "clamp_min",
        "clamp_max",
        "zero_",
        "fill_",
        "masked_scatter",
        "index_fill",
        "index_fill_",
        "scatter_",
        "data_ptr",
        "element_size",
    }
)
# Calls that return a model.
MODULE_FACTORIES = frozenset(
    {
        "timm.create_model",
        "timm.models.create_model",
        "torch.hub.load",
        "torch.jit.load",
        "torch.jit.script",
        "peft.get_peft_model",
        "sentence_transformers.SentenceTransformer",
        "torchvision.models.feature_extraction.create_feature_extractor",
    }
)
# Calls that return the kind of their first argument (wrappers and copies).
PASS_THROUGH = frozenset({"copy.deepcopy", "torch.compile"})
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
_TENSOR_TYPES = frozenset({"torch.Tensor", "torch.nn.Parameter", "torch.nn.parameter.Parameter"})
_TENSOR_TYPES |= frozenset(LEGACY_TYPES)
# Loaders whose ``from_pretrained`` / ``from_config`` returns no model.
_NOT_MODELS = ("Tokenizer", "Processor", "Config", "FeatureExtractor", "Scheduler", "Extractor")
LOADERS = frozenset({"from_pretrained", "from_single_file", "from_config", "_from_config"})
_TORCHVISION_NOT_MODELS = frozenset(
    {
        "load_state_dict_from_url",
        "get_weight",
        "get_model_weights",
        "get_model_builder",
        "list_models",
    }
)
_NN_CLASS_PREFIXES = (
    "torch.nn.modules.",
    "torch.nn.parallel.",
    "torch.ao.nn.",
    "torch.nn.qat.",
    "torch.nn.quantized.",
    "torch.nn.intrinsic.",
)
_NOT_NN_CLASSES = frozenset(
    {
        "Parameter",
        "ParameterList",
        "ParameterDict",
        "UninitializedParameter",
        "UninitializedBuffer",
        "Buffer",
    }
)
# Loops over these module methods give tensors / modules (for the named_* forms, the 2nd item).
_TENSOR_LOOPS = {"parameters": None, "buffers": None, "named_parameters": 1, "named_buffers": 1}
PARAMETER_METHODS = frozenset(_TENSOR_LOOPS)  # module methods that yield its tensors
_MODULE_LOOPS = {"modules": None, "children": None, "named_modules": 1, "named_children": 1}


def is_nn_class(qualname: str | None) -> bool:
    """``torch.nn.LayerNorm``, ``torch.nn.Sequential``...: a torch module class."""
    if not qualname or not qualname.startswith("torch."):
        return False
    head, _, last = qualname.rpartition(".")
    last = last.lstrip("_")
    if not last[:1].isupper() or last in _NOT_NN_CLASSES:
        return False
    return head == "torch.nn" or qualname.startswith(_NN_CLASS_PREFIXES)


def is_torchvision_model(qualname: str | None) -> bool:
    """``torchvision.models.resnet50``, ``torchvision.models.detection.fasterrcnn_...``."""
    if not qualname or not qualname.startswith("torchvision.models."):
        return False
    last = qualname.rsplit(".", 1)[-1]
    return (
        "Weights" not in last and last not in _TORCHVISION_NOT_MODELS and ".utils" not in qualname
    )


def local_module_classes(module: cst.Module, names: NameResolver) -> set[str]:
    """Names of classes in this file that derive from ``nn.Module`` (directly or through
    another such class of this file)."""
    classes = [s for s in module.body if type(s) is cst.ClassDef]
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
                    or (type(base.value) is cst.Name and base.value.value in found)
                ):
                    found.add(cls.name.value)
                    changed = True
                    break
    return found


def loader_owner(call: cst.Call) -> str | None:
    """``X`` in ``X.from_pretrained(...)``, as text (``AutoModel``, ``transformers.AutoModel``),
    for loaders that return a model; None for other calls and for tokenizers, configs..."""
    func = call.func
    if type(func) is not cst.Attribute or func.attr.value not in LOADERS:
        return None
    owner = dotted(func.value)
    if owner is None:
        return None
    last = owner.rsplit(".", 1)[-1]
    if any(word in last for word in _NOT_MODELS):
        return None
    return owner


def unwrap_chain(expr: cst.BaseExpression) -> cst.BaseExpression:
    """The value under conversions and module-only self-returning calls:
    ``Net().eval().to(dev).half()`` → ``Net()``."""
    while (
        type(expr) is cst.Call
        and type(expr.func) is cst.Attribute
        and (
            expr.func.attr.value in SAME_KIND_METHODS or expr.func.attr.value in MODULE_SELF_METHODS
        )
    ):
        expr = expr.func.value
    return expr


def _element(target: cst.BaseExpression, index: int | None) -> Iterator[cst.Name]:
    """Names bound by a loop target at tuple position ``index`` (None: the whole target)."""
    if index is None:
        if type(target) is cst.Name:
            yield target
        return
    if type(target) in (cst.Tuple, cst.List) and len(target.elements) > index:
        inner = target.elements[index].value
        if type(inner) is cst.Name:
            yield inner


@dataclass
class _Uses:
    """What a scope's body shows about names it uses (flow-insensitive)."""

    modules: set[str] = field(default_factory=set)  # dotted names with a module-only method call
    tensors: set[str] = field(default_factory=set)  # dotted names with a tensor-only method call
    fed: list[tuple[cst.BaseExpression, list[str]]] = field(default_factory=list)


def _scope_body(node: cst.CSTNode | None) -> Iterator[cst.CSTNode]:
    """The nodes of a function or module body, not descending into nested scopes."""
    if node is None:
        return
    stack: list[cst.CSTNode] = []
    if type(node) in (cst.FunctionDef, cst.Lambda):
        stack.append(node.body)
    else:
        stack.append(node)
    while stack:
        current = stack.pop()
        yield current
        for child in children(current):
            if type(child) not in (cst.FunctionDef, cst.ClassDef, cst.Lambda):
                stack.append(child)


def _scan_uses(scope_node: cst.CSTNode | None) -> _Uses:
    uses = _Uses()
    for node in _scope_body(scope_node):
        if type(node) is not cst.Call:
            continue
        func = node.func
        if type(func) is cst.Attribute and func.attr.value in MODULE_USE_METHODS:
            owner = dotted(func.value)
            if owner is not None:
                uses.modules.add(owner)
        if type(func) is cst.Attribute and func.attr.value in TENSOR_USE_METHODS:
            owner = dotted(func.value)
            if owner is not None:
                uses.tensors.add(owner)
        if type(func) in (cst.Name, cst.Attribute):
            fed = [a.value.value for a in node.args if not a.star and type(a.value) is cst.Name]
            if fed:
                uses.fed.append((func, fed))
    return uses


class Receivers:
    """Kind inference for one file; ``module_classes`` are this file's nn.Module subclasses."""

    def __init__(self, module: cst.Module, names: NameResolver, module_classes: set[str]):
        self.names = names
        self.module_classes = module_classes
        self._module = module
        self._attributes: dict[str, dict[str, list[cst.BaseExpression | None]]] | None = None
        self._uses: dict[int, _Uses] = {}
        self._memo: dict[tuple[int, str], Kind] | None = None  # use-evidence, per question
        self._visible: dict[str, int] = {}  # name -> bindings visible while evaluating one

    @property
    def attributes(self) -> dict[str, dict[str, list[cst.BaseExpression | None]]]:
        """``{class: {attr: values}}``, scanned on first use (most files never ask)."""
        if self._attributes is None:
            self._attributes = _class_attributes(self._module)
        return self._attributes

    # --- entry point ------------------------------------------------------------------------
    def kind_of(self, expr: cst.BaseExpression, _depth: int = 0) -> Kind:
        if _depth == 0:
            self._memo = {}
            try:
                return self._kind(expr, 0)
            finally:
                self._memo = None
        return self._kind(expr, _depth)

    def _kind(self, expr: cst.BaseExpression, _depth: int) -> Kind:
        if _depth > _MAX_DEPTH:
            return Kind.UNKNOWN
        if type(expr) is cst.Call:
            return self._call_kind(expr, _depth)
        if type(expr) is cst.Name:
            return self._name_kind(expr, _depth)
        if type(expr) is cst.Attribute:
            return self._attribute_kind(expr, _depth)
        if type(expr) is cst.BinaryOperation:
            sides = {self.kind_of(expr.left, _depth + 1), self.kind_of(expr.right, _depth + 1)}
            if Kind.TENSOR in sides and Kind.MODULE not in sides:
                return Kind.TENSOR
            return Kind.UNKNOWN
        if type(expr) is cst.UnaryOperation and type(expr.operator) is not cst.Not:
            return self._tensor_or_unknown(expr.expression, _depth)
        if type(expr) is cst.Subscript:
            return self._tensor_or_unknown(expr.value, _depth)
        return Kind.UNKNOWN

    def _tensor_or_unknown(self, expr: cst.BaseExpression, depth: int) -> Kind:
        return Kind.TENSOR if self.kind_of(expr, depth + 1) is Kind.TENSOR else Kind.UNKNOWN

    # --- what made the value -------------------------------------------------------------
    def _call_kind(self, call: cst.Call, depth: int) -> Kind:
        func = call.func
        qualname = self.names.qualname(func)
        if qualname in TENSOR_FACTORIES or (qualname or "").startswith("torch.nn.functional."):
            return Kind.TENSOR
        if qualname in TENSOR_OPS:
            return Kind.TENSOR
        if qualname in MODULE_FACTORIES or is_nn_class(qualname) or is_torchvision_model(qualname):
            return Kind.MODULE
        if qualname in PASS_THROUGH and call.args:
            return self.kind_of(call.args[0].value, depth + 1)
        if (
            type(func) is cst.Name
            and func.value in self.module_classes
            and qualname is None
            and self._is_local_class(func.value)
        ):
            return Kind.MODULE
        if type(func) is not cst.Attribute:
            return Kind.UNKNOWN
        method = func.attr.value
        if method in LOADERS:
            return Kind.MODULE if loader_owner(call) is not None else Kind.UNKNOWN
        if method in MODULE_SELF_METHODS:
            return Kind.MODULE
        if method in TENSOR_ONLY_METHODS:
            return Kind.TENSOR
        if method in SAME_KIND_METHODS:
            return self.kind_of(func.value, depth + 1)
        if method not in NON_TENSOR_RESULTS and qualname is None:
            return self._tensor_or_unknown(func.value, depth)
        return Kind.UNKNOWN

    def _is_local_class(self, name: str) -> bool:
        found = self.names.bindings(name) or []
        return bool(found) and all(type(b.node) is cst.ClassDef for b in found)

    # --- names ------------------------------------------------------------------------------
    def _name_kind(self, name: cst.Name, depth: int) -> Kind:
        """All bindings must agree; one that reads the name itself (``m = m.to(dev)``,
        ``x = x * 2``) sees only the bindings before it."""
        bindings = self.names.bindings(name.value)
        if not bindings:
            return Kind.UNKNOWN
        bindings = bindings[: self._visible.get(name.value, len(bindings))]
        if not bindings:
            return Kind.UNKNOWN
        kinds = set()
        for index, binding in enumerate(bindings):
            previous = self._visible.get(name.value)
            self._visible[name.value] = index
            try:
                kinds.add(self._binding_kind(name.value, binding, depth))
            finally:
                if previous is None:
                    del self._visible[name.value]
                else:
                    self._visible[name.value] = previous
        made = kinds.pop() if len(kinds) == 1 else Kind.UNKNOWN
        if made is not Kind.UNKNOWN:
            return made
        if any(type(b.node) in (cst.FunctionDef, cst.ClassDef) for b in bindings):
            return Kind.UNKNOWN
        return self._used_as(name.value, depth)

    def _binding_kind(self, name: str, binding: Binding, depth: int) -> Kind:
        if type(binding.node) is cst.Param:
            return self._param_kind(binding.node)
        if type(binding.node) is cst.For:
            return self._loop_kind(binding.node, name)
        if binding.value is not None and binding.qualname is None:
            return self.kind_of(binding.value, depth + 1)
        return Kind.UNKNOWN

    def _param_kind(self, param: cst.Param) -> Kind:
        scope_node = self.names.scope.node
        if param.name.value == "self" and type(scope_node) is cst.FunctionDef:
            owner = self._enclosing_class()
            if owner is not None and owner in self.module_classes:
                return Kind.MODULE
        if param.annotation is not None:
            return self.annotation_kind(param.annotation.annotation)
        return Kind.UNKNOWN

    def annotation_kind(self, annotation: cst.BaseExpression) -> Kind:
        qualname = self.names.qualname(annotation)
        if qualname in _TENSOR_TYPES:
            return Kind.TENSOR
        if qualname in MODULE_BASES or is_nn_class(qualname):
            return Kind.MODULE
        if type(annotation) is cst.Name and annotation.value in self.module_classes:
            return Kind.MODULE
        return Kind.UNKNOWN

    def _loop_kind(self, loop: cst.For, name: str) -> Kind:
        """Targets of ``for x, y in loader``, ``for p in m.parameters()``, ``for m in
        net.modules()`` (through ``enumerate``/``tqdm``/``zip`` as well)."""
        unwrapped = unwrap_loop(loop.iter, loop.target, self.names)
        if unwrapped is None:
            return Kind.UNKNOWN
        iterable, target = unwrapped
        if type(iterable) is cst.Call and type(iterable.func) is cst.Attribute:
            method = iterable.func.attr.value
            for table, kind in ((_TENSOR_LOOPS, Kind.TENSOR), (_MODULE_LOOPS, Kind.MODULE)):
                if method in table and any(
                    n.value == name for n in _element(target, table[method])
                ):
                    return kind
        if type(target) in (cst.Tuple, cst.List) and data_loader_calls(iterable, self.names):
            inner = [e.value for e in target.elements]
            if any(type(n) is cst.Name and n.value == name for n in inner):
                return Kind.TENSOR
        return Kind.UNKNOWN

    def used_as(self, key: str) -> Kind:
        """The kind the uses of ``key`` (a name or ``self.x``) in its scope show — also for a
        name about to be bound (``model = Encoder(...)`` then ``model.parameters()``)."""
        self._memo = {}
        try:
            return self._used_as(key, 1)
        finally:
            self._memo = None

    def _used_as(self, key: str, depth: int) -> Kind:
        """The kind a name's uses in its scope show, for a name made where we cannot see."""
        scope = self.names.scope_of(key.split(".")[0])
        if scope is None:
            scope = next(s for s in reversed(self.names.scopes) if s.kind != "class")
        memo_key = (id(scope.node), key)
        if self._memo is not None:
            if memo_key in self._memo:
                return self._memo[memo_key]
            self._memo[memo_key] = Kind.UNKNOWN  # a question that reaches itself stays unknown
        uses = self._uses.get(id(scope.node))
        if uses is None:
            uses = self._uses[id(scope.node)] = _scan_uses(scope.node)
        kinds = set()
        if key in uses.modules:
            kinds.add(Kind.MODULE)
        if key in uses.tensors:
            kinds.add(Kind.TENSOR)
        for callee, fed in uses.fed:
            if (
                key in fed
                and dotted(callee) != key
                and self.kind_of(callee, depth + 2) is Kind.MODULE
            ):
                kinds.add(Kind.TENSOR)
                break
        result = kinds.pop() if len(kinds) == 1 else Kind.UNKNOWN
        if self._memo is not None:
            self._memo[memo_key] = result
        return result

    # --- attributes -------------------------------------------------------------------------
    def _attribute_kind(self, expr: cst.Attribute, depth: int) -> Kind:
        if expr.attr.value in TENSOR_ATTRIBUTES:
            return self._tensor_or_unknown(expr.value, depth)
        if not (type(expr.value) is cst.Name and expr.value.value == "self"):
            return Kind.UNKNOWN
        owner = self._enclosing_class()
        values = self.attributes.get(owner or "", {}).get(expr.attr.value)
        if values:
            kinds = {self._attribute_value_kind(v, depth) for v in values}
            if len(kinds) == 1 and Kind.UNKNOWN not in kinds:
                return kinds.pop()
        return self._used_as(f"self.{expr.attr.value}", depth)

    def _attribute_value_kind(self, value: cst.BaseExpression | None, depth: int) -> Kind:
        """A value assigned to ``self.x`` elsewhere in the class; only calls are read (their
        local names belong to another function)."""
        if value is None:
            return Kind.TENSOR  # register_buffer
        return self.kind_of(value, depth + 1) if type(value) is cst.Call else Kind.UNKNOWN

    def _enclosing_class(self) -> str | None:
        for scope in reversed(self.names.scopes):
            if scope.kind == "class" and type(scope.node) is cst.ClassDef:
                return scope.node.name.value
        return None


def _class_attributes(module: cst.Module) -> dict[str, dict[str, list[cst.BaseExpression | None]]]:
    """``{class: {attr: [values assigned to self.attr in its methods]}}``; None for a
    ``register_buffer`` (a tensor)."""
    found: dict[str, dict[str, list[cst.BaseExpression | None]]] = {}
    for statement in module.body:
        if type(statement) is not cst.ClassDef:
            continue
        attrs = found.setdefault(statement.name.value, {})
        for method in statement.body.body:
            if type(method) is not cst.FunctionDef:
                continue
            for node in _scope_body(method):
                for attr, value in _self_assignments(node):
                    attrs.setdefault(attr, []).append(value)
    return found


def _self_assignments(node: cst.CSTNode) -> Iterator[tuple[str, cst.BaseExpression | None]]:
    if type(node) is cst.Assign:
        for target in node.targets:
            attr = self_attribute(target.target)
            if attr:
                yield attr, node.value
    elif type(node) is cst.AnnAssign and node.value is not None:
        attr = self_attribute(node.target)
        if attr:
            yield attr, node.value
    elif (
        type(node) is cst.Call
        and type(node.func) is cst.Attribute
        and node.func.attr.value == "register_buffer"
        and dotted(node.func.value) == "self"
        and node.args
        and type(node.args[0].value) is cst.SimpleString
    ):
        yield node.args[0].value.raw_value, None


class ReceiverTracker(Tracker):
    """Per-file receiver-kind analysis shared by rules: ``ctx.get(ReceiverTracker).kind_of(x)``.

    Adds what only the walk knows: ``isinstance`` tests around the node in hand."""

    def __init__(self, ctx):
        super().__init__(ctx)
        classes = local_module_classes(ctx.module, ctx.names)
        self.receivers = Receivers(ctx.module, ctx.names, classes)

    def kind_of(self, expr: cst.BaseExpression) -> Kind:
        narrowed = self._narrowed(expr)
        return narrowed if narrowed is not None else self.receivers.kind_of(expr)

    def _narrowed(self, expr: cst.BaseExpression) -> Kind | None:
        key = dotted(expr)
        if key is None:
            return None
        stack = self.ctx.stack
        for index in range(len(stack) - 2, -1, -1):
            node = stack[index]
            if type(node) in (cst.If, cst.IfExp) and stack[index + 1] is node.body:
                kind = self._isinstance_kind(node.test, key)
                if kind is not None:
                    return kind
        return None

    def _isinstance_kind(self, test: cst.BaseExpression, key: str) -> Kind | None:
        if type(test) is cst.BooleanOperation and type(test.operator) is cst.And:
            return self._isinstance_kind(test.left, key) or self._isinstance_kind(test.right, key)
        if not (
            type(test) is cst.Call
            and self.ctx.names.qualname(test.func) == "builtins.isinstance"
            and len(test.args) == 2
            and dotted(test.args[0].value) == key
        ):
            return None
        types = test.args[1].value
        options = [e.value for e in types.elements] if type(types) is cst.Tuple else [types]
        kinds = {self.receivers.annotation_kind(option) for option in options}
        return kinds.pop() if len(kinds) == 1 and Kind.UNKNOWN not in kinds else None
