"""One lint run: discover, read, lint (cached, in a process pool), join, suppress, fix.

Output order is (path, line, column, code) whatever ``jobs`` is, and nothing here raises for
bad input: unreadable files and syntax errors become FP000, rule crashes FP999, missing paths
and unwritable files become ``errors`` (exit code 2).
"""

from __future__ import annotations

import difflib
import multiprocessing
import os
import traceback
from collections import deque
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path

import libcst as cst
import pathspec

from fp16lint import fixes, notebook, source
from fp16lint.analysis.context import FileSummary
from fp16lint.cache import Cache, cache_dir
from fp16lint.config import enabled_codes
from fp16lint.discovery import discover
from fp16lint.engine import FILE_LEVEL, engine_finding, lint_source
from fp16lint.findings import Finding
from fp16lint.parsing import parse_module
from fp16lint.project import ProjectResult, run_project
from fp16lint.rules import INTERNAL_ERROR, SYNTAX_ERROR, all_rules
from fp16lint.rules.base import Rule
from fp16lint.settings import Settings

MAX_FIX_ROUNDS = 10
# libcst needs about 500 bytes of memory per byte of source and is slower than linear on huge
# files (a 10 MB generated file: over 2 minutes and 5 GB). Larger files are skipped with a
# warning, like Semgrep's ``--max-target-bytes``; the largest file in torch is 1.4 MB.
MAX_FILE_CHARS = 2_000_000
FILE_TIME_LIMIT = 60.0  # CPU seconds per file before FP999 "timed out"


@dataclass(frozen=True)
class Options:
    jobs: int | None = None  # None: every core
    use_cache: bool = True
    fix: bool = False
    unsafe_fixes: bool = False
    diff: bool = False  # compute fixes and report them as a diff, write nothing
    prefilter: bool = True  # skip rules (and files) whose tokens do not occur (issue 9)
    max_file_chars: int = MAX_FILE_CHARS
    time_limit: float | None = FILE_TIME_LIMIT


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
@dataclass(frozen=True)
class _WorkerSettings:
    codes: tuple[str, ...]
    prefilter: bool
    time_limit: float | None


_worker_rules: list[type[Rule]] = []
_worker_settings = _WorkerSettings((), True, None)


def _init_worker(settings: _WorkerSettings) -> None:
    global _worker_rules, _worker_settings
    _worker_rules = [rule for rule in all_rules() if rule.code in settings.codes]
    _worker_settings = settings


def _lint_job(job: _Job) -> FileSummary:
    try:
        return lint_source(
            job.path,
            job.text,
            _worker_rules,
            module_name=job.module_name,
            is_package=job.is_package,
            prefilter=_worker_settings.prefilter,
            time_limit=_worker_settings.time_limit,
        )
    except Exception as exc:  # lint_source catches rule errors; this is the last line of defence
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        message = f"Internal error in fp16lint's engine: {type(exc).__name__}: {exc}"
        return FileSummary(
            job.path, [engine_finding(INTERNAL_ERROR, job.path, FILE_LEVEL, message, detail)]
        )


def _lint_chunk(chunk: list[_Job]) -> list[FileSummary]:
    return [_lint_job(job) for job in chunk]


def _chunks(jobs: list[_Job], workers: int) -> list[list[int]]:
    """Job indices in chunks, largest files first: big files go alone at the start and the
    run ends with small chunks of small files, so no core idles while another finishes a big
    file. About 16 chunks per worker bound the tail, 64 files per chunk the pickling cost."""
    order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i].text))
    budget = max(1, sum(len(job.text) for job in jobs) // (workers * 16))
    chunks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index in order:
        current.append(index)
        size += len(jobs[index].text)
        if size >= budget or len(current) >= 64:
            chunks.append(current)
            current, size = [], 0
    if current:
        chunks.append(current)
    return chunks


def _pool(workers: int, settings: _WorkerSettings) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(settings,)
    )


