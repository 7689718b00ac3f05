"""The project pass: join every file's summary, then run the project-wide rules once.

Per-file work is cached and parallel; this pass only reads the small ``facts`` dictionaries
the summaries carry, so it stays cheap on thousands of files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fp16lint.config import Settings
from fp16lint.engine import FILE_LEVEL, FileSummary, engine_finding
from fp16lint.findings import Finding, Fix, Position, Related, Severity, Span
from fp16lint.rules import INTERNAL_ERROR
from fp16lint.rules.base import Rule


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
        rule: type[Rule],
        path: str,
        span: list[int] | Span,
        message: str,
        related: Iterable[tuple[str, list[int] | Span, str]] = (),
        fix: Fix | None = None,
        severity: Severity | None = None,
    ) -> None:
        """``severity`` overrides the rule's for a finding the rule grades (FP202)."""
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
            )
        )


@dataclass
class ProjectResult:
    """The project pass' output: new findings, and per-file findings it completed
    (``replaced``: original -> amended copy)."""

    findings: list[Finding] = field(default_factory=list)
    replaced: dict[Finding, Finding] = field(default_factory=dict)


def _internal_error(rule: type[Rule], settings: Settings, exc: Exception) -> Finding:
    return engine_finding(
        INTERNAL_ERROR,
        str(settings.root),
        FILE_LEVEL,
        f"Internal error in rule {rule.code} (project pass): {type(exc).__name__}: {exc}",
    )


def run_project(
    summaries: Iterable[FileSummary], rules: Iterable[type[Rule]], settings: Settings
) -> ProjectResult:
    summaries = list(summaries)
    rules = list(rules)
    result = ProjectResult()
    if not any(r.is_project_rule() or r.amends() for r in rules):
        return result
    project = Project(summaries, settings)
    for rule in rules:
        try:
            if rule.is_project_rule():
                report = ProjectReport()
                rule.check_project(project, report)
                result.findings.extend(report.findings)
            if rule.amends():
                for summary in summaries:
                    for finding in summary.findings:
                        if finding.code == rule.code:
                            amended = rule.amend(project, finding)
                            if amended != finding:
                                result.replaced[finding] = amended
        except Exception as exc:
            result.findings.append(_internal_error(rule, settings, exc))
    return result
