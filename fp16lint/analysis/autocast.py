"""Autocast regions: where ops run under ``torch.autocast`` and with which dtype.

Tracks ``with`` blocks and decorators of every autocast spelling (``torch.autocast``,
``torch.amp.autocast``, the deprecated ``torch.cuda.amp``/``torch.cpu.amp`` forms,
``accelerator.autocast()``), also through a name bound to one (``ctx = torch.autocast(...)``,
``ctx = nullcontext() if cpu else torch.autocast(...)``; then ``with ctx:``), and through a name
bound to the autocast callable itself, called later (``scope = autocast if amp else nullcontext``,
``scope = partial(torch.autocast, dtype=torch.float16)``; then ``with scope("cuda"):``). Defaults follow
PyTorch: CUDA autocast runs fp16, CPU autocast bf16 (../shared/FACTS.md §4). ``enabled=False``
opens a region where autocast is off.

A dtype other than fp16/bf16 (``dtype=torch.float32``) is not a float32 region. Every device but
CUDA rejects it: autocast warns and disables itself. CUDA accepts it: ops on autocast's lists
(matmul, linear, conv, softmax, ...) are cast to float32, every other op runs in its inputs'
dtype (torch/amp/autocast_mode.py checks the dtype only for non-CUDA devices; see
tests/facts/test_autocast_fp32.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import libcst as cst

from fp16lint.analysis.base import Tracker
from fp16lint.analysis.calls import argument, literal_bool
from fp16lint.analysis.dtypes import DType, DTypeFact, dtype_of, string_value

# qualified name -> the device it implies (None: taken from the first argument)
AUTOCAST_CALLS: dict[str, str | None] = {
    "torch.autocast": None,
    "torch.amp.autocast": None,
    "torch.amp.autocast_mode.autocast": None,
    "torch.cuda.amp.autocast": "cuda",
    "torch.cuda.amp.autocast_mode.autocast": "cuda",
    "torch.cpu.amp.autocast": "cpu",
    "torch.cpu.amp.autocast_mode.autocast": "cpu",
}
_DEFAULT_DTYPE = {"cuda": DType.FP16, "cpu": DType.BF16}
_SUPPORTED = (DType.FP16, DType.BF16)
_NULL_CONTEXTS = frozenset({"contextlib.nullcontext"})
_NULL_CALLABLES = frozenset({"contextlib.nullcontext", "contextlib.suppress"})


@dataclass(frozen=True)
class Region:
    node: cst.CSTNode  # the autocast call (or decorator expression)
    device: str | None  # "cuda", "cpu", or None when not evident
    dtype: DTypeFact | None  # explicit or device default; None when not evident
    enabled: bool | None  # False for enabled=False; None when computed at run time
    # Autocast rejects the requested dtype on this device, warns and disables itself
    # (``enabled`` is then False although the code asked for an enabled region).
    unsupported_dtype: bool = False

    @property
    def is_fp16(self) -> bool:
        """fp16 compute is (or may be) active inside this region."""
        if self.enabled is False:
            return False
        if self.dtype is None:
            return self.device in (None, "cuda")
        return self.dtype.dtype is DType.FP16

    @property
    def is_bf16(self) -> bool:
        return (
            self.enabled is not False and self.dtype is not None and self.dtype.dtype is DType.BF16
        )

    @property
    def lowers_precision(self) -> bool:
        """Autocast is (or may be) on here with a 16-bit dtype."""
        if self.enabled is False:
            return False
        return self.dtype is None or self.dtype.maybe or self.dtype.dtype in _SUPPORTED


def _is_accelerate_autocast(call: cst.Call, ctx) -> bool:
    return (
        type(call.func) is cst.Attribute
        and call.func.attr.value == "autocast"
        and "accelerat" in ctx.code(call.func.value).lower()
    )


def _bound_autocast(func: cst.Name, ctx) -> tuple[cst.BaseExpression, list[cst.Arg], bool] | None:
    """For a name bound (every time) to the autocast callable, to ``functools.partial`` of it, or
    to a choice between it and a null context: the autocast callable, the arguments bound ahead
    of the call's own, and whether a null context is the alternative."""
    choices: list[cst.BaseExpression] = []
    for value in ctx.names.values(func.value):
        if value is None:
            return None
        choices.extend((value.body, value.orelse) if type(value) is cst.IfExp else (value,))
    found = _autocast_callable(choices, ctx)
    return found if found is not None and found[0] is not None else None


