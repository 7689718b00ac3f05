"""The set-up snippets in docs/editors.md, docs/ci.md and the README are copy-pasteable: each
JSON/TOML/YAML block parses, and what they name (hook ids, commands, formats) exists."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml
from lintutil import REPO

from fp16lint.cli import OUTPUT_FORMATS, main
from fp16lint.config import tomllib

_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


def blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(path.read_text()) if lang == language]


def hook_ids() -> set[str]:
    return {hook["id"] for hook in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}


def test_pre_commit_manifest():
    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"fp16lint", "fp16lint-fix"}
    assert hooks["fp16lint"]["entry"] == "fp16lint check"
    assert hooks["fp16lint-fix"]["entry"] == "fp16lint check --fix"
    for hook in hooks.values():
        assert hook["language"] == "python" and "jupyter" in hook["types_or"]
        assert "additional_dependencies" not in hook  # no torch in the hook's environment


def test_pre_commit_snippets_name_real_hooks():
    for doc in (REPO / "README.md", REPO / "docs" / "ci.md"):
        configs = [yaml.safe_load(b) for b in blocks(doc, "yaml") if "repos:" in b]
        assert configs, doc
        for config in configs:
            for repo in config["repos"]:
                assert {h["id"] for h in repo["hooks"]} <= hook_ids()


def test_editor_snippets_parse_and_start_the_server():
    editors = REPO / "docs" / "editors.md"
    [vscode] = [json.loads(b) for b in blocks(editors, "json")]
    assert (vscode["glspc.server.command"], vscode["glspc.server.commandArguments"]) == (
        "fp16lint",
        ["lsp"],
    )
    assert "source.fixAll.fp16lint" in vscode["editor.codeActionsOnSave"]
    [helix] = [tomllib.loads(b) for b in blocks(editors, "toml")]
    assert helix["language-server"]["fp16lint"] == {"command": "fp16lint", "args": ["lsp"]}
    assert "fp16lint" in helix["language"][0]["language-servers"]
    for lua in blocks(editors, "lua"):
        assert '{ "fp16lint", "lsp" }' in lua
    [elisp] = blocks(editors, "elisp")
    assert '("fp16lint" "lsp")' in elisp
    assert "lsp" in main.list_commands(None)  # type: ignore[arg-type]


def test_ci_snippets():
    ci = REPO / "docs" / "ci.md"
    workflows = [yaml.safe_load(b) for b in blocks(ci, "yaml")]
    github = next(w for w in workflows if "jobs" in w)
    steps = github["jobs"]["fp16lint"]["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    assert any("--output-format sarif" in r and "> fp16lint.sarif" in r for r in runs)
    [upload] = [
        s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif")
    ]
    assert upload["with"]["sarif_file"] == "fp16lint.sarif"
    assert github["permissions"]["security-events"] == "write"
    gitlab = next(w for w in workflows if "fp16lint" in w and "script" in w["fp16lint"])
    assert (
        gitlab["fp16lint"]["artifacts"]["reports"]["codequality"] == "gl-code-quality-report.json"
    )
    for block in blocks(ci, "yaml"):
        for used in re.findall(r"--output-format (\S+)", block):
            assert used in OUTPUT_FORMATS


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)


def test_pre_commit_rev_is_a_commit_of_this_repository():
    """There are no release tags: the snippets pin a full commit SHA that exists."""
    for doc in (REPO / "README.md", REPO / "docs" / "ci.md", REPO / "docs" / "guide.md"):
        for block in blocks(doc, "yaml"):
            if "repos:" not in block:
                continue
            for repo in yaml.safe_load(block)["repos"]:
                rev = str(repo["rev"])
                assert re.fullmatch(r"[0-9a-f]{40}", rev), (doc, rev)
                shallow = _git("rev-parse", "--is-shallow-repository").stdout.strip()
                if _git("rev-parse", "--git-dir").returncode == 0 and shallow == "false":
                    assert _git("cat-file", "-e", f"{rev}^{{commit}}").returncode == 0, rev
                    assert _git("show", f"{rev}:.pre-commit-hooks.yaml").returncode == 0


def test_ruff_note_names_the_code_ruff_reports(tmp_path):
    """The README's Ruff note: Ruff reports `# noqa: FP101` as RUF102 until `external` says
    the FP codes are another tool's, as its snippet does."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    [snippet] = [b for b in blocks(REPO / "README.md", "toml") if "[tool.ruff.lint]" in b]
    assert "RUF102" in readme
    (tmp_path / "m.py").write_text("x = 1  # noqa: FP101\n", encoding="utf-8")
    ruff = [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "RUF100,RUF102"]
    without = subprocess.run([*ruff, "m.py"], cwd=tmp_path, capture_output=True, text=True)
    assert "RUF102" in without.stdout and without.returncode == 1
    (tmp_path / "pyproject.toml").write_text(snippet, encoding="utf-8")
    with_note = subprocess.run([*ruff, "m.py"], cwd=tmp_path, capture_output=True, text=True)
    assert with_note.returncode == 0, with_note.stdout


def test_readme_puts_the_user_first_and_keeps_the_two_set_up_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.index("pip install fp16lint") < readme.index("make demo")
    [commands] = [b for b in blocks(REPO / "README.md", "sh") if "make demo" in b]
    assert "make demo" in commands and "make test" in commands
    assert (
        "fp16lint.toml` / `.fp16lint.toml`, which take the same keys **at the top level**" in readme
    )
