"""Fuzzing: generated programs (hypothesmith) and mutated real code (rule examples and installed
sources, truncated, spliced, with random bytes inserted) go through the engine with every rule
on every file, every formatter, ``--fix --unsafe-fixes`` and the language server's didChange
path. No exception may escape, no rule may crash (FP999), a fix must re-parse and be stable.

This is the bounded CI run; ``FP16LINT_FUZZ_EXAMPLES=2000 pytest tests/reliability/test_fuzz.py``
runs the same checks for longer (the figure in the issue 10 note).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hypothesmith
import libcst as cst
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fp16lint.engine import lint_source
from fp16lint.formatters import FORMATTERS, FormatContext, get_formatter
from fp16lint.rules import all_rules
from fp16lint.runner import Options, lint_text
from fp16lint.settings import Settings

RULES = list(all_rules())
EXAMPLES = sorted(
    {
        text
        for rule in RULES
        for example in (*rule.valid, *(i.code for i in rule.invalid))
        for text in ([example] if isinstance(example, str) else example.values())
    }
)
SITE = Path(next(p for p in sys.path if p.endswith("site-packages")))
REAL = [
    SITE / rel
    for rel in (
        "timm/utils/cuda.py",
        "timm/layers/norm.py",
        "diffusers/training_utils.py",
        "torch/amp/grad_scaler.py",
    )
    if (SITE / rel).exists()
]
REAL_TEXTS = [p.read_text(encoding="utf-8") for p in REAL]
SEEDS = st.one_of(st.sampled_from(EXAMPLES), st.sampled_from(REAL_TEXTS))
EXAMPLES_PER_TEST = int(os.environ.get("FP16LINT_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES_PER_TEST,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


def check(text: str, tmp_path: Path) -> None:
    """Everything a user or an editor can do with ``text``; raises only on a real failure."""
    summary = lint_source("fuzz.py", text, RULES, prefilter=False)
    crashes = [f.message + "\n" + (f.detail or "") for f in summary.findings if f.code == "FP999"]
    assert not crashes, crashes[0]
    context = FormatContext()
    for name in FORMATTERS:
        get_formatter(name)(summary.findings, context)
    options = Options(fix=True, unsafe_fixes=True, prefilter=False)
    result = lint_text(text, "fuzz.py", Settings(root=tmp_path, select=("ALL",)), options)
    fixed = result.fixed_text
    if fixed is not None and fixed != text:
        cst.parse_module(fixed)
        again = lint_text(fixed, "fuzz.py", Settings(root=tmp_path, select=("ALL",)), options)
        assert again.fixed_text == fixed, "a second --fix changed the file again"


def _session_check(text: str, tmp_path: Path) -> None:
    session_module = pytest.importorskip("fp16lint.lsp.session")
    session = session_module.Session([tmp_path])
    path = str(tmp_path / "fuzz.py")
    for version, state in enumerate((text[: len(text) // 2], text), start=1):  # didChange twice
        session.open(path, state, version)
        session.lint(path)


@FUZZ
@given(hypothesmith.from_grammar())
def test_generated_programs(tmp_path_factory, text):
    check(text, tmp_path_factory.getbasetemp())


@st.composite
def mutated(draw):
    """A real or example file, cut, spliced with another, or with random text or bytes in it."""
    text = draw(SEEDS)
    kind = draw(st.sampled_from(["truncate", "splice", "insert-text", "insert-bytes", "delete"]))
    at = draw(st.integers(0, len(text)))
    if kind == "truncate":
        return text[:at]
    if kind == "splice":
        other = draw(SEEDS)
        return text[:at] + other[draw(st.integers(0, len(other))) :]
    if kind == "insert-text":
        piece = draw(
            st.sampled_from(["(", ")", ":", "\n    ", "\\\n", "'''", "if x:\n", ".half()"])
        )
        return text[:at] + piece + text[at:]
    if kind == "insert-bytes":
        noise = draw(st.binary(min_size=1, max_size=8)).decode("latin-1")
        return text[:at] + noise + text[at:]
    return text[:at] + text[at + draw(st.integers(1, 40)) :]


@FUZZ
@given(mutated())
def test_mutated_real_code(tmp_path_factory, text):
    check(text, tmp_path_factory.getbasetemp())


@settings(FUZZ, max_examples=max(10, EXAMPLES_PER_TEST // 3))
@given(mutated())
def test_language_server_did_change_path(tmp_path_factory, text):
    _session_check(text, tmp_path_factory.getbasetemp())


@settings(FUZZ, max_examples=max(15, EXAMPLES_PER_TEST // 2))
@given(st.binary(max_size=400))
def test_random_bytes_through_the_runner(tmp_path_factory, data):
    root = tmp_path_factory.getbasetemp() / "bytes"
    root.mkdir(exist_ok=True)
    (root / "r.py").write_bytes(data)
    from fp16lint.runner import lint_paths

    result = lint_paths([root], Settings(root=root), Options(jobs=1, use_cache=False))
    assert not [f for f in result.findings if f.code == "FP999"]
