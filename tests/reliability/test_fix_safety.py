"""``--fix`` never corrupts: fixed files re-parse (or the fix is dropped and reported), a second
run changes nothing, edits stay inside the fixed findings' ranges, writes are atomic and keep
the mode, untouched files keep their bytes and mtime, and nothing is written outside the given
paths or through a symbolic link."""

from __future__ import annotations

import os
from pathlib import Path

import libcst as cst
import pytest

from fp16lint import fixes, source
from fp16lint.analysis.context import NodeEdit
from fp16lint.findings import Applicability, Severity
from fp16lint.rules.base import Rule
from fp16lint.runner import Options, fix_text, lint_paths
from fp16lint.settings import Settings

BAD = "import torch\n\nwith torch.cuda.amp.autocast():\n    y = 1\n"
FIXED = 'import torch\n\nwith torch.amp.autocast("cuda"):\n    y = 1\n'
UNSAFE = "import torch\nx = torch.randn(8, 16)\nx.half()\n"


def fix(root: Path, *paths: Path, unsafe: bool = False, diff: bool = False):
    options = Options(jobs=1, use_cache=False, fix=not diff, unsafe_fixes=unsafe, diff=diff)
    return lint_paths(list(paths) or [root], Settings(root=root), options)


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_untouched_files_keep_bytes_mtime_and_mode(tmp_path):
    (tmp_path / "clean.py").write_text("import torch\nx = torch.ones(2)\n")
    (tmp_path / "notes.txt").write_text("BAD = 'torch.cuda.amp.autocast()'\n")
    (tmp_path / "bad.py").write_text(BAD)
    os.utime(tmp_path / "clean.py", ns=(1_000_000_000, 1_000_000_000))
    before = snapshot(tmp_path)
    fix(tmp_path)
    after = snapshot(tmp_path)
    assert after.pop("bad.py")[0] == FIXED.encode()
    before.pop("bad.py")
    assert after == before


def test_fixed_file_keeps_its_mode_and_no_temp_file_is_left(tmp_path):
    target = tmp_path / "tool.py"
    target.write_text(BAD)
    target.chmod(0o751)
    fix(tmp_path)
    assert target.read_text() == FIXED
    assert target.stat().st_mode & 0o7777 == 0o751
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tool.py"]


def test_second_fix_run_changes_nothing(tmp_path):
    (tmp_path / "a.py").write_text(BAD + UNSAFE)
    first = fix(tmp_path, unsafe=True)
    assert first.fixed == 2
    before = snapshot(tmp_path)
    second = fix(tmp_path, unsafe=True)
    assert second.fixed == 0 and snapshot(tmp_path) == before


def test_symlink_is_not_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "real.py").write_text(BAD)
    project = tmp_path / "project"
    project.mkdir()
    (project / "link.py").symlink_to(outside / "real.py")
    result = fix(project, project / "link.py")
    assert "link.py: is a symbolic link; fixes not written" in result.errors[0]
    assert (outside / "real.py").read_text() == BAD


def test_nothing_is_written_outside_the_given_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.py").write_text(BAD)
    (tmp_path / "b" / "y.py").write_text(BAD)
    fix(tmp_path, tmp_path / "a")
    assert (tmp_path / "a" / "x.py").read_text() == FIXED
    assert (tmp_path / "b" / "y.py").read_text() == BAD


def test_a_failed_write_leaves_the_original_whole(tmp_path, monkeypatch):
    target = tmp_path / "a.py"
    target.write_text(BAD)

    real_fdopen = os.fdopen

    class Failing:
        def __init__(self, *args, **kwargs):
            self.handle = real_fdopen(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(source.os, "fdopen", Failing)
    result = fix(tmp_path)
    (error,) = result.errors
    assert error.endswith("a.py: cannot write: No space left on device; fixes not written")
    assert target.read_text() == BAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.py"]


def test_diff_mode_writes_nothing(tmp_path):
    (tmp_path / "a.py").write_text(BAD)
    before = snapshot(tmp_path)
    result = fix(tmp_path, diff=True)
    assert snapshot(tmp_path) == before and result.diffs


class _BreaksSyntax(Rule):
    """A planted rule whose fix would break the file."""

    code = "FP996"
    name = "planted-bad-fix"
    severity = Severity.INFO
    fix = Applicability.SAFE
    summary = what = why = example = use_instead = "planted"

    def visit_Call(self, node: cst.Call) -> None:
        self.report(node, "A call.", edits=[NodeEdit(node, "(((")], fix_message="Break it.")


def test_a_fix_that_would_break_the_syntax_is_dropped_and_reported():
    from fp16lint.engine import lint_source

    text = "x = f()\n"
    findings = lint_source("a.py", text, [_BreaksSyntax]).findings
    new_text, fixed, problem = fix_text(
        "a.py", text, findings, [_BreaksSyntax], Settings(), Options(fix=True)
    )
    assert new_text == text and fixed == 0
    assert problem.code == "FP000" and "FP996 would break the file's syntax" in problem.message


def changed_ranges(before: str, after: str) -> list[tuple[int, int]]:
    """Character ranges of ``before`` that differ in ``after`` (common prefix/suffix cut)."""
    import difflib

    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    return [(i1, i2) for tag, i1, i2, _, _ in matcher.get_opcodes() if tag != "equal"]


def fix_ranges(text: str, findings) -> list[tuple[int, int]]:
    starts = fixes.line_starts(text)
    return [
        (fixes.offset(starts, e.span.start), fixes.offset(starts, e.span.end))
        for f in findings
        if f.fix is not None
        for e in f.fix.edits
    ]


def test_edits_stay_inside_the_fixed_findings_ranges(tmp_path):
    text = (
        "# header comment\nimport torch\n\n\ndef f():\n    x = torch.randn(2)\n    x.half()  # keep me\n"
        "    with torch.cuda.amp.autocast():\n        return x\n\n\n# trailer\n"
    )
    (tmp_path / "a.py").write_text(text)
    plain = lint_paths([tmp_path], Settings(root=tmp_path), Options(jobs=1, use_cache=False))
    allowed = fix_ranges(text, plain.findings)
    assert fix(tmp_path, unsafe=True).fixed == 2
    after = (tmp_path / "a.py").read_text()
    for start, end in changed_ranges(text, after):
        assert any(a <= start and end <= b for a, b in allowed), (start, end, text[start:end])


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_fixing_keeps_comments_and_blank_lines(tmp_path, newline):
    text = "import torch  # c1\n\n\nwith torch.cuda.amp.autocast():  # c2\n    pass  # c3\n"
    (tmp_path / "a.py").write_bytes(text.replace("\n", newline).encode())
    fix(tmp_path)
    expected = text.replace("torch.cuda.amp.autocast()", 'torch.amp.autocast("cuda")')
    assert (tmp_path / "a.py").read_bytes() == expected.replace("\n", newline).encode()
