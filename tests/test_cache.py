"""The summary cache: re-runs lint only changed files, any change of key re-lints, and the
cache is data only: corrupt, foreign or hostile entries are ignored, never a crash."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fp16lint import engine, runner
from fp16lint.analysis.context import FileSummary
from fp16lint.cache import CACHE_DIR_ENV, Cache
from fp16lint.runner import Options, lint_paths
from fp16lint.settings import Settings

BAD = "import torch\n\nwith torch.cuda.amp.autocast():\n    y = 1\n"
UNSAFE = "import torch\nx = torch.randn(8, 16)\nx.half()\n"


@pytest.fixture
def project(in_tmp, monkeypatch):
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    for index in range(3):
        (in_tmp / f"m{index}.py").write_text(BAD if index else UNSAFE, encoding="utf-8")
    return in_tmp


class _Seen:
    """File names the engine linted, logged to a file: it runs in worker processes."""

    def __init__(self, log: Path):
        self.log = log
        self.clear()

    def names(self) -> list[str]:
        return self.log.read_text(encoding="utf-8").split()

    def __iter__(self):
        return iter(self.names())

    def __eq__(self, other) -> bool:
        return self.names() == list(other)

    def clear(self) -> None:
        self.log.write_text("", encoding="utf-8")

    def add(self, name: str) -> None:
        with open(self.log, "a", encoding="utf-8") as handle:
            handle.write(name + "\n")


@pytest.fixture
def linted(monkeypatch, tmp_path_factory):
    """Paths the engine actually linted (cache misses) during the test."""
    seen = _Seen(tmp_path_factory.mktemp("seen") / "linted.log")
    real = engine.lint_source

    def counting(path, *args, **kwargs):
        seen.add(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(runner, "lint_source", counting)  # workers fork with it
    return seen


def run(root: Path, **settings) -> runner.LintResult:
    return lint_paths([root], Settings(root=root, **settings), Options(jobs=1))


def keys(result) -> list[tuple]:
    return [(Path(f.path).name, f.span.start.line, f.code, f.message) for f in result.findings]


def entries(root: Path) -> list[Path]:
    return sorted((root / ".fp16lint_cache").rglob("*.json"))


def test_second_run_is_served_from_the_cache(project, linted):
    first = run(project)
    assert sorted(linted) == ["m0.py", "m1.py", "m2.py"]
    second = run(project)
    assert sorted(linted) == ["m0.py", "m1.py", "m2.py"]  # nothing re-linted
    assert keys(first) == keys(second) and len(first.findings) == 3


def test_only_the_changed_file_is_linted_again(project, linted):
    run(project)
    linted.clear()
    (project / "m1.py").write_text(BAD + "\n# edited\n", encoding="utf-8")
    run(project)
    assert linted == ["m1.py"]


def test_settings_and_rule_selection_are_part_of_the_key(project, linted):
    run(project)
    for changed in ({"select": ("FP401",)}, {"assume_fp16": True}):
        linted.clear()
        run(project, **changed)
        assert sorted(linted) == ["m0.py", "m1.py", "m2.py"], changed


def test_noqa_and_per_file_ignores_apply_to_cached_summaries(project):
    run(project)
    (project / "m0.py").write_text(UNSAFE.replace("x.half()", "x.half()  # noqa: FP102"))
    result = run(project, per_file_ignores={"m1.py": ("FP4",)})
    assert [(Path(f.path).name, f.code) for f in result.findings] == [("m2.py", "FP401")]


def test_no_cache_option_neither_reads_nor_writes(project, linted):
    lint_paths([project], Settings(root=project), Options(jobs=1, use_cache=False))
    assert not (project / ".fp16lint_cache").exists()


def test_cache_folder_has_gitignore_and_cachedir_tag(project):
    run(project)
    folder = project / ".fp16lint_cache"
    assert (folder / ".gitignore").read_text() == "# Created by fp16lint.\n*\n"
    assert (folder / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172")
    assert len(entries(project)) == 3


def test_env_variable_moves_the_cache(project, tmp_path_factory, monkeypatch):
    elsewhere = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv(CACHE_DIR_ENV, str(elsewhere))
    run(project)
    assert not (project / ".fp16lint_cache").exists()
    assert len(list(elsewhere.rglob("*.json"))) == 3


def test_one_entry_per_path_however_often_it_changes(project):
    for round_ in range(4):
        (project / "m1.py").write_text(BAD + f"# round {round_}\n", encoding="utf-8")
        run(project)
    assert len(entries(project)) == 3


def test_entries_are_plain_json(project):
    run(project)
    for entry in entries(project):
        data = json.loads(entry.read_text(encoding="utf-8"))
        assert set(data) == {"key", "summary"}
        FileSummary.from_dict(data["summary"])


CORRUPTIONS = {
    "empty": b"",
    "binary": bytes(range(256)),
    "truncated": None,  # first half of the real entry
    "not-an-object": b"[1, 2, 3]",
    "wrong-key": None,  # the real entry with another key
    "wrong-shape": None,  # the right key with garbage inside
    "wrong-types": None,  # the right key, a line number that is a string
    "other-path": None,  # the right key, a summary for another file
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "pickle": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94.",
}


def _corrupt(kind: str, entry: Path) -> bytes:
    data = CORRUPTIONS[kind]
    if data is not None:
        return data
    real = json.loads(entry.read_text(encoding="utf-8"))
    if kind == "truncated":
        return entry.read_bytes()[: entry.stat().st_size // 2]
    if kind == "wrong-key":
        real["key"] = "0" * 64
    elif kind == "wrong-shape":
        real["summary"] = {"path": 3, "findings": "none"}
    elif kind == "wrong-types":
        real["summary"]["findings"][0]["location"]["row"] = "3"
    elif kind == "other-path":
        real["summary"]["path"] = "elsewhere.py"
        for finding in real["summary"]["findings"]:
            finding["filename"] = "elsewhere.py"
    return json.dumps(real).encode()


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_or_foreign_entries_are_ignored_and_replaced(project, linted, kind):
    expected = keys(run(project))
    for entry in entries(project):
        entry.write_bytes(_corrupt(kind, entry))
    linted.clear()
    result = run(project)
    assert keys(result) == expected
    assert sorted(linted) == ["m0.py", "m1.py", "m2.py"]  # recomputed, not trusted
    linted.clear()
    assert keys(run(project)) == expected and linted == []  # and the cache is valid again


def test_unwritable_cache_folder_only_costs_time(project):
    (project / ".fp16lint_cache").write_text("a file where the folder should be")
    assert len(run(project).findings) == 3


def test_cache_key_covers_path_content_and_module(tmp_path):
    cache = Cache(tmp_path, "salt")
    base = cache.key("a.py", b"x = 1\n", "pkg.a\x00False")
    assert base != cache.key("b.py", b"x = 1\n", "pkg.a\x00False")
    assert base != cache.key("a.py", b"x = 2\n", "pkg.a\x00False")
    assert base != cache.key("a.py", b"x = 1\n", "a\x00False")
    assert base != Cache(tmp_path, "other salt").key("a.py", b"x = 1\n", "pkg.a\x00False")


CONCURRENT = """
import sys
from pathlib import Path
from fp16lint.settings import Settings
from fp16lint.runner import Options, lint_paths
root = Path(sys.argv[1])
result = lint_paths([root], Settings(root=root), Options(jobs=int(sys.argv[2])))
for f in result.findings:
    print(Path(f.path).name, f.span.start.line, f.code)
"""


def test_two_processes_sharing_a_cache_agree_and_leave_it_valid(in_tmp, monkeypatch):
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    for index in range(40):
        (in_tmp / f"m{index:02}.py").write_text(BAD if index % 2 else UNSAFE + BAD)
    command = [sys.executable, "-c", CONCURRENT, str(in_tmp)]
    processes = [
        subprocess.Popen([*command, jobs], stdout=subprocess.PIPE, text=True) for jobs in "12"
    ]
    outputs = [process.communicate()[0] for process in processes]
    assert all(process.returncode == 0 for process in processes)
    alone = subprocess.run([*command, "1"], capture_output=True, text=True, check=True).stdout
    assert outputs[0] == outputs[1] == alone and alone.count("\n") == 60
    for entry in entries(in_tmp):  # every entry whole and readable
        json.loads(entry.read_text(encoding="utf-8"))
    assert len(entries(in_tmp)) == 40
    assert not list((in_tmp / ".fp16lint_cache").rglob("*.tmp"))
