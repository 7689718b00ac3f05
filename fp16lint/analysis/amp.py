"""GradScaler recognition: which calls create a GradScaler, and which expressions hold one.

A GradScaler is created by any spelling of the classes in ``data.amp_api.GRAD_SCALERS``
(``torch.amp.GradScaler("cuda")``, ``from torch.amp import GradScaler as GS``, the deprecated
``torch.cuda.amp.GradScaler()``...). An expression holds one when it is such a call, a name
every binding of which is one (or ``None``, or a parameter annotated with the class), or a
``self.<attr>`` that this file only ever assigns a GradScaler (or ``None``). Anything else is
unknown: a scaler passed in as an unannotated argument is not recognised.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from fp16lint.analysis.base import Tracker
from fp16lint.analysis.calls import argument, literal_bool
from fp16lint.analysis.dtypes import string_value
from fp16lint.analysis.names import NameResolver, self_attribute
from fp16lint.analysis.tree import statements
from fp16lint.data.amp_api import GRAD_SCALERS

_MAX_DEPTH = 4


@dataclass(frozen=True)
class ScalerSite:
    """Where a GradScaler comes from: its constructor call (None for an annotated parameter)."""

    call: cst.Call | None
    device: str | None  # "cuda", "cpu", or None when computed at run time
    enabled: bool | None  # the literal ``enabled`` (default True), None when computed


def grad_scaler_call(expr: cst.BaseExpression, names: NameResolver) -> ScalerSite | None:
    """The GradScaler ``expr`` constructs, or None when it is not a GradScaler call."""
    if type(expr) is not cst.Call:
        return None
    kind = GRAD_SCALERS.get(names.qualname(expr.func) or "")
    if kind is None:
        return None
    if any(arg.star for arg in expr.args):
        return ScalerSite(expr, kind.device, None)
    device = kind.device
    if device is None:
        value = argument(expr, "device", 0)
        device = "cuda" if value is None else string_value(value)
    return ScalerSite(expr, device, literal_bool(argument(expr, "enabled", kind.enabled_position)))


def _is_none(expr: cst.BaseExpression | None) -> bool:
    return type(expr) is cst.Name and expr.value == "None"


class GradScalerTracker(Tracker):
    """``ctx.get(GradScalerTracker).sites(expr)``: the GradScalers ``expr`` may hold."""

    tokens = ("GradScaler",)

    def __init__(self, ctx):
        super().__init__(ctx)
        # self.<attr> -> its sites, or None when some assignment is not a GradScaler
        self._attributes: dict[str, list[ScalerSite] | None] = {}
        if "GradScaler" in ctx.text:
            self._scan_attributes(ctx.module)

    def _scan_attributes(self, module: cst.Module) -> None:
        for node in statements(module):
            if type(node) is cst.Assign:
                for target in node.targets:
                    self._record(target.target, node.value)
            elif type(node) is cst.AnnAssign:
                self._record(node.target, node.value, node.annotation.annotation)

    def _record(
        self,
        target: cst.BaseExpression,
        value: cst.BaseExpression | None,
        annotation: cst.BaseExpression | None = None,
    ) -> None:
        attr = self_attribute(target)
        if attr is None or (attr in self._attributes and self._attributes[attr] is None):
            return
        found = self._from_value(value, 0) if value is not None else []
        if annotation is not None and self.ctx.names.qualname(annotation) in GRAD_SCALERS:
            found = (found or []) + [ScalerSite(None, None, None)]
        if found is None:
            self._attributes[attr] = None
        else:
            self._attributes.setdefault(attr, []).extend(found)

    def _from_value(self, value: cst.BaseExpression, depth: int) -> list[ScalerSite] | None:
        """Sites of a bound value: [] for None, None for anything not a GradScaler."""
        if _is_none(value):
            return []
        if type(value) is cst.IfExp:
            body = self._from_value(value.body, depth)
            orelse = self._from_value(value.orelse, depth)
            return None if body is None or orelse is None else body + orelse
        site = grad_scaler_call(value, self.ctx.names)
        if site is not None:
            return [site]
        found = self._sites(value, depth + 1)
        return found or None

    def sites(self, expr: cst.BaseExpression) -> list[ScalerSite]:
        """Every GradScaler ``expr`` may hold; [] when it is not (known to be) a GradScaler."""
        return self._sites(expr, 0)

    def is_scaler(self, expr: cst.BaseExpression) -> bool:
        return bool(self._sites(expr, 0))

    def _sites(self, expr: cst.BaseExpression, depth: int) -> list[ScalerSite]:
        if depth > _MAX_DEPTH:
            return []
        site = grad_scaler_call(expr, self.ctx.names)
        if site is not None:
            return [site]
        attr = self_attribute(expr)
        if attr is not None:
            return list(self._attributes.get(attr) or [])
        if type(expr) is not cst.Name:
            return []
        found: list[ScalerSite] = []
        for binding in self.ctx.names.bindings(expr.value) or ():
            if type(binding.node) is cst.Param:
                annotation = binding.node.annotation
                if (
                    annotation is None
                    or self.ctx.names.qualname(annotation.annotation) not in GRAD_SCALERS
                ):
                    return []
                found.append(ScalerSite(None, None, None))
                continue
            if binding.value is None:
                return []
            sites = self._from_value(binding.value, depth)
            if sites is None:
                return []
            found.extend(sites)
        return found
