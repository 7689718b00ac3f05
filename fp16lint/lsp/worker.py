"""The language server's parse and lint, in a worker process (see ``fp16lint.isolation``).

A file that crashes libcst's native parser would otherwise take the editor's server down with
it. One long-lived worker keeps the open buffers' trees (for the incremental re-parse) and
answers one request per edit; when it dies or runs past the limit, that version of the buffer
gets an FP999, a fresh worker starts, and the next edit is parsed in full.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from fp16lint.analysis.context import FileSummary
from fp16lint.analysis.tree import Memo
from fp16lint.engine import lint_source
from fp16lint.lsp import incremental
from fp16lint.positions import KnownOffsets
from fp16lint.rules import all_rules
from fp16lint.rules.base import Rule

# Wall seconds one lint may take in the editor before its worker is replaced.
EDITOR_WALL_LIMIT = 30.0


@dataclass(frozen=True)
class Request:
    path: str
    text: str
    codes: tuple[str, ...]  # the rules to run
    module_name: str
    is_package: bool
    buffer: bool  # an open buffer: re-parse only what changed since its last request
    forget: tuple[str, ...] = ()  # buffers closed since the last request


@dataclass
class Trees:
    """Open buffers' last trees, where their reported nodes were, and their nodes' child lists
    (kept across edits)."""

    parsed: dict[str, incremental.Parsed]
    offsets: dict[str, KnownOffsets]
    children: dict[str, Memo] = field(default_factory=dict)

    def forget(self, path: str) -> None:
        self.parsed.pop(path, None)
        self.offsets.pop(path, None)
        self.children.pop(path, None)


_trees = Trees({}, {})  # the worker's


@cache
def _rules(codes: tuple[str, ...]) -> list[type[Rule]]:
    return [rule for rule in all_rules() if rule.code in codes]


def summarize(request: Request, rules: list[type[Rule]], trees: Trees) -> FileSummary:
    """Lint a request's text; an open buffer re-uses (and updates) its entry in ``trees``."""
    parsed = known = kept = None
    if request.buffer:
        parsed = incremental.parse(request.text, trees.parsed.pop(request.path, None))
        if parsed is not None:
            trees.parsed[request.path] = parsed
            known = trees.offsets.setdefault(request.path, KnownOffsets())
            known.move_to(parsed.module, parsed.bounds)
            kept = trees.children.setdefault(request.path, {})
        else:
            trees.children.pop(request.path, None)
    return lint_source(
        request.path,
        request.text,
        rules,
        module_name=request.module_name,
        is_package=request.is_package,
        module=parsed.module if parsed is not None else None,
        known_offsets=known,
        kept_children=kept,
    )


def handle(request: Request) -> FileSummary:
    """The worker's handler."""
    for path in request.forget:
        _trees.forget(path)
    return summarize(request, _rules(request.codes), _trees)
