"""The text edits behind the code actions: ``# noqa`` comments and minimal buffer edits."""

from __future__ import annotations

import pytest

from fp16lint.findings import Edit
from fp16lint.fixes import line_starts, offset
from fp16lint.lsp.edits import minimal_edit, noqa_edit
from fp16lint.suppression import scan


def apply(text: str, edit: Edit) -> str:
    starts = line_starts(text)
    start, end = offset(starts, edit.span.start), offset(starts, edit.span.end)
    return text[:start] + edit.content + text[end:]


SOURCE = (
    "x = torch.cuda.amp.autocast()\n"  # 1: plain
    "y = '#'  # noqa: FP301\n"  # 2: codes already there
    'doc = """first\n'  # 3: ends inside a string
    'last"""\n'  # 4
    "z = a + \\\n"  # 5: backslash continuation
    "    b\n"  # 6
    "w = 2  # keep this comment\r\n"  # 7: CRLF and another comment
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (1, "x = torch.cuda.amp.autocast()  # noqa: FP401"),
        (2, "y = '#'  # noqa: FP301, FP401"),
        (3, None),
        (4, 'last"""  # noqa: FP401'),
        (5, None),
        (6, "    b  # noqa: FP401"),
        (7, "w = 2  # keep this comment  # noqa: FP401"),
    ],
)
def test_noqa_edit(line, expected):
    edit = noqa_edit(SOURCE, line, "FP401")
    if expected is None:
        assert edit is None
        return
    fixed = apply(SOURCE, edit)
    assert fixed.splitlines()[line - 1] == expected
    assert fixed.count("\n") == SOURCE.count("\n")
    assert scan(fixed).suppresses("FP401", line)


def test_noqa_edit_needs_text_that_tokenizes():
    assert noqa_edit('x = """never closed\n', 1, "FP401") is None


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("abc\ndef\n", "abc\ndXf\n"),
        ("aaa", "aaaa"),
        ("x\r\ny", "x\r\nzy"),
        ("a\r\nb", "a\rb"),
        ("a\nb", "a\r\nb"),
        ("", "new"),
        ("same", "same"),
        ("with torch.cuda.amp.autocast():\n", 'with torch.amp.autocast("cuda"):\n'),
    ],
)
def test_minimal_edit(before, after):
    edit = minimal_edit(before, after)
    assert apply(before, edit) == after
    assert len(edit.content) <= len(after)
