"""FP2xx across files: real multi-file fixture projects linted as folders.

``tests/fixtures/fp2xx_app`` is an application: a library under ``src/vision`` (packages,
``__init__`` re-exports, relative imports, an alias, a builder function, inheritance,
``Sequential`` of a comprehension, a ``norm_layer`` default, a LayerNorm subclass that upcasts)
cast with ``.half()`` by ``scripts/export.py``; models that are never cast, only run under
autocast, or cast to bfloat16 stay quiet. ``tests/fixtures/fp2xx_library`` is a model library
whose ``pyproject.toml`` sets ``assume-fp16 = true``. Expected findings are marked in the
sources with ``# expect: FPnnn``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from lintutil import REPO, lint_code

from fp16lint.analysis.context import Project
from fp16lint.analysis.index import index_of, listing, unsafe_contents
from fp16lint.config import load_settings
from fp16lint.engine import lint_source
from fp16lint.runner import Options, lint_paths, module_name_for, selected_rules
from fp16lint.settings import Settings

FIXTURES = REPO / "tests" / "fixtures"
APP = FIXTURES / "fp2xx_app"
LIBRARY = FIXTURES / "fp2xx_library"
_EXPECT = re.compile(r"#\s*expect:\s*(FP\d{3}(?:\s*,\s*FP\d{3})*)")


def expected(root: Path) -> Counter:
    wanted: Counter = Counter()
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = _EXPECT.search(line)
            if match:
                for code in re.split(r"\s*,\s*", match.group(1)):
                    wanted[(code, path.relative_to(root).as_posix(), number)] += 1
    return wanted


def found(root: Path, settings: Settings) -> Counter:
    result = lint_paths([root], settings, Options(jobs=1, use_cache=False))
    assert not [f for f in result.findings if f.code in ("FP000", "FP999")]
    return Counter(
        (f.code, Path(f.path).resolve().relative_to(root).as_posix(), f.span.start.line)
        for f in result.findings
        if f.code.startswith("FP2")
    )


def test_app_reports_exactly_the_planted_hazards():
    assert found(APP, Settings(root=APP, select=("FP2",))) == expected(APP)


def test_app_findings_name_the_cast_site():
    """``library-info`` lists the BatchNorm that ``norm_layer``'s default builds, reached through
    a ``Sequential`` of a comprehension in the cast class's base."""
    settings = Settings(root=APP, select=("FP201",), library_info=True)
    result = lint_paths([APP], settings, Options(jobs=1, use_cache=False))
    norm = next(f for f in result.findings if "ConvBlock.norm" in f.message)
    assert "`Classifier` is cast with `.half()` at" in norm.message
    assert "scripts/export.py:7" in norm.message.replace("\\", "/")
    assert [Path(r.path).name for r in norm.related] == ["export.py"]
    assert norm.related[0].span.start.line == 7


def test_library_mode_from_config():
    settings = load_settings(None, LIBRARY)
    assert settings.assume_fp16
    assert found(LIBRARY, settings.with_overrides(select=("FP2",))) == expected(LIBRARY)


def test_library_is_quiet_without_assume_fp16():
    assert found(LIBRARY, Settings(root=LIBRARY, select=("FP2",))) == Counter()


def test_assume_fp16_cli_flag(tmp_path):
    """``--assume-fp16`` on the command line turns library mode on for a folder without config."""
    target = tmp_path / "lib"
    target.mkdir()
    source = (LIBRARY / "tinylm" / "model.py").read_text(encoding="utf-8")
    (target / "model.py").write_text(source.replace("from .norms import", "from norms import"))
    (target / "norms.py").write_text((LIBRARY / "tinylm" / "norms.py").read_text(encoding="utf-8"))

    def run(*flags: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "fp16lint", "check", ".", "--select", "FP2", "--no-cache",
             "--output-format", "concise", *flags],
            cwd=target, capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip

    assert "FP201" not in run() and "FP205" not in run()
    library = run("--assume-fp16")
    assert "model.py:22:18: FP205" in library
    # Issue 17: library mode leaves norm layers whose kernels accumulate in float32 alone.
    assert "model.py:57:21: FP201" not in library


