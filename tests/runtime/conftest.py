"""Shared set-up for the runtime companion's tests (CPU, offline, fast)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "runtime"
HERE = Path(__file__).resolve().parent

for extra in (FIXTURES, HERE):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

torch = pytest.importorskip("torch")
# two busy cores: OpenMP threads spinning against each other make small kernels 100x slower
torch.set_num_threads(1)


@pytest.fixture
def planted_path() -> Path:
    return FIXTURES / "planted.py"


@pytest.fixture
def hazards_path() -> Path:
    return FIXTURES / "hazards.py"


@pytest.fixture
def make_finding():
    """Hand-made static findings for join tests (the static rules are written elsewhere)."""
    from fp16lint.findings import Finding, Position, Severity, Span

    def make(code: str, path, line: int, end_line: int | None = None) -> Finding:
        return Finding(
            code=code,
            name="test-rule",
            severity=Severity.WARNING,
            message=f"{code} test finding",
            path=str(path),
            span=Span(Position(line, 1), Position(end_line or line, 80)),
        )

    return make
