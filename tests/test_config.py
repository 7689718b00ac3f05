"""``[tool.fp16lint]`` configuration: where it is found, what it changes, and one clear line
(exit code 2, no traceback) for every mistake in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fp16lint.cli import main
from fp16lint.config import ConfigError, enabled_codes, find_config, load_settings
from fp16lint.settings import Settings

BAD = "import torch\n\nwith torch.cuda.amp.autocast():\n    y = 1\n"
UNSAFE = "import torch\nx = torch.randn(8, 16)\nx.half()\n"


@pytest.fixture(autouse=True)
def _isolated(in_tmp, monkeypatch):
    monkeypatch.delenv("FP16LINT_CACHE_DIR", raising=False)
    return in_tmp


def write(name: str, text: str) -> Path:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def codes(*args: str) -> list[tuple[str, str]]:
    result = CliRunner().invoke(main, ["check", "--no-cache", "--output-format", "json", *args])
    assert result.exit_code in (0, 1), result.output
    return sorted(
        (Path(item["filename"]).as_posix(), item["code"]) for item in json.loads(result.stdout)
    )


def test_pyproject_table_is_found_walking_up(in_tmp):
    write("pyproject.toml", '[tool.fp16lint]\nignore = ["FP401"]\n')
    write("src/pkg/a.py", BAD)
    assert find_config(in_tmp / "src" / "pkg") == in_tmp / "pyproject.toml"
    assert codes("src/pkg") == []


def test_pyproject_without_table_is_skipped(in_tmp):
    write("pyproject.toml", "[tool.other]\nx = 1\n")
    write("sub/pyproject.toml", "[project]\nname = 'x'\n")
    assert find_config(in_tmp / "sub") is None


@pytest.mark.parametrize("name", ["fp16lint.toml", ".fp16lint.toml"])
def test_dedicated_config_files(name):
    write(name, 'select = ["FP102"]\n')
    write("a.py", BAD + UNSAFE)
    assert codes("a.py") == [("a.py", "FP102")]


def test_nearest_config_wins_and_dotfile_first(in_tmp):
    write("pyproject.toml", '[tool.fp16lint]\nselect = ["FP102"]\n')
    write("inner/.fp16lint.toml", 'select = ["FP401"]\n')
    write("inner/fp16lint.toml", 'select = ["FP102"]\n')
    write("inner/a.py", BAD + UNSAFE)
    assert find_config(in_tmp / "inner") == in_tmp / "inner" / ".fp16lint.toml"
    assert codes("inner") == [("inner/a.py", "FP401")]


def test_explicit_config_option():
    write("custom.toml", 'ignore = ["FP102"]\n')
    write("a.py", BAD + UNSAFE)
    assert codes("a.py", "--config", "custom.toml") == [("a.py", "FP401")]


def test_extend_select_extend_ignore_and_prefixes():
    settings = Settings(select=("FP4",), extend_select=("FP102",), extend_ignore=("FP40",))
    enabled = enabled_codes(settings)
    assert "FP102" in enabled and not any(code.startswith("FP40") for code in enabled)
    assert "FP101" in enabled_codes(Settings()) and enabled_codes(Settings(select=("ALL",)))


def test_per_file_ignores():
    write("pyproject.toml", '[tool.fp16lint.per-file-ignores]\n"tests/*" = ["FP4"]\n')
    write("tests/t.py", BAD)
    write("src/s.py", BAD)
    assert codes(".") == [("src/s.py", "FP401")]


def test_exclude_extend_exclude_and_explicit_paths():
    write("fp16lint.toml", 'exclude = ["gen"]\nextend-exclude = ["*_pb2.py"]\n')
    write("gen/a.py", BAD)
    write("m_pb2.py", BAD)
    write("keep.py", BAD)
    assert codes(".") == [("keep.py", "FP401")]
    assert codes("gen/a.py") == [("gen/a.py", "FP401")]  # an explicit path is linted anyway


def test_gitignore_respected_unless_turned_off():
    write(".gitignore", "ignored/\n")
    write("ignored/a.py", BAD)
    write("b.py", BAD)
    assert codes(".") == [("b.py", "FP401")]
    write("pyproject.toml", "[tool.fp16lint]\nrespect-gitignore = false\n")
    assert codes(".") == [("b.py", "FP401"), ("ignored/a.py", "FP401")]


def test_runtime_table_is_accepted():
    write("pyproject.toml", '[tool.fp16lint.runtime]\ntargets = ["pkg.model:build"]\n')
    settings = load_settings(None, Path("."))
    assert settings.runtime == {"targets": ["pkg.model:build"]}


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('select = "FP401"\n', "`select` must be a list of strings, got 'FP401'"),
        ("ignore = [1, 2]\n", "`ignore` must be a list of strings"),
        ('respect-gitignore = "no"\n', "`respect-gitignore` must be true or false, got 'no'"),
        ("assume-fp16 = 1\n", "`assume-fp16` must be true or false"),
        ("per-file-ignores = 3\n", "`per-file-ignores` must be a table of glob = [codes]"),
        ('[per-file-ignores]\n"a.py" = "FP4"\n', "`per-file-ignores.a.py` must be a list"),
        ("runtime = [1]\n", "[tool.fp16lint.runtime] must be a table"),
        ("colour = true\n", "unknown key `colour` in [tool.fp16lint]"),
        ('select = ["FP9876"]\n', "unknown rule code or prefix `FP9876`"),
        ("select = [\n", "malformed TOML"),
    ],
)
def test_every_config_mistake_is_one_clear_line_and_exit_2(toml, expected):
    write("fp16lint.toml", toml)
    write("a.py", BAD)
    with pytest.raises(ConfigError, match=None) as error:
        load_settings(None, Path("a.py"))
    assert expected in str(error.value) and "fp16lint.toml" in str(error.value)
    result = CliRunner().invoke(main, ["check", "a.py", "--no-cache"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert expected in result.stderr and "Traceback" not in result.output


def test_config_that_is_not_utf8_is_a_clear_error():
    Path("fp16lint.toml").write_bytes(b"select = ['\xff']\n")
    write("a.py", BAD)
    result = CliRunner().invoke(main, ["check", "a.py"])
    assert result.exit_code == 2 and "cannot read config" in result.stderr


def test_config_path_that_does_not_exist():
    write("a.py", BAD)
    result = CliRunner().invoke(main, ["check", "a.py", "--config", "nope.toml"])
    assert result.exit_code == 2 and "nope.toml: config file not found" in result.stderr
