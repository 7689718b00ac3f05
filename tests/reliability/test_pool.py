"""The process pool: same findings as in-process, big files first, and a worker that dies (a
fault in libcst's native parser, the OOM killer) costs one FP999 for the file that killed it,
not the run."""

from __future__ import annotations

import os
from pathlib import Path

from fp16lint import runner
from fp16lint.runner import Options, _chunks, _Job, lint_paths
from fp16lint.settings import Settings

BAD = "import torch\n\nwith torch.cuda.amp.autocast():\n    y = 1\n"


def _project(root: Path, count: int = 12) -> None:
    for index in range(count):
        (root / f"m{index:02}.py").write_text(BAD + "x = 1\n" * index)


def _found(result) -> list[tuple[str, str]]:
    return sorted((Path(f.path).name, f.code) for f in result.findings)


def test_worker_death_is_one_fp999_and_the_rest_is_linted(tmp_path, monkeypatch):
    _project(tmp_path)
    (tmp_path / "crash.py").write_text(BAD)
    real = runner.lint_source

    def dies_on_crash_py(path, *args, **kwargs):
        if path.endswith("crash.py"):
            os._exit(139)  # what a segmentation fault in native code looks like from outside
        return real(path, *args, **kwargs)

    monkeypatch.setattr(runner, "lint_source", dies_on_crash_py)  # workers fork with it
    result = lint_paths([tmp_path], Settings(root=tmp_path), Options(jobs=2, use_cache=False))
    found = _found(result)
    assert ("crash.py", "FP999") in found
    assert found.count(("crash.py", "FP999")) == 1 and ("crash.py", "FP401") not in found
    assert [name for name, code in found if code == "FP401"] == [f"m{i:02}.py" for i in range(12)]
    crash = next(f for f in result.findings if f.code == "FP999")
    assert "worker process died on this file" in crash.message


def test_pool_and_in_process_agree(tmp_path):
    _project(tmp_path, 30)
    one, two = (
        lint_paths([tmp_path], Settings(root=tmp_path), Options(jobs=jobs, use_cache=False))
        for jobs in (1, 2)
    )
    assert [f.to_dict() for f in one.findings] == [f.to_dict() for f in two.findings]


def test_chunks_put_big_files_first_and_cover_every_job():
    jobs = [_Job(f"f{i}.py", "x" * size, "", False) for i, size in enumerate([5, 900, 40, 7, 300])]
    chunks = _chunks(jobs * 20, workers=2)
    flat = [index for chunk in chunks for index in chunk]
    assert sorted(flat) == list(range(100))
    assert len(jobs[flat[0] % 5].text) == 900 and len(jobs[flat[-1] % 5].text) == 5
    assert all(len(chunk) <= 64 for chunk in chunks)
