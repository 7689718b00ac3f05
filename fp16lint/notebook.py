"""Jupyter notebooks: the code cells are linted as one Python text, findings are reported per
cell (``notebook.ipynb:cell 3:2:5``), and fixes are written back into the cells.

The code cells are joined top to bottom (as "Run all" executes them), so an import in one cell
resolves in the next, with a marker comment line between cells. IPython syntax is not Python:
magics (``%time f()``), shell escapes (``!pip install x``, ``files = !ls``) and help
(``obj?``) become ``pass`` placeholders that keep the indentation and the line count, and a cell
whose first line is a cell magic (``%%bash``) is skipped, unless the magic runs its body as
Python (``%%time``, ``%%capture``...). Writing back touches only the ``source`` of the cells a
fix changed: outputs, metadata and the JSON layout stay as they were.

Cells are numbered from 1 counting every cell (markdown included), as the notebook shows them.
"""

from __future__ import annotations

import codecs
import io
import json
import re
import tokenize
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fp16lint import json_spans, source
from fp16lint.findings import Edit, Finding, Fix, Position, Span

MARKER = "# fp16lint: next notebook cell\n"
PLACEHOLDER = "pass  # fp16lint: IPython syntax"
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "python", "python3"})
# The target of ``x = !ls`` starts with a non-space (``\s*`` then a class holding ``\s`` would
# backtrack quadratically on a long line of spaces).
_MAGIC = re.compile(r"^\s*(?:[%!]|\?)|^\s*[\w.,\[\]()*][\w.,\s\[\]()*]*=\s*[%!]")
_HELP = re.compile(r"^\s*[\w.\[\]()]+\?{1,2}\s*$")


@dataclass
class _Cell:
    number: int  # 1-based, counting every cell
    start: int  # the virtual line of its first line
    lines: int
    text: str  # the cell's source as written
    magics: list[str] = field(default_factory=list)  # lines replaced by placeholders, in order


def _lines(text: str) -> list[str]:
    """Lines with their endings, split where the parser splits (not on form feeds)."""
    return io.StringIO(text, newline="").readlines()


def _is_magic(line: str) -> bool:
    return bool(_MAGIC.match(line) or _HELP.match(line))


def _not_statement_starts(text: str) -> set[int] | None:
    """Lines (1-based) that do not start a statement: inside a string or brackets. None when
    the text does not tokenize (then every line that looks like a magic is one)."""
    inside: set[int] = set()
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING:
                inside.update(range(token.start[0] + 1, token.end[0] + 1))
            elif token.type == tokenize.OP and token.string in "([{":
                depth += 1
            elif token.type == tokenize.OP and token.string in ")]}":
                depth = max(0, depth - 1)
            elif token.type == tokenize.NL and depth:
                inside.add(token.start[0] + 1)
    except (tokenize.TokenError, SyntaxError):
        return None
    return inside


def _python_of(cell: _Cell) -> str:
    """The cell as Python: IPython lines replaced by placeholders (``cell.magics`` filled)."""
    lines = _lines(cell.text)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n"
    skip = _not_statement_starts("".join(lines)) or set()
    out = []
    continued = False
    for number, line in enumerate(lines, start=1):
        body = line.rstrip("\r\n")
        if continued or (number not in skip and _is_magic(body)):
            indent = body[: len(body) - len(body.lstrip())] if not continued else ""
            cell.magics.append(line)
            out.append(f"{indent}{PLACEHOLDER}{line[len(body) :]}")
            continued = body.endswith("\\")
        else:
            out.append(line)
    return "".join(out)


def _cell_source(cell: dict[str, Any], number: int) -> str:
    value = cell.get("source", "")
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "".join(value)
    if isinstance(value, str):
        return value
    raise source.SourceError(f"not a valid notebook: the source of cell {number} is not text")


