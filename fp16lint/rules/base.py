"""The rule framework: one small class per rule, carrying its code, docs and examples.

Modelled on Fixit: a rule subclasses ``Rule``, sets its class attributes, and defines
``visit_<NodeType>(self, node)`` / ``leave_<NodeType>(self, node)`` handlers. The engine
instantiates each enabled rule once per file and calls the handlers from one shared traversal.
Rules report through ``self.report``; they read shared facts from ``self.ctx`` (names, dtypes,
receivers, autocast regions) instead of computing their own.

Rules whose findings need the whole project (which models are cast to fp16, across files)
implement ``check_project`` as well; it runs once after every file's summary is in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import libcst as cst

from fp16lint.findings import Applicability, Finding, Severity

if TYPE_CHECKING:
    from fp16lint.analysis.context import FileContext, NodeEdit, Project, ProjectReport

DOCS_URL = "https://github.com/fp16lint/fp16lint/blob/main/docs/rules/{code}.md"
_CODE = re.compile(r"^FP\d{3}$")
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

Example = str | Mapping[str, str]  # one file's source, or a project: {relative path: source}


@dataclass(frozen=True)
class Invalid:
    """An example the rule must flag.

    ``expect`` lists ``(code, line)`` — or ``(code, path, line)`` for a project — that the
    example must produce, no more and no fewer for this rule's code. ``fixed`` is the expected
    source after applying this rule's fixes (unsafe ones included), for single-file examples.
    ``assume_fp16`` lints the example in library mode (a library function whose callers are
    not in the example); ``library_info`` with the sites that mode lists only on request.
    """

    code: Example
    expect: tuple[tuple, ...]
    fixed: str | None = None
    assume_fp16: bool = False
    library_info: bool = False


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity]
    # Every severity the rule can report, when it grades findings (``rules`` lists them).
    severities: ClassVar[tuple[Severity, ...]] = ()
    enabled_by_default: ClassVar[bool] = True
    fix: ClassVar[Applicability | None] = None  # the best fix the rule offers, if any
    # Substrings one of which a file must contain for this rule to find anything in it.
    # Checked before parsing (issue 9); () means "always parse".
    tokens: ClassVar[tuple[str, ...]] = ()
    # The shared analyses this rule reads from ``self.ctx`` (engine trackers).
    requires: ClassVar[tuple[type, ...]] = ()

    summary: ClassVar[str]  # one sentence, used for hovers and the rule table
    what: ClassVar[str]
    why: ClassVar[str]
    example: ClassVar[str]
    use_instead: ClassVar[str]
    fix_docs: ClassVar[str] = ""
    references: ClassVar[tuple[str, ...]] = ()
    runtime_confirmable: ClassVar[str] = "no"

    valid: ClassVar[tuple[Example, ...]] = ()
    invalid: ClassVar[tuple[Invalid, ...]] = ()

    def __init__(self, ctx: FileContext):
        self.ctx = ctx

    @classmethod
    def url(cls) -> str:
        return DOCS_URL.format(code=cls.code)

    @classmethod
    def all_severities(cls) -> tuple[Severity, ...]:
        """The rule's severity first, then the others it can report."""
        others = sorted(set(cls.severities) - {cls.severity}, key=list(Severity).index)
        return (cls.severity, *others)

    @classmethod
    def handler_names(cls) -> Iterable[str]:
        return (n for n in dir(cls) if n.startswith(("visit_", "leave_")))

    def report(
        self,
        node: cst.CSTNode,
        message: str,
        *,
        edits: Iterable[NodeEdit] = (),
        fix_message: str = "",
        applicability: Applicability | None = None,
        related: Iterable[tuple[str, cst.CSTNode | None, str]] = (),
        severity: Severity | None = None,
        help: str | None = None,
    ) -> None:
        """Report ``message`` (one sentence: what is wrong) at ``node``; ``help`` says what to
        do. ``edits`` form the fix (``applicability`` default: the rule's ``fix``).
        ``related`` items are (path, node-in-this-file or None, message). ``severity``
        overrides the rule's for a case the rule grades lower (FP108)."""
        self.ctx.report(
            self,
            node,
            message,
            edits=tuple(edits),
            fix_message=fix_message,
            applicability=applicability or self.fix,
            related=tuple(related),
            severity=severity,
            help=help,
        )

    # Project-wide rules override this; it runs once, after every file is summarised.
    @classmethod
    def check_project(cls, project: Project, report: ProjectReport) -> None:
        return None

    # Rules whose per-file findings need project facts to be complete (FP101/FP501 list what
    # is fp16-unsafe inside the cast model) override this; it runs in the project pass. None
    # withdraws the finding (FP101: a deliberate cast of a model with nothing unsafe inside;
    # FP301/FP304: float16 does not reach the site).
    @classmethod
    def amend(cls, project: Project, finding: Finding) -> Finding | None:
        return finding

    @classmethod
    def amends(cls) -> bool:
        return cls.amend.__func__ is not Rule.amend.__func__

    @classmethod
    def is_project_rule(cls) -> bool:
        return cls.check_project.__func__ is not Rule.check_project.__func__

    @classmethod
    def validate(cls) -> None:
        """Checked for every registered rule by the test suite."""
        assert _CODE.match(cls.code), cls.code
        assert _NAME.match(cls.name), cls.name
        for attr in ("summary", "what", "why", "example", "use_instead"):
            assert getattr(cls, attr, "").strip(), f"{cls.code} lacks {attr}"
