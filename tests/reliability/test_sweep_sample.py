"""The real-code sweep of ``benchmarks/sweep.py`` on a sample (the full run is in the issue 10
note): no FP999, every FP000 a file ``compile()`` rejects too, and ``--fix --unsafe-fixes`` on a
copy keeps every file compiling, edits only inside the fixes' lines, leaves other files' bytes
and mtimes alone, and is idempotent."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("fp16lint_sweep", REPO / "benchmarks" / "sweep.py")
sweep = sys.modules["fp16lint_sweep"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)

pytestmark = pytest.mark.slow
PREFER = ("cuda.amp", ".half()", "float16", "autocast", "finfo", "masked_fill")


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch):
    monkeypatch.delenv("FP16LINT_CACHE_DIR", raising=False)  # sweep() sets it per package


def _assert_clean(report):
    assert not report.failed, report.to_dict()
    assert report.fp999 == [] and report.errors == []


def test_fix_sweep_on_the_demo_project_fixes_and_corrupts_nothing(tmp_path):
    report = sweep.sweep("demo", REPO / "fixtures" / "demo", tmp_path, jobs=2)
    _assert_clean(report)
    assert report.fixed > 0 and report.fixed_files > 0


@pytest.mark.parametrize("package", ["torch", "transformers", "diffusers", "timm", "numpy"])
def test_sample_of_installed_package(package, tmp_path):
    source = sweep.package_dir(package)
    if source is None:
        pytest.skip(f"{package} is not installed")
    report = sweep.sweep(
        package, source, tmp_path, jobs=2, sample=5, prefer=PREFER, max_bytes=40_000
    )
    _assert_clean(report)
    assert report.files >= 5
