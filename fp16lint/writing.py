"""Write fixed files without losing anyone's edits, owner or links.

``--fix`` computes a file's new bytes from what it read at the start of the run; an editor may
save the file meanwhile. So each write re-reads the file just before replacing it and skips it,
with a message, when its bytes or modification time changed. A file with one link is replaced
atomically (temp file + rename) with its mode, owner and group kept; a file with several hard
links is written in place (as Ruff and Black do), so every link sees the fix; so is a file
whose owner cannot be kept (another user's file we may write to).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Stamp:
    """What a file held when it was read: its bytes' hash and modification time."""

    digest: str
    mtime_ns: int

    @classmethod
    def of(cls, data: bytes, info: os.stat_result) -> Stamp:
        return cls(hashlib.sha256(data).hexdigest(), info.st_mtime_ns)


def write_fixed(path: Path, data: bytes, stamp: Stamp) -> str | None:
    """Replace ``path``'s bytes with ``data`` if it still holds what ``stamp`` says; returns
    why not (one phrase) or None when written. Refuses symbolic links and read-only files."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "the file was deleted while fp16lint ran"
    except OSError as exc:
        return f"cannot write: {exc.strerror or exc}"
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    # Mode bits count even for root, who may write anything: read-only means hands off.
    if not os.access(path, os.W_OK) or not info.st_mode & 0o222:
        return "file is read-only"
    try:
        with open(path, "rb") as handle:
            current = Stamp.of(handle.read(), os.fstat(handle.fileno()))
    except OSError as exc:
        return f"cannot read it again before writing: {exc.strerror or exc}"
    if current != stamp:
        return "the file changed while fp16lint ran (an editor saved it?); run again"
    try:
        if info.st_nlink > 1 or not _replace(path, data, info):
            _write_in_place(path, data)
    except OSError as exc:
        return f"cannot write: {exc.strerror or exc}"
    return None


def _replace(path: Path, data: bytes, info: os.stat_result) -> bool:
    """Atomic replacement keeping mode, owner and group; False (nothing changed) when the owner
    cannot be kept."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".fp16lint")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if (info.st_uid, info.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.fchown(handle.fileno(), info.st_uid, info.st_gid)
                except PermissionError:
                    os.unlink(tmp)
                    return False
            os.fchmod(handle.fileno(), info.st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def _write_in_place(path: Path, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.write(data)
        handle.truncate()
