"""Issue 21: inputs a project (or its user) can hand the linter that once aborted the run with a
traceback and exit 1, hung it, wrote outside the project or ran the project's code. Each gives
a clear message and the documented exit code, and the other files are still linted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fp16lint.cli import main
from fp16lint.notebook import Notebook

BAD = "import torch\n\nwith torch.cuda.amp.autocast():\n    y = 1\n"


def run(*args: str, stdin: bytes | None = None):
    return CliRunner().invoke(
        main, ["check", "--no-cache", "-j", "1", *args], input=stdin, catch_exceptions=False
    )


def found(result) -> list[tuple[str, str]]:
    return sorted((Path(i["filename"]).name, i["code"]) for i in json.loads(result.stdout))


@pytest.fixture
def project(in_tmp, monkeypatch):
    monkeypatch.delenv("FP16LINT_CACHE_DIR", raising=False)
    (in_tmp / "good.py").write_text(BAD)
    return in_tmp


NON_TEXT_CODECS = ["rot13", "base64", "hex", "zlib", "bz2", "uu", "quopri", "punycode", "undefined"]


def test_non_text_codecs_in_cookies_are_one_fp000_each(project):
    for codec in NON_TEXT_CODECS:
        (project / f"{codec}.py").write_bytes(f"# coding: {codec}\n".encode() + BAD.encode())
    result = run("--output-format", "json", ".")
    assert result.exit_code == 1 and "Traceback" not in result.output
    expected = sorted([(f"{c}.py", "FP000") for c in NON_TEXT_CODECS] + [("good.py", "FP401")])
    assert found(result) == expected


BAD_NOTEBOOKS = {
    "source-number.ipynb": '{"cells": [{"cell_type": "code", "source": [1]}]}',
    "metadata-list.ipynb": '{"cells": [{"cell_type": "code", "source": "x = 1"}], "metadata": [1]}',
    "deep.ipynb": '{"cells": [], "metadata": ' + "[" * 200_000 + "]" * 200_000 + "}",
    "surrogate.ipynb": '{"cells": [{"cell_type": "code", "source": "s = \'\\ud800\'"}]}',
}


def test_malformed_notebooks_are_fp000_not_a_crash(project):
    for name, text in BAD_NOTEBOOKS.items():
        (project / name).write_text(text)
    result = run("--output-format", "json", ".")
    assert result.exit_code == 1 and "Traceback" not in result.output
    codes = dict(found(result))
    assert codes == {
        "good.py": "FP401",
        **{n: "FP000" for n in BAD_NOTEBOOKS if n != "metadata-list.ipynb"},
    }


def test_notebook_magic_detection_is_linear():
    cell = {"cell_type": "code", "source": " " * 120_000 + "x"}
    started = time.monotonic()
    Notebook(json.dumps({"cells": [cell]}))
    assert time.monotonic() - started < 5  # was 110 s: the magic regex backtracked


GIT_ACCEPTS = ["!", "\\", "foo/\\", "[", "**/x/[a-"]


def test_gitignore_lines_git_accepts_never_abort_the_run(project):
    (project / ".gitignore").write_text("\n".join([*GIT_ACCEPTS, "ignored.py"]) + "\n")
    (project / "ignored.py").write_text(BAD)
    result = run("--output-format", "json", ".")
    assert result.exit_code == 1 and found(result) == [("good.py", "FP401")]


def test_the_same_patterns_in_exclude_and_per_file_ignores(project):
    patterns = json.dumps(GIT_ACCEPTS)
    (project / "pyproject.toml").write_text(
        f"[tool.fp16lint]\nexclude = {patterns}\n"
        f"[tool.fp16lint.per-file-ignores]\n"
        + "".join(f"{json.dumps(p)} = ['FP4']\n" for p in GIT_ACCEPTS)
    )
    result = run("--output-format", "json", ".")
    assert result.exit_code == 1 and found(result) == [("good.py", "FP401")]


def test_language_server_index_survives_bad_patterns(project):
    from fp16lint.lsp.session import Session

    (project / ".gitignore").write_text("\n".join(GIT_ACCEPTS) + "\n")
    assert str((project / "good.py").resolve()) in list(Session([project]).index_targets())


def test_pyproject_with_a_tool_string_and_with_a_bom(project):
    (project / "pyproject.toml").write_text('tool = "x"\n')
    result = run("--config", "pyproject.toml", ".")
    assert result.exit_code == 1 and "Traceback" not in result.output
    (project / "pyproject.toml").write_bytes(b"\xef\xbb\xbf[tool.fp16lint]\nignore = ['FP401']\n")
    result = run(".")
    assert result.exit_code == 0, result.output


def test_standard_input_that_is_not_utf8_is_fp000():
    result = run("--stdin-filename", "s.py", "--output-format", "json", stdin=b"x = '\xff'\n")
    assert result.exit_code == 1 and found(result) == [("s.py", "FP000")]
    result = run("--stdin-filename", "s.py", stdin=b"# coding: latin-1\nx = '\xff'\n")
    assert result.exit_code == 0 and "All checks passed!" in result.output


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses non-UTF-8 file names")
@pytest.mark.parametrize("output_format", ["gitlab", "sarif", "full", "concise", "json"])
def test_file_names_that_are_not_utf8_or_hold_a_newline(project, output_format):
    os.rename(project / "good.py", os.fsencode(project) + b"/bad\xff.py")
    (project / "new\nline.py").write_text(BAD)
    result = run("--output-format", output_format, ".")
    assert result.exit_code == 1 and "Traceback" not in result.output
    if output_format in ("full", "concise"):
        assert "new\\nline.py:3:6" in result.output
        assert not any(line.startswith("line.py") for line in result.output.splitlines())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_fifo_and_dev_zero_are_skipped_never_read(project):
    os.mkfifo(project / "pipe.py")
    (project / "zero.py").symlink_to("/dev/zero")
    for args in ([".", "pipe.py", "zero.py"], ["pipe.py"], ["zero.py"]):
        started = time.monotonic()
        result = run("--output-format", "json", *args)
        assert time.monotonic() - started < 30
        assert "Traceback" not in result.output
        names = {name for name, _ in found(result)}
        assert not names & {"pipe.py", "zero.py"}
    assert "not a regular file" in result.output


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_language_server_never_blocks_on_a_fifo(project):
    from fp16lint.lsp.session import Session

    os.mkfifo(project / "pipe.py")
    (project / "pyproject.toml").write_text("[tool.fp16lint]\nselect = ['ALL']\n")
    session = Session([project])
    session.index_file(str(project / "pipe.py"))  # returns: the read is refused, not blocked
    summary = session.summaries[str(project / "pipe.py")]
    assert "not a regular file" in summary.findings[0].message


# --- the cache ----------------------------------------------------------------------------
def test_cache_never_writes_through_symbolic_links(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "tag").write_text("precious\n")
    cache = project / ".fp16lint_cache"
    cache.mkdir()
    (cache / "CACHEDIR.TAG").symlink_to(outside / "tag")
    (cache / "v2").symlink_to(outside, target_is_directory=True)
    for _ in range(2):
        result = CliRunner().invoke(main, ["check", "."], catch_exceptions=False)
        assert result.exit_code == 1 and "Traceback" not in result.output
    assert sorted(p.name for p in outside.iterdir()) == ["tag"]
    assert (outside / "tag").read_text() == "precious\n"


def test_a_cache_folder_that_is_a_link_is_not_used(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (project / ".fp16lint_cache").symlink_to(outside, target_is_directory=True)
    result = CliRunner().invoke(main, ["check", "."], catch_exceptions=False)
    assert result.exit_code == 1
    assert list(outside.iterdir()) == []


def test_hand_edited_cached_facts_are_a_miss(project):
    (project / "model.py").write_text(
        "import torch\nclass Net(torch.nn.Module):\n    pass\nmodel = Net().half()\n"
    )
    args = ["check", "--select", "ALL", "--output-format", "json", "."]
    fresh = CliRunner().invoke(main, [*args, "--no-cache"], catch_exceptions=False)
    CliRunner().invoke(main, args, catch_exceptions=False)
    entries = list((project / ".fp16lint_cache").rglob("*.json"))
    for entry in entries:
        data = json.loads(entry.read_text())
        data["summary"]["facts"] = dict.fromkeys(data["summary"]["facts"] or ["classes"], 5)
        entry.write_text(json.dumps(data))
    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert found(again) == found(fresh) and "FP999" not in again.stdout


# --- never running the project's code -----------------------------------------------------
SHADOWS = ("click", "libcst", "pathspec")


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "fp16lint", "check", "--no-cache", "."],
        [str(Path(sys.executable).with_name("fp16lint")), "check", "--no-cache", "."],
    ],
    ids=["python -m", "console script"],
)
def test_a_project_module_named_like_a_dependency_is_never_imported(project, command):
    for name in SHADOWS:
        (project / f"{name}.py").write_text(
            f"open({str(project / ('ran-' + name))!r}, 'w').close()\nraise SystemExit(99)\n"
        )
    env = {**os.environ, "PYTHONPATH": f".{os.pathsep}{project}"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1, done.stderr
    assert "FP401" in done.stdout
    assert not list(project.glob("ran-*"))


def test_deep_directory_tree_costs_linear_system_calls(tmp_path, monkeypatch):
    """A file per level of a 600-level tree: resolving each file's path afresh was O(depth)
    ``lstat`` calls per file (a 2,100-level tree took over 120 s); now each folder costs one."""
    from fp16lint import runner
    from fp16lint.discovery import discover
    from fp16lint.settings import Settings

    folder = tmp_path
    for _ in range(600):
        folder = folder / "d"
        folder.mkdir()
        (folder / "m.py").write_text("x = 1\n")
    files = discover([tmp_path], Settings(root=tmp_path)).files
    assert len(files) == 600
    calls = 0
    real_lstat = os.lstat

    def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return real_lstat(*args, **kwargs)

    monkeypatch.setattr(os, "lstat", counting)
    names = [runner.module_name_for(path) for path in files]
    assert names == [("m", False)] * 600
    assert calls < 10 * 600
