"""Every fix on real repositories (issue 18): copy each repository's Python sources (and its
requirement files) to a temporary folder, run ``fp16lint check --fix`` there, and again on a
fresh copy with ``--unsafe-fixes``; check that every changed file compiles and that a second
run changes nothing, and write each changed file's diff for reading.

    .venv/bin/python benchmarks/fix_sweep.py /tmp/fixcorpus/examples /tmp/fixcorpus/minGPT ... \\
        [--diffs /tmp/fixdiffs]

Prints, per repository and mode: files changed, findings per rule before and after the fix,
files that no longer compile, files a second run changed, and diffs whose changed lines are
more than the findings fixed in them or change a line's indentation ("not minimal": read them).
Exits 1 when a fixed file does not compile or a second run changes something.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from fp401_fix_sweep import digests, lint

_KEPT = ("*.py", "requirements*.txt", "pyproject.toml", "setup.cfg", "setup.py")


def copy_sources(repo: Path, dest: Path) -> list[Path]:
    files = []
    for pattern in _KEPT:
        for path in sorted(repo.rglob(pattern)):
            if path.is_file() and not path.is_symlink():
                target = dest / path.relative_to(repo)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                files.append(target)
    return [f for f in files if f.suffix == ".py"]


def _by_rule(findings: list[dict]) -> Counter:
    return Counter(f["code"] for f in findings)


def not_minimal(before: str, after: str) -> list[str]:
    """Reasons a diff changes more than its fixes need: a re-indented line, or more lines
    changed than added back."""
    reasons = []
    old, new = before.splitlines(), after.splitlines()
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "replace":
            if tag != "equal":
                reasons.append(f"{tag} of lines {i1 + 1}-{i2}")
            continue
        for a, b in zip(old[i1:i2], new[j1:j2], strict=False):
            if len(a) - len(a.lstrip()) != len(b) - len(b.lstrip()):
                reasons.append(f"indentation changed at line {i1 + 1}")
    return reasons


def sweep(repo: Path, unsafe: bool, diffs: Path | None) -> bool:
    mode = "--fix --unsafe-fixes" if unsafe else "--fix"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = copy_sources(repo, folder)
        original = {f: f.read_text(encoding="utf-8", errors="replace") for f in files}
        before = lint(folder, select=None)
        extra = ("--fix", "--unsafe-fixes") if unsafe else ("--fix",)
        lint(folder, *extra, select=None)
        fixed = digests(files)
        changed = [
            f for f in files if f.read_text(encoding="utf-8", errors="replace") != original[f]
        ]
        after = lint(folder, select=None)
        broken = []
        for path in changed:
            try:
                compile(path.read_bytes(), str(path), "exec")
            except SyntaxError as exc:
                broken.append(f"{path.relative_to(folder)}: {exc}")
        lint(folder, *extra, select=None)
        again = [f.relative_to(folder) for f in files if digests([f])[f] != fixed[f]]
        wide = {}
        for path in changed:
            text = path.read_text(encoding="utf-8", errors="replace")
            reasons = not_minimal(original[path], text)
            if reasons:
                wide[path.relative_to(folder)] = reasons
            if diffs is not None:
                rel = path.relative_to(folder)
                out = diffs / repo.name / ("unsafe" if unsafe else "safe") / f"{rel}.diff"
                out.parent.mkdir(parents=True, exist_ok=True)
                lines = difflib.unified_diff(
                    original[path].splitlines(True), text.splitlines(True), str(rel), str(rel)
                )
                out.write_text("".join(lines), encoding="utf-8")
    counts_before, counts_after = _by_rule(before), _by_rule(after)
    fixable = _by_rule([f for f in before if f.get("fix")])
    rules = sorted(r for r in fixable if fixable[r])
    per_rule = ", ".join(f"{r} {counts_before[r]}->{counts_after[r]}" for r in rules) or "none"
    print(f"{repo.name} [{mode}]: {len(files)} files, {len(changed)} changed; {per_rule}")
    print(f"  do not compile: {len(broken)}; changed by a second run: {len(again)}; "
          f"not minimal: {len(wide)}")  # fmt: skip
    for line in broken:
        print(f"    broken {line}")
    for path in again:
        print(f"    changed again {path}")
    for path, reasons in wide.items():
        print(f"    not minimal {path}: {'; '.join(reasons[:3])}")
    return not broken and not again


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repos", nargs="+", type=Path)
    parser.add_argument("--diffs", type=Path, help="write each changed file's diff here")
    args = parser.parse_args(argv)
    ok = True
    for repo in args.repos:
        for unsafe in (False, True):
            ok = sweep(repo, unsafe, args.diffs) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
