"""The base of shared analyses that the engine's single walk keeps current."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from fp16lint.engine import FileContext


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
