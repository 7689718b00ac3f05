"""Rule registry: every ``Rule`` subclass in a ``fpNNN_*.py`` module of this package.

Engine-level codes FP000 (syntax error) and FP999 (internal error) are not classes: the engine
reports them itself. Their metadata lives here so the rule table and docs cover them.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from fp16lint.findings import Severity
from fp16lint.rules.base import DOCS_URL, Rule


class EngineCode:
    """Metadata for the engine's own codes, shaped like a rule for tables and docs."""

    def __init__(self, code: str, name: str, summary: str, what: str, why: str, use_instead: str):
        self.code, self.name, self.summary = code, name, summary
        self.what, self.why, self.use_instead = what, why, use_instead
        self.severity = Severity.ERROR
        self.enabled_by_default = True
        self.fix = None
        self.example = ""
        self.fix_docs = ""
        self.references: tuple[str, ...] = ()
        self.runtime_confirmable = "no"

    def url(self) -> str:
        return DOCS_URL.format(code=self.code)

    def all_severities(self) -> tuple[Severity, ...]:
        return (self.severity,)


SYNTAX_ERROR = EngineCode(
    "FP000",
    "syntax-error",
    "The file could not be read, decoded or parsed, so it was not linted.",
    "Reports a file that fp16lint cannot read, decode (PEP 263 coding cookie, UTF-8 BOM) or "
    "parse, at the line and column of the error.",
    "A file that is not linted can hide any hazard; the other files are still linted.",
    "Fix the syntax or encoding error, or exclude the file in `[tool.fp16lint] exclude`.",
)
INTERNAL_ERROR = EngineCode(
    "FP999",
    "internal-error",
    "A rule raised an exception on this file; the other rules and files went on.",
    "Reports an exception inside fp16lint itself (or a file that took too long), with the "
    "traceback under `--verbose`.",
    "It is a bug in fp16lint: the rule that failed has not checked this file.",
    "Report it with the file (or a reduced copy) and the traceback from `--verbose`.",
)
ENGINE_CODES = (SYNTAX_ERROR, INTERNAL_ERROR)


@cache
def all_rules() -> tuple[type[Rule], ...]:
    """Every rule class, sorted by code."""
    found: dict[str, type[Rule]] = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("fp"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Rule)
                and value is not Rule
                and value.__module__ == module.__name__
                and "code" in vars(value)
            ):
                if value.code in found:
                    raise RuntimeError(f"duplicate rule code {value.code}")
                found[value.code] = value
    return tuple(found[code] for code in sorted(found))


def rule_by_code(code: str) -> type[Rule] | EngineCode | None:
    for engine_code in ENGINE_CODES:
        if engine_code.code == code:
            return engine_code
    for rule in all_rules():
        if rule.code == code:
            return rule
    return None


def all_codes() -> list[str]:
    return [c.code for c in ENGINE_CODES] + [r.code for r in all_rules()]
