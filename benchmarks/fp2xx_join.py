"""FP2xx on real code: counts per rule with and without ``assume-fp16``, and the cost of the
project-wide join.

    .venv/bin/python benchmarks/fp2xx_join.py .venv/lib/python3.11/site-packages/torch \\
        --save /tmp/fp2_torch

lints every ``*.py`` under the folder once with the FP2xx rules (``--jobs`` processes), then runs
the project pass twice on the same summaries — default settings and ``assume_fp16`` — and
prints the per-file time, each join's time, and the finding counts per rule and severity.
``--save PREFIX`` writes ``PREFIX_default.json`` and ``PREFIX_assume.json`` (fp16lint's JSON
finding records) for ``precision_read.py --from-json``. Files are read directly, so folders that
discovery skips (a virtual environment's site-packages) can be measured in place.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

from fp16lint.analysis.context import FileSummary
from fp16lint.engine import lint_source
from fp16lint.project import run_project
from fp16lint.runner import module_name_for, selected_rules
from fp16lint.settings import Settings

SETTINGS = Settings(select=("FP2",))


def _lint(path: Path) -> tuple[FileSummary, float]:
    module, is_package = module_name_for(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    start = time.perf_counter()
    summary = lint_source(
        str(path), text, selected_rules(SETTINGS), module_name=module, is_package=is_package
    )
    return summary, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--save", help="prefix for the JSON results")
    args = parser.parse_args()
    files = sorted(args.root.rglob("*.py"))
    start = time.perf_counter()
    with Pool(args.jobs) as pool:
        results = pool.map(_lint, files, chunksize=8)
    report: dict = {
        "files": len(files),
        "per_file_wall_s": round(time.perf_counter() - start, 2),
        "per_file_cpu_s": round(sum(t for _, t in results), 2),
    }
    summaries = [s for s, _ in results]
    rules = selected_rules(SETTINGS)
    for mode, settings in (
        ("default", SETTINGS),
        ("assume", SETTINGS.with_overrides(assume_fp16=True)),
    ):
        start = time.perf_counter()
        findings = run_project(summaries, rules, settings)
        report[f"join_{mode}_s"] = round(time.perf_counter() - start, 3)
        report[f"{mode}_counts"] = dict(Counter(f"{f.code}/{f.severity.value}" for f in findings))
        if args.save:
            Path(f"{args.save}_{mode}.json").write_text(json.dumps([f.to_dict() for f in findings]))
    report["join_share_of_wall"] = round(
        report["join_default_s"] / (report["per_file_wall_s"] + report["join_default_s"]), 4
    )
    report["internal_errors"] = sum(f.code == "FP999" for s in summaries for f in s.findings)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
