"""What rules and shared analyses see: the per-file context, fix edits, the per-file summary
and the project pass' view of every summary.

It lives below the rules and the engine (which fills it in), so that neither a rule nor an
analysis needs to import the engine or the project pass (DEVELOPERS.md, "Layers").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import libcst as cst

from fp16lint import suppression
from fp16lint.analysis.base import Tracker
from fp16lint.analysis.names import NameResolver
from fp16lint.findings import Applicability, Finding, Fix, Position, Related, Severity, Span
from fp16lint.positions import KnownOffsets
from fp16lint.settings import Settings


class ReportingRule(Protocol):
    """What a report needs of a rule (``rules.base.Rule`` has it)."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity]

    @classmethod
    def url(cls) -> str: ...


@dataclass(frozen=True)
class NodeEdit:
    """A fix edit expressed against a node; turned into an ``Edit`` once positions are known.

    ``where`` is ``replace`` (the node's text), ``before`` or ``after`` (insert at its start/end).
    """

    node: cst.CSTNode
    content: str
    where: str = "replace"


# --- the per-file context rules and trackers see -------------------------------------------
@dataclass
class PendingReport:
    rule: ReportingRule
    node: cst.CSTNode
    message: str
    edits: tuple[NodeEdit, ...]
    fix_message: str
    applicability: Applicability | None
    related: tuple[tuple[str, cst.CSTNode | None, str], ...]
    severity: Severity | None = None  # None: the rule's
    help: str | None = None  # what to do about it (the message says what is wrong)
    stack: tuple[cst.CSTNode, ...] = ()  # the walk's position when reported (see _resolve)


class FileContext:
    def __init__(
        self, path: str, text: str, module: cst.Module, module_name: str, is_package: bool
    ):
        self.path = path
        self.text = text
        self.module = module
        self.module_name = module_name
        self.is_package = is_package
        self.names = NameResolver(module, module_name, is_package)
        self.stack: list[cst.CSTNode] = []  # ancestors of the current node, itself last
        self.facts: dict[str, Any] = {}  # per-file facts for the project pass (JSON-able)
        self.trackers: dict[type[Tracker], Tracker] = {}
        self._pending: list[PendingReport] = []
        self._span_refs: list[tuple[cst.CSTNode, list[int], tuple[cst.CSTNode, ...]]] = []
        self.known_offsets: KnownOffsets | None = None  # see lint_source

    def get(self, kind: type[Tracker]) -> Any:
        """The shared analysis ``kind`` (declared in the rule's ``requires``)."""
        return self.trackers[kind]

    def parent(self, depth: int = 1) -> cst.CSTNode | None:
        index = len(self.stack) - 1 - depth
        return self.stack[index] if index >= 0 else None

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    def span_ref(
        self, node: cst.CSTNode, within: tuple[cst.CSTNode, ...] | None = None
    ) -> list[int]:
        """A ``[line, col, end_line, end_col]`` list filled in after the walk (for facts).
        ``within``: the path from the module down to one of ``node``'s ancestors, for a node
        the walk is not at (a tracker's set-up): it lets the position pass place it cheaply."""
        ref = [0, 0, 0, 0]
        self._span_refs.append((node, ref, tuple(self.stack) if within is None else within))
        return ref

    def release(self) -> None:
        """Drop what points back at this context (trackers, rules in pending reports), so that
        reference counting frees the tree at once instead of the cyclic collector (which spent
        4% of the time to lint the diffusers sources collecting them)."""
        self.trackers.clear()
        self._pending.clear()
        self._span_refs.clear()
        self.stack.clear()

    def report(self, rule: ReportingRule, node: cst.CSTNode, message: str, **kwargs: Any) -> None:
        self._pending.append(PendingReport(rule, node, message, **kwargs, stack=tuple(self.stack)))


@dataclass
class FileSummary:
    """What one file contributes: its findings, its facts, and its suppressions."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    noqa: suppression.Noqa = field(default_factory=suppression.Noqa)
    parsed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "findings": [f.to_dict() for f in self.findings],
            "facts": self.facts,
            "noqa": self.noqa.to_dict(),
            "parsed": self.parsed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileSummary:
        return cls(
            path=data["path"],
            findings=[Finding.from_dict(f) for f in data["findings"]],
            facts=data["facts"],
            noqa=suppression.Noqa.from_dict(data["noqa"]),
            parsed=data["parsed"],
        )


def span_of(ref: list[int] | tuple[int, ...]) -> Span:
    """A ``[line, col, end_line, end_col]`` fact (see ``FileContext.span_ref``) as a Span."""
    return Span(Position(ref[0], ref[1]), Position(ref[2], ref[3]))


class Project:
    def __init__(self, summaries: Iterable[FileSummary], settings: Settings):
        self.summaries = {s.path: s for s in summaries}
        self.settings = settings
        self._cache: dict[str, Any] = {}

    def facts(self, key: str) -> Iterator[tuple[str, Any]]:
        """``(path, value)`` for every file whose summary has the fact ``key``."""
        for path, summary in self.summaries.items():
            if key in summary.facts:
                yield path, summary.facts[key]

    def derived(self, name: str, build: Any) -> Any:
        """A value computed once per project pass and shared by rules (e.g. the model index)."""
        if name not in self._cache:
            self._cache[name] = build(self)
        return self._cache[name]


class ProjectReport:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def add(
        self,
        rule: type[ReportingRule],
        path: str,
        span: list[int] | Span,
        message: str,
        related: Iterable[tuple[str, list[int] | Span, str]] = (),
        fix: Fix | None = None,
        severity: Severity | None = None,
        help: str | None = None,
    ) -> None:
        """``severity`` overrides the rule's for a finding the rule grades (FP202); ``help``
        says what to do (the message says what is wrong)."""
        self.findings.append(
            Finding(
                rule.code,
                rule.name,
                severity or rule.severity,
                message,
                path,
                span if isinstance(span, Span) else span_of(span),
                fix,
                tuple(
                    Related(p, s if isinstance(s, Span) else span_of(s), m) for p, s, m in related
                ),
                rule.url(),
                help=help,
            )
        )
