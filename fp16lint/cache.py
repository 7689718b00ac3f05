"""The per-file summary cache: JSON only, keyed by content, path, version, code, rules and config.

Data, never code: entries are parsed with ``json``, checked field by field and rebuilt through
``FileSummary.from_dict``; anything that does not parse, does not match its key or has a wrong
shape is ignored (and recomputed), never trusted and never a crash. An entry's ``key`` is
sealed with its summary (a hash of both), so a hand-edited summary (facts of the wrong type
that the project pass would trip on) is a miss too. There is one entry per linted path, so the
cache does not grow with every edit. Writes go through a temp file and a rename, so concurrent
runs never see half an entry; the last writer wins. Nothing inside the cache folder is reached
through a symbolic link (a project could ship ``.fp16lint_cache/v2`` pointing anywhere).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from functools import cache
from pathlib import Path

from fp16lint import __version__
from fp16lint.analysis.context import FileSummary

CACHE_DIR_ENV = "FP16LINT_CACHE_DIR"
_FORMAT = 2
_GITIGNORE = "# Created by fp16lint.\n*\n"
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by fp16lint.\n"
)


def cache_dir(root: Path) -> Path:
    env = os.environ.get(CACHE_DIR_ENV)  # the user's choice: its links are followed once here
    return Path(env).resolve() if env else root / ".fp16lint_cache"


@cache
def code_fingerprint() -> str:
    """Names, sizes and modification times of fp16lint's own files: a development checkout
    whose rules changed under the same version number must not reuse old summaries."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".py", ".json", ".toml", ".txt", ".csv")):
                try:
                    info = os.stat(os.path.join(folder, name))
                except OSError:
                    continue
                digest.update(f"{folder}/{name}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class Cache:
    def __init__(self, folder: Path, salt: str):
        self.folder = folder / f"v{_FORMAT}"
        self.salt = hashlib.sha256(
            f"{__version__}\0{code_fingerprint()}\0{salt}".encode()
        ).hexdigest()
        self._ready = False

    def key(self, path: str, data: bytes, extra: str = "") -> str:
        """The key of ``path`` holding ``data``; ``extra`` is anything else the summary depends
        on (the module name the path maps to)."""
        digest = hashlib.sha256(self.salt.encode())
        digest.update(path.encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
        digest.update(extra.encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
        digest.update(data)
        return digest.hexdigest()

    def _entry(self, path: str) -> Path:
        name = hashlib.sha256(f"{self.salt}\0{path}".encode("utf-8", "surrogateescape"))
        hexname = name.hexdigest()
        return self.folder / hexname[:2] / f"{hexname}.json"

    def get(self, path: str, key: str) -> FileSummary | None:
        try:
            target = self._entry(path)
            if not all(_real_dir(p) for p in (self.folder.parent, self.folder, target.parent)):
                return None
            fd = os.open(target, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
            with open(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return None
                sealed, data = _unwrap(handle.read().decode())
            if sealed != _seal(key, data):
                return None
            summary = FileSummary.from_dict(json.loads(data))
            return summary if _well_formed(summary, path) else None
        except Exception:  # corrupt, truncated, foreign or hostile: recompute, never crash
            return None

    def put(self, path: str, key: str, summary: FileSummary) -> None:
        try:
            self._prepare()
            target = self._entry(path)
            _make_real_dir(target.parent)
            data = json.dumps(summary.to_dict(), separators=(",", ":"))
            payload = f"{_HEAD}{_seal(key, data)}{_MIDDLE}{data}}}"
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(payload)
                os.replace(tmp, target)
            except BaseException:
                os.unlink(tmp)
                raise
        except (OSError, TypeError, ValueError):
            return  # a cache that cannot be written only costs time

    def _prepare(self) -> None:
        """The cache folder, its markers and the version folder, as real folders and files;
        OSError (no writes) where one of them is a symbolic link or not a folder."""
        if not self._ready:
            root = self.folder.parent
            root.parent.mkdir(parents=True, exist_ok=True)
            _make_real_dir(root)
            for name, text in ((".gitignore", _GITIGNORE), ("CACHEDIR.TAG", _CACHEDIR_TAG)):
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
                try:
                    fd = os.open(root / name, flags, 0o644)
                except FileExistsError:  # a link there is left alone, never written through
                    continue
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
            _make_real_dir(self.folder)
            self._ready = True


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _make_real_dir(path: Path) -> None:
    """Create ``path`` (its parent is checked already); OSError if it is not a real folder."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path)
    if not _real_dir(path):
        raise NotADirectoryError(f"{path} is not a folder (a symbolic link?)")


# An entry is the JSON object {"key": <seal>, "summary": <summary>}, written compactly in this
# order, so the summary's JSON text is sealed and read back without serialising it again.
_HEAD, _MIDDLE = '{"key":"', '","summary":'
_SUMMARY_AT = len(_HEAD) + 64 + len(_MIDDLE)


def _unwrap(entry: str) -> tuple[str, str]:
    """The seal and the summary's JSON text of an entry (``("", "")`` if it is not one)."""
    middle = entry[_SUMMARY_AT - len(_MIDDLE) : _SUMMARY_AT]
    if not entry.startswith(_HEAD) or middle != _MIDDLE or not entry.endswith("}"):
        return "", ""
    return entry[len(_HEAD) : _SUMMARY_AT - len(_MIDDLE)], entry[_SUMMARY_AT:-1]


def _seal(key: str, summary: str) -> str:
    """The stored key: the entry's key bound to the summary it holds (its compact JSON)."""
    return hashlib.sha256(f"{key}\0{summary}".encode("utf-8", "surrogateescape")).hexdigest()


def _well_formed(summary: FileSummary, path: str) -> bool:
    """Types a formatter or the project pass relies on (JSON gives any shape)."""
    if summary.path != path or not isinstance(summary.facts, dict):
        return False
    for finding in summary.findings:
        spans = [finding.span, *(r.span for r in finding.related)]
        if finding.fix is not None:
            spans.extend(edit.span for edit in finding.fix.edits)
            if not all(isinstance(edit.content, str) for edit in finding.fix.edits):
                return False
        for span in spans:
            numbers = (span.start.line, span.start.column, span.end.line, span.end.column)
            if not all(type(n) is int and n >= 0 for n in numbers):
                return False
        texts = (finding.code, finding.name, finding.message, finding.path)
        if finding.path != path or not all(isinstance(t, str) for t in texts):
            return False
    noqa = summary.noqa
    return all(
        codes is None or (isinstance(codes, list) and all(isinstance(c, str) for c in codes))
        for codes in noqa.lines.values()
    ) and all(isinstance(c, str) for c in noqa.file)
