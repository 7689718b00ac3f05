"""Importing fp16lint.runtime (and its CLI, report, join) does not import torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fp16lint

CODE = """
import sys
import fp16lint.runtime
import fp16lint.runtime.cli
import fp16lint.runtime.join
import fp16lint.runtime.report
import fp16lint.runtime.text
import fp16lint.runtime.html
import fp16lint.runtime.targets
assert "torch" not in sys.modules, "torch imported"
assert fp16lint.runtime.torch_available() in (True, False)
print("ok")
"""


def test_runtime_package_imports_without_torch():
    env_path = str(Path(fp16lint.__file__).resolve().parents[1])  # wherever it is installed
    out = subprocess.run(
        [sys.executable, "-c", CODE],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": ""},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
