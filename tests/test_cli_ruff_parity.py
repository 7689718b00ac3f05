"""The command line as editor plugins, CI and Ruff users call it (issue 20, issue 18 item 4):
standard input as a first-class input, errors that never read as success, Ruff's options and
summaries. Each test failed before the change it names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lintutil import run_cli as run
from lintutil import write

BAD = "import torch\n\nwith torch.cuda.amp.autocast():\n    y = 1\n"
FIXED = 'import torch\n\nwith torch.amp.autocast("cuda"):\n    y = 1\n'
# A trained cast (FP101 reports casts only where they are defects).
HALF = (
    "import torch\nm = torch.nn.Linear(2, 2)\n\nm = m.half()\n"
    "opt = torch.optim.SGD(m.parameters(), lr=0.1)\nopt.step()\n"
)
CLEAN = "import torch\n\nx = torch.ones(2)\n"


@pytest.fixture(autouse=True)
def _isolated(in_tmp, monkeypatch):
    monkeypatch.delenv("FP16LINT_CACHE_DIR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return in_tmp


# --- standard input: ranges, frames, --diff and --fix from the text given -----------------
def test_stdin_ranges_and_frames_come_from_stdin_not_the_file_on_disk():
    write("m.py", "import torch\nm = torch.nn.Linear(2, 2)\n\nx = 1\n")
    args = ("check", "-", "--stdin-filename", "m.py", "--select", "FP101")
    full = run(*args, "--output-format", "full", stdin=HALF).stdout
    assert "4 | m = m.half()" in full and "x = 1" not in full
    lsp = json.loads(run(*args, "--output-format", "lsp", stdin=HALF).stdout)
    (diagnostic,) = lsp[0]["diagnostics"]
    assert diagnostic["range"] == {
        "start": {"line": 3, "character": 4},
        "end": {"line": 3, "character": 12},
    }


def test_dash_alone_reads_standard_input():
    result = run("check", "-", "--output-format", "concise", stdin=BAD)
    assert result.exit_code == 1
    assert result.stdout.startswith("-:3:6: FP401")


def test_stdin_diff_prints_the_diff_and_exits_1():
    result = run("check", "-", "--stdin-filename", "m.py", "--diff", stdin=BAD)
    assert result.exit_code == 1
    assert result.stdout.startswith("--- m.py\n+++ m.py\n")
    assert '+with torch.amp.autocast("cuda"):' in result.stdout
    assert "Would fix 1 finding." in result.stderr
    assert run("check", "-", "--stdin-filename", "m.py", "--diff", stdin=CLEAN).exit_code == 0


def test_stdin_fix_prints_the_fixed_text_and_exits_by_what_is_left():
    result = run("check", "-", "--stdin-filename", "m.py", "--fix", stdin=BAD)
    assert result.exit_code == 0 and result.stdout == FIXED
    assert "Fixed 1 finding." in result.stderr
    left = run("check", "-", "--stdin-filename", "m.py", "--fix", stdin=HALF)
    assert left.exit_code == 1 and left.stdout == HALF


# --- errors are never success ---------------------------------------------------------------
@pytest.mark.parametrize("output_format", ["full", "concise", "json", "sarif"])
def test_missing_path_prints_no_success_and_exits_2(output_format):
    result = run("check", "nonexist.py", "--output-format", output_format)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "nonexist.py: no such file or directory" in result.stderr


def test_symlink_loop_prints_no_success_and_exits_2():
    os.symlink("loop2", "loop1")
    os.symlink("loop1", "loop2")
    result = run("check", "loop1")
    assert result.exit_code == 2 and result.stdout == ""
    assert "loop of symbolic links" in result.stderr


def test_missing_path_beside_a_clean_file_is_no_success():
    write("clean.py", CLEAN)
    result = run("check", "clean.py", "nonexist.py")
    assert result.exit_code == 2 and "All checks passed!" not in result.stdout


def test_a_command_typo_is_an_unknown_command():
    write("a.py", BAD)
    result = run("chek", ".")
    assert result.exit_code == 2
    assert "unknown command `chek` (did you mean `check`?)" in result.stderr
    assert "FP401" not in result.stdout


def test_syntax_error_is_reported_where_it_is():
    write("syn.py", "a = 1\nb = 2 2\nc = 3\n")
    result = run("check", "syn.py", "--output-format", "concise")
    assert result.stdout.startswith("syn.py:2:7: FP000")


# --- --diff output is a patch -------------------------------------------------------------
def test_diff_with_nothing_fixable_prints_nothing_on_stdout():
    write("m.py", HALF)
    result = run("check", "m.py", "--diff")
    assert result.exit_code == 0 and result.stdout == ""
    assert "No fixes available." in result.stderr


def test_diff_output_applies_with_patch(tmp_path):
    write("a.py", BAD)
    patch = run("check", "a.py", "--diff").stdout
    subprocess.run(["patch", "-p0", "-s"], input=patch, text=True, check=True)
    assert Path("a.py").read_text() == FIXED


def test_notebook_diff_is_per_cell_with_cell_lines():
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# title\n"]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 1,
         "source": ["import torch\n", "x = 1\n"]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 2,
         "source": ["y = 2\n", "with torch.cuda.amp.autocast():\n", "    pass\n"]},
    ]  # fmt: skip
    write("nb.ipynb", json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                  "nbformat_minor": 5}))  # fmt: skip
    result = run("check", "nb.ipynb", "--diff")
    assert result.exit_code == 1
    assert result.stdout == (
        "--- nb.ipynb:cell 3\n+++ nb.ipynb:cell 3\n@@ -1,3 +1,3 @@\n y = 2\n"
        '-with torch.cuda.amp.autocast():\n+with torch.amp.autocast("cuda"):\n     pass\n'
    )
    assert "next notebook cell" not in result.stdout


# --- summaries --------------------------------------------------------------------------
def test_fixed_counts_the_findings_really_resolved(tmp_path):
    """One `.half()` fix can resolve findings of several rules: "Fixed N" is what is gone."""
    demo = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
    subprocess.run(["cp", "-r", str(demo), "demo"], check=True)
    count = len(run("check", "demo", "-q", "--output-format", "json-lines").stdout.splitlines())
    fixed = run("check", "demo", "--fix", "--unsafe-fixes", "--output-format", "concise")
    left = len(run("check", "demo", "-q", "--output-format", "json-lines").stdout.splitlines())
    assert count > left
    assert f"Fixed {count - left} findings." in fixed.stdout


def test_show_fixes_lists_fixes_per_file_and_rule():
    write("a.py", BAD)
    result = run("check", "a.py", "--fix", "--show-fixes")
    assert "Fixed 1 finding:\n- a.py:\n    1 × FP401 (deprecated-amp-api)\n" in result.stdout  # noqa: RUF001


def test_statistics_has_a_total():
    write("a.py", BAD + "x = torch.randn(8, 16)\nx.half()\n")
    result = run("check", "a.py", "--statistics")
    assert "Found 2 findings." in result.stdout
    assert "[*] 1 fixable with the `--fix` option." in result.stdout


def test_rule_is_documented_as_the_alias_of_explain():
    help_text = run("--help").stdout
    assert "Alias of `explain`" in help_text
    assert run("rule", "FP401").stdout == run("explain", "FP401").stdout


def test_text_formats_show_a_severity_other_than_warning():
    write("a.py", "import torch\nx = torch.randn(8, 16)\nx.half()\n")
    result = run("check", "a.py", "--output-format", "concise")
    assert "a.py:3:1: FP102 (error) " in result.stdout


# --- Ruff's options -----------------------------------------------------------------------
def test_exclude_and_extend_exclude_on_the_command_line():
    write("a/x.py", BAD)
    write("b/y.py", BAD)
    result = run("check", ".", "--extend-exclude", "a", "--output-format", "concise")
    assert "b/y.py" in result.stdout and "a/x.py" not in result.stdout
    result = run("check", ".", "--exclude", "a,b")
    assert "No Python files found" in result.stderr


def test_add_noqa_silences_every_finding_and_keeps_other_codes():
    write("a.py", "import torch\nx = torch.randn(8, 16)\nx.half()  # noqa: E501\n" + BAD[12:])
    result = run("check", "a.py", "--add-noqa")
    assert result.exit_code == 0 and "Added 2 noqa directives." in result.stderr
    text = Path("a.py").read_text()
    assert "x.half()  # noqa: E501, FP102\n" in text
    assert "with torch.cuda.amp.autocast():  # noqa: FP401\n" in text
    assert run("check", "a.py").exit_code == 0


def test_add_noqa_leaves_lines_inside_strings_alone():
    from fp16lint.add_noqa import with_noqa

    text = 'x = f("""\nbody\n""")\ny = 2\n'
    new, count, skipped = with_noqa(text, {1: {"FP101"}, 2: {"FP101"}, 4: {"FP102"}})
    assert skipped == [1, 2] and count == 1
    assert new == 'x = f("""\nbody\n""")\ny = 2  # noqa: FP102\n'


def test_unused_noqa_is_reported_and_fixed():
    write(
        "a.py",
        "import torch\nx = torch.ones(2)  # noqa: FP101\ny = torch.randn(2)\ny.half()  # noqa: FP102\n",
    )
    assert run("check", "a.py").exit_code == 0  # off by default
    result = run("check", "a.py", "--extend-select", "FP001", "--output-format", "concise")
    assert result.stdout.splitlines()[0] == (
        "a.py:2:20: FP001 (info) [*] Unused `noqa` directive (unused: `FP101`)."
    )
    assert len(result.stdout.splitlines()) == 3  # the FP102 directive is used
    run("check", "a.py", "--extend-select", "FP001", "--fix")
    assert Path("a.py").read_text().splitlines()[1] == "x = torch.ones(2)"


def test_watch_lints_again_when_a_file_changes(tmp_path):
    write("a.py", CLEAN)
    command = [sys.executable, "-m", "fp16lint", "check", "a.py", "--watch", "--no-cache"]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert proc.stdout.readline() == "All checks passed!\n"
        time.sleep(1.0)  # a new modification time even on coarse file systems
        write("a.py", BAD)
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline and not any("FP401" in line for line in lines):
            lines.append(proc.stdout.readline())
        assert any(line.startswith("a.py:3:6: FP401") for line in lines)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_rules_lists_every_severity_a_rule_reports():
    rows = {line.split()[0]: line.split()[2] for line in run("rules").stdout.splitlines()}
    assert rows["FP202"] == "warning/info" and rows["FP108"] == "error/warning"
    assert rows["FP101"] == "warning"


# --- messages in Ruff's form: one sentence, the advice in `help` ----------------------------
def test_json_full_and_concise_carry_the_help():
    write("a.py", BAD)
    (item,) = json.loads(run("check", "a.py", "--output-format", "json").stdout)
    assert item["message"] == (
        "`torch.cuda.amp.autocast` is deprecated (FutureWarning since torch 2.4) and will be "
        "removed."
    )
    assert item["help"] == 'Use `torch.amp.autocast("cuda", ...)`.'
    assert item["fix"]["message"] == "Use `torch.amp.autocast`"
    full = run("check", "a.py").stdout
    assert '  = help: Use `torch.amp.autocast("cuda", ...)`.\n' in full
    assert "  = fix: Use `torch.amp.autocast`\n" in full
    concise = run("check", "a.py", "--output-format", "concise").stdout
    assert "help" not in concise and "Use `torch.amp" not in concise


def test_lsp_format_carries_the_help_in_data():
    write("a.py", BAD)
    (entry,) = json.loads(run("check", "a.py", "--output-format", "lsp").stdout)
    (diagnostic,) = entry["diagnostics"]
    assert diagnostic["message"].endswith("and will be removed.")
    assert diagnostic["data"]["help"] == 'Use `torch.amp.autocast("cuda", ...)`.'


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_from_torch_device_import_amp_names_the_deprecated_module(device):
    write("a.py", f"from torch.{device} import amp\n\nwith amp.autocast():\n    pass\n")
    out = run("check", "a.py", "--output-format", "concise").stdout.splitlines()
    assert out[0] == (
        f"a.py:1:6: FP401 [*] `torch.{device}.amp` is deprecated (FutureWarning since torch 2.4) "
        "and will be removed."
    )
    assert "The fix comes with its import's" not in "\n".join(out)
    full = run("check", "a.py").stdout
    assert "The import's fix rewrites this call too." in full


@pytest.mark.parametrize("name", ["fp16lint.toml", ".fp16lint.toml"])
def test_tool_header_in_fp16lint_toml_is_a_clear_error(name):
    write(name, '[tool.fp16lint]\nselect = ["FP4"]\n')
    write("a.py", BAD)
    result = run("check", "a.py")
    assert result.exit_code == 2
    assert f"`{name}` takes top-level keys" in result.stderr
    assert "belongs in pyproject.toml" in result.stderr
    write(name, 'select = ["FP4"]\n')
    assert run("check", "a.py").exit_code == 1


def test_diff_with_show_fixes_lists_what_would_be_fixed():
    write("a.py", BAD)
    result = run("check", "a.py", "--diff", "--show-fixes")
    assert result.stdout.startswith("--- a.py\n")
    assert "Would fix 1 finding:\n- a.py:\n" in result.stderr


def test_stdin_with_other_paths_is_a_usage_error():
    write("a.py", BAD)
    result = run("check", "-", "a.py", stdin=BAD)
    assert result.exit_code == 2 and "linted alone" in result.stderr
