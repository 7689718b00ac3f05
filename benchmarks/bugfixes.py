"""Recall on real float16 bugs: is the buggy line flagged before its fix, and is it quiet after?

    .venv/bin/python benchmarks/bugfixes.py [--mirrors /work/.mirror] [--code-path CHECKOUT]

``benchmarks/bugfixes/cases.tsv`` lists fixes of float16 bugs in public repositories (read from
their history: repository, fixing commit, the file and the buggy lines in the fix's parent, the
rule codes that name that hazard, ``*`` for any, the folders linted as the project, and the kind
of bug in words; never the code). For each case the repository is linted as one project at the
parent commit and at the fix (``git archive`` from the ``fetch`` mirror), in default and library
mode. A case is *found* when a finding with an expected code starts on a buggy line of the
parent; *still* counts the same codes in the fixed file (a finding the fix should have removed,
read by hand: lines move).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import MODES, Entry, run_fp16lint

CASES = Path(__file__).resolve().parent / "bugfixes" / "cases.tsv"


def read_cases(path: Path = CASES) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [row for row in csv.DictReader(handle, delimiter="\t") if row.get("repo")]


def checkout(mirrors: Path, repo: str, commit: str, folders: list[str], dest: Path) -> None:
    git_dir = mirrors / repo.replace("/", "+") / "repo"
    specs = [f":(glob){'' if f == '.' else f + '/'}**/*.py" for f in folders]
    archive = subprocess.run(
        ["git", f"--git-dir={git_dir}", "archive", commit, "--", *specs],
        capture_output=True,
        check=True,
    )
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--cases", type=Path, default=CASES)
    parser.add_argument("--code-path", help="a checkout whose fp16lint to run (PYTHONPATH)")
    parser.add_argument("--mode", choices=sorted(MODES), action="append")
    args = parser.parse_args()
    modes = args.mode or sorted(MODES)
    found = dict.fromkeys(modes, 0)
    cases = read_cases(args.cases)
    print(f"{'case':<44} {'mode':<8} {'found':<6} {'still':<6} codes on the buggy lines")
    with tempfile.TemporaryDirectory() as work:
        for number, case in enumerate(cases):
            folders = case["folders"].split(",")
            lines = {int(n) for n in case["lines"].split(",")}
            expect = set(case["expect"].split(","))
            trees = {}
            for side, commit in (("parent", case["fix"] + "^"), ("fixed", case["fix"])):
                trees[side] = Path(work) / f"{number}-{side}"
                checkout(args.mirrors, case["repo"], commit, folders, trees[side] / "repo")
            for mode in modes:
                hits, still = [], 0
                for side, tree in trees.items():
                    entry = Entry("repo", "", "", tuple(folders))
                    for finding in run_fp16lint(tree, entry, mode, args.code_path, 1):
                        if finding.path != case["path"]:
                            continue
                        wanted = "*" in expect or finding.code in expect
                        if side == "parent" and finding.line in lines:
                            hits.append((finding.code, wanted))
                        elif side == "fixed" and wanted:
                            still += 1
                ok = any(wanted for _, wanted in hits)
                found[mode] += ok
                name = f"{case['repo'].split('/')[1]}@{case['fix']}"
                codes = ",".join(sorted({c for c, _ in hits})) or "-"
                print(f"{name:<44} {mode:<8} {'yes' if ok else 'no':<6} {still:<6} {codes}")
    for mode in modes:
        print(f"{mode}: {found[mode]} of {len(cases)} buggy lines found")


if __name__ == "__main__":
    main()
