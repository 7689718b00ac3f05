"""Development corpus: real repositories, fp16lint's findings on them, and a person's labels.

    # 1. once, with the fetched mirrors (fetch tool) and the venv's site-packages:
    .venv/bin/python benchmarks/corpus.py extract /work/corpus --mirrors /work/.mirror
    # 2. any time, offline:
    .venv/bin/python benchmarks/corpus.py run /work/corpus [--code-path /work/wt/other]

``benchmarks/corpus/manifest.tsv`` names each repository, its commit (or installed version) and
the folders taken (only ``*.py``). ``run`` lints every repository as one project, in default mode
and with ``--assume-fp16`` (library mode), joins the findings with
``benchmarks/corpus/labels.tsv`` and prints, per rule and mode: findings, read (labelled), true,
false, precision; then the findings nobody has read yet. ``--code-path`` runs another checkout's
fp16lint (put first on ``PYTHONPATH``, run from a neutral folder); ``--code-rev REPO@REV`` runs the
``fp16lint`` package of a commit (``git archive``), so a read names the exact code it judged. The labels file holds verdicts
and one-sentence reasons, never the repositories' code; a label matches a finding on
repository, path, code, mode and line, or on the hash of the line's stripped text when the line
moved (nearest such line). A library-mode finding with no label of its own takes the default
mode's label of the same place (the hazard is read the same way); the report counts those apart.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent / "corpus"
MANIFEST = HERE / "manifest.tsv"
LABELS = HERE / "labels.tsv"
LABEL_FIELDS = ("repo", "commit", "path", "line", "code", "mode", "verdict", "reason", "hash")
MODES = {"default": (), "library": ("--assume-fp16",)}


@dataclass(frozen=True)
class Entry:
    name: str
    source: str  # github:owner/name, or pip:package
    commit: str  # a commit sha, or the installed version
    folders: tuple[str, ...]


@dataclass
class Finding:
    repo: str
    path: str
    line: int
    code: str
    mode: str
    message: str
    hash: str = ""


def read_manifest(path: Path = MANIFEST) -> list[Entry]:
    entries = []
    for row in path.read_text(encoding="utf-8").splitlines():
        if row.strip() and not row.startswith("#"):
            name, source, commit, folders = row.split("\t")
            entries.append(Entry(name, source, commit, tuple(folders.split(","))))
    return entries


def line_hash(text: str) -> str:
    """A short hash of a source line without its indentation: finds a label again after the
    line moved, without keeping the line itself in the labels file."""
    return hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:12]


# --- extraction -----------------------------------------------------------------------------


def extract(entry: Entry, dest: Path, mirrors: Path, site_packages: Path) -> int:
    """Write the entry's ``*.py`` files under ``dest/name``; returns the number of files."""
    target = dest / entry.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    kind, _, where = entry.source.partition(":")
    if kind == "github":
        git_dir = mirrors / where.replace("/", "+") / "repo"
        specs = [f":(glob){'' if f == '.' else f + '/'}**/*.py" for f in entry.folders]
        archive = subprocess.run(
            ["git", f"--git-dir={git_dir}", "archive", entry.commit, "--", *specs],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    elif kind == "pip":
        if not (site_packages / f"{where}-{entry.commit}.dist-info").is_dir():
            raise SystemExit(f"{where} {entry.commit} is not installed in {site_packages}")
        for folder in entry.folders:
            shutil.copytree(
                site_packages / folder,
                target / folder,
                ignore=lambda _d, names: [n for n in names if n == "__pycache__"],
            )
    else:
        raise SystemExit(f"unknown source {entry.source!r}")
    return sum(1 for _ in target.rglob("*.py"))


# --- running ----------------------------------------------------------------------------------


def run_fp16lint(
    root: Path, entry: Entry, mode: str, code_path: str | None, jobs: int, select: str = "ALL"
) -> list[Finding]:
    """Lint one repository as one project, from a neutral folder (``python -m`` puts the cwd
    first on ``sys.path``; a ``.gitignore`` above the corpus would hide files)."""
    repo_root = root / entry.name
    command = [
        sys.executable, "-m", "fp16lint", "check", str(repo_root), "--select", select,
        "--output-format", "json", "--no-cache", "-j", str(jobs), *MODES[mode],
    ]  # fmt: skip
    env = dict(os.environ)
    if code_path:
        env["PYTHONPATH"] = code_path
    with tempfile.TemporaryDirectory() as cwd:
        done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env)
        if done.returncode not in (0, 1):
            raise SystemExit(f"fp16lint failed on {entry.name} ({done.returncode}):\n{done.stderr}")
        records = json.loads(done.stdout or "[]")
        findings = []
        for record in records:
            absolute = Path(os.path.normpath(Path(cwd) / record["filename"]))
            findings.append(
                Finding(
                    repo=entry.name,
                    path=absolute.relative_to(repo_root).as_posix(),
                    line=record["location"]["row"],
                    code=record["code"],
                    mode=mode,
                    message=record["message"],
                )
            )
    return findings


