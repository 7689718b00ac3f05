"""GitHub Actions workflow commands: one ``::error``/``::warning``/``::notice`` annotation per
finding, shown on the pull request's diff.

A finding in a notebook cell is annotated on the notebook file as a whole (its lines count
from the cell, not from the file), with the cell in the message.
"""

from __future__ import annotations

from fp16lint.findings import Finding, Severity
from fp16lint.formatters import FormatContext, location, with_help

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(finding: Finding) -> str:
    span = finding.span
    props = [("title", f"fp16lint ({finding.code})"), ("file", finding.path)]
    if span.cell is None:
        props += [
            ("line", str(span.start.line)),
            ("endLine", str(span.end.line)),
            ("col", str(span.start.column)),
            ("endColumn", str(span.end.column)),
        ]
    head = ",".join(f"{key}={_property(value)}" for key, value in props)
    body = f"{location(finding.path, span)}: {finding.code} {with_help(finding)}"
    return f"::{_LEVEL[finding.severity]} {head}::{_data(body)}"


def format_github(findings: list[Finding], ctx: FormatContext) -> str:
    return "".join(annotation(f) + "\n" for f in findings)
