"""The pre-commit hooks for real: pre-commit builds the hook's environment from this repository
(pip, as a user's pre-commit would) and runs it in a temporary git repository, once through
``pre-commit try-repo`` and then through a ``.pre-commit-config.yaml`` that points at it.

The hook repository is a snapshot of the working tree (committed in a temp folder), so the
test checks the code as it is now, uncommitted changes included. Each environment build
takes about 30 s: ``try-repo`` builds its own, the config-based runs share one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lintutil import REPO

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("precommit")]

BAD = "import torch\n\nwith torch.cuda.amp.autocast():\n    pass\n"
FIXED = 'import torch\n\nwith torch.amp.autocast("cuda"):\n    pass\n'
CLEAN = "import torch\n\nwith torch.amp.autocast('cuda'):\n    pass\n"
NOT_FIXABLE = "from apex import amp\n\nmodel, opt = amp.initialize(model, opt)\n"


def _git(*args: str, cwd: Path) -> str:
    command = ["git", "-c", "user.name=fp16lint", "-c", "user.email=fp16lint@example.com", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def hooks(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A committed snapshot of what pip needs to install fp16lint, and pre-commit's home."""
    snapshot = tmp_path_factory.mktemp("hook-repo")
    listed = _git(
        "ls-files", "--cached", "--others", "--exclude-standard", "--",
        "pyproject.toml", "README.md", ".pre-commit-hooks.yaml", "fp16lint", cwd=REPO,
    ).splitlines()  # fmt: skip
    for name in listed:
        if (REPO / name).is_file():
            (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, snapshot / name)
    _git("init", "-q", cwd=snapshot)
    _git("add", "-A", cwd=snapshot)
    _git("commit", "-q", "-m", "snapshot", cwd=snapshot)
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path_factory.mktemp("pre-commit-home")))
    env.pop("VIRTUAL_ENV", None)
    return snapshot, env


def _pre_commit(hooks, project: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pre_commit", *args]
    return subprocess.run(
        command, cwd=project, env=hooks[1], capture_output=True, text=True, timeout=600
    )


def _run(hooks, project: Path, hook: str, *files: str) -> subprocess.CompletedProcess:
    """``pre-commit run HOOK --files ...`` with a config that points at the hook repository."""
    snapshot = hooks[0]
    rev = _git("rev-parse", "HEAD", cwd=snapshot).strip()
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {snapshot}\n    rev: {rev}\n"
        "    hooks:\n      - id: fp16lint\n      - id: fp16lint-fix\n",
        encoding="utf-8",
    )
    return _pre_commit(hooks, project, "run", hook, "--files", *files)


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    _git("init", "-q", cwd=tmp_path)
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    _git("add", "-A", cwd=tmp_path)
    return tmp_path


def test_try_repo_fails_on_a_hazard(hooks, tmp_path):
    project = _project(tmp_path, {"bad.py": BAD})
    bad = _pre_commit(hooks, project, "try-repo", str(hooks[0]), "fp16lint", "--files", "bad.py")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "fp16lint" in bad.stdout and "Failed" in bad.stdout
    assert "bad.py:3:6: FP401" in bad.stdout


def test_hook_fails_on_a_hazard_and_passes_on_clean_code(hooks, tmp_path):
    project = _project(tmp_path, {"bad.py": BAD, "clean.py": CLEAN})
    bad = _run(hooks, project, "fp16lint", "bad.py")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "bad.py:3:6: FP401" in bad.stdout
    assert (project / "bad.py").read_text() == BAD  # the check hook never writes

    clean = _run(hooks, project, "fp16lint", "clean.py")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Passed" in clean.stdout


def test_fix_hook_fixes_the_file(hooks, tmp_path):
    project = _project(tmp_path, {"train.py": BAD})
    first = _run(hooks, project, "fp16lint-fix", "train.py")
    assert first.returncode == 1  # pre-commit fails a hook that modified files
    assert "files were modified by this hook" in first.stdout
    assert (project / "train.py").read_text() == FIXED
    again = _run(hooks, project, "fp16lint-fix", "train.py")
    assert again.returncode == 0, again.stdout


def test_fix_hook_still_fails_on_what_it_cannot_fix(hooks, tmp_path):
    project = _project(tmp_path, {"legacy.py": NOT_FIXABLE})
    result = _run(hooks, project, "fp16lint-fix", "legacy.py")
    assert result.returncode == 1
    assert "FP402" in result.stdout
    assert (project / "legacy.py").read_text() == NOT_FIXABLE


def test_hook_environment_has_no_torch(hooks, tmp_path):
    _run(hooks, _project(tmp_path, {"clean.py": CLEAN}), "fp16lint", "clean.py")
    home = Path(hooks[1]["PRE_COMMIT_HOME"])
    [python] = list(home.glob("repo*/py_env-*/bin/python"))
    probe = "import importlib.util as u; print(u.find_spec('torch'), bool(u.find_spec('libcst')))"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["None", "True"]