def _lint_jobs(jobs: list[_Job], settings: _WorkerSettings, workers: int) -> list[FileSummary]:
    if workers <= 1 or len(jobs) < 2 * workers:
        _init_worker(settings)
        return [_lint_job(job) for job in jobs]
    results: dict[int, FileSummary] = {}
    queue = deque(_chunks(jobs, workers))
    suspects: list[list[int]] = []
    while queue:
        in_flight: dict[Future, list[int]] = {}
        try:
            with _pool(workers, settings) as pool:
                while queue or in_flight:
                    # Two chunks per worker in flight: workers never wait for the next chunk,
                    # and if one dies (a crash in libcst's native parser), only the chunks in
                    # flight are suspects.
                    while queue and len(in_flight) < 2 * workers:
                        chunk = queue.popleft()
                        in_flight[pool.submit(_lint_chunk, [jobs[i] for i in chunk])] = chunk
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        results.update(zip(in_flight[future], future.result(), strict=True))
                        del in_flight[future]
        except BrokenProcessPool:
            suspects.extend(in_flight.values())
    for chunk in suspects:
        results.update(_isolated([jobs[i] for i in chunk], chunk, settings))
    return [results[i] for i in range(len(jobs))]


def _isolated(
    chunk: list[_Job], indices: list[int], settings: _WorkerSettings
) -> dict[int, FileSummary]:
    """Lint the files of a chunk whose worker died one at a time, each in a worker of its own
    as long as they pass, so that the file that kills a worker is the only one reported."""
    results: dict[int, FileSummary] = {}
    pending = deque(zip(indices, chunk, strict=True))
    while pending:
        try:
            with _pool(1, settings) as pool:
                while pending:
                    index, job = pending[0]
                    results[index] = pool.submit(_lint_job, job).result()
                    pending.popleft()
        except BrokenProcessPool:
            index, job = pending.popleft()
            message = (
                "fp16lint's worker process died on this file (a crash in libcst's native "
                "parser, or out of memory); the file was not linted."
            )
            results[index] = FileSummary(
                job.path, [engine_finding(INTERNAL_ERROR, job.path, FILE_LEVEL, message)]
            )
    return results


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


def lint_paths(
    paths: Iterable[Path], settings: Settings, options: Options = Options()
) -> LintResult:
    paths = list(paths)
    result = LintResult()
    found = discover(paths, settings)
    result.errors.extend(f"{display_path(p)}: {_missing_reason(p)}" for p in found.missing)
    result.warnings.extend(f"{display_path(p)}: skipped: {why}" for p, why in found.skipped)
    if not found.files and not found.missing:
        result.warnings.append("No Python files found under the given path(s).")
    rules = selected_rules(settings)
    cache = None
    if options.use_cache:
        salt = repr((sorted(r.code for r in rules), _settings_key(settings), options.prefilter))
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
            summaries[shown] = _read_error(
                shown, source.SourceError(f"cannot read file: {exc.strerror}")
            )
            continue
        except source.SourceError as exc:
            summaries[shown] = _read_error(shown, exc)
            continue
        if len(decoded.text) > options.max_file_chars:
            size = len(decoded.text) / 1e6
            limit = options.max_file_chars / 1e6
            result.warnings.append(
                f"{shown}: not linted: {size:.1f} million characters is over the "
                f"{limit:g} million limit for one file."
            )
            continue
        sources[shown] = (path, decoded)
        module_name, is_package = module_name_for(path)
        key = cache.key(shown, data, f"{module_name}\0{is_package}") if cache else None
        cached = cache.get(shown, key) if cache and key else None
        if cached is not None:
            summaries[shown] = cached
            continue
        jobs.append((_Job(shown, decoded.text, module_name, is_package), key))

    workers = options.jobs or os.cpu_count() or 1
    worker_settings = _WorkerSettings(
        tuple(rule.code for rule in rules), options.prefilter, options.time_limit
    )
    linted = _lint_jobs([j for j, _ in jobs], worker_settings, workers)
    for (job, key), summary in zip(jobs, linted, strict=True):
        summaries[job.path] = summary
        if cache and key:
            cache.put(job.path, key, summary)
    result.files = len(found.files)
    result.warnings.extend(_unknown_noqa_codes(summaries))

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


