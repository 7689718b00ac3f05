"""The fast parse builds the same trees as libcst's and leaves node validation on elsewhere."""

from __future__ import annotations

import threading
from pathlib import Path

import libcst as cst
import pytest

from fp16lint import parsing

SOURCES = sorted((Path(__file__).parents[1] / "fp16lint" / "analysis").glob("*.py"))


@pytest.mark.parametrize("path", SOURCES[:8], ids=lambda p: p.name)
def test_same_tree_as_libcst(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert parsing.parse_module(text).deep_equals(cst.parse_module(text))


def test_syntax_errors_still_raise_and_validation_comes_back() -> None:
    with pytest.raises(cst.ParserSyntaxError):
        parsing.parse_module("def f(:\n")
    with pytest.raises(cst.CSTValidationError):
        cst.Name("not a name")


def test_nodes_built_by_code_are_validated_after_a_parse() -> None:
    parsing.parse_module("x = 1\n")
    with pytest.raises(cst.CSTValidationError):
        cst.Name("not a name")


def test_validation_restored_after_concurrent_parses() -> None:
    text = SOURCES[0].read_text(encoding="utf-8")
    errors: list[BaseException] = []

    def parse_many() -> None:
        try:
            for _ in range(5):
                parsing.parse_module(text)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=parse_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with pytest.raises(cst.CSTValidationError):
        cst.Name("not a name")
