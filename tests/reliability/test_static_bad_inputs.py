"""The bad-input matrix of issue 10: each input gives a clear message and the documented exit
code (0 clean, 1 findings, 2 errors), the other files are still linted, and ``--fix`` writes
nothing it should not."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from fp16lint.cli import main

BAD = "import torch\n\nwith torch.cuda.amp.autocast():\n    y = 1\n"
FIXED = 'import torch\n\nwith torch.amp.autocast("cuda"):\n    y = 1\n'


@pytest.fixture(autouse=True)
def _isolated(in_tmp, monkeypatch):
    monkeypatch.delenv("FP16LINT_CACHE_DIR", raising=False)
    (in_tmp / "good.py").write_text(BAD, encoding="utf-8")
    return in_tmp


def run(*args: str):
    return CliRunner().invoke(
        main, ["check", "--no-cache", "--output-format", "json", *args], catch_exceptions=False
    )


def found(result) -> set[tuple[str, str]]:
    return {(Path(item["filename"]).name, item["code"]) for item in json.loads(result.stdout)}


def messages(result, name: str) -> list[str]:
    return [
        item["message"] for item in json.loads(result.stdout) if Path(item["filename"]).name == name
    ]


def test_missing_path():
    result = run("good.py", "nope.py")
    assert result.exit_code == 2
    assert "error: nope.py: no such file or directory" in result.stderr
    assert ("good.py", "FP401") in found(result)


def test_folder_without_python_files(in_tmp):
    (in_tmp / "docs").mkdir()
    (in_tmp / "docs" / "README.md").write_text("# hi\n")
    result = run("docs")
    assert result.exit_code == 0
    assert "No Python files found under the given path(s)." in result.stderr


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes(range(256)) * 4, "source contains a NUL byte"),
        (b"x = 1\n\xff\xfe = 2\n", "cannot decode as utf-8: invalid start byte at byte 6"),
        (b"x = 1\ny = '\x00'\n", "source contains a NUL byte"),
        (b"# -*- coding: klingon -*-\nx = 1\n", "unknown encoding 'klingon' in coding cookie"),
        (b"\xef\xbb\xbf# coding: latin-1\nx = 1\n", "UTF-8 BOM with a 'latin-1' coding cookie"),
    ],
    ids=["binary", "invalid-utf8", "nul-byte", "unknown-cookie", "bom-and-cookie"],
)
def test_undecodable_file_is_fp000_and_untouched_by_fix(in_tmp, data, message):
    (in_tmp / "bad.py").write_bytes(data)
    result = run(".", "--fix")
    assert result.exit_code == 1
    assert messages(result, "bad.py") == [f"{message}; the file was not linted."]
    assert (in_tmp / "bad.py").read_bytes() == data
    assert (in_tmp / "good.py").read_text() == FIXED


def test_latin1_with_coding_cookie_is_linted_and_fixed_in_latin1(in_tmp):
    text = "# -*- coding: latin-1 -*-\nimport torch\nnom = 'Ã©tÃ©'\nwith torch.cuda.amp.autocast():\n    pass\n"
    data = text.encode("utf-8").decode("utf-8").encode("latin-1")
    (in_tmp / "l1.py").write_bytes(data)
    result = run("l1.py")
    assert found(result) == {("l1.py", "FP401")} and result.exit_code == 1
    assert json.loads(result.stdout)[0]["location"] == {"row": 4, "column": 6}
    run("l1.py", "--fix")
    fixed = (in_tmp / "l1.py").read_bytes()
    assert fixed == data.replace(b"torch.cuda.amp.autocast()", b'torch.amp.autocast("cuda")')


def test_utf8_bom_is_linted_and_kept_by_fix(in_tmp):
    data = b"\xef\xbb\xbf" + BAD.encode()
    (in_tmp / "bom.py").write_bytes(data)
    assert found(run("bom.py")) == {("bom.py", "FP401")}
    run("bom.py", "--fix")
    assert (in_tmp / "bom.py").read_bytes() == b"\xef\xbb\xbf" + FIXED.encode()


def test_crlf_line_endings_are_linted_and_kept_by_fix(in_tmp):
    data = BAD.replace("\n", "\r\n").encode()
    (in_tmp / "crlf.py").write_bytes(data)
    result = run("crlf.py")
    assert json.loads(result.stdout)[0]["location"] == {"row": 3, "column": 6}
    run("crlf.py", "--fix")
    assert (in_tmp / "crlf.py").read_bytes() == FIXED.replace("\n", "\r\n").encode()


def test_ten_megabyte_generated_file_is_skipped_with_a_warning(in_tmp):
    row = "    (1, 0.5, 'name', torch.float16),\n"
    text = "import torch\nTABLE = [\n" + row * (10_000_000 // len(row)) + "]\n"
    (in_tmp / "generated.py").write_text(text)
    result = run(".")
    assert result.exit_code == 1  # good.py's finding; the big file is not an error
    assert (
        "generated.py: not linted: 10.0 million characters is over the 2 million" in result.stderr
    )
    assert found(result) == {("good.py", "FP401")}
    assert run(".", "--fix").exit_code == 0
    assert (in_tmp / "generated.py").read_text() == text


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n",
        "x = 1" + " + 1" * 20000 + "\n",
        "def f():\n" + "".join(" " * i + "if x:\n" for i in range(1, 120)) + " " * 120 + "pass\n",
    ],
    ids=["brackets", "operators", "indentation"],
)
def test_nesting_beyond_the_parsers_is_fp000_not_a_crash(in_tmp, text):
    (in_tmp / "deep.py").write_text("import torch\nx.half()\n" + text)
    result = run(".")
    assert result.exit_code == 1
    assert {code for name, code in found(result) if name == "deep.py"} == {"FP000"}
    assert ("good.py", "FP401") in found(result)


def test_symbolic_link_loops(in_tmp):
    (in_tmp / "pkg").mkdir()
    (in_tmp / "pkg" / "up").symlink_to("..")  # a folder loop: not followed
    (in_tmp / "pkg" / "a.py").symlink_to("b.py")
    (in_tmp / "pkg" / "b.py").symlink_to("a.py")  # a file loop
    result = run(".")
    assert result.exit_code == 1 and found(result) == {("good.py", "FP401")}
    assert "pkg/a.py: skipped: Too many levels of symbolic links" in result.stderr
    direct = run("pkg/a.py", "good.py")
    assert direct.exit_code == 2
    assert "pkg/a.py: a symbolic link to nothing, or a loop of symbolic links" in direct.stderr


def test_unreadable_file_is_fp000(in_tmp, monkeypatch):
    (in_tmp / "secret.py").write_text(BAD)
    (in_tmp / "secret.py").chmod(0)
    if os.access(in_tmp / "secret.py", os.R_OK):  # root reads anything: simulate the error
        real = Path.read_bytes

        def denied(self):
            if self.name == "secret.py":
                raise PermissionError(13, "Permission denied")
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", denied)
    result = run(".")
    assert result.exit_code == 1
    assert messages(result, "secret.py") == [
        "cannot read file: Permission denied; the file was not linted."
    ]
    assert ("good.py", "FP401") in found(result)


def test_read_only_file_under_fix_is_not_written(in_tmp):
    (in_tmp / "ro.py").write_text(BAD)
    (in_tmp / "ro.py").chmod(0o444)
    result = run(".", "--fix")
    assert result.exit_code == 2
    assert "error: ro.py: file is read-only; fixes not written" in result.stderr
    assert (in_tmp / "ro.py").read_text() == BAD
    assert (in_tmp / "good.py").read_text() == FIXED
    assert oct((in_tmp / "ro.py").stat().st_mode & 0o777) == "0o444"


def test_config_with_wrong_types(in_tmp):
    (in_tmp / "pyproject.toml").write_text("[tool.fp16lint]\nselect = 401\n")
    result = run(".")
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("`select` must be a list of strings, got 401")
    assert result.stdout == ""


def test_unknown_rule_code_in_noqa_warns_and_silences_nothing(in_tmp):
    (in_tmp / "n.py").write_text(BAD.replace("autocast():", "autocast():  # noqa: FP7777, E501"))
    result = run("n.py")
    assert result.exit_code == 1 and found(result) == {("n.py", "FP401")}
    assert "n.py:3: unknown rule code `FP7777` in `# noqa`" in result.stderr
    assert "E501" not in result.stderr


def test_notebook_that_is_not_json(in_tmp):
    (in_tmp / "broken.ipynb").write_text("{ this is not json")
    result = run(".", "--fix")
    assert result.exit_code == 1
    (message,) = messages(result, "broken.ipynb")
    assert message.startswith("not a valid notebook:") and message.endswith("was not linted.")
    assert (in_tmp / "broken.ipynb").read_text() == "{ this is not json"
    assert (in_tmp / "good.py").read_text() == FIXED