def _table(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _is_python(data: dict[str, Any]) -> bool:
    meta = _table(data, "metadata")
    language = _table(meta, "kernelspec").get("language") or _table(meta, "language_info").get(
        "name"
    )
    return language is None or str(language).lower().startswith("python")


class Notebook:
    """A parsed notebook. ``text`` is the Python the engine lints; ``encode`` writes a fixed
    ``text`` back (the runner treats a Notebook like a ``source.Source``)."""

    def __init__(self, raw: str, bom: bool = False):
        try:
            self.data = json.loads(raw)
        except ValueError as exc:
            raise source.SourceError(f"not a valid notebook: {exc}") from exc
        except RecursionError as exc:
            raise source.SourceError("not a valid notebook: nested too deeply") from exc
        cells = self.data.get("cells") if isinstance(self.data, dict) else None
        if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
            raise source.SourceError("not a valid notebook: no list of cells")
        self.raw = raw
        self.bom = bom
        self.cells: list[_Cell] = []
        parts: list[str] = []
        line = 1
        for number, cell in enumerate(cells, start=1):
            if cell.get("cell_type") != "code" or not _is_python(self.data):
                continue
            text = _cell_source(cell, number)
            first = text.lstrip().split("\n", 1)[0]
            if first.startswith("%%") and first[2:].split(" ", 1)[0] not in PYTHON_CELL_MAGICS:
                continue
            entry = _Cell(number, line, 0, text)
            python = _python_of(entry)
            entry.lines = python.count("\n")
            self.cells.append(entry)
            parts.append(python)
            line += entry.lines + 1  # the marker line
        self.text = MARKER.join(parts)
        try:
            self.text.encode("utf-8")
        except UnicodeEncodeError as exc:  # "\ud800" is valid JSON
            raise source.SourceError("not a valid notebook: a lone surrogate in a cell") from exc

    # --- positions -----------------------------------------------------------------------------
    def _cell_at(self, line: int) -> _Cell | None:
        found = None
        for cell in self.cells:
            if cell.start > line:
                break
            found = cell
        return found

    def locate(self, span: Span) -> Span:
        """A span of ``text`` as a span in its cell."""
        cell = self._cell_at(span.start.line)
        if cell is None or span.cell is not None:
            return span
        offset = cell.start - 1
        start = Position(span.start.line - offset, span.start.column)
        end = Position(max(1, span.end.line - offset), span.end.column)
        return Span(start, end, cell.number)

    # --- writing back ----------------------------------------------------------------------------
    def encode(self, text: str) -> bytes:
        """The notebook file with ``text``'s cells written back: only the bytes of the
        ``source`` values a fix changed are replaced, and the result is read back to check."""
        parts = text.split(MARKER)
        if len(parts) != len(self.cells):
            raise source.SourceError("a fix changed the cell structure; nothing was written")
        spans = json_spans.cell_sources(self.raw)
        changed: dict[int, str] = {}
        pieces, end = [], 0
        for cell, part in zip(self.cells, parts, strict=True):
            restored = self._restore(cell, part)
            if restored == cell.text:
                continue
            span = spans[cell.number - 1] if cell.number <= len(spans) else None
            if span is None:
                raise source.SourceError("cannot find a changed cell's source; nothing was written")
            changed[cell.number] = restored
            pieces += [self.raw[end : span[0]], json_spans.render_source(self.raw, span, restored)]
            end = span[1]
        new = "".join([*pieces, self.raw[end:]])
        self._verify(new, changed)
        return (codecs.BOM_UTF8 if self.bom else b"") + new.encode("utf-8")

    def _verify(self, new: str, changed: dict[int, str]) -> None:
        """Read the new text back: every cell holds what it held, or its fixed source."""
        before = json.loads(self.raw, parse_constant=str)["cells"]  # NaN == NaN here
        after = json.loads(new, parse_constant=str).get("cells")
        ok = isinstance(after, list) and len(after) == len(before)
        for number, (old, cell) in enumerate(zip(before, after or [], strict=False), start=1):
            if number in changed:
                ok = ok and _cell_source(cell, number) == changed[number]
                old = {**old, "source": cell.get("source")}
            ok = ok and old == cell
        if not ok:
            raise source.SourceError("the fixed notebook did not read back; nothing was written")

    def diff(self, path: str, text: str) -> str:
        """A fixed ``text`` as a unified diff per changed cell, in the cell's own lines, under
        a ``--- nb.ipynb:cell 3`` header (as Ruff shows notebook diffs)."""
        parts = text.split(MARKER)
        if len(parts) != len(self.cells):
            raise source.SourceError("a fix changed the cell structure; nothing was written")
        out = []
        for cell, part in zip(self.cells, parts, strict=True):
            restored = self._restore(cell, part)
            if restored != cell.text:
                name = f"{path}:cell {cell.number}"
                out.append(source.unified_diff(name, cell.text, restored))
        return "".join(out)

    @staticmethod
    def _restore(cell: _Cell, part: str) -> str:
        magics = iter(cell.magics)
        lines = []
        for line in _lines(part):
            if line.strip() == PLACEHOLDER:
                original = next(magics, None)
                if original is None:
                    raise source.SourceError("a fix changed IPython lines; nothing was written")
                lines.append(original)
            else:
                lines.append(line)
        if next(magics, None) is not None:
            raise source.SourceError("a fix removed IPython lines; nothing was written")
        restored = "".join(lines)
        if not cell.text.endswith(("\n", "\r")) and restored.endswith("\n"):
            restored = restored[:-1]
        return restored


def decode(path: Path, data: bytes) -> source.Source | Notebook:
    """What to lint in a file: a notebook's code cells, or the Python source."""
    if path.suffix == ".ipynb":
        try:
            return Notebook(data.decode("utf-8-sig"), data.startswith(codecs.BOM_UTF8))
        except UnicodeDecodeError as exc:
            raise source.SourceError(f"not a valid notebook: {exc.reason}") from exc
    return source.decode(data)


def read(path: Path) -> source.Source | Notebook:
    try:
        data, _ = source.read_regular(path)
    except OSError as exc:
        raise source.SourceError(f"cannot read file: {exc.strerror or exc}") from exc
    return decode(path, data)


def cell_text(path: Path, number: int) -> str:
    """The source of cell ``number`` as written (for source frames in reports)."""
    notebook = read(path)
    if isinstance(notebook, Notebook):
        for cell in notebook.cells:
            if cell.number == number:
                return cell.text
    return ""


def to_cells(findings: list[Finding], notebooks: dict[str, Notebook]) -> list[Finding]:
    """Findings with every notebook position given per cell: their own, their related
    places, their fix edits, and ``nb.ipynb:37`` mentions in messages (a rule naming the cast
    site in a notebook). The order stays: cells are in text order."""
    if not notebooks:
        return findings
    mention = re.compile(
        "|".join(
            rf"(?<![\w./\\-])(?P<p{i}>{re.escape(p)}):(?P<l{i}>\d+)\b"
            for i, p in enumerate(notebooks)
        )
    )
    paths = list(notebooks)

    def cells_in(text: str) -> str:
        def place(match: re.Match) -> str:
            i = next(i for i in range(len(paths)) if match.group(f"p{i}"))
            line = int(match.group(f"l{i}"))
            span = notebooks[paths[i]].locate(Span(Position(line, 1), Position(line, 1)))
            return f"{paths[i]}:cell {span.cell}:{span.start.line}" if span.cell else match[0]

        return mention.sub(place, text)

    def locate(path: str, span: Span) -> Span:
        return notebooks[path].locate(span) if path in notebooks else span

    out = []
    for f in findings:
        fix = f.fix
        if fix is not None and f.path in notebooks:
            fix = Fix(
                fix.message,
                fix.applicability,
                tuple(Edit(locate(f.path, e.span), e.content) for e in fix.edits),
            )
        related = tuple(
            replace(r, span=locate(r.path, r.span), message=cells_in(r.message)) for r in f.related
        )
        out.append(
            replace(
                f,
                span=locate(f.path, f.span),
                message=cells_in(f.message),
                help=cells_in(f.help) if f.help else None,
                related=related,
                fix=fix,
            )
        )
    return out
