"""Real-code sweep (issue 10): lint every file of big installed packages with every rule, then
fix a copy of them with ``--fix --unsafe-fixes`` and check that nothing was corrupted.

    .venv/bin/python benchmarks/sweep.py [--packages torch,transformers,...] [--sample N]
        [--jobs 2] [--no-fix] [--compare-prefilter] [--json report.json]

For each package (located on disk, never imported) the sources are copied to a temporary
folder (``copy2``: modes and mtimes kept), then:

1. **lint** with ``select = ["ALL"]``: files, findings per rule, wall time; FP999 (internal
   errors, time-outs, worker crashes) must be 0, and every FP000 must be a file that CPython's
   ``compile()`` rejects too;
2. **fix** with ``--fix --unsafe-fixes``: every changed file still compiles and keeps its mode;
   every changed line lies inside a line range of a fix the first pass reported; every other
   file keeps its bytes and its mtime;
3. **fix again**: changes nothing (idempotent);
4. optionally **compare** the lint pass with the prefilter off: same findings.

The lint and fix passes share a cache, so the fix passes re-lint only the files they change.
Exits 1 when any check fails; ``--json`` writes every figure. ``tests/reliability/
test_sweep_sample.py`` runs this on a small sample in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from fp16lint.cache import CACHE_DIR_ENV
from fp16lint.fixes import is_applicable
from fp16lint.runner import Options, lint_paths
from fp16lint.settings import Settings

PACKAGES = ("torch", "transformers", "diffusers", "timm", "numpy", "scipy")
# Where to look for a package that is not installed in this environment (scipy's sources, say).
EXTRA_SITES = (
    Path(sys.base_prefix)
    / "lib"
    / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    / "site-packages",
)


def package_dir(name: str) -> Path | None:
    """The package's folder, found without importing it."""
    spec = find_spec(name)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    for site in EXTRA_SITES:
        if (site / name / "__init__.py").exists():
            return site / name
    return None


@dataclass
class Report:
    package: str
    files: int = 0
    seconds: float = 0.0
    findings: Counter = field(default_factory=Counter)
    fp000: list[str] = field(default_factory=list)
    fp000_compiles: list[str] = field(default_factory=list)  # FP000 where compile() succeeds
    fp999: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fixable: int = 0
    fixed: int = 0
    fixed_files: int = 0
    fix_seconds: float = 0.0
    not_compiling: list[str] = field(default_factory=list)
    mode_changed: list[str] = field(default_factory=list)
    outside_ranges: list[str] = field(default_factory=list)
    untouched_changed: list[str] = field(default_factory=list)
    not_idempotent: list[str] = field(default_factory=list)
    prefilter_differences: int | None = None

    @property
    def failed(self) -> bool:
        return bool(
            self.fp000_compiles
            or self.fp999
            or self.not_compiling
            or self.mode_changed
            or self.outside_ranges
            or self.untouched_changed
            or self.not_idempotent
            or self.prefilter_differences
        )

    def to_dict(self) -> dict:
        data = {k: v for k, v in vars(self).items()}
        data["findings"] = dict(sorted(self.findings.items()))
        data["files_per_second"] = round(self.files / self.seconds, 1) if self.seconds else None
        return data


