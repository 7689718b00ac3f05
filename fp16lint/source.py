"""Read and write Python source the way the interpreter does, and give it back byte-faithfully.

Decoding honours a UTF-8 BOM and a PEP 263 coding cookie; writing restores both, so a fix
never changes a file's encoding. Line endings are kept because edits only replace the
characters they cover.
"""

from __future__ import annotations

import codecs
import difflib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


class SourceError(Exception):
    """The file cannot be read or decoded; the message says why in one line."""


@dataclass(frozen=True)
class Source:
    text: str
    encoding: str = "utf-8"
    bom: bool = False
    # Whether encoding the text gives back the bytes read: only then may a fix be written
    # (``unicode_escape`` would put the file on one line, ``utf-8-sig`` add a BOM, ``idna``
    # raise half-way through a run).
    round_trips: bool = True

    def diff(self, path: str, text: str) -> str:
        """A fixed ``text`` as a unified diff against this source."""
        return unified_diff(path, self.text, text)

    def encode(self, text: str) -> bytes:
        try:
            data = text.encode(self.encoding)
        except (UnicodeError, LookupError, ValueError) as exc:
            raise SourceError(f"cannot encode as {self.encoding}: {exc}") from exc
        return codecs.BOM_UTF8 + data if self.bom else data


def _cookie_encoding(data: bytes) -> str | None:
    for line in data.split(b"\n", 2)[:2]:
        match = _COOKIE.match(line)
        if match:
            return match.group(1).decode("ascii")
        if line.strip() and not line.lstrip().startswith(b"#"):
            return None
    return None


def decode(data: bytes) -> Source:
    """Bytes → text with the rules of PEP 263 and the UTF-8 BOM."""
    if b"\x00" in data:
        raise SourceError("source contains a NUL byte")
    bom = data.startswith(codecs.BOM_UTF8)
    if bom:
        data = data[len(codecs.BOM_UTF8) :]
    encoding = _cookie_encoding(data) or "utf-8"
    try:
        codec = codecs.lookup(encoding)
    except LookupError as exc:
        raise SourceError(f"unknown encoding {encoding!r} in coding cookie") from exc
    if not getattr(codec, "_is_text_encoding", True):  # rot13, base64, zlib...: as CPython
        raise SourceError(f"{encoding!r} in the coding cookie is not a text encoding")
    if bom and codec.name != "utf-8":
        raise SourceError(f"UTF-8 BOM with a {encoding!r} coding cookie")
    try:
        text = data.decode(codec.name)
    except UnicodeDecodeError as exc:
        raise SourceError(f"cannot decode as {encoding}: {exc.reason} at byte {exc.start}") from exc
    except (UnicodeError, LookupError, ValueError, TypeError) as exc:  # punycode, undefined...
        raise SourceError(f"cannot decode as {encoding}: {exc}") from exc
    if not isinstance(text, str):
        raise SourceError(f"{encoding!r} in the coding cookie is not a text encoding")
    return Source(text, codec.name, bom, _round_trips(text, codec.name, data))


def _round_trips(text: str, encoding: str, data: bytes) -> bool:
    if encoding == "utf-8":
        return True  # the decode succeeded: UTF-8 always gives the same bytes back
    try:
        return text.encode(encoding) == data
    except (UnicodeError, LookupError, ValueError):
        return False


def read_regular(path: Path) -> tuple[bytes, os.stat_result]:
    """A regular file's bytes and the ``stat`` taken before reading them. Anything else (a FIFO
    named ``x.py`` would block the read, a link to ``/dev/zero`` never end it) is refused."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise SourceError("not a regular file (a FIFO or a device?); the file was not read")
    return path.read_bytes(), info


def read(path: Path) -> Source:
    try:
        data, _ = read_regular(path)
    except OSError as exc:
        raise SourceError(f"cannot read file: {exc.strerror or exc}") from exc
    return decode(data)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by a temp file + rename in the same folder, keeping its mode."""
    mode = path.stat().st_mode
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".fp16lint")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def unified_diff(name: str, before: str, after: str) -> str:
    """``before`` to ``after`` as a unified diff with ``name`` in both headers; a last line
    without a newline is marked as ``diff`` and ``patch`` expect."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), name, name
    )
    out = []
    for line in lines:
        out.append(
            line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n"
        )
    return "".join(out)
