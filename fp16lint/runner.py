"""One lint run: discover, read, lint (cached, in a process pool), join, suppress, fix.

Output order is (path, line, column, code) whatever ``jobs`` is, and nothing here raises for
bad input: unreadable files and syntax errors become FP000, rule crashes FP999, missing paths
and unwritable files become ``errors`` (exit code 2).
"""

from __future__ import annotations

import os
import traceback
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import libcst as cst

from fp16lint import fixes, isolation, notebook, source, writing
from fp16lint.analysis.context import FileSummary
from fp16lint.cache import Cache, cache_dir
from fp16lint.config import enabled_codes
from fp16lint.discovery import discover, gitignore_spec
from fp16lint.engine import FILE_LEVEL, engine_finding, lint_source
from fp16lint.findings import Finding
from fp16lint.parsing import parse_module
from fp16lint.project import ProjectResult, run_project
from fp16lint.rules import INTERNAL_ERROR, SYNTAX_ERROR, all_rules
from fp16lint.rules.base import Rule
from fp16lint.rules.fp001_unused_noqa import UnusedNoqa
from fp16lint.settings import Settings
from fp16lint.unused_noqa import unused_noqa

MAX_FIX_ROUNDS = 10
# libcst needs about 500 bytes of memory per byte of source and is slower than linear on huge
# files (a 10 MB generated file: over 2 minutes and 5 GB). Larger files are skipped with a
# warning, like Semgrep's ``--max-target-bytes``; the largest file in torch is 1.4 MB.
MAX_FILE_CHARS = 2_000_000
FILE_TIME_LIMIT = 60.0  # CPU seconds per file before FP999 "timed out"
# Wall seconds per file before its worker is killed: libcst's native parser, where the CPU
# limit cannot interrupt it, can run for minutes on one long operator chain.
FILE_WALL_LIMIT = 120.0


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
    wall_limit: float | None = FILE_WALL_LIMIT


@dataclass
class LintResult:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    fixed: int = 0  # findings the fixes resolved (or would resolve, with ``diff``)
    fixed_by: dict[str, Counter[str]] = field(default_factory=dict)  # path -> code -> count
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    fixed_text: str | None = None  # lint_text with fixes: the fixed buffer


# A file as read: where it is, what it holds, and its stamp (to detect edits before writing).
_Read = tuple[Path, source.Source | notebook.Notebook, writing.Stamp]


@dataclass(frozen=True)
class _Job:
    path: str  # as displayed and reported
    text: str
    module_name: str
    is_package: bool


_real_folders: dict[str, str] = {}


def _real_folder(folder: str) -> str:
    """``os.path.realpath`` of an absolute folder, one ``lstat`` per folder not seen before: a
    file's real path costs O(its depth) system calls, so a run over a 2,000-level tree would
    cost millions of them (minutes) if each file's path were resolved afresh."""
    pending: list[str] = []
    while folder not in _real_folders:
        parent, name = os.path.split(folder)
        if parent == folder or not name or os.path.islink(folder):
            _real_folders[folder] = os.path.realpath(folder)
            break
        pending.append(name)
        folder = parent
    real = _real_folders[folder]
    for name in reversed(pending):
        folder = os.path.join(folder, name)
        real = _real_folders[folder] = os.path.join(real, name)
    return real


def module_name_for(path: Path) -> tuple[str, bool]:
    """Dotted module name from the enclosing packages (folders with ``__init__.py``)."""
    folder, name = os.path.split(os.path.abspath(path))
    if os.path.islink(os.path.join(folder, name)):
        path = path.resolve()
    else:
        path = Path(_real_folder(folder), name)
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


def _for_workers(rules: list[type[Rule]], options: Options) -> _WorkerSettings:
    return _WorkerSettings(
        tuple(rule.code for rule in rules), options.prefilter, options.time_limit
    )


def lost_summary(job: _Job | Any, why: str) -> FileSummary:
    """The summary of a file (``job.path``) whose worker died on it or ran past the
    wall-clock limit."""
    if why == isolation.TIMED_OUT:
        message = (
            "Linting this file ran past fp16lint's wall-clock limit (a runaway parse) and was "
            "stopped; the file was not linted."
        )
    else:
        message = (
            "fp16lint's worker process died on this file (a crash in libcst's native "
            "parser, or out of memory); the file was not linted."
        )
    return FileSummary(job.path, [engine_finding(INTERNAL_ERROR, job.path, FILE_LEVEL, message)])


