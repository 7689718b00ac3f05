"""FP401's fix keeps the call's layout and follows the project's declared minimum torch
(issue 18)."""

from __future__ import annotations

import pytest
from lintutil import lint_project

from fp16lint.analysis.requirements import lowest_version
from fp16lint.runner import Options, lint_text
from fp16lint.settings import Settings


def _fixed(code: str, tmp_path) -> str:
    settings = Settings(root=tmp_path, select=("FP401",))
    return lint_text(code, "train.py", settings, Options(fix=True)).fixed_text


# Each layout, then the expected text: arguments added on the line and with the indentation of
# the existing ones. The first two were re-indented before (the report).
LAYOUTS = [
    (
        "import torch\n\n\ndef make():\n    scaler = torch.cuda.amp.GradScaler(\n"
        "        init_scale=1,\n        growth_interval=1,\n    )\n    return scaler\n",
        'import torch\n\n\ndef make():\n    scaler = torch.amp.GradScaler(\n        "cuda",\n'
        "        init_scale=1,\n        growth_interval=1,\n    )\n    return scaler\n",
    ),
    (
        "import torch\n\n\ndef step(model, x):\n    with torch.cuda.amp.autocast(\n"
        "        enabled=True,\n        dtype=torch.float16,\n    ):\n        return model(x)\n",
        'import torch\n\n\ndef step(model, x):\n    with torch.amp.autocast(\n        "cuda",\n'
        "        enabled=True,\n        dtype=torch.float16,\n    ):\n        return model(x)\n",
    ),
    (  # a hanging indent aligned with the parenthesis stays aligned with the first argument
        "import torch\nscaler = torch.cuda.amp.GradScaler(init_scale=1,\n"
        "                                   growth_interval=1)\n",
        'import torch\nscaler = torch.amp.GradScaler("cuda", init_scale=1,\n'
        "                                   growth_interval=1)\n",
    ),
    (  # several arguments on one continuation line, with a comment after the parenthesis
        "import torch\nif True:\n    with torch.cpu.amp.autocast(  # bf16 on CPU\n"
        "            True, torch.bfloat16):\n        pass\n",
        "import torch\nif True:\n    with torch.amp.autocast(  # bf16 on CPU\n"
        '            "cpu", enabled=True, dtype=torch.bfloat16):\n        pass\n',
    ),
    (  # through the import: the import line and the call, each in place
        "from torch.cuda.amp import GradScaler\n\n\nclass T:\n    def __init__(self):\n"
        "        self.scaler = GradScaler(\n            enabled=True,\n        )\n",
        "from torch.amp import GradScaler\n\n\nclass T:\n    def __init__(self):\n"
        '        self.scaler = GradScaler(\n            "cuda",\n            enabled=True,\n'
        "        )\n",
    ),
    (  # a decorator's argument goes last, on its own line like the others
        "import torch\n\n\nclass F(torch.autograd.Function):\n    @staticmethod\n"
        "    @torch.cuda.amp.custom_fwd(\n        cast_inputs=torch.float32,\n    )\n"
        "    def forward(ctx, x):\n        return x\n",
        "import torch\n\n\nclass F(torch.autograd.Function):\n    @staticmethod\n"
        "    @torch.amp.custom_fwd(\n        cast_inputs=torch.float32,\n"
        '        device_type="cuda",\n    )\n    def forward(ctx, x):\n        return x\n',
    ),
    (  # a decorator called without arguments
        "import torch\n\n\nclass F(torch.autograd.Function):\n    @staticmethod\n"
        "    @torch.cuda.amp.custom_fwd()\n    def forward(ctx, x):\n        return x\n",
        "import torch\n\n\nclass F(torch.autograd.Function):\n    @staticmethod\n"
        '    @torch.amp.custom_fwd(device_type="cuda")\n    def forward(ctx, x):\n        return x\n',
    ),
    (  # tabs
        "import torch\n\ndef make():\n\treturn torch.cuda.amp.GradScaler(\n\t\tenabled=False,\n\t)\n",
        'import torch\n\ndef make():\n\treturn torch.amp.GradScaler(\n\t\t"cuda",\n'
        "\t\tenabled=False,\n\t)\n",
    ),
]


@pytest.mark.parametrize(("code", "expected"), LAYOUTS)
def test_fix_keeps_the_layout(code, expected, tmp_path):
    fixed = _fixed(code, tmp_path)
    assert fixed == expected
    compile(fixed, "train.py", "exec")
    assert _fixed(fixed, tmp_path) == fixed


CODE = (
    "import torch\nfrom torch.cuda.amp import custom_fwd\n\n"
    "scaler = torch.cuda.amp.GradScaler()\n\n\n"
    "@custom_fwd\ndef f(ctx, x):\n    return x\n"
)


@pytest.mark.parametrize(
    ("files", "lowest"),
    [
        ({"pyproject.toml": '[project]\nname = "p"\ndependencies = ["torch>=1.8"]\n'}, (1, 8)),
        ({"requirements.txt": "numpy\ntorch==2.3.1  # pinned\n"}, (2, 3, 1)),
        (
            {"setup.py": "from setuptools import setup\nsetup(install_requires=['torch>=2.0'])\n"},
            (2, 0),
        ),
        (
            {
                "setup.py": "import setuptools\nREQS = ['torch >= 1.13', 'numpy']\n"
                "setuptools.setup(name='p', install_requires=REQS,\n"
                "    extras_require={'dev': ['torch>=2.4']})\n"
            },
            (1, 13),
        ),
        ({"setup.py": "setup(install_requires=read_requirements())\n"}, None),
        ({"setup.py": "def broken(:\n"}, None),
    ],
)
def test_lowest_torch_from_each_requirement_file(tmp_path, files, lowest):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert lowest_version(tmp_path, "torch") == lowest


def _lint(tmp_path, requirement: str | None):
    files = {"train.py": CODE}
    if requirement is not None:
        files["requirements.txt"] = f"{requirement}\n"
    return lint_project(tmp_path, files, select=("FP401",)).findings


def test_below_2_3_nothing_is_rewritten_and_the_message_says_why(tmp_path):
    findings = _lint(tmp_path, "torch>=1.8")
    assert findings and all(f.fix is None for f in findings)
    scaler = next(f for f in findings if f.span.start.line == 4)
    assert "requirements admit torch 1.8" in scaler.message
    assert "`torch.amp.GradScaler` needs torch 2.3 or later" in scaler.message


def test_between_2_3_and_2_4_only_the_scaler_is_rewritten(tmp_path):
    findings = _lint(tmp_path, "torch>=2.3")
    by_line = {f.span.start.line: f for f in findings}
    assert by_line[4].fix is not None
    assert by_line[2].fix is None  # custom_fwd: torch.amp.custom_fwd since 2.4
    assert "needs torch 2.4 or later" in by_line[2].message


@pytest.mark.parametrize("requirement", [None, "torch", "torch>=2.4"])
def test_unknown_or_recent_torch_gets_every_fix(tmp_path, requirement):
    findings = _lint(tmp_path, requirement)
    assert {f.span.start.line for f in findings if f.fix is not None} == {2, 4}
