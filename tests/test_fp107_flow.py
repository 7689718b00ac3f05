"""FP107 across functions and files: where the same model object flows from a float16 cast to
an autocast region or a GradScaler step (``analysis.cast_flow`` and the project pass)."""

from __future__ import annotations

from pathlib import Path

from lintutil import lint_project

from fp16lint.rules.fp107_half_model_under_autocast import _BUILDER, _NET
from fp16lint.runner import Options, lint_paths
from fp16lint.settings import Settings

TRAIN = (
    "import torch\nfrom pkg import build_half\n\n\ndef train(x):\n    model = build_half()\n"
    "    with torch.autocast('cuda'):\n        return model(x)\n"
)


def _where(root: Path, findings) -> list[tuple[str, int]]:
    return [
        (Path(f.path).resolve().relative_to(root).as_posix(), f.span.start.line) for f in findings
    ]


def test_builder_reexported_by_a_package(tmp_path):
    files = {
        "pkg/__init__.py": "from .models import build_half\n",
        "pkg/models.py": _BUILDER["models.py"],
        "train.py": TRAIN,
    }
    result = lint_project(tmp_path, files, select=("FP107",))
    root = tmp_path.resolve()
    (finding,) = result.findings
    assert _where(root, [finding]) == [("train.py", 8)]
    (related,) = finding.related
    assert Path(related.path).resolve() == root / "pkg/models.py"
    assert related.span.start.line == 12  # model.half()
    assert "the result of `build_half()`" in finding.message


def test_builder_of_a_class_outside_the_linted_paths_is_unknown(tmp_path):
    files = {
        "models.py": "from somelib import Net\n\n\ndef build_half():\n    return Net().half()\n",
        "train.py": TRAIN.replace("from pkg", "from models"),
    }
    assert lint_project(tmp_path, files, select=("FP107",)).findings == []
    files["somelib.py"] = _NET
    assert _where(
        tmp_path.resolve(), lint_project(tmp_path, files, select=("FP107",)).findings
    ) == [("train.py", 8)]


def test_noqa_at_the_use_silences_it(tmp_path):
    files = {**_BUILDER}
    files["train.py"] = files["train.py"].replace(
        "loss = model(x).sum()\n", "loss = model(x).sum()  # noqa: FP107\n"
    )
    assert lint_project(tmp_path, files, select=("FP107",)).findings == []


def test_cast_and_use_in_one_scope_is_reported_once_at_the_cast(tmp_path):
    code = _NET + "model = Net().half()\nwith torch.autocast('cuda'):\n    y = model(1)\n\n\n"
    code += "def run(x):\n    with torch.autocast('cuda'):\n        return model(x)\n"
    result = lint_project(tmp_path, {"m.py": code}, select=("FP107",))
    assert _where(tmp_path.resolve(), result.findings) == [("m.py", 10), ("m.py", 17)]


def test_facts_survive_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FP16LINT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "project"
    lint_project(root, dict(_BUILDER), select=("FP107",))
    settings = Settings(root=root, select=("FP107",))
    first = lint_paths([root], settings, Options(jobs=1)).findings
    second = lint_paths([root], settings, Options(jobs=1)).findings
    assert [f.to_dict() for f in first] == [f.to_dict() for f in second]
    assert _where(root.resolve(), second) == [("train.py", 11)]


def test_a_global_another_function_rebinds_is_unknown(tmp_path):
    code = _NET + "model = Net().half()\n\n\ndef run(x):\n    with torch.autocast('cuda'):\n"
    code += "        return model(x)\n"
    assert len(lint_project(tmp_path, {"m.py": code}, select=("FP107",)).findings) == 1
    code += "\n\ndef reset():\n    global model\n    model = Net()\n"
    assert lint_project(tmp_path, {"m.py": code}, select=("FP107",)).findings == []
