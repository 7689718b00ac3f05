"""FP205 on real attention code (issue 17): how many q·kᵀ-into-softmax sites the installed
packages have, how many are protected, and how many FP205 reports in each mode.

    .venv/bin/python benchmarks/fp205_sites.py [--packages transformers,diffusers,timm]
        [--sample 15] [--seed 0] [--sites-only]

For each package (found on disk, never imported) every file is analysed once for its logit
sites (``analysis.attention``: ``fp16``/``autocast``/``activation``/``function``, or
``upcast``/``sdpa``, protected) and its ``F.scaled_dot_product_attention`` calls; then the package is
linted with FP205 alone in default mode and with ``--assume-fp16``. ``--sample`` prints that
many library-mode findings (seeded) to read and label by hand.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from importlib.util import find_spec
from pathlib import Path

from fp16lint.engine import lint_source
from fp16lint.rules import all_rules
from fp16lint.runner import Options, lint_paths, module_name_for
from fp16lint.settings import Settings

_PROTECTED = ("upcast", "sdpa")


def _root(package: str) -> Path:
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _sites(root: Path, listed: list[str]) -> tuple[Counter, int, int]:
    """Logit sites by status, SDPA calls, and files with SDPA but no unprotected site; each
    reported site's ``path:line status`` is added to ``listed``."""
    rule = next(r for r in all_rules() if r.code == "FP205")
    statuses: Counter = Counter()
    sdpa = sdpa_only = 0
    for path in sorted(root.rglob("*.py")):
        name, package = module_name_for(path)
        summary = lint_source(
            str(path), path.read_text(encoding="utf-8", errors="replace"), [rule],
            module_name=name, is_package=package,
        )  # fmt: skip
        facts = summary.facts.get("attention")
        if not facts:
            continue
        found = Counter(site["status"] for site in facts["sites"])
        reported = {tuple(r["span"]): r for r in summary.facts["ops"] if r["rule"] == "FP205"}
        for span, record in reported.items():
            scaled = " scaled" if record.get("scaled") else ""
            listed.append(f"{path}:{span[0]} {record['status']}{scaled} `{record['text']}`")
        statuses.update(found)
        sdpa += facts["sdpa"]
        if facts["sdpa"] and not sum(v for k, v in found.items() if k not in _PROTECTED):
            sdpa_only += 1
    return statuses, sdpa, sdpa_only


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", default="transformers,diffusers,timm")
    parser.add_argument("--sample", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sites-only", action="store_true", help="skip the two lint passes")
    args = parser.parse_args()
    sample = []
    listed: list[str] = []
    print("package | sites | fp16 | autocast | activation | function | upcast (protected) | "
          "SDPA fallback branch (protected) | SDPA calls | files SDPA-only | FP205 default | "
          "FP205 --assume-fp16")  # fmt: skip
    for package in args.packages.split(","):
        root = _root(package)
        statuses, sdpa, sdpa_only = _sites(root, listed)
        counts = []
        for assume in () if args.sites_only else (False, True):
            settings = Settings(root=root, select=("FP205",), assume_fp16=assume)
            found = lint_paths([root], settings, Options(jobs=args.jobs, use_cache=False))
            findings = [f for f in found.findings if f.code == "FP205"]
            counts.append(len(findings))
            if assume:
                sample += [(package, f) for f in findings]
        row = [statuses[s] for s in ("fp16", "autocast", "activation", "function", *_PROTECTED)]
        print(package, sum(statuses.values()), *row, sdpa, sdpa_only, *counts, sep=" | ")
    if args.sites_only:
        random.Random(args.seed).shuffle(listed)
        print(*sorted(listed[: args.sample]), sep="\n")
    random.Random(args.seed).shuffle(sample)
    for _package, finding in sorted(
        sample[: args.sample], key=lambda x: (x[1].path, x[1].span.start.line)
    ):
        print(f"{finding.path}:{finding.span.start.line}: {finding.message}")


if __name__ == "__main__":
    main()
