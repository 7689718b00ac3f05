"""The ``fp16lint`` command. Exit codes, as ruff: 0 clean, 1 findings, 2 usage/config/internal error.

Heavy modules (libcst, the rules, torch for ``runtime``) are imported inside the commands, so
``fp16lint --version`` stays fast.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from fp16lint import __version__

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
OUTPUT_FORMATS = (
    *("full", "concise", "json", "json-lines"),
    *("github", "gitlab", "sarif", "junit", "lsp"),
)


# Commands whose modules are imported only when used (the runtime one imports torch).
_LAZY_COMMANDS = {
    "runtime": "fp16lint.runtime.cli:runtime_command",
    "lsp": "fp16lint.lsp:lsp_command",
}


class _Fp16lintGroup(click.Group):
    """``fp16lint src/`` is shorthand for ``fp16lint check src/``; some commands load lazily.

    A first word that is no command and no existing path but looks like a command's typo
    (``fp16lint chek .``) is an unknown command (exit 2), as in Ruff, not a path to lint."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = sorted(set(self.commands) | set(_LAZY_COMMANDS))
        if args and args[0] not in known and args[0] not in ("--help", "-h", "--version"):
            first = args[0]
            if first != "-" and not first.startswith("-") and not os.path.lexists(first):
                import difflib

                close = difflib.get_close_matches(first, known, n=1)
                if close:
                    ctx.fail(f"unknown command `{first}` (did you mean `{close[0]}`?)")
            args = ["check", *args]
        elif not args:
            args = ["check"]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands or name not in _LAZY_COMMANDS:
            return self.commands.get(name)
        import importlib

        module, _, attr = _LAZY_COMMANDS[name].partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            reason = f"`fp16lint {name}` is not available: {exc}"
            return click.Command(name, callback=lambda: _fail(reason), help=reason)


def _codes(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(c.strip() for c in value.split(",") if c.strip())


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_ERROR)


@click.group(cls=_Fp16lintGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="fp16lint")
def main() -> None:
    """fp16lint: find float16 hazards in PyTorch code before they become NaNs."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--select", help="Comma-separated rule codes or prefixes to enable (replaces config)."
)
@click.option("--ignore", help="Comma-separated rule codes or prefixes to disable.")
@click.option("--extend-select", help="Comma-separated rule codes or prefixes to enable as well.")
@click.option("--exclude", help="Comma-separated globs of files to skip (replaces config).")
@click.option("--extend-exclude", help="Comma-separated globs of files to skip as well.")
@click.option(
    "--output-format", type=click.Choice(OUTPUT_FORMATS), default=None, help="Output format."
)
@click.option("--statistics", is_flag=True, help="Show counts per rule instead of findings.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("--fix", is_flag=True, help="Apply safe fixes.")
@click.option("--unsafe-fixes", is_flag=True, help="With --fix, apply unsafe fixes too.")
@click.option("--diff", is_flag=True, help="Show fixes as a unified diff; write nothing.")
@click.option("--show-fixes", is_flag=True, help="List the fixes applied, per file and rule.")
@click.option(
    "--add-noqa", is_flag=True, help="Add a `# noqa: CODE` comment to every line with findings."
)
@click.option("--watch", is_flag=True, help="Lint again whenever a file changes.")
@click.option(
    "-j", "--jobs", type=click.IntRange(min=1), help="Worker processes (default: all cores)."
)
@click.option("--no-cache", is_flag=True, help="Do not read or write the cache.")
@click.option("--config", type=click.Path(path_type=Path), help="Config file to use.")
@click.option(
    "--stdin-filename", help="Lint standard input as if it were this file (implies PATH `-`)."
)
@click.option(
    "--assume-fp16", is_flag=True, default=None, help="Treat every model as fp16 (library mode)."
)
@click.option(
    "--library-info",
    is_flag=True,
    default=None,
    help="With --assume-fp16, report norms, softmax and losses whose kernels compute in float32.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print findings only, no summary.")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of internal errors.")
def check(
    paths: tuple[Path, ...],
    select: str | None,
    ignore: str | None,
    extend_select: str | None,
    exclude: str | None,
    extend_exclude: str | None,
    output_format: str | None,
    statistics: bool,
    exit_zero: bool,
    fix: bool,
    unsafe_fixes: bool,
    diff: bool,
    show_fixes: bool,
    add_noqa: bool,
    watch: bool,
    jobs: int | None,
    no_cache: bool,
    config: Path | None,
    stdin_filename: str | None,
    assume_fp16: bool | None,
    library_info: bool | None,
    quiet: bool,
    verbose: bool,
) -> None:
    """Lint PATHS (default: the current folder; `-`: standard input)."""
    from fp16lint.config import ConfigError, load_settings, validate_codes
    from fp16lint.runner import Options

    use_stdin = stdin_filename is not None or Path("-") in paths
    if use_stdin and (len(paths) > 1 or add_noqa or watch):
        _fail("standard input (`-`) is linted alone, without other paths, --add-noqa or --watch")
    stdin_name = stdin_filename or "-"
    if use_stdin:
        targets = [Path(stdin_name).parent if stdin_filename else Path(".")]
    else:
        targets = list(paths) or [Path(".")]
    try:
        settings = load_settings(config, targets[0])
        settings = settings.with_overrides(
            select=validate_codes(_codes(select), "--select") if select is not None else None,
            ignore=settings.ignore + validate_codes(_codes(ignore) or (), "--ignore"),
            extend_select=settings.extend_select
            + validate_codes(_codes(extend_select) or (), "--extend-select"),
            exclude=_codes(exclude),
            extend_exclude=settings.extend_exclude + (_codes(extend_exclude) or ()),
            assume_fp16=assume_fp16,
            library_info=library_info,
        )
    except ConfigError as exc:
        _fail(str(exc))
    options = Options(
        jobs=jobs, use_cache=not no_cache, fix=fix, unsafe_fixes=unsafe_fixes, diff=diff
    )
    show = _Show(output_format or "full", statistics, quiet, verbose, unsafe_fixes, show_fixes)
    if use_stdin:
        sys.exit(_check_stdin(stdin_name, settings, options, show, exit_zero))
    if add_noqa:
        from fp16lint.add_noqa import add_noqa_comments

        added, errors, warnings = add_noqa_comments(targets, settings, options)
        for message in errors:
            click.echo(f"error: {message}", err=True)
        for message in warnings:
            click.echo(f"warning: {message}", err=True)
        click.echo(f"Added {added} noqa directive{'s' if added != 1 else ''}.", err=True)
        sys.exit(EXIT_ERROR if errors else EXIT_CLEAN)
    if watch:
        from fp16lint.watch import watch_paths

        watch_paths(
            targets, settings, lambda: _check_paths(targets, settings, options, show, exit_zero)
        )
        return
    sys.exit(_check_paths(targets, settings, options, show, exit_zero))


@dataclass(frozen=True)
class _Show:
    """How to print a run's result."""

    output_format: str
    statistics: bool
    quiet: bool
    verbose: bool
    unsafe: bool
    show_fixes: bool


