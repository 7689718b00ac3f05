"""The development corpus's join of findings with labels (benchmarks/corpus.py): exact places,
moved lines found by their text's hash, library-mode findings borrowing the default label, and
the per-rule table. The corpus itself is not run here (real repositories, minutes)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "corpus.py"
spec = importlib.util.spec_from_file_location("corpus_bench", SCRIPT)
corpus = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = corpus  # dataclasses look their module up there
spec.loader.exec_module(corpus)


def label(line, verdict="true", mode="default", code="FP304", text="x = y + 1e-8"):
    return {
        "repo": "r", "path": "a/b.py", "line": line, "code": code, "mode": mode,
        "verdict": verdict, "reason": "why", "hash": corpus.line_hash(text),
    }  # fmt: skip


def finding(line, mode="default", code="FP304", text="x = y + 1e-8"):
    return corpus.Finding("r", "a/b.py", line, code, mode, "msg", corpus.line_hash(text))


def test_exact_place_wins_over_a_moved_line():
    labels = [label(10, "false"), label(12, "true")]
    [(_, matched, borrowed)] = corpus.join([finding(12)], labels)
    assert matched["verdict"] == "true" and not borrowed


def test_moved_line_is_found_by_its_text_nearest_first():
    labels = [label(10, "false"), label(40, "true")]
    [(_, matched, _)] = corpus.join([finding(14, text="    x = y + 1e-8")], labels)
    assert matched["line"] == 10


def test_identical_lines_elsewhere_stay_unread():
    labels = [label(10, "false")]
    joined = corpus.join([finding(10), finding(30)], labels)
    assert joined[0][1] is not None and joined[1][1] is None


def test_a_moved_label_is_used_once():
    labels = [label(10, "false")]
    joined = corpus.join([finding(12), finding(30)], labels)
    assert joined[0][1] is not None and joined[1][1] is None


def test_other_text_code_or_mode_does_not_match():
    labels = [label(10), label(11, code="FP202"), label(11, mode="library")]
    joined = corpus.join([finding(11, text="z = 2")], labels)
    assert joined[0][1] is None


def test_library_finding_borrows_the_default_label_only_when_it_has_none():
    own = corpus.join(
        [finding(10, mode="library")], [label(10, "false"), label(10, mode="library")]
    )
    assert own[0][1]["mode"] == "library" and not own[0][2]
    borrowed = corpus.join([finding(10, mode="library")], [label(10, "false")])
    assert borrowed[0][1]["verdict"] == "false" and borrowed[0][2]


def test_table_counts_precision_over_read_findings():
    labels = [label(1, "true"), label(2, "false"), label(3, "true")]
    findings = [finding(n, text=f"line {n}") for n in (1, 2, 3, 4)]
    [row] = corpus.table(corpus.join(findings, labels))
    assert (row["findings"], row["read"], row["true"], row["false"]) == (4, 3, 2, 1)
    assert row["precision"] == 2 / 3


def test_sample_is_stable_and_per_rule():
    findings = [finding(n, code=c, text=str(n)) for n in range(20) for c in ("FP202", "FP203")]
    joined = corpus.join(findings, [])
    first = corpus.sample(joined, 5, seed=1)
    again = corpus.sample(list(reversed(joined)), 5, seed=1)
    assert [(f.code, f.line) for f, _, _ in first] == [(f.code, f.line) for f, _, _ in again]
    assert sum(f.code == "FP202" for f, _, _ in first) == 5
