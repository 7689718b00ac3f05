"""The language server's partial re-parse gives the tree a full parse gives."""

from __future__ import annotations

import random
from importlib.util import find_spec
from pathlib import Path

import libcst as cst
import pytest

from fp16lint.analysis.tree import walk
from fp16lint.engine import lint_source
from fp16lint.lsp import incremental
from fp16lint.lsp.session import Session
from fp16lint.positions import generated
from fp16lint.runner import module_name_for

BASE = (
    "# header comment\n\nimport torch\n\n\nclass A(torch.nn.Module):\n"
    "    def forward(self, x):\n        return x.half()\n    # block footer\n\n"
    "# leading comment of f\ndef f(x):\n    y = x\n    return y\n\n\nz = f(1)\n# file footer\n"
)

EDITS = [
    ("import torch", "import torch as th"),  # the first statement, under the file's header
    ("# header comment", "# header, edited"),
    ("return x.half()", "return x.float()"),
    ("    # block footer\n", ""),
    ("# leading comment of f\n", "# two\n# comment lines\n"),
    ("def f(x):\n    y = x\n    return y\n", ""),  # a statement deleted
    ("z = f(1)\n", "z = f(1)\nw = z\n"),  # one added at the end
    ("# file footer\n", ""),
    ("\n\nz = f(1)", "\n\n    z = f(1)"),  # indented: now part of f's body
    ("y = x", "y = (x"),  # does not parse
]


def _check(previous: incremental.Parsed, text: str) -> incremental.Parsed | None:
    parsed = incremental.parse(text, previous)
    try:
        full = cst.parse_module(text)
    except cst.ParserSyntaxError:
        assert parsed is None
        return None
    if full.code != text:  # libcst's quirks: then the engine parses the text in full itself
        assert parsed is None
        return None
    assert parsed is not None
    assert parsed.module.code == text
    assert parsed.module.deep_equals(full)
    assert parsed.bounds == incremental.parse(text).bounds
    if parsed.members is not None:  # where the edited class's statements begin
        statement, offsets = parsed.members
        assert statement in parsed.module.body
        block = statement.body
        indent = block.indent or parsed.module.default_indent
        for member, offset in zip(block.body, offsets, strict=False):
            assert text.startswith(generated(parsed.module, member, (indent,)), offset)
        assert len(offsets) == len(block.body) + 1
    return parsed


def _check_edit(base: str, old: str, new: str) -> None:
    """``_check`` the edit of ``base`` that replaces ``old`` with ``new``."""
    assert old in base
    _check(incremental.parse(base), base.replace(old, new, 1))


@pytest.mark.parametrize(("old", "new"), EDITS)
def test_an_edit_gives_the_tree_of_a_full_parse(old, new):
    _check_edit(BASE, old, new)


CLASS = (
    'import torch\n\n\nclass Big(torch.nn.Module):\n    """Doc."""\n\n'
    + "".join(
        f"    # method {i}\n    def m{i}(self, x):\n        y = x + {i}\n        return y\n\n"
        for i in range(6)
    )
    + "    # class footer\n\n\nz = Big()\n"
)

EDITS_INSIDE = [
    ("y = x + 2", "y = x.half() + 2"),  # inside one method
    ("    # method 3\n", ""),  # a method's leading comment
    ("        return y\n\n    # method 4", "        return y\n    x = 1\n\n    # method 4"),
    ("    def m0(self, x):", "    def m0(self, x, z):"),  # the first statement of the body
    ("y = x + 5\n        return y\n", "y = x + 5\n        return y\n        # end\n"),
    ("y = x + 5\n        return y\n", "y = x + 5\n"),  # the last one
    ("    def m2(self, x):\n", "    def m2(self, x):\n    \n"),
    ("        return y\n\n    # method 1", "        return y\nw = 2\n\n    # method 1"),  # dedented
    ("y = x + 1", "y = (x + 1"),  # does not parse
    ('"""Doc."""', '"""Doc, edited."""'),
    ("    # class footer\n", "    # class footer\n    v = 1\n"),
    ("x + 4\n        return y\n", "x + 4\n\\\n        return y\n"),  # libcst changes this
]


@pytest.mark.parametrize(("old", "new"), EDITS_INSIDE)
def test_an_edit_inside_a_class_gives_the_tree_of_a_full_parse(old, new):
    _check_edit(CLASS, old, new)