def _autocast_callable(
    choices: list[cst.BaseExpression], ctx
) -> tuple[cst.BaseExpression | None, list[cst.Arg], bool] | None:
    """``(autocast callable or None, arguments bound ahead, a null context among them)`` when
    every choice is the autocast callable, ``partial`` of it, or a null context."""
    found: tuple[cst.BaseExpression, list[cst.Arg]] | None = None
    null = False
    for choice in choices:
        bound: list[cst.Arg] = []
        if (
            type(choice) is cst.Call
            and choice.args
            and ctx.names.qualname(choice.func) == "functools.partial"
        ):
            bound, choice = list(choice.args[1:]), choice.args[0].value
        name = ctx.names.qualname(choice)
        if name in _NULL_CALLABLES:
            null = True
        elif name in AUTOCAST_CALLS and found is None:
            found = (choice, bound)
        else:
            return None
    return (*found, null) if found is not None else (None, [], null)


def returned_autocast(expr: cst.BaseExpression, ctx) -> dict[str, Any] | None:
    """What ``return expr`` hands back, for a caller's ``with f(...)():``: ``{"device": ...}``
    for an autocast callable that may open an fp16 region (``partial(torch.autocast,
    dtype=d)``; ``"null"`` when a null context is the other choice), ``{"null": True}`` for a
    null context alone (``suppress``), None for anything else."""
    choices = [expr.body, expr.orelse] if type(expr) is cst.IfExp else [expr]
    found = _autocast_callable(choices, ctx)
    if found is None:
        return None
    func, bound, null = found
    if func is None:
        return {"null": True}
    region = autocast_region(cst.Call(func=func, args=bound), ctx, 2)
    if region is None or not region.is_fp16 or not region.lowers_precision:
        return None
    out: dict[str, Any] = {"device": region.device}
    if null or region.enabled is None or (region.dtype is not None and region.dtype.maybe):
        out["null"] = True  # may be fp16: another choice is not
    return out


def returned_call(call: cst.Call, ctx) -> str | None:
    """``with scope():`` where ``scope = f(...)`` (every binding): the function ``f`` whose
    result opens the region, when it is not torch's (``get_autocast`` in another module)."""
    func = call.func
    if type(func) is not cst.Name or call.args:
        return None
    values = ctx.names.values(func.value)
    if not values or any(type(v) is not cst.Call for v in values):
        return None
    names = set()
    for value in values:
        inner = value.func
        name = ctx.names.qualname(inner)
        if name is None and type(inner) is cst.Name and ctx.module_name:
            bindings = ctx.names.bindings(inner.value) or ()
            if bindings and all(type(b.node) is cst.FunctionDef for b in bindings):
                name = f"{ctx.module_name}.{inner.value}"
        if name is None or name.startswith(("torch.", "contextlib.", "functools.", "builtins.")):
            return None
        names.add(name)
    return names.pop() if len(names) == 1 else None


