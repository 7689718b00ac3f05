"""The project pass: join every file's summary, then run the project-wide rules once.

Per-file work is cached and parallel; this pass only reads the small ``facts`` dictionaries
the summaries carry, so it stays cheap on thousands of files.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from dataclasses import dataclass, field

from fp16lint.analysis.context import FileSummary, Project, ProjectReport
from fp16lint.engine import FILE_LEVEL, engine_finding
from fp16lint.findings import Finding
from fp16lint.rules import INTERNAL_ERROR
from fp16lint.rules.base import Rule
from fp16lint.settings import Settings


@dataclass
class ProjectResult:
    """The project pass' output: new findings, and per-file findings it completed
    (``replaced``: original -> amended copy, or None for a finding the project pass withdraws:
    FP101's deliberate casts, FP301/FP304 sites float16 does not reach)."""

    findings: list[Finding] = field(default_factory=list)
    replaced: dict[Finding, Finding | None] = field(default_factory=dict)  # None: dropped


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
    # The summaries (plain data, no cycles) are most of this process's objects: kept out of the
    # cyclic collector, its full collections, which the project's indexes set off, skip them
    # (one took 0.1-0.3 s on 200 transformers files).
    gc.freeze()
    try:
        for rule in rules:
            _run_rule(project, summaries, rule, result)
    finally:
        gc.unfreeze()
    return result


def _run_rule(
    project: Project, summaries: list[FileSummary], rule: type[Rule], result: ProjectResult
) -> None:
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
        result.findings.append(_internal_error(rule, project.settings, exc))