def _check_paths(targets: list[Path], settings, options, show: _Show, exit_zero: bool) -> int:
    from fp16lint.runner import lint_paths

    result = lint_paths(targets, settings, options)
    _report(result, show, options.diff)
    return _exit_code(result, options.diff, exit_zero)


def _check_stdin(name: str, settings, options, show: _Show, exit_zero: bool) -> int:
    """Standard input as the file ``name``: ranges and source frames come from the text read,
    ``--diff`` prints its diff and ``--fix`` the fixed text (as Ruff does)."""
    from fp16lint import source
    from fp16lint.runner import lint_stdin

    data = sys.stdin.buffer.read()
    try:  # decoded as a file is (cookie, BOM); bytes that do not decode are an FP000
        text = source.decode(data).text
    except source.SourceError:
        text = data.decode("utf-8", "replace")
    result = lint_stdin(data, name, settings, options)
    if options.fix and not options.diff:
        for message in result.errors:
            click.echo(f"error: {message}", err=True)
        sys.stdout.write(result.fixed_text if result.fixed_text is not None else text)
        if show.show_fixes or result.fixed:
            _print_fixed(result, show.show_fixes, err=True)
        return _exit_code(result, False, exit_zero)
    _report(result, show, options.diff, {name: text})
    return _exit_code(result, options.diff, exit_zero)


def _exit_code(result, diff: bool, exit_zero: bool) -> int:
    if result.errors:
        return EXIT_ERROR
    if diff:
        return EXIT_FINDINGS if result.diffs and not exit_zero else EXIT_CLEAN
    return EXIT_FINDINGS if result.findings and not exit_zero else EXIT_CLEAN


