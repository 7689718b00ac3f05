"""Data tables generated from installed sources: write them, or check they are current."""

from __future__ import annotations

from pathlib import Path


def write_or_check(target: Path, text: str, script: str, argv: list[str]) -> int:
    """With ``--check``: 1 (and a message) when ``target`` differs from ``text``; else write it."""
    if "--check" in argv:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target} is stale; run {script}")
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0
