"""Which files a run lints: recursion, suffixes, default excludes, config excludes, .gitignore
(nested, negated), explicit paths and folders, symbolic links, and duplicates."""

from __future__ import annotations

from pathlib import Path

from fp16lint.discovery import DEFAULT_EXCLUDES, discover
from fp16lint.settings import Settings


def make(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")


def found(root: Path, *paths: str, **settings) -> list[str]:
    targets = [root / p for p in paths] or [root]
    result = discover(targets, Settings(root=root, **settings))
    return [p.relative_to(root).as_posix() for p in result.files]


def test_recursion_suffixes_and_order(tmp_path):
    make(tmp_path, "b.py", "a/z.pyi", "a/y.py", "a/nb.ipynb", "a/readme.md", "a/setup.cfg", "c.pyx")
    assert sorted(found(tmp_path)) == ["a/nb.ipynb", "a/y.py", "a/z.pyi", "b.py"]
    assert found(tmp_path) == found(tmp_path)  # deterministic


def test_default_excludes(tmp_path):
    make(tmp_path, "keep.py", *(f"{name}/x.py" for name in DEFAULT_EXCLUDES), "src/build/y.py")
    assert found(tmp_path) == ["keep.py"]


def test_explicit_paths_are_linted_even_when_excluded(tmp_path):
    make(tmp_path, "build/gen.py", "vendor/lib/v.py", "keep.py")
    assert found(tmp_path, "build/gen.py") == ["build/gen.py"]
    assert found(tmp_path, exclude=("vendor",)) == ["keep.py"]
    assert found(tmp_path, "vendor/lib", exclude=("vendor",)) == ["vendor/lib/v.py"]


def test_gitignore_nested_and_negated(tmp_path):
    (tmp_path / ".gitignore").write_text("*_gen.py\nout/\n!keep_gen.py\n")
    make(tmp_path, "a_gen.py", "keep_gen.py", "out/o.py", "pkg/p.py", "pkg/local.py")
    (tmp_path / "pkg" / ".gitignore").write_text("local.py\n")
    assert found(tmp_path) == ["keep_gen.py", "pkg/p.py"]
    assert found(tmp_path, respect_gitignore=False) == [
        "a_gen.py",
        "keep_gen.py",
        "out/o.py",
        "pkg/local.py",
        "pkg/p.py",
    ]


def test_gitignore_above_the_given_folder_applies(tmp_path):
    (tmp_path / ".gitignore").write_text("*_gen.py\n")
    make(tmp_path, "pkg/a_gen.py", "pkg/b.py")
    assert found(tmp_path, "pkg") == ["pkg/b.py"]


def test_folder_given_explicitly_inside_an_ignored_folder_is_linted(tmp_path):
    # `fp16lint .venv/lib/python3.11/site-packages/torch` with `.venv/` in .gitignore.
    (tmp_path / ".gitignore").write_text(".venv/\n")
    make(tmp_path, ".venv/lib/site/torch/a.py", ".venv/lib/site/torch/sub/b.py", "main.py")
    assert found(tmp_path) == ["main.py"]
    assert found(tmp_path, ".venv/lib/site/torch") == [
        ".venv/lib/site/torch/a.py",
        ".venv/lib/site/torch/sub/b.py",
    ]


def test_folder_symlinks_are_not_followed_and_duplicates_are_dropped(tmp_path):
    make(tmp_path, "pkg/a.py", "other/o.py")
    (tmp_path / "pkg" / "loop").symlink_to("..")
    (tmp_path / "pkg" / "ext").symlink_to(tmp_path / "other")
    (tmp_path / "pkg" / "alias.py").symlink_to("a.py")
    assert found(tmp_path, "pkg") == ["pkg/a.py"]  # alias.py is a.py again
    assert found(tmp_path, "pkg", "pkg/a.py", "pkg") == ["pkg/a.py"]


def test_missing_and_skipped_are_reported(tmp_path):
    make(tmp_path, "a.py")
    (tmp_path / "loop.py").symlink_to("loop.py")
    result = discover([tmp_path, tmp_path / "nope.py"], Settings(root=tmp_path))
    assert result.missing == [tmp_path / "nope.py"]
    assert [(p.name, why) for p, why in result.skipped] == [
        ("loop.py", "Too many levels of symbolic links")
    ]
