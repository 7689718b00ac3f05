"""CPU time of linting a sample of files against the bare libcst parse of the same files, in one
process: the analysis' own cost, free of pool start-up, caching and output.

    .venv/bin/python benchmarks/lint_vs_parse_cpu.py [--corpora torch,transformers,diffusers]
        [--sample 200] [--runs 3]

uses the same deterministic samples as ``bench_static.py --sample`` and prints, per corpus, the
smallest CPU seconds of ``--runs`` runs of ``engine.lint_source`` (every rule) and of
``libcst.parse_module`` over the sample, and their ratio. To compare two versions of the
sources, run it with ``PYTHONPATH=<a copy of src>`` for each, alternating: single runs on a
shared 2-core machine vary by about 5%.
"""

from __future__ import annotations

import argparse
import random
import time
from importlib.util import find_spec
from pathlib import Path

import libcst

from fp16lint.engine import lint_source
from fp16lint.runner import selected_rules
from fp16lint.settings import Settings


def sample(name: str, size: int) -> list[tuple[str, str]]:
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    files = sorted(random.Random(0).sample(files, min(size, len(files))))
    return [(str(p), p.read_text(encoding="utf-8", errors="replace")) for p in files]


def cpu_seconds(work, items: list[tuple[str, str]]) -> float:
    start = time.process_time()
    for path, text in items:
        work(path, text)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default="torch,transformers,diffusers")
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rules = selected_rules(Settings(root=Path.cwd()))

    def lint(path: str, text: str) -> None:
        lint_source(path, text, rules, module_name="sample.module")

    def parse(path: str, text: str) -> None:
        libcst.parse_module(text)

    for name in args.corpora.split(","):
        items = sample(name, args.sample)
        linted, parsed = [], []
        for _ in range(args.runs):
            linted.append(cpu_seconds(lint, items))
            parsed.append(cpu_seconds(parse, items))
        ratio = min(linted) / min(parsed)
        print(f"{name}: lint {min(linted):.2f} s, parse {min(parsed):.2f} s, ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
