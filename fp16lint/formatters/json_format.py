"""JSON array of findings with ruff's field names (``code``, ``message``, ``filename``,
``location``, ``end_location``, ``fix``, ``url``) plus fp16lint's ``name``, ``severity`` and
``related``."""

from __future__ import annotations

import json

from fp16lint.findings import Finding
from fp16lint.formatters import FormatContext


def format_json(findings: list[Finding], ctx: FormatContext) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"


def format_json_lines(findings: list[Finding], ctx: FormatContext) -> str:
    """One compact JSON object per line (same fields as ``json``), for streaming consumers."""
    return "".join(json.dumps(f.to_dict(), separators=(",", ":")) + "\n" for f in findings)