def add_hashes(findings: list[Finding], root: Path) -> None:
    cache: dict[tuple[str, str], list[str]] = {}
    for finding in findings:
        key = (finding.repo, finding.path)
        if key not in cache:
            path = root / finding.repo / finding.path
            cache[key] = path.read_text(encoding="utf-8", errors="replace").splitlines()
        lines = cache[key]
        if 0 < finding.line <= len(lines):
            finding.hash = line_hash(lines[finding.line - 1])


# --- labels and the join ----------------------------------------------------------------------


def read_labels(path: Path = LABELS) -> list[dict]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle, delimiter="\t") if row.get("repo")]
    for row in rows:
        row["line"] = int(row["line"])
    return rows


def join(findings: list[Finding], labels: list[dict]) -> list[tuple[Finding, dict | None, bool]]:
    """Each finding with its label (or None) and whether that label was borrowed from the
    default mode for a library-mode finding. A label matches its own line first; a label whose
    line has no finding any more may match the nearest finding whose line has the same text
    (the line moved), each such label at most once, so identical lines elsewhere in the file
    stay unread."""
    by_key: dict[tuple, list[dict]] = defaultdict(list)
    for label in labels:
        by_key[(label["repo"], label["path"], label["code"], label["mode"])].append(label)

    def modes(finding: Finding) -> list[str]:
        return [finding.mode] + (["default"] if finding.mode == "library" else [])

    matched: list[tuple[dict | None, bool]] = [(None, False)] * len(findings)
    taken: set[int] = set()
    for index, finding in enumerate(findings):
        for mode in modes(finding):
            key = (finding.repo, finding.path, finding.code, mode)
            hit = next((lab for lab in by_key[key] if lab["line"] == finding.line), None)
            if hit is not None:
                matched[index] = (hit, mode != finding.mode)
                taken.add(id(hit))
                break
    for index, finding in enumerate(findings):
        if matched[index][0] is not None or not finding.hash:
            continue
        for mode in modes(finding):
            key = (finding.repo, finding.path, finding.code, mode)
            moved = [
                lab for lab in by_key[key] if id(lab) not in taken and lab["hash"] == finding.hash
            ]
            if moved:
                hit = min(moved, key=lambda lab: abs(lab["line"] - finding.line))
                matched[index] = (hit, mode != finding.mode)
                taken.add(id(hit))
                break
    return [(finding, *pair) for finding, pair in zip(findings, matched, strict=True)]


def table(joined: list[tuple[Finding, dict | None, bool]]) -> list[dict]:
    """Per (mode, code): findings, read, true, false, precision (true / read)."""
    counts: dict[tuple[str, str], dict] = defaultdict(
        lambda: {"findings": 0, "read": 0, "true": 0, "false": 0, "borrowed": 0}
    )
    for finding, label, borrowed in joined:
        row = counts[(finding.mode, finding.code)]
        row["findings"] += 1
        if label is not None:
            row["read"] += 1
            row[label["verdict"]] += 1
            row["borrowed"] += borrowed
    rows = []
    for (mode, code), row in sorted(counts.items()):
        precision = row["true"] / row["read"] if row["read"] else None
        rows.append({"mode": mode, "code": code, **row, "precision": precision})
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'mode':8} {'rule':6} {'findings':>8} {'read':>5} {'true':>5} {'false':>5} "
          f"{'prec':>6}  (read via default label)")  # fmt: skip
    for row in rows:
        precision = "-" if row["precision"] is None else f"{row['precision']:.0%}"
        print(f"{row['mode']:8} {row['code']:6} {row['findings']:8d} {row['read']:5d} "
              f"{row['true']:5d} {row['false']:5d} {precision:>6}  ({row['borrowed']})")  # fmt: skip


