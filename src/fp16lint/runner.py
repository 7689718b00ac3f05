"""One lint run: discover, read, lint (cached, in a process pool), join, suppress, fix.

Output order is (path, line, column, code) whatever ``jobs`` is, and nothing here raises for
bad input: unreadable files and syntax errors become FP000, rule crashes FP999, missing paths
and unwritable files become ``errors`` (exit code 2).
"""

from __future__ import annotations

import difflib
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import libcst as cst
import pathspec

from fp16lint import fixes, notebook, source
from fp16lint.cache import Cache, cache_dir
from fp16lint.config import Settings, enabled_codes
from fp16lint.discovery import discover
from fp16lint.engine import FILE_LEVEL, FileSummary, engine_finding, lint_source
from fp16lint.findings import Finding
from fp16lint.project import run_project
from fp16lint.rules import SYNTAX_ERROR, all_rules
from fp16lint.rules.base import Rule

MAX_FIX_ROUNDS = 10


@dataclass(frozen=True)
class Options:
    jobs: int | None = None  # None: every core
    use_cache: bool = True
    fix: bool = False
    unsafe_fixes: bool = False
    diff: bool = False  # compute fixes and report them as a diff, write nothing


@dataclass
class LintResult:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    fixed: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    fixed_text: str | None = None  # lint_text with fixes: the fixed buffer


@dataclass(frozen=True)
class _Job:
    path: str  # as displayed and reported
    text: str
    module_name: str
    is_package: bool


def module_name_for(path: Path) -> tuple[str, bool]:
    """Dotted module name from the enclosing packages (folders with ``__init__.py``)."""
    path = path.resolve()
    is_package = path.stem == "__init__"
    parts = [] if is_package else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists() and folder != folder.parent:
        parts.append(folder.name)
        folder = folder.parent
    return ".".join(reversed(parts)), is_package