def _report(result, show: _Show, diff: bool, texts: dict[str, str] | None = None) -> None:
    """Print ``result``: findings on stdout (or, with ``--diff``, only the diff), the rest on
    stderr. A run that linted nothing because of errors prints nothing on stdout."""
    from dataclasses import replace

    from fp16lint.formatters import FormatContext, get_formatter

    for message in result.errors:
        click.echo(f"error: {message}", err=True)
    for message in result.warnings:
        click.echo(f"warning: {message}", err=True)
    if diff:
        click.echo("".join(result.diffs), nl=False)
        if show.show_fixes or result.fixed:
            _print_fixed(result, show.show_fixes, err=True, would=True)
        elif not result.errors:
            click.echo("No fixes available.", err=True)
        return
    if result.errors and not result.findings and not result.files:
        return  # nothing was linted: `[]` or "All checks passed!" would say otherwise
    findings = result.findings
    if not show.verbose:
        findings = [replace(f, detail=None) for f in findings]
    if show.statistics:
        _print_statistics(findings, show.unsafe)
        return
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    ctx = FormatContext(color=color, unsafe_fixes=show.unsafe)
    for path, text in (texts or {}).items():
        ctx.use_text(path, text)
    click.echo(get_formatter(show.output_format)(findings, ctx), nl=False)
    if show.quiet or show.output_format not in ("full", "concise"):
        return
    if result.fixed or show.show_fixes:
        _print_fixed(result, show.show_fixes)
    if findings:
        click.echo(f"Found {_plural(len(findings), 'finding')}.")
        _print_fixable(findings, show.unsafe)
    elif not result.fixed and not result.errors:
        click.echo("All checks passed!")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _print_fixed(result, enumerate_fixes: bool, err: bool = False, would: bool = False) -> None:
    """``Fixed N findings.``, and with ``--show-fixes`` the list per file and rule (Ruff's)."""
    from fp16lint.rules import rule_by_code

    verb = "Would fix" if would else "Fixed"
    if not enumerate_fixes:
        click.echo(f"{verb} {_plural(result.fixed, 'finding')}.", err=err)
        return
    if not result.fixed:
        click.echo("No findings were fixed." if not would else "No fixes available.", err=err)
        return
    click.echo(f"{verb} {_plural(result.fixed, 'finding')}:", err=err)
    for path, codes in sorted(result.fixed_by.items()):
        click.echo(f"- {path}:", err=err)
        for code, count in sorted(codes.items()):
            rule = rule_by_code(code)
            name = f" ({rule.name})" if rule is not None else ""
            click.echo(f"    {count} × {code}{name}", err=err)  # noqa: RUF001 (Ruff's sign)


def _print_fixable(findings, unsafe: bool) -> None:
    from fp16lint.fixes import is_applicable

    fixable = sum(is_applicable(f.fix, unsafe) for f in findings)
    hidden = sum(is_applicable(f.fix, True) for f in findings) - fixable
    if fixable:
        click.echo(f"[*] {fixable} fixable with the `--fix` option.")
    if hidden:
        fixes = "fix" if hidden == 1 else "fixes"
        click.echo(f"{hidden} hidden {fixes} can be enabled with the `--unsafe-fixes` option.")


def _print_statistics(findings, unsafe: bool) -> None:
    from collections import Counter

    from fp16lint.fixes import is_applicable

    counts = Counter((f.code, f.name) for f in findings)
    fixable = Counter(f.code for f in findings if is_applicable(f.fix, unsafe))
    for (code, name), count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        mark = "[*]" if fixable[code] else "   "
        click.echo(f"{count:>5}\t{code}\t{mark} {name}")
    if findings:
        click.echo(f"Found {_plural(len(findings), 'finding')}.")
        _print_fixable(findings, unsafe)
    else:
        click.echo("All checks passed!")


@main.command("rules")
@click.option("--output-format", type=click.Choice(("text", "json")), default="text")
def rules_command(output_format: str) -> None:
    """List every rule: code, name, severities (the usual one first), default, fix."""
    import json

    from fp16lint.docgen import rule_rows

    rows = rule_rows()
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        default = "on" if row["default"] else "off"
        click.echo(
            f"{row['code']}  {row['name']:<40} {'/'.join(row['severities']):<16} {default:<4} "
            f"fix: {row['fix']}"
        )


@main.command("explain")
@click.argument("code")
def explain(code: str) -> None:
    """Show a rule's full documentation (alias: `rule`)."""
    from fp16lint.docgen import rule_markdown
    from fp16lint.rules import rule_by_code

    rule = rule_by_code(code.upper())
    if rule is None:
        _fail(f"unknown rule code `{code}` (see `fp16lint rules`)")
    click.echo(rule_markdown(rule))


main.add_command(
    click.Command(
        "rule",
        callback=explain.callback,
        params=explain.params,
        help="Alias of `explain`, as in Ruff (`fp16lint rule FP101`).",
    )
)


@main.command()
@click.option("--output-format", type=click.Choice(("text", "json")), default="text")
def doctor(output_format: str) -> None:
    """Print the environment facts that decide fp16 advice."""
    import json

    from fp16lint.doctor import doctor_report, format_doctor

    report = doctor_report()
    click.echo(json.dumps(report, indent=2) if output_format == "json" else format_doctor(report))
