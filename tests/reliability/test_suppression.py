"""``# noqa`` (line and file level, codes as prefixes) and ``per-file-ignores``."""

from __future__ import annotations

from pathlib import Path

import pytest

from fp16lint.runner import lint_text
from fp16lint.settings import Settings
from fp16lint.suppression import scan

BAD = "import torch\nwith torch.cuda.amp.autocast():{comment}\n    pass\n"
UNSAFE = "import torch\nx = torch.randn(8, 16)\nx.half()\n"


def codes(text: str, **settings) -> list[tuple[int, str]]:
    result = lint_text(text, "a.py", Settings(root=Path.cwd(), **settings))
    return [(f.span.start.line, f.code) for f in result.findings]


@pytest.mark.parametrize(
    ("comment", "silenced"),
    [
        ("", False),
        ("  # noqa", True),
        ("  # NOQA", True),
        ("  #noqa:FP401", True),
        ("  # noqa: FP401, E501", True),
        ("  # noqa: E501 FP401", True),
        ("  # noqa: FP4", True),  # a prefix silences the family
        ("  # noqa: FP402", False),
        ("  # noqa: E501", False),
        ("  # noqa: FP4O1", False),  # a typo silences nothing, not the FP4 family
        ("  # noqa:", False),
        ("  # a comment that mentions noqa: FP401", False),  # not a directive
        ("  # TODO: fix  # noqa: FP401", True),  # a directive after another comment
    ],
)
def test_line_noqa(comment, silenced):
    assert codes(BAD.format(comment=comment)) == ([] if silenced else [(2, "FP401")])


def test_noqa_inside_a_string_on_another_line_does_not_count():
    text = 'import torch\nDOC = "# noqa"\nwith torch.cuda.amp.autocast():\n    pass\n'
    assert codes(text) == [(3, "FP401")]


def test_the_comment_wins_over_a_noqa_inside_a_string_on_the_same_line():
    assert scan("y = '# noqa: FP1'  # noqa: FP301\n").lines == {1: ["FP301"]}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("# fp16lint: noqa\n", []),
        ("# fp16lint: noqa: FP401\n", [(7, "FP102")]),
        ("# fp16lint: noqa: FP1\n", [(3, "FP401")]),
        ("y = 1  # fp16lint: noqa\n", [(3, "FP401"), (7, "FP102")]),  # not on a line of its own
    ],
)
def test_file_level_noqa(header, expected):
    assert codes(header + BAD.format(comment="") + UNSAFE) == expected


def test_per_file_ignores_globs():
    settings = {"per_file_ignores": {"a.py": ("FP4",), "tests/**": ("FP1",)}}
    assert codes(BAD.format(comment="") + UNSAFE, **settings) == [(6, "FP102")]


def test_scan_round_trips_through_json():
    noqa = scan("a = 1  # noqa: FP101,FP2\n# fp16lint: noqa: FP3\nb = 2  # noqa\n")
    assert noqa.lines == {1: ["FP101", "FP2"], 3: None} and noqa.file == ["FP3"]
    assert type(noqa).from_dict(noqa.to_dict()) == noqa


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_noqa_lines_are_numbered_as_python_numbers_them(newline):
    # A form feed is whitespace to Python, not a line break (str.splitlines would count it).
    text = newline.join(["import torch", "\f", "x = 1  # NoQa: FP401", "y = 2  # noqa", ""])
    noqa = scan(text)
    assert noqa.lines == {3: ["FP401"], 4: None}
    with_finding = BAD.format(comment="  # NoQa: FP401").replace(
        "import torch\n", "import torch\n\f\n"
    )
    assert codes(with_finding) == []
