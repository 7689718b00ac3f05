"""The engine's contract: FP000 and FP999 instead of exceptions, a per-file time bound, the
gate in front of libcst's native parser, the per-rule prefilter, and exact positions."""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from fp16lint.analysis.base import Tracker
from fp16lint.analysis.tree import children, walk
from fp16lint.engine import lint_source
from fp16lint.findings import Severity
from fp16lint.positions import located_ranges, node_ranges
from fp16lint.rules.base import Rule
from fp16lint.runner import Options, lint_paths, lint_text
from fp16lint.settings import Settings


class _Calls(Rule):
    """Reports every call (a planted rule: not registered, passed to the engine directly)."""

    code = "FP990"
    name = "planted-calls"
    severity = Severity.INFO
    summary = what = why = example = use_instead = "planted"

    def visit_Call(self, node: cst.Call) -> None:
        self.report(node, "A call.")


class _Crashes(_Calls):
    code = "FP991"
    tokens = ("boom",)

    def visit_Call(self, node: cst.Call) -> None:
        raise ValueError("planted failure")


class _Spins(_Calls):
    code = "FP992"

    def visit_Module(self, node: cst.Module) -> None:
        while True:  # a rule swallowing errors cannot swallow the time bound
            with contextlib.suppress(Exception):
                sum(range(1000))


class _NeedsHalf(_Calls):
    code = "FP993"
    tokens = ("half",)
    created = 0

    def __init__(self, ctx):
        super().__init__(ctx)
        type(self).created += 1


class _BrokenTracker(Tracker):
    def visit_Call(self, node: cst.Call) -> None:
        raise RuntimeError("planted tracker failure")


class _NeedsBrokenTracker(_Calls):
    code = "FP994"
    requires = (_BrokenTracker,)


class _ForeignNode(_Calls):
    code = "FP995"

    def visit_Module(self, node: cst.Module) -> None:
        self.report(cst.parse_expression("x"), "A node from another tree.")


CODE = "import torch\nx = torch.ones(2)\ny = x.half()\n"


def codes(summary) -> list[str]:
    return [f.code for f in summary.findings]


def test_syntax_error_is_fp000_at_its_position():
    summary = lint_source("bad.py", "x = 1\ny = (2 +\n", [_Calls])
    (finding,) = summary.findings
    assert finding.code == "FP000" and finding.message.endswith("the file was not linted.")
    assert finding.span.start.line in (2, 3)


def test_rule_crash_is_fp999_and_other_rules_go_on():
    summary = lint_source("a.py", CODE + "boom()\n", [_Calls, _Crashes])
    assert codes(summary).count("FP999") == 1
    crash = next(f for f in summary.findings if f.code == "FP999")
    assert "rule FP991" in crash.message and "ValueError: planted failure" in crash.message
    assert "Traceback" in crash.detail
    assert codes(summary).count("FP990") == 3  # torch.ones, x.half and boom: nothing lost


def test_tracker_crash_is_one_fp999_and_stops_the_file():
    summary = lint_source("a.py", CODE, [_NeedsBrokenTracker])
    assert codes(summary) == ["FP999"]
    assert "fp16lint's analysis" in summary.findings[0].message


def test_report_of_a_foreign_node_is_fp999_not_a_crash():
    summary = lint_source("a.py", CODE, [_ForeignNode])
    assert codes(summary) == ["FP999"]


def test_time_limit_stops_a_spinning_rule_with_fp999():
    summary = lint_source("slow.py", CODE, [_Calls, _Spins], time_limit=0.3)
    assert codes(summary) == ["FP999"]
    assert "took over 0.3 s of CPU time" in summary.findings[0].message


