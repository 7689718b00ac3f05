"""A project-wide rule used only by the language-server tests, standing in for the real
cross-file rules: a call to a top-level ``probe_*`` function defined in another file is
reported with that definition as related location, and a call to one defined nowhere is
reported as such."""

from __future__ import annotations

import libcst as cst

from fp16lint.findings import Severity
from fp16lint.rules.base import Rule


class CrossFileProbe(Rule):
    code = "FP990"
    name = "cross-file-probe"
    severity = Severity.INFO
    tokens = ("probe_",)
    summary = "Test-only rule: a `probe_*` function called in one file and defined in another."
    what = "Reports calls of `probe_*` functions across files."
    why = "It exercises the project pass in the language server tests."
    example = "probe_helper()\n"
    use_instead = "def probe_helper(): ...\n"

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if node.name.value.startswith("probe_") and len(self.ctx.stack) == 2:
            defs = self.ctx.facts.setdefault("probe_defs", [])
            defs.append([node.name.value, self.ctx.span_ref(node.name)])

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value.startswith("probe_"):
            uses = self.ctx.facts.setdefault("probe_uses", [])
            uses.append([node.func.value, self.ctx.span_ref(node.func)])

    @classmethod
    def check_project(cls, project, report) -> None:
        defined: dict[str, tuple[str, list[int]]] = {}
        for path, defs in project.facts("probe_defs"):
            for name, span in defs:
                defined.setdefault(name, (path, span))
        for path, uses in project.facts("probe_uses"):
            for name, span in uses:
                where = defined.get(name)
                if where is None:
                    report.add(cls, path, span, f"`{name}` is defined in no file of the project.")
                elif where[0] != path:
                    related = [(where[0], where[1], f"`{name}` is defined here")]
                    report.add(cls, path, span, f"`{name}` comes from another file.", related)
