"""GitLab Code Quality report (a JSON array), for ``artifacts: reports: codequality``.

Fingerprints hash the path, code and message (plus a counter for repeats), not the line, so
an issue keeps its identity when code above it moves.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from fp16lint.findings import Finding, Severity
from fp16lint.formatters import FormatContext, location, with_help

_SEVERITY = {Severity.ERROR: "major", Severity.WARNING: "minor", Severity.INFO: "info"}


def format_gitlab(findings: list[Finding], ctx: FormatContext) -> str:
    seen: Counter[str] = Counter()
    issues: list[dict[str, Any]] = []
    for finding in findings:
        path = Path(finding.path).as_posix()
        base = f"{path}\0{finding.code}\0{finding.message}"
        fingerprint = hashlib.sha256(
            f"{base}\0{seen[base]}".encode("utf-8", "surrogateescape")  # non-UTF-8 file names
        ).hexdigest()
        seen[base] += 1
        span = finding.span
        description = f"{finding.code} {with_help(finding)}"
        if span.cell is None:
            lines = {"begin": span.start.line, "end": span.end.line}
        else:  # notebook: GitLab's lines are the file's, so point at the file and name the cell
            lines = {"begin": 1, "end": 1}
            description = f"{location(path, span)}: {description}"
        issues.append(
            {
                "description": description,
                "check_name": finding.code,
                "fingerprint": fingerprint,
                "severity": _SEVERITY[finding.severity],
                "location": {"path": path, "lines": lines},
            }
        )
    return json.dumps(issues, indent=2) + "\n"
