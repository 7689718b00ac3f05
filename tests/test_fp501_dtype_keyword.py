"""FP501's fix names the dtype argument that the project's pinned transformers takes.

The pin is read from the project root (``analysis.requirements``): a requirement that admits a
transformers before 4.56 gives ``torch_dtype=``, anything else (4.56 and later, unpinned,
unknown, unreadable) ``dtype=``; diffusers loads always get ``torch_dtype=``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import libcst as cst
import pytest
from click.testing import CliRunner

from fp16lint.analysis.requirements import lowest_version
from fp16lint.api import lint_paths
from fp16lint.cli import main
from fp16lint.runner import Options
from fp16lint.settings import Settings

CHAINED = (
    "import torch\nfrom transformers import T5ForConditionalGeneration\n"
    "model = T5ForConditionalGeneration.from_pretrained('t5-base').half()\n"
)
OLD = (
    "import torch\nfrom transformers import T5ForConditionalGeneration\n"
    "model = T5ForConditionalGeneration.from_pretrained('t5-base', torch_dtype=torch.float16)\n"
)
NEW = OLD.replace("torch_dtype=", "dtype=")
PIPELINE = (
    "import torch\nfrom diffusers import DiffusionPipeline\n"
    "pipe = DiffusionPipeline.from_pretrained('x').to('cuda', torch.float16)\n"
)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")


def _fix(root: Path, code: str = CHAINED) -> str:
    """Lint ``root`` (with ``m.py`` holding ``code``) with unsafe fixes; the fixed text."""
    target = root / "m.py"
    target.write_text(code, encoding="utf-8")
    settings = Settings(root=root, select=("FP501",))
    options = Options(jobs=1, use_cache=False, fix=True, unsafe_fixes=True)
    lint_paths([root], settings, options)
    fixed = target.read_text(encoding="utf-8")
    cst.parse_module(fixed)
    again = lint_paths([root], settings, options)
    assert again.fixed == 0 and target.read_text(encoding="utf-8") == fixed, "not idempotent"
    return fixed


# --- reading the pin -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("files", "lowest"),
    [
        ({}, None),
        ({"requirements.txt": "transformers\n"}, None),
        ({"requirements.txt": "transformers!=4.50.0\n"}, None),
        ({"requirements.txt": "transformers @ git+https://github.com/x/y\n"}, None),
        ({"requirements.txt": "transformers<4.56\n"}, (0,)),
        ({"requirements.txt": "# pinned\ntransformers==4.40.2  # known good\n"}, (4, 40, 2)),
        ({"requirements-dev.txt": "-r base.txt\nTransformers[torch] >= 4.30, <5\n"}, (4, 30)),
        ({"requirements.txt": "transformers~=4.56.0 \\\n  --hash=sha256:00\n"}, (4, 56, 0)),
        ({"requirements.txt": 'transformers>=4.56; python_version >= "3.9"\n'}, (4, 56)),
        ({"requirements.txt": "transformers-stream-generator==0.0.4\n"}, None),
        ({"pyproject.toml": '[project]\ndependencies = ["transformers>=4.56"]\n'}, (4, 56)),
        (
            {
                "pyproject.toml": '[project]\ndependencies = ["transformers>=4.56"]\n'
                '[project.optional-dependencies]\nold = ["transformers==4.38.0"]\n'
            },
            (4, 38, 0),
        ),
        (
            {"setup.cfg": "[options]\ninstall_requires =\n    torch\n    transformers>=4.30\n"},
            (4, 30),
        ),
        (
            {"setup.cfg": "[options.extras_require]\nhf =\n    transformers==4.57.1\n"},
            (4, 57, 1),
        ),
        # Bad files are unknown, not errors.
        ({"pyproject.toml": "[project\ndependencies = "}, None),
        ({"pyproject.toml": "[project]\ndependencies = 'transformers==4.40'\n"}, None),
        ({"setup.cfg": "install_requires = transformers==4.40\n"}, None),
    ],
)
def test_lowest_version(tmp_path, files, lowest):
    _write(tmp_path, files)
    assert lowest_version(tmp_path, "transformers") == lowest


def test_undecodable_requirements_file_is_unknown(tmp_path):
    (tmp_path / "requirements.txt").write_bytes(b"transformers==4.40\n\xff\xfe\n")
    (tmp_path / "pyproject.toml").write_bytes(b"\xff[project]")
    assert lowest_version(tmp_path, "transformers") is None


# --- the fix under each kind of pin -----------------------------------------------------------
@pytest.mark.parametrize(
    ("files", "fixed"),
    [
        ({}, NEW),
        ({"requirements.txt": "transformers\n"}, NEW),
        ({"requirements.txt": "transformers>=4.56\n"}, NEW),
        ({"pyproject.toml": '[project]\ndependencies = ["transformers==5.24.0"]\n'}, NEW),
        ({"pyproject.toml": "not toml ["}, NEW),
        ({"requirements.txt": "transformers<4.56\n"}, OLD),
        ({"pyproject.toml": '[project]\ndependencies = ["transformers==4.40.2"]\n'}, OLD),
        ({"setup.cfg": "[options]\ninstall_requires =\n    transformers>=4.30\n"}, OLD),
    ],
)
def test_fix_follows_the_pin(tmp_path, files, fixed):
    _write(tmp_path, files)
    assert _fix(tmp_path) == fixed


def test_message_follows_the_pin_without_a_fix(tmp_path):
    """A cast through a name has no fix, and its advice names the pinned version's argument."""
    _write(tmp_path, {"requirements.txt": "transformers==4.40.2\n"})
    (tmp_path / "m.py").write_text(
        "from transformers import T5Model\nm = T5Model.from_pretrained('t5-small')\nm.half()\n",
        encoding="utf-8",
    )
    result = lint_paths([tmp_path], Settings(root=tmp_path, select=("FP501",)))
    (finding,) = result.findings
    assert finding.fix is None
    assert "`T5Model.from_pretrained(..., torch_dtype=...)`" in finding.help


