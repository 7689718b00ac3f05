"""The ``fp16lint`` command end to end: commands, options, output, exit codes (0 clean,
1 findings, 2 usage/config/internal error), and the static commands working without torch."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from lintutil import run_cli as run
from lintutil import write

from fp16lint import __version__

REPO = Path(__file__).resolve().parents[1]
BAD = "import torch\n\nwith torch.cuda.amp.autocast():\n    y = 1\n"
FIXED = 'import torch\n\nwith torch.amp.autocast("cuda"):\n    y = 1\n'
UNSAFE = "import torch\nx = torch.randn(8, 16)\nx.half()\n"
CLEAN = "import torch\n\nx = torch.ones(2)\n"


@pytest.fixture(autouse=True)
def _isolated(in_tmp, monkeypatch):
    monkeypatch.delenv("FP16LINT_CACHE_DIR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return in_tmp


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"fp16lint, version {__version__}"


# Modules ``fp16lint --version`` must not import: the parser, torch, the analysis and the rules
# are what make start-up slow (its time is measured by benchmarks/bench_startup.py).
HEAVY = ("libcst", "torch", "numpy", "fp16lint.analysis", "fp16lint.rules", "fp16lint.engine")


def test_version_starts_without_heavy_imports():
    # The exact command users run; ``-X importtime`` lists every module the process imports.
    command = [sys.executable, "-X", "importtime", "-m", "fp16lint", "--version"]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    imported = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "fp16lint.cli" in imported  # the list is complete enough to hold the CLI
    heavy = sorted(m for m in imported for h in HEAVY if m == h or m.startswith(f"{h}."))
    assert heavy == [], heavy


def test_version_imports_neither_libcst_nor_rules():
    code = (
        "import sys\nfrom fp16lint.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('libcst', 'fp16lint.rules', 'torch'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]"), out.stdout


def test_exit_codes_clean_findings_and_errors():
    write("clean.py", CLEAN)
    write("bad.py", BAD)
    assert run("check", "clean.py").exit_code == 0
    assert run("check", "bad.py").exit_code == 1
    assert run("check", "bad.py", "--exit-zero").exit_code == 0
    missing = run("check", "missing.py")
    assert missing.exit_code == 2 and "missing.py: no such file or directory" in missing.stderr
    assert run("check", "--select", "NOPE1").exit_code == 2
    assert run("check", "--no-such-option").exit_code == 2


def test_path_shorthand_and_default_folder():
    write("pkg/bad.py", BAD)
    assert run("pkg").exit_code == 1
    assert run().exit_code == 1  # the current folder


def test_full_output_marks_fixable_findings_and_summarises():
    write("bad.py", BAD)
    out = run("check", "bad.py").stdout
    assert "bad.py:3:6: FP401 [*] `torch.cuda.amp.autocast` is deprecated" in out
    assert "3 | with torch.cuda.amp.autocast():" in out
    assert "Found 1 finding." in out and "[*] 1 fixable with the `--fix` option." in out


def test_concise_quiet_and_json_output():
    write("bad.py", BAD)
    concise = run("check", "bad.py", "--output-format", "concise", "-q").stdout
    assert concise.splitlines() == [concise.splitlines()[0]]
    assert concise.startswith("bad.py:3:6: FP401 [*] ")
    data = json.loads(run("check", "bad.py", "--output-format", "json").stdout)
    (item,) = data
    assert item["code"] == "FP401" and item["location"] == {"row": 3, "column": 6}
    assert item["fix"]["applicability"] == "safe"


def test_clean_run_says_all_checks_passed():
    write("clean.py", CLEAN)
    assert run("check", "clean.py").stdout.strip() == "All checks passed!"


def test_statistics():
    write("a.py", BAD)
    write("b.py", BAD + UNSAFE)
    out = run("check", ".", "--statistics", "--select", "FP401,FP102").stdout.splitlines()
    assert out[0].split() == ["2", "FP401", "[*]", "deprecated-amp-api"]
    assert out[1].split() == ["1", "FP102", "discarded-tensor-conversion"]


def test_select_ignore_and_extend_select():
    write("a.py", BAD + UNSAFE)

    def found(*args: str) -> set[str]:
        result = run("check", "a.py", "--output-format", "json", *args)
        return {item["code"] for item in json.loads(result.stdout)}

    assert found() == {"FP401", "FP102"}
    assert found("--select", "FP4") == {"FP401"}
    assert found("--ignore", "FP401") == {"FP102"}
    assert found("--select", "FP4", "--extend-select", "FP102") == {"FP401", "FP102"}
    assert found("--select", "ALL", "--ignore", "FP") == set()


def test_unknown_code_is_one_line_and_exit_2():
    result = run("check", ".", "--ignore", "FP9876")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --ignore: unknown rule code or prefix `FP9876`"


def test_fix_writes_safe_fixes_only_and_reports_the_rest():
    write("a.py", BAD + UNSAFE)
    result = run("check", "a.py", "--fix")
    assert result.exit_code == 1  # the unsafe finding is left
    assert Path("a.py").read_text() == FIXED + UNSAFE
    assert "Fixed 1 finding." in result.stdout and "FP102" in result.stdout
    assert "1 hidden fix can be enabled with the `--unsafe-fixes` option." in result.stdout


def test_fix_with_unsafe_fixes_fixes_everything():
    write("a.py", BAD + UNSAFE)
    result = run("check", "a.py", "--fix", "--unsafe-fixes")
    assert result.exit_code == 0
    assert Path("a.py").read_text() == FIXED + UNSAFE.replace("\nx.half()", "\nx = x.half()")


def test_diff_shows_fixes_and_writes_nothing():
    write("a.py", BAD)
    result = run("check", "a.py", "--diff")
    assert result.exit_code == 1
    assert Path("a.py").read_text() == BAD
    assert "-with torch.cuda.amp.autocast():" in result.stdout
    assert '+with torch.amp.autocast("cuda"):' in result.stdout
    write("clean.py", CLEAN)
    assert run("check", "clean.py", "--diff").exit_code == 0


def test_stdin_filename_lints_standard_input():
    result = run(
        "check", "--stdin-filename", "pkg/model.py", "--output-format", "concise", stdin=BAD
    )
    assert result.exit_code == 1
    assert result.stdout.startswith("pkg/model.py:3:6: FP401")
    assert run("check", "--stdin-filename", "x.py", stdin=CLEAN).exit_code == 0


def test_stdin_filename_with_fix_prints_the_fixed_buffer():
    result = run("check", "--stdin-filename", "x.py", "--fix", stdin=BAD)
    assert result.exit_code == 0 and result.stdout == FIXED


def test_rules_command_text_and_json():
    text = run("rules").stdout
    assert any(line.startswith("FP401  deprecated-amp-api") for line in text.splitlines())
    rows = json.loads(run("rules", "--output-format", "json").stdout)
    codes = [row["code"] for row in rows]
    assert codes == sorted(codes) and {"FP000", "FP401", "FP999"} <= set(codes)
    fp401 = next(row for row in rows if row["code"] == "FP401")
    assert fp401["fix"] == "safe" and fp401["default"] is True


def test_explain_and_rule_alias():
    out = run("explain", "FP401").stdout
    assert "deprecated-amp-api" in out and "## Why is this bad?" in out
    assert run("rule", "fp401").stdout == out
    unknown = run("explain", "FP9999")
    assert unknown.exit_code == 2 and "unknown rule code" in unknown.stderr


def test_jobs_1_and_2_give_identical_output():
    for index in range(12):
        write(f"pkg/m{index:02}.py", BAD if index % 3 else UNSAFE + BAD)
    one = run("check", "pkg", "-j1", "--no-cache", "--output-format", "json")
    two = run("check", "pkg", "-j2", "--no-cache", "--output-format", "json")
    assert one.exit_code == two.exit_code == 1
    assert one.stdout == two.stdout and len(json.loads(one.stdout)) == 16


def test_no_cache_writes_no_cache_folder():
    write("a.py", BAD)
    run("check", "a.py", "--no-cache")
    assert not Path(".fp16lint_cache").exists()
    run("check", "a.py")
    assert (Path(".fp16lint_cache") / ".gitignore").read_text().endswith("*\n")


def _tty_run(env: dict[str, str]) -> str:
    """Run the CLI with stdout on a pseudo-terminal (colour is only for terminals)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "fp16lint", "check", "a.py", "--no-cache"],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait()
    os.close(leader)
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_unless_no_color():
    write("a.py", BAD)
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    assert "\x1b[" in _tty_run(env)
    assert "\x1b[" not in _tty_run({**env, "NO_COLOR": "1"})
    assert "\x1b[" not in run("check", "a.py").stdout  # not a terminal


