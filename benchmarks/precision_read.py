"""Precision read: run fp16lint over real code and print a sample of findings with context.

    .venv/bin/python benchmarks/precision_read.py --select FP3 --sample 30 \\
        .venv/lib/python3.11/site-packages/{transformers,diffusers,timm,torch}

prints the count per rule (and per path given), then, for each rule, ``--sample`` findings
picked at random (``--seed`` makes the pick repeatable) with ``--context`` lines around each,
so a reader can judge every one as a real hazard or a false positive. ``--from-json`` reads a
saved ``fp16lint check --output-format json`` result instead of running the linter;
``--save-json`` keeps the run's result for later reads (``--base``: the folder a saved result's
relative file names start from). ``--rule`` limits the printed samples
to some codes; ``--all`` prints every finding instead of a sample.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_linter(paths: list[str], select: str, jobs: int) -> list[dict]:
    """Run from an empty folder: paths under the repo's ``.venv`` would otherwise be skipped
    by its ``.gitignore``."""
    command = [
        sys.executable, "-m", "fp16lint", "check", *(str(Path(p).resolve()) for p in paths),
        "--select", select, "--output-format", "json", "--no-cache", "-j", str(jobs),
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as cwd:
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
        if done.returncode not in (0, 1):
            sys.exit(f"fp16lint failed ({done.returncode}):\n{done.stderr}")
        findings = json.loads(done.stdout or "[]")
        for finding in findings:
            finding["filename"] = os.path.normpath(os.path.join(cwd, finding["filename"]))
    return findings


def context(finding: dict, lines: int, base: Path) -> str:
    path = Path(os.path.normpath(base / finding["filename"]))
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        return f"    <cannot read: {exc}>"
    row = finding["location"]["row"]
    start, end = max(1, row - lines), min(len(text), row + lines)
    return "\n".join(
        f"{'>' if number == row else ' '}{number:6d}| {text[number - 1]}"
        for number in range(start, end + 1)
    )


def top_folders(findings: list[dict]) -> dict[str, str]:
    """Each file name's first folder below the folder all findings share (the package)."""
    names = sorted({f["filename"] for f in findings})
    if not names:
        return {}
    common = os.path.commonpath(names) if len(names) > 1 else os.path.dirname(names[0])
    return {name: Path(os.path.relpath(name, common)).parts[0] for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="files or folders to lint")
    parser.add_argument("--select", default="FP", help="rule codes or prefixes (default: all)")
    parser.add_argument("--sample", type=int, default=30, help="findings to print per rule")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--context", type=int, default=4, help="lines before and after")
    parser.add_argument("--rule", action="append", help="print samples only for these codes")
    parser.add_argument("--all", action="store_true", help="print every finding")
    parser.add_argument("--jobs", "-j", type=int, default=2)
    parser.add_argument("--from-json", help="read findings from a saved JSON result")
    parser.add_argument("--save-json", help="write the run's findings to this file")
    parser.add_argument(
        "--base", default=".", help="folder the saved result's relative file names start from"
    )
    args = parser.parse_args(argv)

    if args.from_json:
        findings = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
    elif args.paths:
        findings = run_linter(args.paths, args.select, args.jobs)
    else:
        parser.error("give paths to lint, or --from-json")
    if args.save_json:
        Path(args.save_json).write_text(json.dumps(findings, indent=1), encoding="utf-8")

    by_rule: dict[str, list[dict]] = defaultdict(list)
    for finding in findings:
        by_rule[finding["code"]].append(finding)
    folders = top_folders(findings)
    print(f"{len(findings)} findings")
    for code in sorted(by_rule):
        per_root = Counter(folders[f["filename"]] for f in by_rule[code])
        split = ", ".join(f"{root} {count}" for root, count in per_root.most_common())
        print(f"  {code}: {len(by_rule[code])}  ({split})")

    rng = random.Random(args.seed)
    for code in sorted(by_rule):
        if args.rule and code not in args.rule:
            continue
        chosen = by_rule[code]
        if not args.all and len(chosen) > args.sample:
            chosen = rng.sample(chosen, args.sample)
        chosen = sorted(chosen, key=lambda f: (f["filename"], f["location"]["row"]))
        print(f"\n{'=' * 100}\n{code}: {len(chosen)} of {len(by_rule[code])}\n{'=' * 100}")
        for index, finding in enumerate(chosen, 1):
            row, column = finding["location"]["row"], finding["location"]["column"]
            print(f"\n[{code} #{index}] {finding['filename']}:{row}:{column}")
            print(f"  {finding['message']}")
            print(context(finding, args.context, Path(args.base)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