def test_diffusers_load_gets_torch_dtype_whatever_the_pin(tmp_path):
    _write(tmp_path, {"requirements.txt": "transformers>=4.56\ndiffusers>=0.42\n"})
    assert _fix(tmp_path, PIPELINE) == (
        "import torch\nfrom diffusers import DiffusionPipeline\n"
        "pipe = DiffusionPipeline.from_pretrained('x', torch_dtype=torch.float16).to('cuda')\n"
    )


def test_file_that_already_says_torch_dtype_keeps_it_when_the_pin_is_unknown(tmp_path):
    code = CHAINED + "enc = T5ForConditionalGeneration.from_pretrained('t5', torch_dtype=None)\n"
    assert _fix(tmp_path, code).splitlines()[2] == OLD.splitlines()[2]


def test_cli_reads_the_pin_from_the_working_folder(in_tmp):
    """Without a config file, the project root is the working folder."""
    _write(in_tmp, {"requirements.txt": "transformers==4.44.0\n", "m.py": CHAINED})
    result = CliRunner().invoke(
        main, ["check", "--select", "FP501", "--fix", "--unsafe-fixes", "--no-cache", "m.py"]
    )
    assert result.exit_code == 0, result.output
    assert (in_tmp / "m.py").read_text(encoding="utf-8") == OLD


# --- the facts behind the choice, in the installed sources ----------------------------------
def _source(module: str, relative: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        pytest.skip(f"{module} is not installed")
    return (Path(spec.origin).parent / relative).read_text(encoding="utf-8")


def test_installed_transformers_takes_both_names():
    source = _source("transformers", "modeling_utils.py")
    assert 'kwargs.pop("dtype", None)' in source
    assert 'kwargs.pop("torch_dtype", None)' in source


def test_installed_diffusers_takes_both_names_and_deprecates_torch_dtype():
    for relative in ("pipelines/pipeline_utils.py", "models/modeling_utils.py"):
        source = _source("diffusers", relative)
        assert 'kwargs.pop("dtype", None)' in source
        assert 'kwargs.pop("torch_dtype", None)' in source
    assert 'deprecate("torch_dtype", "1.0.0"' in _source("diffusers", "utils/deprecation_utils.py")