def _unknown_noqa_codes(summaries: dict[str, FileSummary]) -> list[str]:
    """A warning for each FP code in a ``# noqa`` that names no rule (a typo silences nothing);
    other tools' codes are not ours to judge."""
    from fp16lint.rules import all_codes

    known = all_codes()
    warnings = []
    for path, summary in summaries.items():
        noqa = summary.noqa
        places = [(line, codes or []) for line, codes in sorted(noqa.lines.items())]
        for line, codes in [*places, ("file-level", noqa.file)]:
            for code in codes:
                if code.startswith("FP") and not any(k.startswith(code) for k in known):
                    warnings.append(
                        f"{path}:{line}: unknown rule code `{code}` in `# noqa` "
                        "(see `fp16lint rules`)"
                    )
    return warnings


def _settings_key(settings: Settings) -> str:
    """The settings a file's summary depends on: every field but the ones applied after the
    per-file pass (suppressions, file selection) or naming where the config came from."""
    after = {"per_file_ignores", "exclude", "extend_exclude", "respect_gitignore", "source"}
    after |= {"select", "extend_select", "ignore", "extend_ignore"}  # in the salt as rule codes
    return repr(sorted((k, repr(v)) for k, v in vars(settings).items() if k not in after))


def _filter(
    summaries: dict[str, FileSummary], project: ProjectResult | None, settings: Settings
) -> list[Finding]:
    """All findings, completed by the project pass, less those silenced by ``# noqa`` or
    ``per-file-ignores``."""
    project = project or ProjectResult()
    ignores = _PerFileIgnores(settings)
    out = []
    by_path: dict[str, list[Finding]] = {}
    per_file = (project.replaced.get(f, f) for s in summaries.values() for f in s.findings)
    for finding in [*(f for f in per_file if f is not None), *project.findings]:
        by_path.setdefault(finding.path, []).append(finding)
    for path, items in by_path.items():
        summary = summaries.get(path)
        ignored = ignores.codes_for(Path(path))
        for finding in items:
            if summary is not None and summary.noqa.suppresses(
                finding.code, finding.span.start.line
            ):
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
    for _ in range(MAX_FIX_ROUNDS):
        new_text, applied = fixes.apply(text, findings, options.unsafe_fixes)
        if not applied or new_text == text:
            break
        try:
            module = parse_module(new_text)
        except (cst.ParserSyntaxError, RecursionError):
            codes = ", ".join(sorted({f.code for f in applied}))
            message = (
                f"Fixes for {codes} would break the file's syntax, so they were not applied; "
                "please report this as a bug."
            )
            return text, fixed, engine_finding(SYNTAX_ERROR, path, FILE_LEVEL, message)
        text = new_text
        fixed += len(applied)
        summary = _lint_one(path, text, rules, options, module)  # the tree just checked
        findings = _filter({path: summary}, None, settings)
    return text, fixed, None


def _lint_one(
    path: str,
    text: str,
    rules: list[type[Rule]],
    options: Options,
    module: cst.Module | None = None,
) -> FileSummary:
    """One file linted in this process with the run's options (``module``: its tree, if the
    caller has parsed it already)."""
    module_name, is_package = module_name_for(Path(path))
    return lint_source(
        path,
        text,
        rules,
        module_name=module_name,
        is_package=is_package,
        prefilter=options.prefilter,
        time_limit=options.time_limit,
        module=module,
    )


def _missing_reason(path: Path) -> str:
    if os.path.islink(path):
        return "a symbolic link to nothing, or a loop of symbolic links"
    return "no such file or directory"


def _write(path: Path, data: bytes) -> str | None:
    """Write fixed bytes atomically; refuse symlinks and read-only files."""
    if path.is_symlink():
        return "is a symbolic link"
    try:
        # Mode bits count even for root, who may write anything: read-only means hands off.
        if not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222:
            return "file is read-only"
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
    result = LintResult(files=1)
    if len(text) > options.max_file_chars:
        limit = options.max_file_chars / 1e6
        result.warnings.append(f"{path}: not linted: over the {limit:g} million character limit.")
        return result

    summaries = {path: _lint_one(path, text, rules, options)}
    findings = _filter(summaries, run_project(summaries.values(), rules, settings), settings)
    if options.fix or options.diff:
        new_text, result.fixed, problem = fix_text(path, text, findings, rules, settings, options)
        result.fixed_text = new_text
        if result.fixed:
            findings = _filter({path: _lint_one(path, new_text, rules, options)}, None, settings)
        findings = [*findings, *([problem] if problem else [])]
    result.findings = sorted(findings, key=lambda f: f.sort_key)
    return result