def display_path(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def selected_rules(settings: Settings) -> list[type[Rule]]:
    codes = enabled_codes(settings)
    return [rule for rule in all_rules() if rule.code in codes]


# --- per-file work, run in worker processes ------------------------------------------------
_worker_rules: list[type[Rule]] = []


def _init_worker(codes: list[str]) -> None:
    global _worker_rules
    _worker_rules = [rule for rule in all_rules() if rule.code in codes]


def _lint_job(job: _Job) -> FileSummary:
    return lint_source(
        job.path, job.text, _worker_rules, module_name=job.module_name, is_package=job.is_package
    )


def _lint_jobs(jobs: list[_Job], rules: list[type[Rule]], workers: int) -> list[FileSummary]:
    codes = [rule.code for rule in rules]
    if workers <= 1 or len(jobs) < 2 * workers:
        _init_worker(codes)
        return [_lint_job(job) for job in jobs]
    chunk = max(1, min(16, len(jobs) // (workers * 8)))
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(codes,)) as pool:
        return list(pool.map(_lint_job, jobs, chunksize=chunk))


# --- the run ----------------------------------------------------------------------------------
class _PerFileIgnores:
    def __init__(self, settings: Settings):
        self.root = settings.root.resolve()
        self.rules = [
            (pathspec.GitIgnoreSpec.from_lines([glob]), codes)
            for glob, codes in settings.per_file_ignores.items()
        ]

    def codes_for(self, path: Path) -> tuple[str, ...]:
        if not self.rules:
            return ()
        try:
            rel = path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            rel = path.as_posix()
        return tuple(c for spec, codes in self.rules if spec.match_file(rel) for c in codes)


def _read_error(path: str, exc: source.SourceError) -> FileSummary:
    finding = engine_finding(SYNTAX_ERROR, path, FILE_LEVEL, f"{exc}; the file was not linted.")
    return FileSummary(path, [finding])


def lint_paths(paths: Iterable[Path], settings: Settings, options: Options = Options()) -> LintResult:
    paths = list(paths)
    result = LintResult()
    found = discover(paths, settings)
    result.errors.extend(f"{display_path(p)}: no such file or directory" for p in found.missing)
    if not found.files and not found.missing:
        result.warnings.append("No Python files found under the given path(s).")
    rules = selected_rules(settings)
    cache = None
    if options.use_cache:
        salt = repr((sorted(r.code for r in rules), _settings_key(settings)))
        cache = Cache(cache_dir(settings.root), salt)

    sources: dict[str, tuple[Path, source.Source | notebook.Notebook]] = {}
    summaries: dict[str, FileSummary] = {}
    jobs: list[tuple[_Job, str | None]] = []
    for path in found.files:
        shown = display_path(path)
        try:
            data = path.read_bytes()
            decoded = notebook.decode(path, data)
        except OSError as exc:
            summaries[shown] = _read_error(shown, source.SourceError(f"cannot read file: {exc.strerror}"))
            continue
        except source.SourceError as exc:
            summaries[shown] = _read_error(shown, exc)
            continue
        sources[shown] = (path, decoded)
        key = cache.key(shown, data) if cache else None
        cached = cache.get(key) if cache and key else None
        if cached is not None:
            summaries[shown] = cached
            continue
        module_name, is_package = module_name_for(path)
        jobs.append((_Job(shown, decoded.text, module_name, is_package), key))

    workers = options.jobs or os.cpu_count() or 1
    for (job, key), summary in zip(jobs, _lint_jobs([j for j, _ in jobs], rules, workers), strict=True):
        summaries[job.path] = summary
        if cache and key:
            cache.put(key, summary)
    result.files = len(found.files)

    findings = _filter(summaries, run_project(summaries.values(), rules, settings), settings)
    if options.fix or options.diff:
        problems = _fix(findings, sources, rules, settings, options, result)
        if options.fix and not options.diff and result.fixed:
            # Report what is left as a plain run would see it, project findings included.
            after = lint_paths(paths, settings, replace(options, fix=False))
            findings = after.findings
        findings = [*findings, *problems]
    notebooks = {k: d for k, (_, d) in sources.items() if isinstance(d, notebook.Notebook)}
    result.findings = notebook.to_cells(sorted(findings, key=lambda f: f.sort_key), notebooks)
    return result


def _settings_key(settings: Settings) -> str:
    return repr((settings.assume_fp16,))


def _filter(
    summaries: dict[str, FileSummary], project_findings: list[Finding], settings: Settings
) -> list[Finding]:
    """Drop findings silenced by ``# noqa`` or ``per-file-ignores``."""
    ignores = _PerFileIgnores(settings)
    out = []
    by_path: dict[str, list[Finding]] = {}
    for finding in [*(f for s in summaries.values() for f in s.findings), *project_findings]:
        by_path.setdefault(finding.path, []).append(finding)
    for path, items in by_path.items():
        summary = summaries.get(path)
        ignored = ignores.codes_for(Path(path))
        for finding in items:
            if summary is not None and summary.noqa.suppresses(finding.code, finding.span.start.line):
                continue
            if any(finding.code.startswith(code) for code in ignored):
                continue
            out.append(finding)
    return out


def _fix(
    findings: list[Finding],
    sources: dict[str, tuple[Path, source.Source | notebook.Notebook]],
    rules: list[type[Rule]],
    settings: Settings,
    options: Options,
    result: LintResult,
) -> list[Finding]:
    """Apply fixes file by file (re-linting each until stable) and write or diff them.

    Returns findings the fixing itself produced (a fix that would break a file)."""
    by_path: dict[str, list[Finding]] = {}
    for finding in findings:
        if fixes.is_applicable(finding.fix, options.unsafe_fixes) and finding.path in sources:
            by_path.setdefault(finding.path, []).append(finding)
    problems: list[Finding] = []
    for path, items in by_path.items():
        file_path, original = sources[path]
        text, fixed, problem = fix_text(path, original.text, items, rules, settings, options)
        if problem:
            problems.append(problem)
        if text == original.text:
            continue
        if options.diff:
            result.diffs.append(_diff(path, original.text, text))
            result.fixed += fixed
            continue
        try:
            data = original.encode(text)
        except source.SourceError as exc:  # a notebook whose cells a fix would merge
            result.errors.append(f"{path}: {exc}")
            continue
        error = _write(file_path, data)
        if error:
            result.errors.append(f"{path}: {error}; fixes not written")
        else:
            result.fixed += fixed
    return problems


def fix_text(
    path: str,
    text: str,
    findings: list[Finding],
    rules: list[type[Rule]],
    settings: Settings,
    options: Options,
) -> tuple[str, int, Finding | None]:
    """Apply fixes to ``text`` until none is left (at most MAX_FIX_ROUNDS rounds).

    Returns the fixed text, the number of fixes applied, and an FP000 finding if a round of
    fixes would have broken the syntax (that round is dropped)."""
    fixed = 0
    module_name, is_package = module_name_for(Path(path))
    for _ in range(MAX_FIX_ROUNDS):
        new_text, applied = fixes.apply(text, findings, options.unsafe_fixes)
        if not applied or new_text == text:
            break
        try:
            cst.parse_module(new_text)
        except (cst.ParserSyntaxError, RecursionError):
            codes = ", ".join(sorted({f.code for f in applied}))
            message = (
                f"Fixes for {codes} would break the file's syntax, so they were not applied; "
                "please report this as a bug."
            )
            return text, fixed, engine_finding(SYNTAX_ERROR, path, FILE_LEVEL, message)
        text = new_text
        fixed += len(applied)
        summary = lint_source(path, text, rules, module_name=module_name, is_package=is_package)
        findings = _filter({path: summary}, [], settings)
    return text, fixed, None


def _write(path: Path, data: bytes) -> str | None:
    """Write fixed bytes atomically; refuse symlinks and read-only files."""
    if path.is_symlink():
        return "is a symbolic link"
    if not os.access(path, os.W_OK):
        return "file is read-only"
    try:
        source.write_atomic(path, data)
    except OSError as exc:
        return f"cannot write: {exc.strerror or exc}"
    return None


def _diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), path, path
    )
    return "".join(lines)


def lint_text(text: str, path: str, settings: Settings, options: Options = Options()) -> LintResult:
    """Lint text that is not on disk (standard input, an editor buffer) as if it were ``path``."""
    rules = selected_rules(settings)
    module_name, is_package = module_name_for(Path(path))
    summary = lint_source(path, text, rules, module_name=module_name, is_package=is_package)
    summaries = {path: summary}
    findings = _filter(summaries, run_project(summaries.values(), rules, settings), settings)
    result = LintResult(files=1)
    if options.fix or options.diff:
        new_text, result.fixed, problem = fix_text(path, text, findings, rules, settings, options)
        result.fixed_text = new_text
        if result.fixed:
            summary = lint_source(path, new_text, rules, module_name=module_name, is_package=is_package)
            findings = _filter({path: summary}, [], settings)
        findings = [*findings, *([problem] if problem else [])]
    result.findings = sorted(findings, key=lambda f: f.sort_key)
    return result