def _lint_jobs(
    jobs: list[_Job], settings: _WorkerSettings, workers: int, wall_limit: float | None
) -> list[FileSummary]:
    """Every file in a worker process (see ``isolation``), whatever ``workers`` is."""
    if not jobs:
        return []
    workers = min(workers, len(jobs))
    with isolation.Workers(workers, _lint_job, _init_worker, (settings,)) as pool:
        return pool.run(jobs, _chunks(jobs, workers), wall_limit, lost_summary)


# --- the run ----------------------------------------------------------------------------------
class _PerFileIgnores:
    def __init__(self, settings: Settings):
        self.root = settings.root.resolve()
        self.rules = [
            (gitignore_spec([glob]), codes) for glob, codes in settings.per_file_ignores.items()
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

    sources: dict[str, _Read] = {}
    summaries: dict[str, FileSummary] = {}
    jobs: list[tuple[_Job, str | None]] = []
    for path in found.files:
        shown = display_path(path)
        try:
            data, info = source.read_regular(path)
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
        sources[shown] = (path, decoded, writing.Stamp.of(data, info))
        module_name, is_package = module_name_for(path)
        key = cache.key(shown, data, f"{module_name}\0{is_package}") if cache else None
        cached = cache.get(shown, key) if cache and key else None
        if cached is not None:
            summaries[shown] = cached
            continue
        jobs.append((_Job(shown, decoded.text, module_name, is_package), key))

    workers = options.jobs or os.cpu_count() or 1
    linted = _lint_jobs(
        [j for j, _ in jobs], _for_workers(rules, options), workers, options.wall_limit
    )
    for (job, key), summary in zip(jobs, linted, strict=True):
        summaries[job.path] = summary
        if cache and key:
            cache.put(job.path, key, summary)
    result.files = len(found.files)
    result.warnings.extend(_unknown_noqa_codes(summaries))

    used: set[tuple[str, int, str]] = set()
    findings = _filter(summaries, run_project(summaries.values(), rules, settings), settings, used)
    texts = {k: d.text for k, (_, d, _) in sources.items()}
    findings += _unused_noqa(summaries, used, texts, rules)
    if options.fix or options.diff:
        problems = _fix(findings, sources, rules, settings, options, result)
        if options.fix and not options.diff and result.fixed:
            # Report what is left as a plain run would see it, project findings included,
            # and count as fixed what is really gone (a fix may resolve several findings).
            after = lint_paths(paths, settings, replace(options, fix=False))
            _count_resolved(result, result.fixed_by, findings, after.findings)
            findings = after.findings
        findings = [*findings, *problems]
    notebooks = {k: d for k, (_, d, _) in sources.items() if isinstance(d, notebook.Notebook)}
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
    summaries: dict[str, FileSummary],
    project: ProjectResult | None,
    settings: Settings,
    used: set[tuple[str, int, str]] | None = None,
) -> list[Finding]:
    """All findings, completed by the project pass, less those silenced by ``# noqa`` or
    ``per-file-ignores``; ``used`` collects the (path, line, code) directives that silenced
    one (for FP001)."""
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
            line = finding.span.start.line
            if summary is not None and summary.noqa.suppresses(finding.code, line):
                if used is not None:
                    codes = summary.noqa.lines.get(line) or ()
                    used.update((path, line, c) for c in codes if finding.code.startswith(c))
                continue
            if any(finding.code.startswith(code) for code in ignored):
                continue
            out.append(finding)
    return out


def _fix(
    findings: list[Finding],
    sources: dict[str, _Read],
    rules: list[type[Rule]],
    settings: Settings,
    options: Options,
    result: LintResult,
) -> list[Finding]:
    """Apply fixes file by file (re-linting each until stable), then diff or write them: every
    file's bytes are computed (and refused, for an encoding that does not round-trip) before
    the first is written.

    Returns findings the fixing itself produced (a fix that would break a file)."""
    by_path: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.path in sources:
            by_path.setdefault(finding.path, []).append(finding)
    problems: list[Finding] = []
    writes: list[tuple[str, bytes, Counter[str]]] = []
    for path, items in by_path.items():
        if not any(fixes.is_applicable(f.fix, options.unsafe_fixes) for f in items):
            continue
        _, original, _ = sources[path]
        fixed: Counter[str] = Counter()
        text, _, problem = fix_text(path, original.text, items, rules, settings, options, fixed)
        if problem:
            problems.append(problem)
        if text == original.text:
            continue
        if options.diff:
            try:
                result.diffs.append(original.diff(path, text))
            except source.SourceError as exc:  # a notebook whose cells a fix would merge
                result.errors.append(f"{path}: {exc}")
                continue
            result.fixed += fixed.total()
            result.fixed_by[path] = fixed
            continue
        if isinstance(original, source.Source) and not original.round_trips:
            result.errors.append(
                f"{path}: its {original.encoding!r} encoding does not give back the bytes "
                "read, so fixes are not written (remove or correct the coding cookie)"
            )
            continue
        try:
            writes.append((path, original.encode(text), fixed))
        except source.SourceError as exc:  # a notebook whose cells a fix would merge
            result.errors.append(f"{path}: {exc}")
    for path, data, fixed in writes:
        file_path, _, stamp = sources[path]
        error = writing.write_fixed(file_path, data, stamp)
        if error:
            result.errors.append(f"{path}: {error}; fixes not written")
        else:
            result.fixed += fixed.total()
            result.fixed_by[path] = fixed
    return problems