def test_time_limit_is_reported_for_one_file_and_the_run_goes_on(tmp_path, monkeypatch):
    (tmp_path / "a_slow.py").write_text("import torch\nslow = True\nx.half()\n")
    (tmp_path / "b_fine.py").write_text("import torch\nwith torch.cuda.amp.autocast():\n    pass\n")
    from fp16lint import engine

    real = engine._lint_parsed

    def spin_on_slow(summary, text, *args):
        while "slow = True" in text:
            pass
        return real(summary, text, *args)

    monkeypatch.setattr(engine, "_lint_parsed", spin_on_slow)
    result = lint_paths(
        [tmp_path], Settings(root=tmp_path), Options(jobs=1, use_cache=False, time_limit=0.3)
    )
    got = {(Path(f.path).name, f.code) for f in result.findings}
    assert ("a_slow.py", "FP999") in got and ("b_fine.py", "FP401") in got


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = " + "(" * 300 + "1" + ")" * 300 + "\n", "too many nested parentheses"),
        ("x = " + "[" * 3000 + "]" * 3000 + "\n", "too many nested parentheses"),
        ("x = 1" + "+1" * 10000 + "\n", "too deeply nested"),
        ("x = a" + ".b" * 10000 + "\n", "too deeply nested"),
        ("x = " + "-" * 30000 + "1\n", "too deeply nested"),
    ],
    ids=["parens-300", "lists-3000", "binop-10000", "attr-10000", "unary-30000"],
)
def test_nesting_that_crashes_or_stalls_libcst_is_fp000(text, message):
    # Each of these segfaults libcst's native parser or keeps it busy for minutes; CPython
    # rejects all of them, so they are FP000 without reaching libcst.
    with pytest.raises((SyntaxError, RecursionError, MemoryError)):
        compile(text, "deep.py", "exec")
    summary = lint_source("deep.py", text, [_Calls])
    assert codes(summary) == ["FP000"]
    assert message in summary.findings[0].message


def test_deep_but_valid_nesting_is_still_linted():
    text = "x = " + "(" * 150 + "f()" + ")" * 150 + "\n" + "y = '" + "z" * 3000 + "'\n"
    compile(text, "ok.py", "exec")
    assert codes(lint_source("ok.py", text, [_Calls])) == ["FP990"]


def test_rules_whose_tokens_are_absent_do_not_run():
    _NeedsHalf.created = 0
    assert codes(lint_source("a.py", "x = f()\n", [_NeedsHalf])) == []
    assert _NeedsHalf.created == 0
    assert not lint_source("a.py", "x = f()\n", [_NeedsHalf]).parsed
    assert codes(lint_source("a.py", "x = f()\n", [_NeedsHalf], prefilter=False)) == ["FP993"]
    assert codes(lint_source("a.py", "x = g.half()\n", [_NeedsHalf])) == ["FP993"]
    assert _NeedsHalf.created == 2


def test_rules_without_tokens_always_run():
    summary = lint_source("a.py", "x = f()\n", [_Calls, _NeedsHalf])
    assert summary.parsed and codes(summary) == ["FP990"]


@pytest.mark.parametrize("enabled", [True, False])
def test_garbage_collector_state_is_restored(enabled):
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        lint_source("a.py", CODE, [_Calls])
        lint_source("b.py", "x = (\n", [_Calls])
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


POSITION_SAMPLES = [
    "import torch\n\n\n@decorator(1)\nclass A(B, metaclass=M):  # c\n    x: int = 1\n\n"
    "    async def f(self, *a, b=2, **k) -> None:\n        '''doc\n        string'''\n"
    "        return (yield (a, b))\n",
    "if a:\n    pass\nelif b:  # x\n    x = [i for i in y if i]\nelse:\n    pass\n"
    "try:\n    pass\nexcept (A, B) as e:\n    raise\nfinally:\n    del x\n",
    "x = 1; y = 2\r\nwith open(p) as f, g():\r\n    z = f'{x!r:>{y}}' + \"\\\\\"\r\n",
    "def f():\n\tif x:\n\t\treturn {'é': [1, 2,\n\t\t\t3]}  # tabs, unicode\n",
    "while x:\n    for i in range(3):\n        continue\n    else:\n        break\n"
    "lambda: (x := 1)\nmatch p:\n    case [1, *r] if r:\n        pass\n    case _:\n        pass\n",
    "x = 1",  # no trailing newline
    "\n\n# only comments\n\n",
]