def autocast_region(call: cst.BaseExpression, ctx, _depth: int = 0) -> Region | None:
    """The region an autocast call opens, or None if ``call`` is not an autocast call.

    A name bound (every time) to an autocast call, or to one that is chosen at run time against
    ``nullcontext()``, opens that call's region (with ``enabled=None`` for the conditional one).
    """
    if type(call) is cst.Name and _depth < 2:
        values = ctx.names.values(call.value)
        regions = [autocast_region(v, ctx, _depth + 1) if v is not None else None for v in values]
        if not regions or any(r is None for r in regions):
            return None
        return regions[0] if len(regions) == 1 else None
    if type(call) is cst.IfExp and _depth < 3:
        branches = (call.body, call.orelse)
        regions = [autocast_region(b, ctx, _depth + 1) for b in branches]
        null = [
            type(b) is cst.Call and ctx.names.qualname(b.func) in _NULL_CONTEXTS for b in branches
        ]
        if (regions[0] is not None and null[1]) or (regions[1] is not None and null[0]):
            region = regions[0] or regions[1]
            enabled = False if region.enabled is False else None
            return Region(
                region.node, region.device, region.dtype, enabled, region.unsupported_dtype
            )
        return None
    if type(call) is not cst.Call:
        return None
    qualname = ctx.names.qualname(call.func)
    is_accelerate = qualname is None and _is_accelerate_autocast(call, ctx)
    if qualname not in AUTOCAST_CALLS and not is_accelerate:
        bound = _bound_autocast(call.func, ctx) if type(call.func) is cst.Name else None
        if bound is None or _depth >= 2:
            return None
        func, ahead, null = bound
        region = autocast_region(call.with_changes(func=func, args=[*ahead, *call.args]), ctx, 2)
        if region is None:
            return None
        enabled = None if null and region.enabled is not False else region.enabled
        return replace(region, node=call, enabled=enabled)
    implied = AUTOCAST_CALLS.get(qualname) if qualname else None
    if implied is not None or is_accelerate:
        device = implied
        dtype_arg = argument(call, "dtype", 1 if implied is not None else None)
        enabled_arg = argument(call, "enabled", 0 if implied is not None else None)
    else:
        device_arg = argument(call, "device_type", 0)
        device = string_value(device_arg) if device_arg is not None else None
        dtype_arg = argument(call, "dtype", 1)
        enabled_arg = argument(call, "enabled", 2)
    if dtype_arg is not None:
        dtype = dtype_of(dtype_arg, ctx.names)
    elif device in _DEFAULT_DTYPE:
        dtype = DTypeFact(_DEFAULT_DTYPE[device])
    else:
        dtype = None
    enabled = literal_bool(enabled_arg)
    unsupported = (
        enabled is not False
        and device is not None
        and device != "cuda"
        and dtype is not None
        and not dtype.maybe
        and dtype.dtype not in _SUPPORTED
    )
    if unsupported:
        enabled = False  # "In CPU autocast, but the target dtype is not supported. Disabling."
    return Region(call, device, dtype, enabled, unsupported)


class AutocastTracker(Tracker):
    """The stack of autocast regions around the current node: ``ctx.get(AutocastTracker)``."""

    tokens = ("autocast",)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.regions: list[Region] = []
        self._pushed: dict[int, int] = {}  # id(With/FunctionDef) -> regions pushed
        # ``with scope():`` where ``scope = f(...)``, ``f`` a project function: (call, f); the
        # project join decides whether ``f`` returns an fp16 autocast (``returned_autocast``)
        self.returned: list[tuple[cst.Call, str]] = []

    @property
    def current(self) -> Region | None:
        return self.regions[-1] if self.regions else None

    @property
    def in_fp16_region(self) -> bool:
        return self.current is not None and self.current.is_fp16

    def _push(self, owner: cst.CSTNode, calls) -> None:
        count = 0
        for call in calls:
            region = autocast_region(call, self.ctx)
            if region is not None:
                self.regions.append(region)
                count += 1
            elif type(call) is cst.Call and type(owner) is cst.With:
                function = returned_call(call, self.ctx)
                if function is not None:
                    self.returned.append((call, function))
                    self._pushed[-id(owner)] = self._pushed.get(-id(owner), 0) + 1
        if count:
            self._pushed[id(owner)] = count

    def _pop(self, owner: cst.CSTNode) -> None:
        for _ in range(self._pushed.pop(id(owner), 0)):
            self.regions.pop()
        for _ in range(self._pushed.pop(-id(owner), 0)):
            self.returned.pop()

    def visit_With(self, node: cst.With) -> None:
        self._push(node, [item.item for item in node.items])

    def leave_With(self, node: cst.With) -> None:
        self._pop(node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._push(node, [d.decorator for d in node.decorators])

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._pop(node)