def _count_resolved(
    result: LintResult, paths: Iterable[str], before: list[Finding], after: list[Finding]
) -> None:
    """``fixed``: the findings of the fixed files ``paths`` that are gone (per file and code)."""
    left = Counter((f.path, f.code) for f in after)
    result.fixed_by = {}
    for path in list(paths):
        gone = Counter(f.code for f in before if f.path == path)
        gone.subtract({code: n for (p, code), n in left.items() if p == path})
        resolved = Counter({code: n for code, n in gone.items() if n > 0})
        if resolved:
            result.fixed_by[path] = resolved
    result.fixed = sum(c.total() for c in result.fixed_by.values())


def fix_text(
    path: str,
    text: str,
    findings: list[Finding],
    rules: list[type[Rule]],
    settings: Settings,
    options: Options,
    codes: Counter[str] | None = None,
) -> tuple[str, int, Finding | None]:
    """Apply fixes to ``text`` until none is left (at most MAX_FIX_ROUNDS rounds).

    Returns the fixed text, the number of fixes applied (their findings' codes are counted
    in ``codes``), and an FP000 finding if a round of fixes would have broken the syntax
    (that round is dropped)."""
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
        if codes is not None:
            codes.update(f.code for f in applied)
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


def lint_text(text: str, path: str, settings: Settings, options: Options = Options()) -> LintResult:
    """Lint text that is not on disk (standard input, an editor buffer) as if it were ``path``."""
    rules = selected_rules(settings)
    result = LintResult(files=1)
    if len(text) > options.max_file_chars:
        limit = options.max_file_chars / 1e6
        result.warnings.append(f"{path}: not linted: over the {limit:g} million character limit.")
        return result

    findings = _lint_buffer(path, text, rules, settings, options)
    if options.fix or options.diff:
        new_text, _, problem = fix_text(path, text, findings, rules, settings, options)
        result.fixed_text = new_text
        if new_text != text:
            after = _lint_buffer(path, new_text, rules, settings, options)
            _count_resolved(result, [path], findings, after)
            if options.diff:
                result.diffs.append(source.unified_diff(path, text, new_text))
            else:
                findings = after
        findings = [*findings, *([problem] if problem else [])]
    result.findings = sorted(findings, key=lambda f: f.sort_key)
    return result


def lint_stdin(
    data: bytes, path: str, settings: Settings, options: Options = Options()
) -> LintResult:
    """Standard input, decoded as a file is (coding cookie, BOM): bytes that do not decode are
    an FP000 finding, as for a file, not an internal error."""
    try:
        text = source.decode(data).text
    except source.SourceError as exc:
        return LintResult(findings=_read_error(path, exc).findings, files=1)
    return lint_text(text, path, settings, options)


def _lint_buffer(
    path: str, text: str, rules: list[type[Rule]], settings: Settings, options: Options
) -> list[Finding]:
    """One buffer's findings, project pass and unused ``# noqa`` included."""
    job = _Job(path, text, *module_name_for(Path(path)))  # in a worker, as files are
    summaries = {path: _lint_jobs([job], _for_workers(rules, options), 1, options.wall_limit)[0]}
    used: set[tuple[str, int, str]] = set()
    findings = _filter(summaries, run_project(summaries.values(), rules, settings), settings, used)
    return findings + _unused_noqa(summaries, used, {path: text}, rules)


def _unused_noqa(
    summaries: dict[str, FileSummary],
    used: set[tuple[str, int, str]],
    texts: dict[str, str],
    rules: list[type[Rule]],
) -> list[Finding]:
    """FP001's findings, when it is enabled."""
    enabled = [rule.code for rule in rules]
    if UnusedNoqa.code not in enabled:
        return []
    from fp16lint.rules import all_codes

    return unused_noqa(summaries, used, texts, all_codes(), enabled)
