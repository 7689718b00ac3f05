"""Random edits of real files through the language server's incremental parse, each compared
with a full parse: the check to rerun after changing ``lsp/incremental.py``.

    .venv/bin/python benchmarks/incremental_stress.py [--files 80] [--edits 10] [--seed 0]
        [--near-definitions]

Edits land anywhere in files of the installed torch, transformers and diffusers (half of them
at a line start), or with ``--near-definitions`` on the lines around top-level classes and
functions of their model and pipeline files (where big bodies are stood in for). Each edit
whose text libcst parses must give back a tree that deep-equals the full parse, the text
itself, and the same statement bounds; the edited text then becomes the next version. Prints
how the edits were parsed and the differences (which must be 0), and exits 1 if there are any.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from importlib.util import find_spec
from pathlib import Path

import libcst as cst

from fp16lint.lsp import incremental

ANYWHERE = ["x", "\n", "    ", "# c\n", ")", '"""', "def g():\n    pass\n", "\\\n", "if x:\n"]
ANYWHERE += ["        y = 1\n", "    # z\n", "\n\n", "    def h(self):\n        return 1\n"]
NEAR_DEFINITIONS = ["x = 1\n", "\n", "# c\n", "@dec\n", "    y = 2\n", "    # z\n", "class Q:\n"]
NEAR_DEFINITIONS += ["def g():\n    pass\n", "if x:\n", '"""', "x = (\n", ")\n", "\\\n", "    \n"]


def sources(near_definitions: bool) -> list[Path]:
    files = []
    for package in ("torch", "transformers", "diffusers"):
        spec = find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            sys.exit(f"{package} is not installed")
        root = Path(next(iter(spec.submodule_search_locations)))
        if near_definitions:
            files += sorted(root.rglob("modeling_*.py")) + sorted(root.rglob("pipeline_*.py"))
        else:
            files += sorted(root.rglob("*.py"))
    return files


def edit_at(text: str, rng: random.Random, near_definitions: bool) -> int | None:
    if not near_definitions:
        at = rng.randrange(len(text) + 1)
        return text.rfind("\n", 0, at) + 1 if rng.random() < 0.5 else at
    lines = text.split("\n")
    tops = [i for i, line in enumerate(lines) if line.startswith(("class ", "def ", "@"))]
    if not tops:
        return None
    line = max(rng.choice(tops) - rng.choice([0, 0, 1, 2]), 0)
    return sum(len(before) + 1 for before in lines[:line])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=80)
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--near-definitions", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    snippets = NEAR_DEFINITIONS if args.near_definitions else ANYWHERE
    counts: Counter[str] = Counter()
    for path in rng.sample(sources(args.near_definitions), args.files):
        text = path.read_text(encoding="utf-8", errors="replace")
        parsed = incremental.parse(text)
        for _ in range(args.edits if parsed is not None else 0):
            at = edit_at(text, rng, args.near_definitions)
            if at is None:
                break
            cut = rng.choice([0, 0, 0, 1, 4])
            edited = text[:at] + rng.choice(snippets) + text[at + cut :]
            result = incremental.parse(edited, parsed)
            try:
                full = cst.parse_module(edited)
            except Exception:
                counts["does not parse"] += 1
                counts["differences"] += result is not None
                continue
            if result is None:
                counts["parsed in full"] += 1
                continue
            fresh = incremental.parse(edited)
            if not (
                result.module.deep_equals(full)
                and result.module.code == edited
                and fresh is not None
                and result.bounds == fresh.bounds
            ):
                counts["differences"] += 1
                print(f"difference: {path} at offset {at}")
                continue
            counts["spliced, body offsets kept" if result.members else "spliced"] += 1
            parsed, text = result, edited
    print(dict(sorted(counts.items())))
    return 1 if counts["differences"] else 0


if __name__ == "__main__":
    sys.exit(main())
