"""FP401: version guards in every form are compat fallbacks (issue 17); other guards are not."""

from __future__ import annotations

import pytest
from lintutil import lint_code


def _lines(code: str) -> list[int]:
    return [f.span.start.line for f in lint_code(code, select=("FP401",)).findings]


@pytest.mark.parametrize(
    "test",
    [
        "TORCH_GE_2_4",
        "_TORCH_GREATER_EQUAL_2_4",
        "is_torch_greater_or_equal_than_2_0",
        "not IS_TORCH_2",
        "torch_version >= (2, 4)",
        "hasattr(torch.amp, 'GradScaler')",
    ],
)
def test_conditional_expression_on_a_version_test_is_a_fallback(test):
    code = (
        "import torch\nfrom .compat import *\n"
        f"scaler = torch.amp.GradScaler('cuda') if {test} else torch.cuda.amp.GradScaler()\n"
    )
    assert _lines(code) == []


def test_a_name_bound_to_a_version_test_is_a_version_test():
    code = (
        "import torch\nfrom packaging.version import parse\n"
        "NEW = parse(torch.__version__) >= parse('2.4')\n\n"
        "def make():\n    return torch.amp.GradScaler('cuda') if NEW else torch.cuda.amp.GradScaler()\n"
    )
    assert _lines(code) == []


@pytest.mark.parametrize("test", ["use_amp", "args.fp16", "TORCH_DEVICE == 'cuda'", "torchvision"])
def test_other_conditions_are_not_fallbacks(test):
    code = f"import torch\nscaler = torch.cuda.amp.GradScaler() if {test} else None\n"
    assert _lines(code) == [2]
