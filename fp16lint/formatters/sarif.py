"""SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.

Every rule is described in ``tool.driver.rules`` (docs, help URI, default level), and each
result carries its related locations and its fix as ``fixes[].artifactChanges``. Columns are
Unicode code points (``columnKind``), as fp16lint counts them. A notebook finding points at the
notebook file (its lines count from a cell, which SARIF cannot express) and names the cell.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from fp16lint import __version__
from fp16lint.findings import Finding, Severity, Span
from fp16lint.formatters import FormatContext, location

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/fp16lint/fp16lint"
SRCROOT = "%SRCROOT%"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _artifact(path: str) -> dict[str, Any]:
    pure = PurePath(path)
    if pure.is_absolute() and os.name != "posix":
        return {"uri": Path(path).as_uri()}
    # A file name that is not valid UTF-8 is quoted byte by byte, as the file system has it.
    quoted = quote(pure.as_posix().encode("utf-8", "surrogateescape"), safe="/")
    if pure.is_absolute():
        return {"uri": "file://" + quoted}
    return {"uri": quoted, "uriBaseId": SRCROOT}


def _region(span: Span) -> dict[str, int]:
    return {
        "startLine": span.start.line,
        "startColumn": span.start.column,
        "endLine": span.end.line,
        "endColumn": span.end.column,
    }


def _physical(path: str, span: Span) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": _artifact(path)}
    if span.cell is None:
        physical["region"] = _region(span)
    return physical


def _rules() -> list[dict[str, Any]]:
    from fp16lint.docgen import rule_markdown
    from fp16lint.rules import ENGINE_CODES, all_rules

    return [
        {
            "id": rule.code,
            "name": rule.name,
            "shortDescription": {"text": rule.summary},
            "fullDescription": {"text": rule.what},
            "help": {"text": f"{rule.summary} {rule.url()}", "markdown": rule_markdown(rule)},
            "helpUri": rule.url(),
            "defaultConfiguration": {
                "level": _LEVEL[rule.severity],
                "enabled": rule.enabled_by_default,
            },
            "properties": {"tags": ["float16"]},
        }
        for rule in sorted([*ENGINE_CODES, *all_rules()], key=lambda r: r.code)
    ]


def _result(finding: Finding, index: dict[str, int]) -> dict[str, Any]:
    message = finding.message
    if finding.span.cell is not None:
        message = f"{location(finding.path, finding.span)}: {message}"
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "level": _LEVEL[finding.severity],
        "message": {"text": message},
        "locations": [{"physicalLocation": _physical(finding.path, finding.span)}],
    }
    if finding.code in index:
        result["ruleIndex"] = index[finding.code]
    if finding.related:
        result["relatedLocations"] = [
            {
                "id": number,
                "physicalLocation": _physical(r.path, r.span),
                "message": {"text": r.message},
            }
            for number, r in enumerate(finding.related, start=1)
        ]
    if finding.fix is not None and finding.span.cell is None:
        kind = "" if finding.fix.applicability.value == "safe" else " (unsafe)"
        result["fixes"] = [
            {
                "description": {"text": finding.fix.message + kind},
                "artifactChanges": [
                    {
                        "artifactLocation": _artifact(finding.path),
                        "replacements": [
                            {
                                "deletedRegion": _region(e.span),
                                "insertedContent": {"text": e.content},
                            }
                            for e in finding.fix.edits
                        ],
                    }
                ],
            }
        ]
    return result


def format_sarif(findings: list[Finding], ctx: FormatContext) -> str:
    rules = _rules()
    index = {rule["id"]: number for number, rule in enumerate(rules)}
    run = {
        "tool": {
            "driver": {
                "name": "fp16lint",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "originalUriBaseIds": {SRCROOT: {"uri": Path.cwd().as_uri() + "/"}},
        "columnKind": "unicodeCodePoints",
        "results": [_result(f, index) for f in findings],
    }
    log = {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(log, indent=2) + "\n"
