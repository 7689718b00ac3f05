"""Helpers for the runtime companion's tests (a plain module: `conftest` names are ambiguous)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "runtime"


def marker_line(path: Path, marker: str) -> int:
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if marker in line:
            return i
    raise AssertionError(f"{marker} not in {path}")
