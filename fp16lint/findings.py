"""The plain, serialisable records every layer above the engine reads: findings, fixes, spans.

Everything here round-trips through JSON (``to_dict``/``from_dict``) so that the cache, the
process pool, the language server and the runtime companion share one shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Applicability(str, Enum):
    """Ruff's split: ``safe`` keeps behaviour (``--fix``); ``unsafe`` changes it (``--unsafe-fixes``)."""

    SAFE = "safe"
    UNSAFE = "unsafe"


@dataclass(frozen=True, order=True)
class Position:
    """1-based line and 1-based column (in characters), as ruff reports them."""

    line: int
    column: int


@dataclass(frozen=True)
class Span:
    start: Position
    end: Position
    # In a Jupyter notebook: the 1-based cell (counting every cell) that lines are relative to.
    cell: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "location": {"row": self.start.line, "column": self.start.column},
            "end_location": {"row": self.end.line, "column": self.end.column},
        }
        if self.cell is not None:
            data["cell"] = self.cell
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Span:
        start, end = data["location"], data["end_location"]
        return cls(
            Position(start["row"], start["column"]),
            Position(end["row"], end["column"]),
            data.get("cell"),
        )


@dataclass(frozen=True)
class Edit:
    """Replace the text between two positions (end exclusive) with ``content``."""

    span: Span
    content: str

    def to_dict(self) -> dict[str, Any]:
        return {"content": self.content, **self.span.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Edit:
        return cls(Span.from_dict(data), data["content"])


@dataclass(frozen=True)
class Fix:
    message: str
    applicability: Applicability
    edits: tuple[Edit, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "applicability": self.applicability.value,
            "edits": [edit.to_dict() for edit in self.edits],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fix:
        return cls(
            data["message"],
            Applicability(data["applicability"]),
            tuple(Edit.from_dict(e) for e in data["edits"]),
        )


@dataclass(frozen=True)
class Related:
    """Another place that explains a finding, e.g. the cast site that makes a layer fp16."""

    path: str
    span: Span
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"filename": self.path, "message": self.message, **self.span.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Related:
        return cls(data["filename"], Span.from_dict(data), data["message"])


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    severity: Severity
    message: str
    path: str
    span: Span
    fix: Fix | None = None
    related: tuple[Related, ...] = ()
    url: str | None = None
    # What to do about it, one sentence (Ruff's ``help``); ``message`` says what is wrong.
    help: str | None = None
    # Extra context for formatters (e.g. the traceback of an FP999 under --verbose).
    detail: str | None = field(default=None, compare=False)

    @property
    def sort_key(self) -> tuple[str, int, int, int, str]:
        start = self.span.start
        return (self.path, self.span.cell or 0, start.line, start.column, self.code)

    def to_dict(self) -> dict[str, Any]:
        """Ruff-compatible JSON fields, plus fp16lint's ``name``, ``severity``, ``help`` and
        ``related``."""
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "message": self.message,
            "help": self.help,
            "filename": self.path,
            **self.span.to_dict(),
            "fix": self.fix.to_dict() if self.fix else None,
            "related": [r.to_dict() for r in self.related],
            "url": self.url,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            code=data["code"],
            name=data["name"],
            severity=Severity(data["severity"]),
            message=data["message"],
            path=data["filename"],
            span=Span.from_dict(data),
            fix=Fix.from_dict(data["fix"]) if data.get("fix") else None,
            related=tuple(Related.from_dict(r) for r in data.get("related", ())),
            url=data.get("url"),
            help=data.get("help"),
            detail=data.get("detail"),
        )
