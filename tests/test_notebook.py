"""Jupyter notebooks: code cells linted as one program, IPython syntax skipped, findings per
cell, fixes written back into the cells and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from lintutil import REPO

from fp16lint.formatters import FormatContext, get_formatter
from fp16lint.notebook import Notebook
from fp16lint.runner import Options, lint_paths
from fp16lint.settings import Settings
from fp16lint.source import SourceError

OUTPUT = {"name": "stdout", "output_type": "stream", "text": ["loss 0.25 ✓\n"]}


def cell(text: str, kind: str = "code", outputs: list | None = None, as_list: bool = True) -> dict:
    data = {"cell_type": kind, "metadata": {"tags": ["keep"]}}
    data["source"] = text.splitlines(keepends=True) if as_list else text
    if kind == "code":
        data["execution_count"] = 7
        data["outputs"] = outputs or []
    return data


def notebook(*cells: dict, language: str = "python") -> dict:
    kernel = {"display_name": "Python 3", "language": language, "name": "python3"}
    return {
        "cells": list(cells),
        "metadata": {"kernelspec": kernel},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write(path: Path, data: dict, **style) -> str:
    """Written as nbformat writes notebooks (unless ``style`` says otherwise)."""
    style = style or {"indent": 1, "sort_keys": True, "ensure_ascii": False}
    text = json.dumps(data, **style) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


EXPERIMENT = notebook(
    cell("# fp16 experiment\nNotes.", "markdown"),
    cell(
        "%matplotlib inline\n!pip install -q transformers\nimport torch\n"
        "from torch.cuda.amp import GradScaler",
        outputs=[OUTPUT],
    ),
    cell("%%bash\necho 'torch.cuda.amp.autocast()'"),
    cell(
        "scaler = GradScaler()\nfiles = !ls\nfor step in range(2):\n    %time y = step\n"
        "with torch.cuda.amp.autocast():\n    y = 1\ntorch.cuda.amp.autocast?",
        outputs=[OUTPUT],
    ),
    cell("%%time\nz = torch.cuda.amp.GradScaler()\n", as_list=False),
)


def _lint(root: Path, **options) -> list:
    result = lint_paths([root], Settings(root=root), Options(jobs=1, use_cache=False, **options))
    assert not result.errors, result.errors
    return result.findings


def test_findings_are_reported_per_cell(in_tmp):
    write(in_tmp / "exp.ipynb", EXPERIMENT)
    found = _lint(in_tmp)
    assert [(f.code, f.span.cell, f.span.start.line, f.span.start.column) for f in found] == [
        ("FP401", 2, 4, 6),  # the import in cell 2 ...
        ("FP401", 4, 1, 10),  # ... resolves its use in cell 4
        ("FP401", 4, 5, 6),
        ("FP401", 5, 2, 5),  # a %%time cell's body is Python
    ]
    text = get_formatter("concise")(found, FormatContext())
    assert text.splitlines()[2].startswith(
        "exp.ipynb:cell 4:5:6: FP401 [*] `torch.cuda.amp.autocast`"
    )
    full = get_formatter("full")(found, FormatContext())
    assert "5 | with torch.cuda.amp.autocast():" in full  # the frame shows the cell's line


def test_cli_reports_notebook_cells(in_tmp):
    write(in_tmp / "exp.ipynb", EXPERIMENT)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "fp16lint",
            "check",
            ".",
            "--no-cache",
            "--output-format",
            "concise",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    assert "exp.ipynb:cell 2:4:6: FP401" in run.stdout


def test_fixes_go_back_into_the_cells_and_nothing_else_changes(in_tmp):
    path = in_tmp / "exp.ipynb"
    before = write(path, EXPERIMENT)
    remaining = _lint(in_tmp, fix=True)
    assert remaining == []
    after = path.read_text(encoding="utf-8")
    data = json.loads(after)
    sources = [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in data["cells"]
    ]
    assert sources[1] == (
        "%matplotlib inline\n!pip install -q transformers\nimport torch\nfrom torch.amp import GradScaler"
    )
    assert sources[3] == (
        'scaler = GradScaler("cuda")\nfiles = !ls\nfor step in range(2):\n    %time y = step\n'
        'with torch.amp.autocast("cuda"):\n    y = 1\ntorch.cuda.amp.autocast?'
    )
    still_a_string = data["cells"][4]["source"]
    assert still_a_string == '%%time\nz = torch.amp.GradScaler("cuda")\n'
    assert sources[2] == "%%bash\necho 'torch.cuda.amp.autocast()'"
    # Outputs, metadata and layout are untouched: only the fixed source lines differ.
    original = json.loads(before)
    for old, new in zip(original["cells"], data["cells"], strict=True):
        assert {k: v for k, v in old.items() if k != "source"} == {
            k: v for k, v in new.items() if k != "source"
        }
    assert original["metadata"] == data["metadata"]
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert [a.strip() for a, _ in changed] == [
        '"from torch.cuda.amp import GradScaler"',
        '"scaler = GradScaler()\\n",',
        '"with torch.cuda.amp.autocast():\\n",',
        '"source": "%%time\\nz = torch.cuda.amp.GradScaler()\\n"',
    ]


@pytest.mark.parametrize(
    "style",
    [
        {"indent": 2},
        {"indent": 4, "ensure_ascii": True},
        {"separators": (",", ":")},
    ],
)
def test_other_json_layouts_are_kept(in_tmp, style):
    path = in_tmp / "nb.ipynb"
    data = notebook(
        cell("import torch\nwith torch.cuda.amp.autocast():\n    pass\n", outputs=[OUTPUT])
    )
    before = write(path, data, **style)
    _lint(in_tmp, fix=True)
    expected = before.replace("torch.cuda.amp.autocast()", 'torch.amp.autocast(\\"cuda\\")')
    assert path.read_text(encoding="utf-8") == expected


def test_ipython_syntax_in_strings_and_brackets_is_python(in_tmp):
    source = (
        "import torch\n"
        'doc = """\n%not a magic\n!nor a shell escape\n"""\n'
        "x = (1 +\n"
        "     2)\n"
        "with torch.cuda.amp.autocast():\n    pass\n"
    )
    write(in_tmp / "nb.ipynb", notebook(cell(source)))
    [finding] = _lint(in_tmp)
    assert (finding.span.cell, finding.span.start.line) == (1, 8)
    _lint(in_tmp, fix=True)
    fixed = "".join(json.loads((in_tmp / "nb.ipynb").read_text())["cells"][0]["source"])
    assert fixed == source.replace("torch.cuda.amp.autocast()", 'torch.amp.autocast("cuda")')


def test_noqa_in_a_cell(in_tmp):
    write(
        in_tmp / "nb.ipynb",
        notebook(
            cell("import torch\n"), cell("with torch.cuda.amp.autocast():  # noqa: FP401\n    pass")
        ),
    )
    assert _lint(in_tmp) == []


def test_other_kernels_and_non_code_cells_are_not_linted(in_tmp):
    hazard = "import torch\nwith torch.cuda.amp.autocast():\n    pass\n"
    write(in_tmp / "r.ipynb", notebook(cell(hazard), language="R"))
    write(in_tmp / "md.ipynb", notebook(cell(hazard, "markdown"), cell(hazard, "raw")))
    assert _lint(in_tmp) == []


def test_a_broken_notebook_is_fp000(in_tmp):
    (in_tmp / "bad.ipynb").write_text('{"cells": [', encoding="utf-8")
    (in_tmp / "odd.ipynb").write_text('{"cells": 3}', encoding="utf-8")
    found = _lint(in_tmp)
    assert [(f.path, f.code) for f in found] == [("bad.ipynb", "FP000"), ("odd.ipynb", "FP000")]
    assert found[0].message.startswith("not a valid notebook")


def test_a_syntax_error_points_at_its_cell(in_tmp):
    write(in_tmp / "nb.ipynb", notebook(cell("import torch.cuda.amp\n"), cell("x = 1\ndef f(:\n")))
    [finding] = _lint(in_tmp)
    assert finding.code == "FP000" and finding.span.cell == 2 and finding.span.start.line == 2


def test_checkpoints_are_not_linted(in_tmp):
    (in_tmp / ".ipynb_checkpoints").mkdir()
    write(in_tmp / ".ipynb_checkpoints" / "exp-checkpoint.ipynb", EXPERIMENT)
    write(in_tmp / "exp.ipynb", EXPERIMENT)
    assert {f.path for f in _lint(in_tmp)} == {"exp.ipynb"}


def test_a_fix_that_would_merge_cells_is_refused():
    nb = Notebook(json.dumps(notebook(cell("a = 1\n"), cell("b = 2\n"))))
    assert nb.text == "a = 1\n# fp16lint: next notebook cell\nb = 2\n"
    with pytest.raises(SourceError):
        nb.encode("a = 1\nb = 2\n")
    assert json.loads(nb.encode(nb.text)) == json.loads(nb.raw)


def test_sarif_for_a_notebook_is_valid(in_tmp):
    write(in_tmp / "exp.ipynb", EXPERIMENT)
    found = _lint(in_tmp)
    log = json.loads(get_formatter("sarif")(found, FormatContext()))
    schema = json.loads((REPO / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(log)
    result = log["runs"][0]["results"][0]
    assert result["message"]["text"].startswith("exp.ipynb:cell 2:4:6: ")
    assert "region" not in result["locations"][0]["physicalLocation"]


def test_json_output_names_the_cell(in_tmp):
    write(in_tmp / "exp.ipynb", EXPERIMENT)
    found = _lint(in_tmp)
    first = json.loads(get_formatter("json")(found, FormatContext()))[0]
    assert (first["filename"], first["cell"], first["location"]) == (
        "exp.ipynb",
        2,
        {"row": 4, "column": 6},
    )


def test_a_cast_in_a_notebook_is_named_by_cell(in_tmp):
    """A model cast to fp16 in a notebook makes its layers in a module unsafe (FP201): the
    message and the related location name the notebook cell, not a line of the joined text."""
    from fp16lint.rules.fp2xx_common import INHERITANCE_PROJECT

    (in_tmp / "models.py").write_text(INHERITANCE_PROJECT["models.py"], encoding="utf-8")
    train = INHERITANCE_PROJECT["train.py"].split("\n")
    write(
        in_tmp / "train.ipynb",
        notebook(
            cell("# Training", "markdown"), cell("\n".join(train[:3])), cell("\n".join(train[3:]))
        ),
    )
    layered = [f for f in _lint(in_tmp) if f.code == "FP201"]
    assert [f.span.start.line for f in layered] == [8, 21]
    for finding in layered:
        assert "`.to(torch.float16)` at train.ipynb:cell 3:2:" in finding.message
        [related] = finding.related
        assert (related.path, related.span.cell, related.span.start.line) == ("train.ipynb", 3, 2)


@pytest.mark.slow
def test_real_code_as_a_notebook_gives_the_same_findings(tmp_path):
    """Differential check on installed real-world sources: each file, split into cells at its
    top-level statements (with a markdown cell and IPython lines added), gets exactly the
    findings of the ``.py`` file, at the same places."""
    import ast
    import importlib.util
    import random

    site = Path(importlib.util.find_spec("transformers").submodule_search_locations[0]).parent
    tokens = ("float16", ".half()", "autocast", "-1e9", "finfo")
    files = sorted(
        p for pkg in ("transformers", "diffusers", "timm") for p in (site / pkg).rglob("*.py")
    )
    files = [
        p for p in random.Random(8).sample(files, 400) if any(t in p.read_text() for t in tokens)
    ]
    py_dir, nb_dir = tmp_path / "py", tmp_path / "nb"
    py_dir.mkdir(), nb_dir.mkdir()
    starts_of: dict[str, dict[int, int]] = {}
    for number, src in enumerate(files[:25]):
        text = src.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        tops = ast.parse(text).body
        starts = sorted(
            {1}
            | {
                (n.decorator_list[0] if getattr(n, "decorator_list", None) else n).lineno
                for n in tops
            }
        )
        cells = [cell("# notes", "markdown"), cell("%matplotlib inline\n!pip install -q torch\n")]
        starts_of[f"f{number}"] = {}
        for begin, end in zip(starts, [*starts[1:], len(lines) + 1], strict=True):
            starts_of[f"f{number}"][len(cells) + 1] = begin
            cells.append({**cell(""), "source": lines[begin - 1 : end - 1]})
        (py_dir / f"f{number}.py").write_text(text, encoding="utf-8")
        write(nb_dir / f"f{number}.ipynb", notebook(*cells))

    def found(root: Path) -> set[tuple]:
        # (library-info too: parity is checked on as many sites as the sample has)
        settings = Settings(root=root, select=("ALL",), assume_fp16=True, library_info=True)
        result = lint_paths([root], settings, Options(jobs=1, use_cache=False))
        out = set()
        for f in result.findings:
            stem = Path(f.path).stem
            line = f.span.start.line
            if f.span.cell is not None:
                line += starts_of[stem][f.span.cell] - 1
            out.add((stem, f.code, line, f.span.start.column, f.message))
        return out

    expected = found(py_dir)
    assert len(expected) > 20
    assert found(nb_dir) == expected
