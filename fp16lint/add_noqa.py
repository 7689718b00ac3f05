"""``fp16lint check --add-noqa``: a ``# noqa: CODE`` comment on every line with findings, so
that a large codebase can adopt fp16lint and see only new findings (Ruff's ``--add-noqa``).

A line that already has a directive gets the codes added to it. A line where a comment would
change the code (inside a multi-line string, after a backslash) is left alone and counted in
the warning. Notebooks are not edited (a cell's lines are not the file's).
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import replace
from pathlib import Path

from fp16lint import source, suppression
from fp16lint.runner import Options, _write, lint_paths
from fp16lint.settings import Settings

_NOT_SUPPRESSIBLE = frozenset({"FP000", "FP999"})
_ENDING = re.compile(r"(\r\n|\r|\n)?$")
_DIRECTIVE = "# noqa"


def add_noqa_comments(
    paths: list[Path], settings: Settings, options: Options
) -> tuple[int, list[str], list[str]]:
    """Add the directives; returns how many lines got one, the errors met (a file that could
    not be read or written) and warnings (lines that cannot take a comment)."""
    result = lint_paths(paths, settings, replace(options, fix=False, diff=False))
    wanted: dict[str, dict[int, set[str]]] = {}
    for finding in result.findings:
        if finding.code in _NOT_SUPPRESSIBLE or finding.span.cell is not None:
            continue
        lines = wanted.setdefault(finding.path, {})
        lines.setdefault(finding.span.start.line, set()).add(finding.code)
    added, errors, warnings = 0, list(result.errors), list(result.warnings)
    for path, lines in sorted(wanted.items()):
        try:
            original = source.read(Path(path))
        except source.SourceError as exc:
            errors.append(f"{path}: {exc}")
            continue
        text, count, skipped = with_noqa(original.text, lines)
        if skipped:
            warnings.append(
                f"{path}: lines {', '.join(map(str, skipped))} cannot take a comment "
                "(inside a string or after a backslash); no directive added there"
            )
        if not count:
            continue
        error = _write(Path(path), original.encode(text))
        if error:
            errors.append(f"{path}: {error}; no directive added")
        else:
            added += count
    return added, errors, warnings


def with_noqa(text: str, lines: dict[int, set[str]]) -> tuple[str, int, list[int]]:
    """``text`` with ``lines``' codes added in ``# noqa`` comments; also the number of lines
    changed and the lines that could not take a comment."""
    closed = _lines_ending_code(text)
    out = io.StringIO(text, newline="").readlines()
    count, skipped = 0, []
    for number, codes in sorted(lines.items()):
        if number > len(out):
            continue
        line = out[number - 1]
        ending = _ENDING.search(line).group(0)
        body = line[: len(line) - len(ending)]
        if closed is None or number not in closed or body.endswith("\\"):
            skipped.append(number)
            continue
        match = suppression.last_directive(body)
        if match is None:
            body = f"{body.rstrip()}  {_DIRECTIVE}: {', '.join(sorted(codes))}"
        elif match.group("codes"):
            have = [c.strip() for c in re.split(r"[\s,]+", match.group("codes")) if c.strip()]
            new = [c for c in sorted(codes) if not any(c.startswith(h) for h in have)]
            if not new:
                continue
            codes_text = ", ".join([*have, *new])
            body = f"{body[: match.start()]}{_DIRECTIVE}: {codes_text}{body[match.end() :]}"
        else:
            continue  # a blanket directive silences everything already
        out[number - 1] = body + ending
        count += 1
    return "".join(out), count, skipped


def _lines_ending_code(text: str) -> set[int] | None:
    """Lines where a comment can be appended: not inside or before the end of a multi-line
    string. None when the text does not tokenize."""
    inside: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING or token.type == getattr(
                tokenize, "FSTRING_MIDDLE", -1
            ):
                inside.update(range(token.start[0], token.end[0]))
    except (tokenize.TokenError, SyntaxError):
        return None
    total = text.count("\n") + text.count("\r") - text.count("\r\n") + 1
    return set(range(1, total + 1)) - inside