def test_an_edit_inside_a_class_re_parses_only_the_methods_it_touched():
    before = incremental.parse(CLASS)
    after = _check(before, CLASS.replace("y = x + 3", "y = x - 3"))
    assert after is not None and after.members is not None
    old_methods, new_methods = before.module.body[1].body.body, after.module.body[1].body.body
    kept = [a is b for a, b in zip(old_methods, new_methods, strict=True)]
    assert kept == [True, True, True, False, False, False, True]  # the method, its neighbours
    assert before.module.body[2] is after.module.body[2]  # `z = Big()`
    again = _check(after, after.text.replace("y = x - 3", "y = x * 3"))
    assert again is not None and again.members is not None  # found from the kept offsets


BIG = CLASS.replace(
    "    # class footer",
    "".join(f"    def n{i}(self):\n        pass\n\n" for i in range(4)) + "    # class footer",
)

EDITS_ABOVE = [
    ("\n\nclass Big", "\n\nx = 1\nclass Big"),  # a statement takes the class's blank lines
    ("\n\nclass Big", "\n\n# about Big\nclass Big"),
    ("\n\nclass Big", "\n\n@decorator\nclass Big"),
    ("class Big(torch.nn.Module):", "class Big(nn.Module):  # edited"),  # its header line
    ("class Big(torch.nn.Module):", "class Big(torch.nn.Module): pass"),  # no longer parses
    ("import torch\n", "import torch\nif x:\n"),  # the class now in an `if`: does not parse
    ("\n\nclass Big", "\n\n    y = 2\nclass Big"),
    ("\n\nclass Big", '\n\n"""\nclass Big'),
]


@pytest.mark.parametrize(("old", "new"), EDITS_ABOVE)
def test_an_edit_above_a_big_class_gives_the_tree_of_a_full_parse(old, new):
    _check_edit(BIG, old, new)


def test_an_edit_above_a_big_class_keeps_its_body():
    before = incremental.parse(BIG)
    after = _check(before, BIG.replace("class Big", "x = 1\nclass Big", 1))
    assert after is not None
    body = before.module.body[1].body.body
    assert len(body) >= 8  # big enough to stand in for
    assert after.module.body[2].body.body is body
    again = _check(after, after.text.replace("x = 1\n", "", 1))
    assert again is not None and again.module.body[1].body.body is body


def test_statements_the_edit_did_not_touch_are_kept():
    before = incremental.parse(BASE)
    after = incremental.parse(BASE.replace("z = f(1)", "z = f(2)"), before)
    kept = [a is b for a, b in zip(before.module.body, after.module.body, strict=True)]
    assert kept == [True, True, False, False]  # the edited statement and its neighbour


def test_a_splice_that_fails_falls_back_to_a_full_parse(monkeypatch):
    def broken(*args):
        raise AttributeError("a case nobody foresaw")

    monkeypatch.setattr(incremental, "_splice_inside", broken)
    _check(incremental.parse(CLASS), CLASS.replace("y = x + 3", "y = x - 3"))


def test_text_libcst_may_crash_on_is_left_to_the_engine():
    deep = "x = " + "(" * 150 + "1" + ")" * 150 + "\n"
    assert incremental.parse(deep) is None
    assert incremental.parse(deep, incremental.parse(BASE)) is None


def _real_files(count: int) -> list[Path]:
    files = []
    for package in ("torch", "transformers", "diffusers"):
        spec = find_spec(package)
        assert spec is not None and spec.submodule_search_locations
        root = Path(next(iter(spec.submodule_search_locations)))
        files += sorted(root.rglob("*.py"))
    return random.Random(0).sample(files, count)


def test_random_edits_of_real_files_match_a_full_parse():
    rng = random.Random(1)
    snippets = ["x", "\n", "    ", "# c\n", ")", '"""', "def g():\n    pass\n", "\\\n", "if x:\n"]
    spliced = inside = 0
    for path in _real_files(12):
        text = path.read_text(encoding="utf-8", errors="replace")
        parsed = incremental.parse(text)
        if parsed is None:
            continue
        for _ in range(6):
            at = rng.randrange(len(text) + 1)
            edited = text[:at] + rng.choice(snippets) + text[at + rng.choice([0, 1, 5]) :]
            result = _check(parsed, edited)
            if result is not None:
                parsed, text = result, edited
                spliced += 1
                inside += result.members is not None
    assert spliced >= 20
    assert inside >= 5  # edits inside classes and functions re-parsed only what they touched


