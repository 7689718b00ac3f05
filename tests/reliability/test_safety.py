"""The static linter never imports, runs or evaluates the code it analyses, nor config values
(docs/security.md): planted modules that would leave a mark when imported never do, whatever
command runs, and the static package has no way to run code in it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fp16lint

SRC = Path(fp16lint.__file__).resolve().parent  # the package as installed
FP16LINT = Path(sys.executable).parent / "fp16lint"

PLANT = """
from pathlib import Path
Path(__file__).with_name("IMPORTED-" + __name__.replace(".", "-")).touch()
"""
MODEL = """
import torch
import torch.nn as nn
from pkg import helpers
from . import helpers as again
import torch_setup

class Net(nn.Module):
    def forward(self, x):
        return x.softmax(-1)

model = Net().half()
with torch.cuda.amp.autocast():
    pass
"""
CONFIG = """
[tool.fp16lint]
select = ["ALL"]
per-file-ignores = { "__import__('os').system('touch CONFIG-RAN')" = ["FP1"] }

[tool.fp16lint.runtime]
targets = ["pkg.model:Net"]
setup = "__import__('pathlib').Path('CONFIG-RAN').touch()"
"""


@pytest.fixture
def planted(tmp_path):
    """A project whose every module, and every module name fp16lint itself imports (torch,
    libcst, click...), marks its import with a file."""
    (tmp_path / "pyproject.toml").write_text(CONFIG)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for name in ("__init__", "helpers", "conftest", "setup", "sitecustomize", "torch_setup"):
        (pkg / f"{name}.py").write_text(PLANT)
    (pkg / "model.py").write_text(PLANT + MODEL)
    for shadow in ("torch", "libcst", "click", "pathspec", "transformers", "fp16lint"):
        (tmp_path / f"{shadow}.py").write_text(PLANT)
    for name in ("setup", "conftest", "sitecustomize", "usercustomize", "__main__"):
        (tmp_path / f"{name}.py").write_text(PLANT)
    (tmp_path / "nb.ipynb").write_text(
        '{"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null,'
        ' "source": ["import pkg.model\\n", "%run pkg/model.py\\n", "!touch SHELL-RAN\\n"]}],'
        ' "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    return tmp_path


def marks(root: Path) -> list[str]:
    return sorted(
        p.name for p in root.rglob("*") if p.name.startswith(("IMPORTED-", "CONFIG-", "SHELL-"))
    )


def test_the_plant_does_mark_an_import(planted):
    subprocess.run([sys.executable, "-c", "import pkg.helpers"], cwd=planted, check=True)
    assert marks(planted) == ["IMPORTED-pkg", "IMPORTED-pkg-helpers"]


@pytest.mark.parametrize(
    "args",
    [
        ["check", "."],
        ["check", ".", "--fix", "--unsafe-fixes"],
        ["check", ".", "--diff", "-j2"],
        ["check", ".", "--assume-fp16", "--statistics"],
        ["check", "--stdin-filename", "pkg/model.py"],
        ["rules"],
        ["explain", "FP201"],
    ],
    ids=["check", "fix", "diff", "library-mode", "stdin", "rules", "explain"],
)
def test_no_planted_module_is_ever_imported(planted, args):
    out = subprocess.run(
        [str(FP16LINT), *args],
        cwd=planted,
        input=(planted / "pkg" / "model.py").read_text(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode in (0, 1, 2), out.stderr
    assert "Traceback" not in out.stderr
    assert marks(planted) == []


def test_python_api_and_language_server_session_import_nothing(planted, monkeypatch):
    monkeypatch.chdir(planted)
    from fp16lint.api import lint_paths, lint_text

    lint_paths([planted])
    lint_text((planted / "pkg" / "model.py").read_text(), str(planted / "pkg" / "model.py"))
    lsp = pytest.importorskip("fp16lint.lsp.session")
    session = lsp.Session([planted])
    path = str(planted / "pkg" / "model.py")
    session.open(path, (planted / "pkg" / "model.py").read_text(), 1)
    session.lint(path)
    assert marks(planted) == []


# Calls that run, import or load code by name. Each allowed use names fp16lint's own modules.
_RUNS_CODE = {"eval", "exec", "__import__", "execfile"}
_LOADS_CODE = {"import_module", "run_path", "run_module", "exec_module", "spec_from_file_location"}
_DATA_ONLY = {"pickle", "marshal", "shelve", "dill", "cloudpickle"}
_ALLOWED = {
    # the rule registry: fp16lint.rules.<its own modules>
    ("rules/__init__.py", "import_module"),
    # lazy commands and formatters: fixed tables of fp16lint's own modules
    ("cli.py", "import_module"),
    ("formatters/__init__.py", "import_module"),
}


def _static_modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if not rel.startswith("runtime/"):  # the runtime companion imports user targets
            yield rel, ast.parse(path.read_text(encoding="utf-8"))


def test_static_package_has_no_way_to_run_analysed_code():
    found = []
    for rel, tree in _static_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name in _RUNS_CODE or (name in _LOADS_CODE and (rel, name) not in _ALLOWED):
                    found.append(f"{rel}:{node.lineno} calls {name}")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in _DATA_ONLY for n in names):
                    found.append(f"{rel}:{node.lineno} imports {names}")
    assert found == []


def test_allowed_dynamic_imports_name_only_fp16lint_modules():
    import fp16lint.cli
    import fp16lint.formatters

    for target in fp16lint.cli._LAZY_COMMANDS.values():
        assert target.startswith("fp16lint.")
    for target in fp16lint.formatters.FORMATTERS.values():
        assert target.startswith("fp16lint.formatters."), target
