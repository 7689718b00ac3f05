"""Issue 21, data loss: ``--fix`` never overwrites an edit made while it runs, keeps owner and
hard links, writes notebooks byte-faithfully, and refuses encodings that do not round-trip
before any file is written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fp16lint import runner
from fp16lint.runner import Options, lint_paths
from fp16lint.settings import Settings

BAD = "import torch\n\nwith torch.cuda.amp.autocast():\n    y = 1\n"
FIXED = 'import torch\n\nwith torch.amp.autocast("cuda"):\n    y = 1\n'


def fix(root: Path):
    return lint_paths([root], Settings(root=root), Options(jobs=1, use_cache=False, fix=True))


def _during_fix(monkeypatch, action) -> None:
    """Run ``action`` after the run read the files and before it writes them."""
    real = runner.fix_text

    def fix_text(path, *args, **kwargs):
        out = real(path, *args, **kwargs)
        action(Path(path))
        return out

    monkeypatch.setattr(runner, "fix_text", fix_text)


def test_an_edit_saved_during_fix_is_kept(in_tmp, monkeypatch):
    target = in_tmp / "a.py"
    target.write_text(BAD)
    edited = BAD + "z = 2  # saved by an editor meanwhile\n"
    _during_fix(monkeypatch, lambda path: path.write_text(edited))
    result = fix(in_tmp)
    assert target.read_text() == edited
    assert result.fixed == 0
    assert result.errors == [
        "a.py: the file changed while fp16lint ran (an editor saved it?); run again; "
        "fixes not written"
    ]


def test_an_edit_with_the_same_size_and_an_old_time_is_kept(in_tmp, monkeypatch):
    target = in_tmp / "a.py"
    target.write_text(BAD)
    info = target.stat()

    def same_size_same_time(path: Path) -> None:
        path.write_text(BAD.replace("y = 1", "y = 2"))
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))

    _during_fix(monkeypatch, same_size_same_time)
    result = fix(in_tmp)
    assert "y = 2" in target.read_text() and result.errors


def test_a_file_deleted_during_fix_is_reported_as_deleted(in_tmp, monkeypatch):
    (in_tmp / "a.py").write_text(BAD)
    _during_fix(monkeypatch, lambda path: path.unlink())
    result = fix(in_tmp)
    assert result.errors == ["a.py: the file was deleted while fp16lint ran; fixes not written"]
    assert not (in_tmp / "a.py").exists()


def test_hard_linked_file_is_fixed_in_place_for_every_link(in_tmp):
    target = in_tmp / "a.py"
    target.write_text(BAD)
    other = in_tmp / "a_link.txt"
    os.link(target, other)
    result = fix(in_tmp)
    assert result.fixed == 1 and not result.errors
    assert target.read_text() == FIXED and other.read_text() == FIXED
    assert os.path.samefile(target, other)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root (as in CI images)")
def test_fix_as_root_keeps_owner_group_and_mode(in_tmp):
    target = in_tmp / "a.py"
    target.write_text(BAD)
    os.chown(target, 65534, 65534)
    target.chmod(0o640)
    fix(in_tmp)
    info = target.stat()
    assert target.read_text() == FIXED
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (65534, 65534, 0o640)


# --- notebooks: only the changed cell's source bytes change ------------------------------------
NOTEBOOK = (
    '\ufeff{\r\n\t"cells": [\r\n\t\t{\r\n\t\t\t"cell_type": "code",\r\n'
    '\t\t\t"metadata": {"scale": 1e5, "big": 12345678901234567890.0, "k": 1, "k": 2},\r\n'
    '\t\t\t"outputs": [{"output_type": "stream", "name": "stdout", "text": ["caf\\u00E9\\n"]}],\r\n'
    '\t\t\t"source": [\r\n\t\t\t\t"import torch\\n",\r\n'
    '\t\t\t\t"with torch.cuda.amp.autocast():\\n",\r\n\t\t\t\t"    y = 1\\n",\r\n'
    '\t\t\t\t"# caf\\u00E9"\r\n\t\t\t]\r\n'
    '\t\t},\r\n\t\t{"cell_type": "markdown", "metadata": {}, "source": "caf\\u00E9"},\r\n'
    '\t\t{"cell_type": "code", "metadata": {}, "outputs": [], "source": "x = 1.50"}\r\n'
    '\t],\r\n\t"metadata": {"kernelspec": {"language": "python"}},\r\n'
    '\t"nbformat": 4,\r\n\t"nbformat_minor": 5\r\n}'
)


def test_notebook_fix_changes_only_the_fixed_source_bytes(in_tmp):
    target = in_tmp / "nb.ipynb"
    target.write_bytes(NOTEBOOK.encode("utf-8"))
    result = fix(in_tmp)
    assert result.fixed == 1 and not result.errors
    expected = NOTEBOOK.replace("torch.cuda.amp.autocast()", 'torch.amp.autocast(\\"cuda\\")')
    assert target.read_bytes() == expected.encode("utf-8")


def test_notebook_fix_into_a_one_line_list_and_a_string_source(in_tmp):
    cells = [
        {"cell_type": "code", "metadata": {}, "outputs": [], "source": ["import torch\n"]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "source": BAD.split("\n", 2)[2]},
    ]
    raw = json.dumps({"cells": cells, "metadata": {}, "nbformat": 4}, indent=2)
    (in_tmp / "nb.ipynb").write_text(raw)
    result = fix(in_tmp)
    assert result.fixed == 1
    after = json.loads((in_tmp / "nb.ipynb").read_text())
    assert after["cells"][1]["source"] == FIXED.split("\n", 2)[2]
    assert after["cells"][0] == cells[0]


# --- encodings ------------------------------------------------------------------------------
NOT_ROUND_TRIPPING = {
    "sig.py": b"# -*- coding: utf-8-sig -*-\n" + BAD.encode(),
    "escape.py": b"# coding: unicode_escape\n" + BAD.encode(),
    "raw.py": b"# coding: raw_unicode_escape\ns = '\\u00e9'\n" + BAD.encode(),
}


def test_codecs_that_do_not_round_trip_are_refused_and_the_rest_fixed(in_tmp):
    for name, data in NOT_ROUND_TRIPPING.items():
        (in_tmp / name).write_bytes(data)
    (in_tmp / "plain.py").write_text(BAD)
    (in_tmp / "latin.py").write_bytes(b"# coding: latin-1\ns = '\xe9'\n" + BAD.encode())
    result = fix(in_tmp)
    for name, data in NOT_ROUND_TRIPPING.items():
        assert (in_tmp / name).read_bytes() == data, name
    refused = sorted(e.split(":")[0] for e in result.errors)
    assert refused == sorted(NOT_ROUND_TRIPPING)
    assert all("does not give back the bytes read" in e for e in result.errors)
    assert (in_tmp / "plain.py").read_text() == FIXED
    assert (in_tmp / "latin.py").read_bytes() == b"# coding: latin-1\ns = '\xe9'\n" + FIXED.encode()


def test_idna_cookie_never_aborts_the_run_half_way(in_tmp):
    # idna decodes a label over 63 characters (text between dots) but raises encoding it.
    data = b"# coding: idna\n" + BAD.encode() + b"# " + b"x" * 70 + b"\n"
    (in_tmp / "a.py").write_text(BAD)
    (in_tmp / "b.py").write_bytes(data)
    (in_tmp / "c.py").write_text(BAD)
    result = fix(in_tmp)
    assert (in_tmp / "a.py").read_text() == FIXED and (in_tmp / "c.py").read_text() == FIXED
    assert (in_tmp / "b.py").read_bytes() == data
    assert [e.split(":")[0] for e in result.errors] == ["b.py"]
    assert not [f for f in result.findings if f.code == "FP999"]