def test_the_session_lints_an_edited_buffer_as_a_fresh_one(tmp_path):
    path = str(tmp_path / "model.py")
    text = "import torch\n\nmodel = torch.nn.LayerNorm(8)\nmodel.half()\n"
    session = Session([tmp_path])
    session.open(path, text, 1)
    session.lint(path)
    edited = text.replace("model.half()", "x = torch.randn(8)\nx.half()\nmodel.half()")
    session.open(path, edited, 2)
    session.lint(path)
    assert session.parsed[path].text == edited
    fresh = Session([tmp_path])
    fresh.open(path, edited, 2)
    fresh.lint(path)
    codes = [(f.code, f.span.start.line) for f in session.linted[path].findings]
    assert codes == [(f.code, f.span.start.line) for f in fresh.linted[path].findings]
    assert ("FP102", 5) in codes


def _model_files(count: int) -> list[Path]:
    files = []
    for package in ("transformers", "diffusers"):
        spec = find_spec(package)
        assert spec is not None and spec.submodule_search_locations
        root = Path(next(iter(spec.submodule_search_locations)))
        files += sorted(p for p in root.rglob("modeling_*.py") if p.stat().st_size < 60_000)
    return random.Random(2).sample(files, count)


def test_positions_kept_across_edits_match_a_fresh_lint(tmp_path):
    """Nodes placed from the offsets of earlier versions (``positions.KnownOffsets``) get the
    positions a fresh lint gives, in findings and in the project facts."""
    rng = random.Random(3)
    inserts = ["\n", "x = 1\n", "# note\n", "y = torch.ones(2).half()\n", "    \n"]
    kept = 0
    for source in _model_files(4):
        path = str(tmp_path / source.name)
        text = source.read_text(encoding="utf-8")
        session = Session([tmp_path])
        session.open(path, text, 1)
        session.lint(path)
        for version in range(2, 8):
            lines = text.splitlines(keepends=True)
            at = rng.randrange(len(lines) + 1)
            if rng.random() < 0.3 and at < len(lines):
                lines[at : at + 1] = []  # a line deleted (the text may then not parse)
            else:
                lines.insert(at, rng.choice(inserts))
            text = "".join(lines)
            session.open(path, text, version)
            session.lint(path)
            config = session.config_for(path)
            name, package = module_name_for(Path(path))
            fresh = lint_source(path, text, config.rules, module_name=name, is_package=package)
            ours = session.summaries[path]
            assert ours.findings == fresh.findings
            if fresh.parsed:  # (a buffer that does not parse keeps its last good facts)
                assert ours.facts == fresh.facts
            kept += len(session.offsets[path]._inside) if path in session.offsets else 0
    assert kept > 100  # positions really came from earlier versions


def test_child_lists_are_kept_across_edits_for_the_statements_they_did_not_touch(tmp_path):
    """The walk's child lists of an unchanged statement are re-used by the next lint
    (``tree.shared_children``); those of a replaced statement are dropped with it."""
    source = _model_files(1)[0]
    path = str(tmp_path / source.name)
    text = source.read_text(encoding="utf-8")
    session = Session([tmp_path])
    session.open(path, text, 1)
    session.lint(path)
    before = dict(session.children[path])
    edited = text + "\nscaler = torch.cuda.amp.GradScaler()\n"
    session.open(path, edited, 2)
    session.lint(path)
    after = session.children[path]
    module = session.parsed[path].module
    in_tree = {id(node) for node in walk(module)}
    assert all(id(node) in in_tree for node, _ in after.values())  # nothing of the old tree
    reused = sum(1 for key, entry in after.items() if before.get(key) is entry)
    assert reused > 0.9 * len(after) and len(after) > 1000
    config = session.config_for(path)
    name, package = module_name_for(Path(path))
    fresh = lint_source(path, edited, config.rules, module_name=name, is_package=package)
    assert session.summaries[path].findings == fresh.findings
    assert session.summaries[path].facts == fresh.facts
