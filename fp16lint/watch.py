"""``fp16lint check --watch``: lint, then lint again whenever a Python file or notebook under
the paths changes (polling modification times: no dependency, works on every file system)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import click

from fp16lint.discovery import discover
from fp16lint.settings import Settings

POLL_SECONDS = 0.5


def _stamps(paths: list[Path], settings: Settings) -> dict[str, tuple[int, int]]:
    """(modification time, size) of every file a run would lint, and of the config file."""
    files = discover(paths, settings).files
    if settings.source is not None:
        files.append(settings.source)
    stamps = {}
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            continue
        stamps[str(file)] = (stat.st_mtime_ns, stat.st_size)
    return stamps


def watch_paths(paths: list[Path], settings: Settings, run: Callable[[], int]) -> None:
    """Call ``run`` now and after each change (a file added, removed or written), until
    interrupted."""
    try:
        while True:
            click.echo(f"[{time.strftime('%H:%M:%S')}] Linting...", err=True)
            before = _stamps(paths, settings)
            run()
            click.echo("Watching for file changes.", err=True)
            while _stamps(paths, settings) == before:
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        click.echo("Stopped watching.", err=True)
