"""Every rule's VALID and INVALID examples, run through the real engine (Fixit-style)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import libcst as cst
import pytest
from lintutil import lint_code, lint_project

from fp16lint.rules import all_rules
from fp16lint.rules.base import Invalid


def _cases(kind: str):
    for rule in all_rules():
        for index, example in enumerate(getattr(rule, kind)):
            yield pytest.param(rule, example, id=f"{rule.code}-{kind}-{index}")


def _findings(rule, example, tmp_path, assume_fp16=False, library_info=False):
    modes = {"assume_fp16": assume_fp16, "library_info": library_info}
    if isinstance(example, str):
        result = lint_code(example, select=(rule.code,), **modes)
    else:
        result = lint_project(tmp_path, dict(example), select=(rule.code,), **modes)
    internal = [f for f in result.findings if f.code in ("FP000", "FP999")]
    assert not internal, [f.message for f in internal]
    return [f for f in result.findings if f.code == rule.code]


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.code)
def test_rule_is_well_formed(rule):
    rule.validate()
    assert rule.valid and rule.invalid, f"{rule.code} needs VALID and INVALID examples"


@pytest.mark.parametrize(("rule", "example"), list(_cases("valid")))
def test_valid_example_is_quiet(rule, example, tmp_path):
    findings = _findings(rule, example, tmp_path)
    assert findings == [], [f"{f.span.start.line}: {f.message}" for f in findings]


@pytest.mark.parametrize(("rule", "example"), list(_cases("invalid")))
def test_invalid_example_is_flagged(rule, example: Invalid, tmp_path):
    findings = _findings(rule, example.code, tmp_path, example.assume_fp16, example.library_info)
    if isinstance(example.code, str):
        got = Counter((f.code, f.span.start.line) for f in findings)
    else:
        root = tmp_path.resolve()
        got = Counter(
            (f.code, Path(f.path).resolve().relative_to(root).as_posix(), f.span.start.line)
            for f in findings
        )
    assert got == Counter(example.expect), [f"{f.span.start.line}: {f.message}" for f in findings]
    for finding in findings:
        assert finding.message.endswith("."), finding.message
        assert finding.severity in rule.all_severities(), "`fp16lint rules` must list it"
        assert finding.help and finding.help.endswith("."), "the advice goes in `help`"


@pytest.mark.parametrize(
    ("rule", "example"),
    [p for p in _cases("invalid") if p.values[1].fixed is not None],
)
def test_fix_gives_expected_code_and_is_idempotent(rule, example: Invalid):
    modes = {"assume_fp16": example.assume_fp16, "library_info": example.library_info}
    result = lint_code(example.code, select=(rule.code,), **modes)
    fixed = _apply(rule, example.code, **modes)
    assert fixed == example.fixed
    cst.parse_module(fixed)
    assert _apply(rule, fixed, **modes) == fixed, "a second --fix run changed the file again"
    assert result.findings


def _apply(rule, code: str, assume_fp16: bool = False, library_info: bool = False) -> str:
    from pathlib import Path

    from fp16lint.runner import Options, lint_text
    from fp16lint.settings import Settings

    result = lint_text(
        code,
        "example.py",
        Settings(
            root=Path.cwd(),
            select=(rule.code,),
            assume_fp16=assume_fp16,
            library_info=library_info,
        ),
        Options(fix=True, unsafe_fixes=True),
    )
    return result.fixed_text
