"""Calls whose result the caller casts to a dtype: front ends that run before the model's dtype.

``mel = self.mel_converter(audio).to(self.dtype)`` or ``x = log_mel(x)`` followed by
``x = x.to(dtype=self.conv.weight.dtype)``: the caller converts what the callee returns to the
model's dtype, so the callee (a spectrogram, a tokenizer-side transform) is written for the
data the caller is given, not for activations in that dtype. Library mode's assumption that
every module runs on float16 activations does not hold for it (FP204: ``stft`` of the raw
waveform).

Per file, ``ctx.facts["recast"]``: ``[[caller key, kind, name], ...]`` in the call graph's
encoding (``analysis.exposure``); the project pass (``recast_only``) asks whether every
project caller of a function casts its result.
"""

from __future__ import annotations

from typing import Any

import libcst as cst

from fp16lint.analysis.base import Tracker
from fp16lint.analysis.calls import argument
from fp16lint.analysis.dtypes import dtype_of
from fp16lint.analysis.exposure import ExposureTracker, exposure_of
from fp16lint.analysis.names import NameResolver

_CASTS = frozenset({"to", "type", "type_as", "half"})


def _is_cast(call: cst.Call, names: NameResolver) -> bool:
    """``.to(x.dtype)``/``.to(torch.float16)``/``.to(dtype=...)`` (not a device move),
    ``.type(...)``, ``.type_as(x)``, ``.half()``."""
    method = call.func.attr.value  # type: ignore[attr-defined]
    if method != "to":
        return True
    if argument(call, "dtype") is not None:
        return True
    first = call.args[0].value if call.args and call.args[0].keyword is None else None
    if type(first) is cst.Attribute and first.attr.value == "dtype":
        return True
    return first is not None and dtype_of(first, names) is not None


def _cast_of(expr: cst.BaseExpression, name: str, names: NameResolver) -> bool:
    """``name.to(dtype=...)`` (through other calls on it: ``.to(...).contiguous()``)."""
    while type(expr) is cst.Call and type(expr.func) is cst.Attribute:
        if expr.func.attr.value in _CASTS and _is_cast(expr, names):
            receiver = expr.func.value
            while type(receiver) is cst.Call and type(receiver.func) is cst.Attribute:
                receiver = receiver.func.value
            return type(receiver) is cst.Name and receiver.value == name
        expr = expr.func.value
    return False


class RecastTracker(Tracker):
    """Records the calls whose result is cast to a dtype right away or by the next statement."""

    requires = (ExposureTracker,)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.exposure: ExposureTracker = ctx.get(ExposureTracker)
        self.found: list[list[str]] = []

    def visit_Call(self, node: cst.Call) -> None:
        if type(node.func) not in (cst.Name, cst.Attribute) or not self._recast(node):
            return
        key = self.exposure.frame.key
        callee = self.exposure.callee(node.func)
        if key is not None and callee is not None and [key, *callee] not in self.found:
            self.found.append([key, *callee])

    def _recast(self, node: cst.Call) -> bool:
        stack = self.ctx.stack
        if len(stack) < 4:
            return False
        parent, grand = stack[-2], stack[-3]
        if type(parent) is cst.Attribute and parent.value is node:
            return (
                type(grand) is cst.Call
                and grand.func is parent
                and parent.attr.value in _CASTS
                and _is_cast(grand, self.ctx.names)
            )
        if type(parent) is not cst.Assign or len(parent.targets) != 1:
            return False
        target = parent.targets[0].target
        line, block = stack[-3], stack[-4]
        if (
            type(target) is not cst.Name
            or type(line) is not cst.SimpleStatementLine
            or type(block) not in (cst.IndentedBlock, cst.Module)
        ):
            return False  # a one-line body (``if flag: y = f(x)``) has no next statement
        body = list(block.body)
        index = next((i for i, s in enumerate(body) if s is line), None)
        if index is None or index + 1 >= len(body):
            return False
        after = body[index + 1]
        if type(after) is not cst.SimpleStatementLine or type(after.body[0]) is not cst.Assign:
            return False
        assign = after.body[0]
        targets = assign.targets
        return (
            len(targets) == 1
            and type(targets[0].target) is cst.Name
            and targets[0].target.value == target.value
            and _cast_of(assign.value, target.value, self.ctx.names)
        )

    def leave_Module(self, node: cst.Module) -> None:
        if self.found:
            self.ctx.facts["recast"] = self.found


def _recast_callers(project: Any) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per function key: the project functions that call it, and those that cast its result."""
    exposure = exposure_of(project)
    callers: dict[str, set[str]] = {}
    for key, (_, called) in exposure.callees.items():
        for kind, name, _span in called:
            target = exposure.resolve([kind, name])
            if target is not None:
                callers.setdefault(target, set()).add(key)
    casting: dict[str, set[str]] = {}
    for summary in project.summaries.values():
        for key, kind, name in summary.facts.get("recast", ()):
            target = exposure.resolve([kind, name])
            if target is not None:
                casting.setdefault(target, set()).add(key)
    return callers, casting


def recast_only(project: Any, fn: str | None) -> bool:
    """Function ``fn`` has project callers and every one casts what it returns to a dtype."""
    callers, casting = project.derived("recasts", _recast_callers)
    found = callers.get(fn or "")
    return bool(found) and found <= casting.get(fn or "", set())
