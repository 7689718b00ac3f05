"""The settings of one run, as resolved from the command line and ``[tool.fp16lint]``.

A plain record below every analysis, so that the project pass can carry it without importing
the configuration loader (``config``), which sits with the runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    select: tuple[str, ...] | None = None  # None: the rules enabled by default
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    extend_ignore: tuple[str, ...] = ()
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    extend_exclude: tuple[str, ...] = ()
    respect_gitignore: bool = True
    assume_fp16: bool = False
    # Library mode: report ops and layers whose kernels compute in float32 as well.
    library_info: bool = False
    runtime: dict[str, Any] = field(default_factory=dict)
    root: Path = field(default_factory=Path.cwd)  # folder of the config file (or cwd)
    source: Path | None = None  # the config file read, if any

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