def sample(joined, per_rule: int, seed: int):
    """The same ``per_rule`` findings of each (mode, code) for a given seed and corpus: sorted by
    place, then shuffled; labelled ones count towards the sample."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for item in sorted(joined, key=lambda j: (j[0].repo, j[0].path, j[0].line, j[0].code)):
        groups[(item[0].mode, item[0].code)].append(item)
    chosen = []
    for key in sorted(groups):
        items = groups[key]
        random.Random(f"{seed}:{key}").shuffle(items)
        chosen.extend(items[:per_rule])
    return chosen


def compare(before: list[dict], after: list[dict]) -> None:
    """Two tables side by side (say, the base code's run and a branch's), per mode and rule."""
    keyed = [{(r["mode"], r["code"]): r for r in rows} for rows in (before, after)]

    def cell(row: dict | None) -> str:
        if row is None:
            return f"{0:5d} {'':5} {'':4} {'':4} {'-':>5}"
        precision = "-" if row["precision"] is None else f"{row['precision']:.0%}"
        return f"{row['findings']:5d} {row['read']:5d} {row['true']:4d} {row['false']:4d} {precision:>5}"

    head = f"{'found':>5} {'read':>5} {'true':>4} {'fals':>4} {'prec':>5}"
    print(f"{'mode':8} {'rule':6} | before: {head} | after: {head}")
    for key in sorted(set(keyed[0]) | set(keyed[1])):
        print(f"{key[0]:8} {key[1]:6} | {'':8}{cell(keyed[0].get(key))} | "
              f"{'':7}{cell(keyed[1].get(key))}")  # fmt: skip


def load_findings(path: Path) -> list[Finding]:
    return [Finding(**record) for record in json.loads(path.read_text(encoding="utf-8"))]


def show_unread(joined, root: Path, context: int, limit: int) -> None:
    unread = [finding for finding, label, _ in joined if label is None]
    print(f"\n{len(unread)} unlabelled findings" + (f" (first {limit})" if limit else ""))
    for finding in unread[: limit or None]:
        print(f"\n{finding.mode} {finding.code} {finding.repo}/{finding.path}:{finding.line} "
              f"hash={finding.hash}\n  {finding.message}")  # fmt: skip
        if context:
            lines = (root / finding.repo / finding.path).read_text(errors="replace").splitlines()
            start, end = max(1, finding.line - context), min(len(lines), finding.line + context)
            for number in range(start, end + 1):
                mark = ">" if number == finding.line else " "
                print(f"{mark}{number:6d}| {lines[number - 1]}")


def add_labels(lines: list[str], root: Path, path: Path = LABELS) -> int:
    """Append labels written as ``mode code repo/path:line true|false reason...``, one a line;
    the commit comes from the manifest, the line's hash from the extracted file. A place
    already labelled (same repo, path, line, code, mode) is replaced."""
    commits = {entry.name: entry.commit for entry in read_manifest()}
    labels = read_labels(path)
    fresh = []
    for text in lines:
        if not text.strip() or text.startswith("#"):
            continue
        mode, code, place, verdict, reason = text.split(maxsplit=4)
        where, _, line = place.rpartition(":")
        repo, _, file = where.partition("/")
        if mode not in MODES or verdict not in ("true", "false") or repo not in commits:
            raise SystemExit(f"bad label line: {text!r}")
        source = (root / repo / file).read_text(encoding="utf-8", errors="replace").splitlines()
        fresh.append({
            "repo": repo, "commit": commits[repo], "path": file, "line": int(line), "code": code,
            "mode": mode, "verdict": verdict, "reason": reason.strip(),
            "hash": line_hash(source[int(line) - 1]),
        })  # fmt: skip
    keys = {(f["repo"], f["path"], f["line"], f["code"], f["mode"]) for f in fresh}
    kept = [
        label
        for label in labels
        if (label["repo"], label["path"], label["line"], label["code"], label["mode"]) not in keys
    ]
    rows = sorted(
        kept + fresh, key=lambda r: (r["mode"], r["code"], r["repo"], r["path"], r["line"])
    )
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, LABEL_FIELDS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(fresh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="write the manifest's files under a folder")
    ex.add_argument("root", type=Path)
    ex.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    ex.add_argument(
        "--site-packages",
        type=Path,
        default=Path(sysconfig.get_paths()["purelib"]),
    )
    ex.add_argument("--only", action="append", help="repository names (default: all)")
    run = sub.add_parser("run", help="lint the extracted corpus and join with the labels")
    run.add_argument("root", type=Path)
    run.add_argument("--code-path", help="a checkout whose fp16lint to run (PYTHONPATH)")
    run.add_argument("--code-rev", help="REPO@REV: run that commit's fp16lint package")
    run.add_argument("--only", action="append", help="repository names (default: all)")
    run.add_argument("--mode", choices=sorted(MODES), action="append")
    run.add_argument("--select", help="comma-separated codes to report (default: all)")
    run.add_argument("--lint-select", default="ALL", help="codes fp16lint runs (default: ALL)")
    run.add_argument("--save", type=Path, help="write the findings (JSON) here")
    run.add_argument("--from-json", type=Path, help="read findings saved by --save")
    run.add_argument("--labels", type=Path, default=LABELS)
    run.add_argument("--show", type=int, default=0, help="unlabelled findings to print (0: all)")
    run.add_argument("--context", type=int, default=0, help="source lines around each")
    run.add_argument("--sample", type=int, help="list unlabelled ones among N per rule and mode")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--jobs", "-j", type=int, default=1)
    lab = sub.add_parser("label", help="add labels read from stdin (see add_labels)")
    lab.add_argument("root", type=Path)
    lab.add_argument("--labels", type=Path, default=LABELS)
    cmp = sub.add_parser("compare", help="before/after tables of two runs saved with --save")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    cmp.add_argument("--labels", type=Path, default=LABELS)
    cmp.add_argument("--select", help="comma-separated codes (default: all)")
    args = parser.parse_args(argv)

    if args.command == "compare":
        labels = read_labels(args.labels)
        codes = set(args.select.split(",")) if args.select else None
        runs = [
            [f for f in load_findings(path) if codes is None or f.code in codes]
            for path in (args.before, args.after)
        ]
        compare(*(table(join(run, labels)) for run in runs))
        after = {(f.repo, f.path, f.line, f.code, f.mode) for f in runs[1]}
        lost = sorted(
            {
                (f.mode, f.code, f"{f.repo}/{f.path}:{f.line}")
                for f, label, _ in join(runs[0], labels)
                if label is not None and label["verdict"] == "true"
                and (f.repo, f.path, f.line, f.code, f.mode) not in after
            }
        )  # fmt: skip
        print(f"\ntrue findings of the first run missing from the second: {len(lost)}")
        for mode, code, place in lost:
            print(f"  {mode} {code} {place}")
        return 0
    if args.command == "label":
        print(f"{add_labels(sys.stdin.read().splitlines(), args.root, args.labels)} labels written")
        return 0
    entries = [e for e in read_manifest() if not args.only or e.name in args.only]
    if args.command == "extract":
        for entry in entries:
            count = extract(entry, args.root, args.mirrors, args.site_packages)
            print(f"{entry.name:24} {entry.commit[:12]:12} {count:5d} files")
        return 0

    if args.code_rev:
        repo, _, rev = args.code_rev.rpartition("@")
        checkout = tempfile.mkdtemp(prefix="fp16lint-rev-")
        atexit.register(shutil.rmtree, checkout, True)
        archive = subprocess.run(
            ["git", "-C", repo, "archive", rev, "fp16lint"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", checkout], input=archive.stdout, check=True)
        args.code_path = checkout
    if args.from_json:
        findings = load_findings(args.from_json)
        findings = [f for f in findings if not args.only or f.repo in args.only]
        if args.save:
            args.save.write_text(json.dumps([vars(f) for f in findings], indent=0))
    else:
        findings = []
        for entry in entries:
            for mode in args.mode or sorted(MODES):
                batch = run_fp16lint(
                    args.root, entry, mode, args.code_path, args.jobs, args.lint_select
                )
                add_hashes(batch, args.root)
                findings.extend(batch)
                if args.save:  # after each repository, so a long run can be read as it goes
                    args.save.write_text(json.dumps([vars(f) for f in findings], indent=0))
    if args.select:
        codes = set(args.select.split(","))
        findings = [f for f in findings if f.code in codes]
    joined = join(findings, read_labels(args.labels))
    print_table(table(joined))
    if args.sample:
        joined = sample(joined, args.sample, args.seed)
    show_unread(joined, args.root, args.context, args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