def copy_sources(
    source: Path,
    dest: Path,
    sample: int | None,
    prefer: tuple[str, ...] = (),
    max_bytes: int | None = None,
    seed: int = 0,
) -> None:
    """Copy the package (its .py files, or a sample of them with the __init__.py files above
    them so that module names stay right), keeping modes and mtimes. A sample takes files holding one of
    the ``prefer`` substrings first (to exercise fixes), then random ones."""
    files = sorted(source.rglob("*.py"))
    if sample is not None:
        inits = [f for f in files if f.name == "__init__.py"]
        others = [f for f in files if f.name != "__init__.py"]
        if max_bytes is not None:
            others = [f for f in others if f.stat().st_size <= max_bytes]
        random.Random(seed).shuffle(others)
        if prefer:
            liked = [f for f in others if any(t in f.read_text(errors="replace") for t in prefer)]
            others = liked + [f for f in others if f not in liked]
        chosen = others[:sample]
        folders = {folder for f in chosen for folder in f.parents}
        files = sorted({*chosen, *(f for f in inits if f.parent in folders)})
    for file in files:
        if "__pycache__" in file.parts:
            continue
        target = dest / file.relative_to(source.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    out = {}
    for path in root.rglob("*.py"):
        info = path.stat()
        out[str(path)] = (path.read_bytes(), info.st_mtime_ns, info.st_mode)
    return out


def _compiles(data: bytes, path: str) -> bool:
    try:
        compile(data, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return False
    return True


def _changed_lines(before: bytes, after: bytes) -> list[tuple[int, int]]:
    """1-based line ranges of ``before`` that differ in ``after``."""
    import difflib

    old, new = before.splitlines(), after.splitlines()
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return [
        (i1 + 1, max(i1 + 1, i2)) for tag, i1, i2, _, _ in matcher.get_opcodes() if tag != "equal"
    ]


def _key(findings) -> list[tuple]:
    return sorted(
        (f.path, f.span.start.line, f.span.start.column, f.code, f.message) for f in findings
    )


def sweep(
    package: str,
    source: Path,
    work: Path,
    jobs: int,
    sample: int | None = None,
    prefer: tuple[str, ...] = (),
    max_bytes: int | None = None,
    fix: bool = True,
    compare_prefilter: bool = False,
) -> Report:
    report = Report(package)
    root = work / "src"
    copy_sources(source, root, sample, prefer, max_bytes)
    os.environ[CACHE_DIR_ENV] = str(work / "cache")
    settings = Settings(root=root, select=("ALL",))
    before = snapshot(root)
    report.files = len(before)

    start = time.perf_counter()
    result = lint_paths([root], settings, Options(jobs=jobs))
    report.seconds = time.perf_counter() - start
    report.warnings, report.errors = result.warnings, result.errors
    report.findings = Counter(f.code for f in result.findings)
    for finding in result.findings:
        where = f"{Path(finding.path).resolve().relative_to(root)}:{finding.span.start.line}"
        if finding.code == "FP999":
            report.fp999.append(f"{where}: {finding.message}")
        elif finding.code == "FP000":
            report.fp000.append(f"{where}: {finding.message}")
            if _compiles(Path(finding.path).read_bytes(), finding.path):
                report.fp000_compiles.append(where)
    report.fixable = sum(is_applicable(f.fix, True) for f in result.findings)

    if compare_prefilter:
        plain = lint_paths([root], settings, Options(jobs=jobs, use_cache=False, prefilter=False))
        a, b = set(_key(result.findings)), set(_key(plain.findings))
        report.prefilter_differences = len(a ^ b)

    if fix:
        _fix_checks(report, root, settings, jobs, result.findings, before)
    return report


def _fix_checks(
    report: Report, root: Path, settings: Settings, jobs: int, findings, before
) -> None:
    allowed: dict[str, list[tuple[int, int]]] = {}
    for finding in findings:
        if is_applicable(finding.fix, True):
            ranges = allowed.setdefault(str(Path(finding.path).resolve()), [])
            ranges.extend((e.span.start.line, e.span.end.line) for e in finding.fix.edits)
    options = Options(jobs=jobs, fix=True, unsafe_fixes=True)
    start = time.perf_counter()
    fixed = lint_paths([root], settings, options)
    report.fix_seconds = time.perf_counter() - start
    report.fixed = fixed.fixed
    report.errors += fixed.errors
    after = snapshot(root)
    for path, (data, mtime, mode) in before.items():
        new_data, new_mtime, new_mode = after[path]
        rel = str(Path(path).relative_to(root))
        if new_data == data:
            if (new_mtime, new_mode) != (mtime, mode):
                report.untouched_changed.append(rel)
            continue
        report.fixed_files += 1
        if path not in allowed:
            report.untouched_changed.append(rel)
        if not _compiles(new_data, path):
            report.not_compiling.append(rel)
        if new_mode != mode:
            report.mode_changed.append(rel)
        # lines some edit spans (a fix's edits on adjacent lines change one block of lines)
        covered = {line for a, b in allowed.get(path, []) for line in range(a, b + 1)}
        for first, last in _changed_lines(data, new_data):
            if not covered.issuperset(range(first, last + 1)):
                report.outside_ranges.append(f"{rel}:{first}-{last}")
    lint_paths([root], settings, options)
    again = snapshot(root)
    report.not_idempotent = [
        str(Path(p).relative_to(root)) for p, value in again.items() if value[0] != after[p][0]
    ]


def print_report(reports: list[Report]) -> None:
    header = f"{'package':<13}{'files':>7}{'s':>9}{'files/s':>9}{'FP000':>7}{'FP999':>7}"
    header += f"{'fixable':>9}{'fixed':>7}{'files':>7}{'fix s':>8}  problems"
    print(header)
    for r in reports:
        problems = [
            f"{name}={len(value)}"
            for name in (
                "fp000_compiles",
                "not_compiling",
                "mode_changed",
                "outside_ranges",
                "untouched_changed",
                "not_idempotent",
            )
            if (value := getattr(r, name))
        ]
        if r.prefilter_differences:
            problems.append(f"prefilter_differences={r.prefilter_differences}")
        rate = r.files / r.seconds if r.seconds else 0
        print(
            f"{r.package:<13}{r.files:>7}{r.seconds:>9.1f}{rate:>9.1f}{len(r.fp000):>7}"
            f"{len(r.fp999):>7}{r.fixable:>9}{r.fixed:>7}{r.fixed_files:>7}{r.fix_seconds:>8.1f}"
            f"  {', '.join(problems) or 'none'}"
        )
    total = Counter()
    for r in reports:
        total.update(r.findings)
    print("\nfindings per rule (all packages):")
    for code, count in sorted(total.items()):
        print(f"  {code}  {count}")
    for r in reports:
        for item in (*r.fp999, *r.fp000, *r.errors, *r.warnings):
            print(f"  {r.package}: {item}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", default=",".join(PACKAGES))
    parser.add_argument("--sample", type=int, help="lint a deterministic sample of N files each")
    parser.add_argument("--prefer", default="", help="comma-separated substrings to sample first")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-fix", action="store_true", help="skip the fix safety sweep")
    parser.add_argument("--compare-prefilter", action="store_true")
    parser.add_argument("--json", type=Path, help="write the full report here")
    args = parser.parse_args(argv)
    reports = []
    for package in args.packages.split(","):
        source = package_dir(package)
        if source is None:
            print(f"{package}: not found, skipped", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(prefix=f"fp16lint-sweep-{package}-") as work:
            report = sweep(
                package,
                source,
                Path(work),
                args.jobs,
                args.sample,
                tuple(t for t in args.prefer.split(",") if t),
                fix=not args.no_fix,
                compare_prefilter=args.compare_prefilter,
            )
        reports.append(report)
        print_report([report])
        print(flush=True)
    if len(reports) > 1:
        print_report(reports)
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in reports], indent=2, default=list))
    return 1 if any(r.failed for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
