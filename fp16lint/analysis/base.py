"""The base of shared analyses that the engine's single walk keeps current."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import libcst as cst

if TYPE_CHECKING:
    from fp16lint.analysis.context import FileContext


class Tracker:
    """A shared analysis for one file.

    Its ``visit_X`` handlers run before any rule's on the way down, its ``leave_X`` handlers
    after them on the way up, so rules always see state for the node in hand. A tracker with
    no handlers is simply an analysis computed once per file and shared by rules.
    ``requires`` lists trackers this one reads (they are created first).
    """

    tokens: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[tuple[type[Tracker], ...]] = ()

    def __init__(self, ctx: FileContext):
        self.ctx = ctx


class BindingTracker(Tracker):
    """A tracker that follows what names and attributes are bound to: ``bind(target, value)``
    runs for each target of ``a = b = value`` and for ``a: T = value``, after the value's own
    handlers (so it can read the facts other trackers keep about the value)."""

    def leave_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self.bind(target.target, node.value)

    def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self.bind(node.target, node.value)

    def bind(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        raise NotImplementedError
