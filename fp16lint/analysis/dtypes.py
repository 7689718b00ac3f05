"""Dtype facts: which floating-point type an expression names (fp16 / bf16 / fp32 / fp64).

Recognises torch dtypes in any spelling the name resolver can see (``torch.half``,
``th.float16``, ``from torch import float16 as f16``, ``DTYPE = torch.float16``), dtype strings
where an API takes them (``torch_dtype="float16"``), and the legacy tensor types
(``torch.cuda.HalfTensor`` and their string names). A name bound to fp16 on some branches and to
something else on others (``weight_dtype`` chosen from ``args.mixed_precision``) is *may-be
fp16*: rules treat it as fp16 and say "when mixed precision is fp16" (``when_maybe``). A table
lookup (``{"fp16": torch.float16, ...}[args.precision]``) is may-be fp16 the same way.

``tensor_dtype`` answers the same question for values: which dtype a tensor expression has by
what the function shows (a factory without ``dtype=`` makes float32, ``.half()`` fp16,
``.to(device)`` keeps the dtype, a ``DataLoader`` sample has its dataset's dtype);
``device_of`` tells a device argument from a dtype one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import libcst as cst

from fp16lint.analysis.calls import argument
from fp16lint.analysis.loops import data_loader_calls, target_position, unwrap_loop
from fp16lint.analysis.names import NameResolver
from fp16lint.analysis.tree import walk
from fp16lint.data.dtype_helpers import RETURNS_ITS_DTYPE

_MAX_DEPTH = 6


class DType(str, Enum):
    FP16 = "float16"
    BF16 = "bfloat16"
    FP32 = "float32"
    FP64 = "float64"


@dataclass(frozen=True)
class DTypeFact:
    dtype: DType
    maybe: bool = False  # chosen at run time: this dtype on at least one branch

    @property
    def is_fp16(self) -> bool:
        return self.dtype is DType.FP16


MAYBE_WORDING = " when mixed precision is fp16"


def when_maybe(fact: DTypeFact | None) -> str:
    """The words a message adds for a dtype chosen at run time (empty for a fixed dtype)."""
    return MAYBE_WORDING if fact is not None and fact.maybe else ""


_TORCH_DTYPES = {
    "torch.float16": DType.FP16,
    "torch.half": DType.FP16,
    "torch.bfloat16": DType.BF16,
    "torch.float32": DType.FP32,
    "torch.float": DType.FP32,
    "torch.float64": DType.FP64,
    "torch.double": DType.FP64,
    "numpy.float16": DType.FP16,
    "numpy.half": DType.FP16,
    "numpy.float32": DType.FP32,
    "numpy.float64": DType.FP64,
}
# Legacy tensor types: torch.HalfTensor, torch.cuda.HalfTensor, ... (and their string names).
LEGACY_TYPES = {
    f"torch.{device}{name}Tensor": dtype
    for device in ("", "cuda.")
    for name, dtype in (
        ("Half", DType.FP16),
        ("BFloat16", DType.BF16),
        ("Float", DType.FP32),
        ("Double", DType.FP64),
    )
}
_STRINGS = {
    "float16": DType.FP16,
    "fp16": DType.FP16,
    "half": DType.FP16,
    "bfloat16": DType.BF16,
    "bf16": DType.BF16,
    "float32": DType.FP32,
    "fp32": DType.FP32,
    "float": DType.FP32,
    "float64": DType.FP64,
    "double": DType.FP64,
    **{
        name.removeprefix("torch."): dtype
        for name, dtype in _TORCH_DTYPES.items()
        if name.startswith("torch.")
    },
}


def string_value(node: cst.BaseExpression) -> str | None:
    """The value of a plain (non-f, non-byte) string literal."""
    if type(node) is cst.SimpleString and node.prefix.lower() in ("", "r", "u"):
        return node.raw_value
    return None


def dtype_of_string(text: str) -> DType | None:
    text = text.strip()
    if text in LEGACY_TYPES:
        return LEGACY_TYPES[text]
    return _STRINGS.get(text.removeprefix("torch."))


def dtype_of(
    expr: cst.BaseExpression | None,
    names: NameResolver,
    *,
    strings: bool = False,
    _depth: int = 0,
) -> DTypeFact | None:
    """The dtype ``expr`` denotes, or None when it names no dtype we can see.

    ``strings=True`` where the API takes dtype strings (``torch_dtype="float16"``,
    ``.type("torch.cuda.HalfTensor")``).
    """
    if expr is None or _depth > _MAX_DEPTH:
        return None
    if type(expr) in (cst.Name, cst.Attribute):
        qualname = names.qualname(expr)
        if qualname is not None:
            known = _TORCH_DTYPES.get(qualname) or LEGACY_TYPES.get(qualname)
            if known is not None:
                return DTypeFact(known)
        if type(expr) is cst.Name:
            return _from_bindings(names.values(expr.value), names, strings, _depth)
        return None
    if strings:
        text = string_value(expr)
        if text is not None:
            found = dtype_of_string(text)
            return DTypeFact(found) if found is not None else None
    if type(expr) is cst.IfExp:
        return _combine([expr.body, expr.orelse], names, strings, _depth)
    if type(expr) is cst.Subscript:
        table = _dict_values(expr.value, names)
        return _combine(table, names, strings, _depth) if table else None
    if type(expr) is cst.Call and _promotes_to_float32(expr, names, _depth):
        return DTypeFact(DType.FP32)  # float32, or float64 when another side is: wide
    if type(expr) is cst.Call and expr.args:
        position = RETURNS_ITS_DTYPE.get(names.qualname(expr.func) or "")
        if position is not None and len(expr.args) > position:
            return dtype_of(expr.args[position].value, names, strings=strings, _depth=_depth + 1)
    if type(expr) is cst.Call and names.qualname(expr.func) == "builtins.getattr":
        args = expr.args
        if len(args) == 2 and names.qualname(args[0].value) in ("torch", "numpy"):
            text = string_value(args[1].value)
            found = dtype_of_string(text) if text else None
            return DTypeFact(found) if found is not None else None
    return None


def _promotes_to_float32(call: cst.Call, names: NameResolver, depth: int) -> bool:
    """``torch.promote_types(x.dtype, torch.float32)`` or ``functools.reduce(
    torch.promote_types, (x.dtype, w.dtype, torch.float32))``: at least float32."""
    qualname = names.qualname(call.func)
    if qualname == "functools.reduce" and len(call.args) >= 2:
        if names.qualname(call.args[0].value) != "torch.promote_types":
            return False
        items = call.args[1].value
        if type(items) not in (cst.Tuple, cst.List):
            return False
        sides = [e.value for e in items.elements]  # type: ignore[attr-defined]
    elif qualname == "torch.promote_types":
        sides = [a.value for a in call.args]
    else:
        return False
    return any(
        (fact := dtype_of(side, names, _depth=depth + 1)) is not None
        and fact.dtype in (DType.FP32, DType.FP64)
        and not fact.maybe
        for side in sides
    )


def _dict_values(expr: cst.BaseExpression, names: NameResolver) -> list[cst.BaseExpression]:
    """The values of a dict literal, or of the one dict literal a name is bound to."""
    if type(expr) is cst.Name:
        values = names.values(expr.value)
        expr = values[0] if len(values) == 1 and values[0] is not None else expr
    if type(expr) is cst.Dict:
        return [e.value for e in expr.elements if type(e) is cst.DictElement]
    return []


def _from_bindings(values, names: NameResolver, strings: bool, depth: int) -> DTypeFact | None:
    if not values:
        return None
    return _combine(list(values), names, strings, depth)


def _combine(options, names: NameResolver, strings: bool, depth: int) -> DTypeFact | None:
    """One fact for several possible values: fp16 wins (may-be) when it is among them."""
    facts = [dtype_of(option, names, strings=strings, _depth=depth + 1) for option in options]
    known = [f for f in facts if f is not None]
    if not known:
        return None
    kinds = {f.dtype for f in known}
    uncertain = len(known) != len(facts) or len(kinds) > 1 or any(f.maybe for f in known)
    if DType.FP16 in kinds:
        return DTypeFact(DType.FP16, maybe=uncertain)
    if len(kinds) == 1 and len(known) == len(facts):
        return DTypeFact(kinds.pop(), maybe=uncertain)
    return None


# --- the dtype of a tensor value --------------------------------------------------------------
# Factories whose result has the default floating dtype (float32) unless given ``dtype=``.
FLOAT_FACTORIES = frozenset(
    f"torch.{name}" for name in ("randn", "rand", "zeros", "ones", "empty", "linspace", "logspace")
)
TENSOR_DATASETS = frozenset(
    {"torch.utils.data.TensorDataset", "torch.utils.data.dataset.TensorDataset"}
)
# Methods that return a tensor of their receiver's dtype.
DTYPE_PRESERVING = frozenset(
    {
        "to",
        "cuda",
        "cpu",
        "unsqueeze",
        "squeeze",
        "view",
        "reshape",
        "permute",
        "transpose",
        "contiguous",
        "clone",
        "detach",
        "flatten",
        "expand",
        "repeat",
        "requires_grad_",
        "pin_memory",
    }
)
_METHOD_DTYPES = {
    "half": DType.FP16,
    "bfloat16": DType.BF16,
    "float": DType.FP32,
    "double": DType.FP64,
}


def _has_float_literal(expr: cst.BaseExpression) -> bool:
    if type(expr) is cst.Float:
        return True
    if type(expr) is cst.UnaryOperation:
        return _has_float_literal(expr.expression)
    if type(expr) in (cst.List, cst.Tuple):
        return any(_has_float_literal(e.value) for e in expr.elements)
    return False


def tensor_dtype(
    expr: cst.BaseExpression, names: NameResolver, *, _depth: int = 0, _seen: dict | None = None
) -> DTypeFact | None:
    """The dtype of the tensor ``expr`` evaluates to, by what the code shows, or None.

    A name's bindings must all agree. A binding that reads the name itself (``x = x.to(dev)``)
    sees only the bindings before it.
    """
    if _depth > _MAX_DEPTH:
        return None
    seen = _seen or {}
    if type(expr) is cst.Name:
        bindings = names.bindings(expr.value) or []
        visible = seen.get(expr.value, len(bindings))
        facts = []
        for index, binding in enumerate(bindings[:visible]):
            if type(binding.node) is cst.For and binding.qualname is None:
                facts.append(loader_sample_dtype(binding.node, expr.value, names, _depth + 1))
                continue
            if binding.value is None or binding.qualname is not None:
                return None
            inner = {**seen, expr.value: index}
            facts.append(tensor_dtype(binding.value, names, _depth=_depth + 1, _seen=inner))
        if not facts or any(f is None or f.maybe for f in facts):
            return None
        kinds = {f.dtype for f in facts}
        return DTypeFact(kinds.pop()) if len(kinds) == 1 else None
    if type(expr) is not cst.Call:
        return None
    func = expr.func
    qualname = names.qualname(func)
    explicit = argument(expr, "dtype")
    if qualname in FLOAT_FACTORIES:
        return dtype_of(explicit, names) if explicit is not None else DTypeFact(DType.FP32)
    if qualname in ("torch.tensor", "torch.full"):
        if explicit is not None:
            return dtype_of(explicit, names)
        data = [a.value for a in expr.args if a.keyword is None]
        index = 0 if qualname == "torch.tensor" else 1
        if len(data) > index and _has_float_literal(data[index]):
            return DTypeFact(DType.FP32)
        return None
    if qualname in LEGACY_TYPES:
        return DTypeFact(LEGACY_TYPES[qualname])
    if type(func) is not cst.Attribute:
        return None
    method = func.attr.value
    if method in _METHOD_DTYPES:
        return DTypeFact(_METHOD_DTYPES[method])
    if method == "type":
        return dtype_of(expr.args[0].value, names, strings=True) if expr.args else None
    if method == "to":
        for arg in expr.args:
            keyword = arg.keyword.value if arg.keyword is not None else None
            if keyword == "dtype" or (keyword is None and not arg.star):
                found = dtype_of(arg.value, names)
                if found is not None:
                    return found
                if keyword == "dtype" or device_of(arg.value, names) is None:
                    return None  # another tensor, or a dtype we cannot see
    if method in DTYPE_PRESERVING:
        return tensor_dtype(func.value, names, _depth=_depth + 1, _seen=seen)
    return None


def loader_sample_dtype(
    loop: cst.For, name: str, names: NameResolver, _depth: int = 0
) -> DTypeFact | None:
    """The dtype of ``name``, a target of ``loop``, when the loop iterates a ``DataLoader``
    whose dataset shows it: ``x`` in ``for x, y in DataLoader(TensorDataset(a, b))`` has
    ``a``'s dtype, a batch of ``DataLoader(t)`` has ``t``'s. The default collation stacks
    tensors without converting them (tests/facts/test_loader_samples.py); a ``collate_fn``
    or any other dataset leaves the dtype unknown."""
    unwrapped = unwrap_loop(loop.iter, loop.target, names)
    loaders = data_loader_calls(unwrapped[0], names) if unwrapped is not None else None
    if unwrapped is None or loaders is None:
        return None
    position = target_position(unwrapped[1], name)
    facts = set()
    for loader in loaders:
        dataset = argument(loader, "dataset", 0)
        if dataset is None or argument(loader, "collate_fn") is not None:
            return None
        facts.add(_dataset_column_dtype(dataset, position, names, _depth))
    return facts.pop() if len(facts) == 1 else None


def _dataset_column_dtype(
    dataset: cst.BaseExpression, position: int | None, names: NameResolver, depth: int
) -> DTypeFact | None:
    """The dtype of column ``position`` of a ``TensorDataset`` (or, for -1, of a tensor used
    as the dataset itself)."""
    if position is None or depth > _MAX_DEPTH:
        return None
    if type(dataset) is cst.Name:
        values = names.values(dataset.value)
        facts = {
            _dataset_column_dtype(v, position, names, depth + 1) if v is not None else None
            for v in values
        }
        return facts.pop() if len(facts) == 1 else None
    if type(dataset) is cst.Call and names.qualname(dataset.func) in TENSOR_DATASETS:
        columns = dataset.args
        if position < 0 or position >= len(columns) or any(a.star or a.keyword for a in columns):
            return None
        return tensor_dtype(columns[position].value, names, _depth=depth + 1)
    return tensor_dtype(dataset, names, _depth=depth + 1) if position < 0 else None


def device_of(expr: cst.BaseExpression | None, names: NameResolver, _depth: int = 0) -> str | None:
    """The device ``expr`` denotes: a literal (``"cuda:0"``), ``torch.device("cpu")``; ``"?"``
    for a device chosen at run time that is still evidently a device (``x.device``,
    ``torch.device(name)``, ``args.device``); None when it may not be a device at all."""
    if expr is None or _depth > _MAX_DEPTH:
        return None
    text = string_value(expr)
    if text is not None:
        return text if dtype_of_string(text) is None else None
    if type(expr) is cst.Call and names.qualname(expr.func) == "torch.device":
        literal = string_value(expr.args[0].value) if expr.args else None
        return literal or "?"
    if type(expr) is cst.Attribute and expr.attr.value == "device":
        return "?"
    if type(expr) is cst.Name:
        values = names.values(expr.value)
        found = {device_of(v, names, _depth + 1) for v in values} if values else {None}
        if None in found:
            return "?" if expr.value in _device_names(expr.value, names) else None
        return found.pop() if len(found) == 1 else "?"
    return None


def cpu_choice(expr: cst.BaseExpression | None, names: NameResolver, _depth: int = 0) -> str | None:
    """Whether ``expr`` places on the CPU: ``""`` when it does (``"cpu"``, a ``device_map`` of
    ``{"": "cpu"}``), the name of the variable when one of its values does (``device = "cuda"
    if torch.cuda.is_available() else "cpu"``: a CPU path), None when not seen to."""
    if expr is None or _depth > _MAX_DEPTH:
        return None
    if type(expr) is cst.Dict:  # ``device_map={"": device}``: the whole model
        whole = [e.value for e in expr.elements
                 if type(e) is cst.DictElement and string_value(e.key) == ""]  # fmt: skip
        return cpu_choice(whole[0], names, _depth + 1) if len(whole) == 1 else None
    if type(expr) is cst.IfExp:
        found = [cpu_choice(b, names, _depth + 1) for b in (expr.body, expr.orelse)]
        return None if found == [None, None] else "?"
    if type(expr) is cst.Name:
        values = names.values(expr.value)
        found = [cpu_choice(v, names, _depth + 1) if v is not None else None for v in values]
        if not any(f is not None for f in found):
            return None
        return "" if all(f == "" for f in found) else expr.value
    device = device_of(expr, names, _depth + 1)
    return "" if device is not None and device.split(":")[0] == "cpu" else None


def _device_names(name: str, names: NameResolver) -> set[str]:
    """Names the scope binding ``name`` passes as a device: ``device=d`` keywords and the first
    of two ``.to(d, dtype)`` arguments (usage shows a parameter is a device)."""
    scope = names.scope_of(name)
    if scope is None or scope.node is None:
        return set()
    cached = scope.notes.get("device_names")
    if cached is None:
        cached = set()
        for node in walk(scope.node):
            if type(node) is cst.Arg and getattr(node.keyword, "value", "") == "device":
                if type(node.value) is cst.Name:
                    cached.add(node.value.value)
            elif (
                type(node) is cst.Call
                and type(node.func) is cst.Attribute
                and node.func.attr.value == "to"
                and len(node.args) == 2
                and node.args[0].keyword is None
                and type(node.args[0].value) is cst.Name
                and dtype_of(node.args[1].value, names) is not None
            ):
                cached.add(node.args[0].value.value)
        scope.notes["device_names"] = cached
    return cached  # type: ignore[return-value]
