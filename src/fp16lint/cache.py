"""The per-file summary cache: JSON only, keyed by content, path, version, rules and config.

Data, never code: entries are parsed with ``json`` and rebuilt through ``FileSummary.from_dict``;
anything that does not parse or does not match the key is ignored. Writes go through a temp
file and a rename, so concurrent runs never see half an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fp16lint import __version__
from fp16lint.engine import FileSummary

CACHE_DIR_ENV = "FP16LINT_CACHE_DIR"
_FORMAT = 1


def cache_dir(root: Path) -> Path:
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env) if env else root / ".fp16lint_cache"


class Cache:
    def __init__(self, folder: Path, salt: str):
        self.folder = folder / f"v{_FORMAT}"
        self.salt = hashlib.sha256(f"{__version__}\0{salt}".encode()).hexdigest()
        self._ready = False

    def key(self, path: str, data: bytes) -> str:
        digest = hashlib.sha256(self.salt.encode())
        digest.update(path.encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
        digest.update(data)
        return digest.hexdigest()

    def get(self, key: str) -> FileSummary | None:
        try:
            raw = (self.folder / key[:2] / f"{key}.json").read_text(encoding="utf-8")
            entry: Any = json.loads(raw)
            if entry.get("key") != key:
                return None
            return FileSummary.from_dict(entry["summary"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def put(self, key: str, summary: FileSummary) -> None:
        try:
            self._prepare()
            target = self.folder / key[:2]
            target.mkdir(parents=True, exist_ok=True)
            payload = json.dumps({"key": key, "summary": summary.to_dict()}, separators=(",", ":"))
            fd, tmp = tempfile.mkstemp(dir=target, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
            os.replace(tmp, target / f"{key}.json")
        except (OSError, TypeError, ValueError):
            return  # a cache that cannot be written only costs time

    def _prepare(self) -> None:
        if self._ready:
            return
        root = self.folder.parent
        root.mkdir(parents=True, exist_ok=True)
        ignore = root / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# Created by fp16lint.\n*\n", encoding="utf-8")
        self._ready = True
