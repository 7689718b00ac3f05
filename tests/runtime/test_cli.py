"""`fp16lint runtime`: targets from the command line and pyproject.toml, outputs, exit codes."""

from __future__ import annotations

import json
import textwrap
import types

import pytest
from click.testing import CliRunner
from runtime_support import FIXTURES, marker_line

from fp16lint.runtime.cli import runtime_command

PLANTED = FIXTURES / "planted.py"
HAZARDS = FIXTURES / "hazards.py"


def invoke(args, cwd=None, monkeypatch=None):
    if cwd is not None:
        monkeypatch.chdir(cwd)
    return CliRunner().invoke(runtime_command, [str(a) for a in args], catch_exceptions=False)


def test_planted_exits_1_twin_exits_0(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = invoke(["--target", f"{PLANTED}:make_planted", "--inputs", f"{PLANTED}:example_inputs"])
    assert bad.exit_code == 1, bad.output
    assert "confirmed" in bad.stdout and "recommendation: upcast the named lines" in bad.stdout
    good = invoke(
        [
            "--target",
            f"{PLANTED}:make_upcast",
            "--inputs",
            f"{PLANTED}:example_inputs",
            "--device",
            "cpu",
        ]
    )
    assert good.exit_code == 0, good.output
    # random weights never earn "keep .half()" (issue 19): the verdict says so instead
    assert "keep .half()" not in good.stdout
    assert "the weights are random" in good.stdout


def test_json_and_html_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    html = tmp_path / "report.html"
    res = invoke(
        [
            "--target",
            f"{PLANTED}:make_planted",
            "--target",
            f"{PLANTED}:make_upcast",
            "--inputs",
            f"{PLANTED}:example_inputs",
            "--output-format",
            "json",
            "--html",
            html,
            "--seed",
            "3",
        ]
    )
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert [t["name"] for t in data["targets"]] == ["make_planted", "make_upcast"]
    assert [t["ok"] for t in data["targets"]] == [False, True]
    assert data["targets"][0]["seed"] == 3
    assert data["join"] is None  # no PATHS given
    # progress for several targets goes to stderr
    assert "1/2" in res.stderr and "2/2" in res.stderr
    page = html.read_text()
    assert "<svg" in page and "https://" not in page


def test_pyproject_targets_and_errors_do_not_stop_others(tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            def make_model():
                torch.manual_seed(0)
                return nn.Sequential(nn.Linear(8, 8), nn.Tanh())

            def example_inputs():
                return (torch.randn(2, 8),), {}

            def broken():
                raise RuntimeError("no weights here")
            """
        )
    )
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.fp16lint.runtime]
            targets = [
              {factory = "mypkg.models:make_model", inputs = "mypkg.models:example_inputs", name = "tiny", device = "cpu", seed = 1},
              {factory = "mypkg.models:broken", inputs = "mypkg.models:example_inputs", name = "broken"},
              {factory = "mypkg.nothere:make", name = "missing"},
            ]
            """
        )
    )
    res = invoke(["--output-format", "json"], cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == 2
    data = json.loads(res.stdout)
    by_name = {t["name"]: t for t in data["targets"]}
    assert by_name["tiny"]["ok"] is True and by_name["tiny"]["seed"] == 1
    assert by_name["broken"]["error_kind"] == "factory"
    assert "no weights here" in by_name["broken"]["error"]
    assert by_name["missing"]["error_kind"] == "target"
    assert "broken: the factory raised" in res.stderr


def test_automatic_mode_guesses_inputs(tmp_path, monkeypatch):
    mod = tmp_path / "automods.py"
    mod.write_text(
        textwrap.dedent(
            """
            from torch import nn

            class Small(nn.Module):
                def __init__(self, width=8):
                    super().__init__()
                    self.fc = nn.Linear(width, 4)

                def forward(self, x):
                    return self.fc(x)

            class NeedsArgs(nn.Module):
                def __init__(self, width):
                    super().__init__()
            """
        )
    )
    res = invoke(
        ["--target", str(mod), "--output-format", "json"], cwd=tmp_path, monkeypatch=monkeypatch
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [t["name"] for t in data["targets"]] == ["Small"]
    assert data["targets"][0]["inputs_guessed"] is True
    assert "[2, 8]" in data["targets"][0]["inputs"]


def test_paths_join_with_lint_paths(tmp_path, monkeypatch, make_finding):
    line = marker_line(PLANTED, "# PLANTED")
    monkeypatch.setattr(
        "fp16lint.api.lint_paths",
        lambda paths: types.SimpleNamespace(findings=[make_finding("FP203", PLANTED, line)]),
    )
    monkeypatch.chdir(tmp_path)
    res = invoke(
        [
            str(FIXTURES),
            "--target",
            f"{PLANTED}:make_planted",
            "--inputs",
            f"{PLANTED}:example_inputs",
            "--output-format",
            "json",
        ]
    )
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["join"]["findings"][0]["verdict"] == "confirmed"


def test_without_torch_says_how_to_install(monkeypatch):
    import fp16lint.runtime as rt

    monkeypatch.setattr(rt, "torch_available", lambda: False)
    res = invoke(["--target", "x:y"])
    assert res.exit_code == 2
    assert "pip install 'fp16lint[runtime]'" in res.stderr


def test_no_targets_and_usage_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    res = invoke([])
    assert res.exit_code == 2 and "no targets" in res.stderr
    res = CliRunner().invoke(
        runtime_command,
        [
            "--target",
            "a:b",
            "--target",
            "c:d",
            "--inputs",
            "e:f",
            "--inputs",
            "g:h",
            "--inputs",
            "i:j",
        ],
    )
    assert res.exit_code == 2 and "one --inputs" in res.output


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA present")
def test_require_cuda_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke(["--target", f"{PLANTED}:make_upcast", "--require-cuda"])
    assert res.exit_code == 2
    assert "CUDA was required" in res.stderr


def test_targets_from_parsed_config_table(tmp_path):
    from fp16lint.runtime.cli import run_runtime
    from fp16lint.runtime.targets import TargetSpecError, targets_from_table

    specs = targets_from_table(
        {
            "targets": [
                {
                    "factory": f"{PLANTED}:make_upcast",
                    "inputs": f"{PLANTED}:example_inputs",
                    "name": "twin",
                    "seed": 2,
                }
            ]
        }
    )
    assert specs[0].name == "twin" and specs[0].seed == 2
    with pytest.raises(TargetSpecError, match="unknown key"):
        targets_from_table({"targets": [{"factory": "a:b", "inptus": "c:d"}]})
    with pytest.raises(TargetSpecError, match="needs a factory"):
        targets_from_table({"targets": [{"inputs": "c:d"}]})
    import io

    out, err = io.StringIO(), io.StringIO()
    code = run_runtime([], specs, output_format="json", root=tmp_path, out=out, err=err)
    assert code == 0
    assert json.loads(out.getvalue())["targets"][0]["seed"] == 2