def _project(root: Path, settings: Settings) -> Project:
    rules = selected_rules(settings)
    summaries = []
    for path in sorted(root.rglob("*.py")):
        module, is_package = module_name_for(path)
        shown = path.relative_to(root).as_posix()
        summaries.append(
            lint_source(shown, path.read_text(), rules, module_name=module, is_package=is_package)
        )
    return Project(summaries, settings)


def test_index_resolves_classes_and_casts():
    project = _project(APP, Settings(root=APP, select=("FP2",)))
    index = index_of(project)
    assert index is index_of(project)  # one index per project pass
    assert index.canonical("vision.build") == "vision.models.classifier.build_classifier"
    assert index.canonical("vision.Classifier") == "vision.models.classifier.Classifier"
    assert index.targets("vision.build") == {"vision.models.classifier.Classifier"}
    assert index.is_module("vision.models.layers.LayerNorm2d")
    assert index.mro("vision.models.classifier.Classifier") == [
        "vision.models.classifier.Classifier",
        "vision.models.classifier.Backbone",
    ]
    resident = set(index.resident)
    assert resident == {
        "vision.models.classifier.Classifier",
        "vision.models.layers.ConvBlock",
        "vision.models.layers.LayerNorm2d",
        "vision.models.layers.Fp32LayerNorm",
        "vision.models.layers.Normalize",
    }
    assert ("vision.models.classifier.Backbone", "forward") in index.reached(
        "vision.models.classifier.Classifier"
    )


def test_contents_listing_for_fp101_and_fp501():
    project = _project(APP, Settings(root=APP, select=("FP2",)))
    cast = index_of(project).casts[0]
    text = unsafe_contents(project, cast.path, cast.span, limit=2)
    # most severe first: the FP203 norm (error), then BatchNorm (warning), then the rest; not
    # the LayerNorm2d (a LayerNorm's kernel accumulates in float32; issue 17)
    assert text == (
        "`(x * x).sum(1, keepdim=True)` in `Normalize.forward`, `ConvBlock.norm` "
        "(`nn.BatchNorm2d`, the default of `norm_layer`) and 2 more"
    )
    assert "LayerNorm2d" not in unsafe_contents(project, cast.path, cast.span, limit=9)
    assert unsafe_contents(project, cast.path, [1, 1, 1, 1]) == ""
    assert listing(["a", "b", "c"]) == "a, b and c"
    assert listing(["a"]) == "a"


@pytest.mark.parametrize("root", [APP, LIBRARY], ids=["app", "library"])
def test_facts_are_json_serialisable(root):
    import json

    for summary in _project(root, Settings(root=root, select=("FP2",))).summaries.values():
        json.dumps(summary.facts)


GRADIENT_NORMS = """\
import torch
from torch import nn

model = nn.Linear(4, 4).half()
for p in model.parameters():
    total = torch.norm(p.grad)
    again = p.grad.data.norm(2)
    flat = torch.linalg.vector_norm(p.grad.flatten())
    rows = p.grad.norm(2, dim=1)
    weights = p.norm()
    wide = torch.norm(p.grad, dtype=torch.float32)
"""


def test_full_norms_of_float16_gradients_are_warnings():
    """A norm writes float16 (tests/facts/test_amp_ops_table.py): the full norm of a pure
    float16 model's loss-scaled gradients is a warning; a norm along a dimension, or of the
    weights, is info, and its text says the result is written in float16; with
    ``dtype=torch.float32`` it is computed and written in float32. A norm along a dimension
    (line 9) is listed only with ``library-info``."""
    findings = lint_code(GRADIENT_NORMS, select=("FP202",), library_info=True).findings
    found = {(f.span.start.line, f.severity.value) for f in findings}
    assert found == {(6, "warning"), (7, "warning"), (8, "warning"), (9, "info"), (10, "info")}
    assert all("writes float16" in f.message for f in findings)
    default = lint_code(GRADIENT_NORMS, select=("FP202",)).findings
    assert {(f.span.start.line, f.severity.value) for f in default} == found - {(9, "info")}