def _provider_ranges(module: cst.Module) -> dict[int, tuple[int, int, int, int]]:
    ranges = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    return {
        id(node): (r.start.line, r.start.column, r.end.line, r.end.column)
        for node, r in ranges.items()
    }


@pytest.mark.parametrize("text", POSITION_SAMPLES)
def test_positions_match_libcst_position_provider_for_every_node(text):
    module = cst.parse_module(text)
    nodes = list(walk(module))
    expected = _provider_ranges(module)
    got = node_ranges(module, nodes)
    assert {id(n): got[id(n)] for n in nodes} == {id(n): expected[id(n)] for n in nodes}


@pytest.mark.parametrize("text", POSITION_SAMPLES[:3])
def test_positions_of_single_nodes_match_as_well(text):
    # Asked for alone, a compound statement still ends where its body ends (hoisted bounds).
    module = cst.parse_module(text)
    expected = _provider_ranges(module)
    for node in walk(module):
        assert node_ranges(module, [node])[id(node)] == expected[id(node)], type(node).__name__


def _with_ancestors(module: cst.Module) -> list[tuple[cst.CSTNode, tuple[cst.CSTNode, ...]]]:
    out = []
    stack: list[tuple[cst.CSTNode, tuple[cst.CSTNode, ...]]] = [(module, ())]
    while stack:
        node, ancestors = stack.pop()
        out.append((node, ancestors))
        stack.extend((child, (*ancestors, node)) for child in reversed(children(node)))
    return out


REPEATED = (
    "class A(nn.Module):\n    def forward(self, x):\n        x = self.norm(x)\n"
    "        x = self.norm(x)\n        return x\n\n\n"
    "class B(nn.Module):\n    def forward(self, x):\n        x = self.norm(x)\n        return x\n"
)


# Lines repeated in one method, under repeated headers, in methods of the same name; a line
# whose beginning repeats another line (generated up to a node, the code is not unique).
NESTED_REPEATS = (
    "class A(nn.Module):\n    def forward(self, x):\n        if x is None:\n"
    "            x = self.norm(x)\n            y = 1\n        if x is None:\n"
    "            x = self.norm(x)\n            y = 2\n        return x\n\n"
    "    def forward_chunk(self, x):\n        x = self.norm(x) + 1\n        x = self.norm(x)\n"
    "        return x\n\n    @property\n    def forward(self, x):\n        return x\n\n\n"
    "@decorator\ndef forward(x):\n    x = self.norm(x)\n    return x\n"
)


@pytest.mark.parametrize("text", [*POSITION_SAMPLES, REPEATED, NESTED_REPEATS])
def test_located_positions_match_the_provider_for_every_node(text):
    # Only the statements holding the nodes are generated (or their beginning); repeated lines
    # are searched in narrower stretches, then fall back outward.
    module = cst.parse_module(text)
    pairs = _with_ancestors(module)
    expected = _provider_ranges(module)
    got = located_ranges(module, text, pairs)
    assert {id(n): got[id(n)] for n, _ in pairs} == {id(n): expected[id(n)] for n, _ in pairs}
    for node, ancestors in pairs:  # alone, as a statement's header or a whole statement
        assert located_ranges(module, text, [(node, ancestors)])[id(node)] == expected[id(node)]


def test_located_positions_without_known_ancestors_generate_the_module():
    module = cst.parse_module(REPEATED)
    expected = _provider_ranges(module)
    pairs = [(node, ()) for node, _ in _with_ancestors(module)]
    assert located_ranges(module, REPEATED, pairs) == {id(n): expected[id(n)] for n, _ in pairs}


def test_findings_deep_in_repeated_code_point_at_their_own_line():
    text = "import torch\n\n" + "\n\n".join(
        f"def f{i}():\n    x = torch.randn(8, 16)\n    x.half()\n" for i in range(3)
    )
    lines = [
        f.span.start.line
        for f in lint_text(text, "a.py", Settings(root=Path.cwd())).findings
        if f.code == "FP102"
    ]
    assert lines == [5, 10, 15]
