"""FP001 unused-noqa: a ``# noqa: FPxxx`` that silences nothing (Ruff's RUF100).

The check needs every other finding of the file, so the runner makes it after the noqa pass
(``fp16lint.unused_noqa``); this class carries the code, docs and examples.
"""

from __future__ import annotations

from fp16lint.findings import Applicability, Severity
from fp16lint.rules.base import Invalid, Rule


class UnusedNoqa(Rule):
    code = "FP001"
    name = "unused-noqa"
    severity = Severity.INFO
    enabled_by_default = False
    fix = Applicability.SAFE
    tokens = ("noqa",)

    summary = "A `# noqa` comment names an fp16lint code that silences nothing."
    what = (
        "Finds fp16lint codes in `# noqa: ...` comments that suppress no finding on their "
        "line: the finding is gone, or its rule is not enabled. Blanket `# noqa` comments and "
        "other tools' codes are left alone. Off by default: enable it with "
        "`--extend-select FP001`."
    )
    why = (
        "A stale `# noqa` hides the next real finding on that line, and tells readers that a "
        "hazard is there when it is not. Ruff's RUF100 does the same for Ruff's codes."
    )
    example = """\
x = torch.ones(2)  # noqa: FP101
"""
    use_instead = """\
x = torch.ones(2)
"""
    fix_docs = (
        "Safe: removes the unused codes from the comment, or the whole `# noqa` comment when "
        "none is left. It changes comments only."
    )

    valid = (
        # The directive silences a finding of an enabled rule: not reported (FP102 is enabled
        # in the test via its prefix, see tests/test_unused_noqa.py); a blanket noqa is not ours.
        "x = 1  # noqa\n",
        "x = 1  # noqa: E501\n",
    )
    invalid = (
        Invalid(
            "import torch\nx = torch.ones(2)  # noqa: FP101\n",
            (("FP001", 2),),
            fixed="import torch\nx = torch.ones(2)\n",
        ),
        Invalid(
            "y = 1  # noqa: E501, FP202\n",
            (("FP001", 1),),
            fixed="y = 1  # noqa: E501\n",
        ),
    )