# A finder that makes `import torch` fail, as on a machine without torch.
NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed (test)")
        return None
sys.meta_path.insert(0, NoTorch())
sys.argv = ["fp16lint", *sys.argv[1:]]
import fp16lint
from fp16lint.cli import main
try:
    main()
finally:
    assert "torch" not in sys.modules
"""


@pytest.mark.parametrize(
    ("args", "expected_code"),
    [
        (["--version"], 0),
        (["check", "bad.py", "--no-cache"], 1),
        (["check", "bad.py", "--fix", "--no-cache"], 0),
        (["check", "bad.py", "--diff", "--no-cache"], 1),
        (["rules"], 0),
        (["explain", "FP101"], 0),
    ],
    ids=["version", "check", "fix", "diff", "rules", "explain"],
)
def test_static_commands_work_without_torch(args, expected_code):
    write("bad.py", BAD)
    out = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, check=False
    )
    assert out.returncode == expected_code, out.stderr
    assert "Traceback" not in out.stderr


def test_import_fp16lint_without_torch():
    code = NO_TORCH.split("sys.argv")[0] + (
        "import fp16lint, fp16lint.api, fp16lint.runner\n"
        "print(len(fp16lint.api.lint_text('import torch\\nx.half()\\n', 'a.py')) >= 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr


def test_docs_are_current():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fp16lint.docgen",
            "--check",
            "--docs",
            str(REPO / "docs" / "rules"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
