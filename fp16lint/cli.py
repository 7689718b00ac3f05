"""The ``fp16lint`` command. Exit codes, as ruff: 0 clean, 1 findings, 2 usage/config/internal error.

Heavy modules (libcst, the rules, torch for ``runtime``) are imported inside the commands, so
``fp16lint --version`` stays fast.
"""

from __future__ import annotations

import os
import sys
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
    """``fp16lint src/`` is shorthand for ``fp16lint check src/``; some commands load lazily."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = set(self.commands) | set(_LAZY_COMMANDS)
        if args and args[0] not in known and args[0] not in ("--help", "-h", "--version"):
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
@click.option(
    "--output-format", type=click.Choice(OUTPUT_FORMATS), default=None, help="Output format."
)
@click.option("--statistics", is_flag=True, help="Show counts per rule instead of findings.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("--fix", is_flag=True, help="Apply safe fixes.")
@click.option("--unsafe-fixes", is_flag=True, help="With --fix, apply unsafe fixes too.")
@click.option("--diff", is_flag=True, help="Show fixes as a unified diff; write nothing.")
@click.option(
    "-j", "--jobs", type=click.IntRange(min=1), help="Worker processes (default: all cores)."
)
@click.option("--no-cache", is_flag=True, help="Do not read or write the cache.")
@click.option("--config", type=click.Path(path_type=Path), help="Config file to use.")
@click.option("--stdin-filename", help="Lint standard input as if it were this file.")
@click.option(
    "--assume-fp16", is_flag=True, default=None, help="Treat every model as fp16 (library mode)."
)
@click.option("-q", "--quiet", is_flag=True, help="Print findings only, no summary.")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of internal errors.")
def check(
    paths: tuple[Path, ...],
    select: str | None,
    ignore: str | None,
    extend_select: str | None,
    output_format: str | None,
    statistics: bool,
    exit_zero: bool,
    fix: bool,
    unsafe_fixes: bool,
    diff: bool,
    jobs: int | None,
    no_cache: bool,
    config: Path | None,
    stdin_filename: str | None,
    assume_fp16: bool | None,
    quiet: bool,
    verbose: bool,
) -> None:
    """Lint PATHS (default: the current folder)."""
    from fp16lint.config import ConfigError, load_settings, validate_codes
    from fp16lint.runner import Options, lint_paths, lint_stdin

    targets = list(paths) or [Path(stdin_filename).parent if stdin_filename else Path(".")]
    try:
        settings = load_settings(config, targets[0])
        settings = settings.with_overrides(
            select=validate_codes(_codes(select), "--select") if select is not None else None,
            ignore=settings.ignore + validate_codes(_codes(ignore) or (), "--ignore"),
            extend_select=settings.extend_select
            + validate_codes(_codes(extend_select) or (), "--extend-select"),
            assume_fp16=assume_fp16,
        )
    except ConfigError as exc:
        _fail(str(exc))
    options = Options(
        jobs=jobs, use_cache=not no_cache, fix=fix, unsafe_fixes=unsafe_fixes, diff=diff
    )
    if stdin_filename is not None:
        result = lint_stdin(sys.stdin.buffer.read(), stdin_filename, settings, options)
        if fix and not diff and result.fixed_text is not None:
            sys.stdout.write(result.fixed_text)
            sys.exit(EXIT_CLEAN if exit_zero or not result.findings else EXIT_FINDINGS)
    else:
        result = lint_paths(targets, settings, options)
    _report(result, output_format or "full", statistics, quiet, verbose, unsafe_fixes)
    if result.errors:
        sys.exit(EXIT_ERROR)
    if diff:
        sys.exit(EXIT_FINDINGS if result.diffs and not exit_zero else EXIT_CLEAN)
    sys.exit(EXIT_FINDINGS if result.findings and not exit_zero else EXIT_CLEAN)


def _report(
    result, output_format: str, statistics: bool, quiet: bool, verbose: bool, unsafe: bool
) -> None:
    from dataclasses import replace

    from fp16lint.fixes import is_applicable
    from fp16lint.formatters import FormatContext, get_formatter

    for message in result.errors:
        click.echo(f"error: {message}", err=True)
    for message in result.warnings:
        click.echo(f"warning: {message}", err=True)
    findings = result.findings if verbose else [replace(f, detail=None) for f in result.findings]
    if result.diffs:
        click.echo("".join(result.diffs), nl=False)
        return
    if statistics:
        _print_statistics(findings, unsafe)
        return
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    ctx = FormatContext(color=color, unsafe_fixes=unsafe)
    click.echo(get_formatter(output_format)(findings, ctx), nl=False)
    if quiet or output_format not in ("full", "concise"):
        return
    if result.fixed:
        click.echo(f"Fixed {result.fixed} finding{'s' if result.fixed != 1 else ''}.")
    if not findings:
        if not result.fixed:
            click.echo("All checks passed!")
        return
    click.echo(f"Found {len(findings)} finding{'s' if len(findings) != 1 else ''}.")
    fixable = sum(is_applicable(f.fix, unsafe) for f in findings)
    hidden = sum(is_applicable(f.fix, True) for f in findings) - fixable
    if fixable:
        click.echo(f"[*] {fixable} fixable with the `--fix` option.")
    if hidden:
        click.echo(f"{hidden} hidden fixes can be enabled with the `--unsafe-fixes` option.")


def _print_statistics(findings, unsafe: bool) -> None:
    from collections import Counter

    from fp16lint.fixes import is_applicable

    counts = Counter((f.code, f.name) for f in findings)
    fixable = Counter(f.code for f in findings if is_applicable(f.fix, unsafe))
    for (code, name), count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        mark = "[*]" if fixable[code] else "   "
        click.echo(f"{count:>5}\t{code}\t{mark} {name}")


@main.command("rules")
@click.option("--output-format", type=click.Choice(("text", "json")), default="text")
def rules_command(output_format: str) -> None:
    """List every rule: code, name, severity, default, fix."""
    import json

    from fp16lint.docgen import rule_rows

    rows = rule_rows()
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        default = "on" if row["default"] else "off"
        click.echo(
            f"{row['code']}  {row['name']:<40} {row['severity']:<8} {default:<4} fix: {row['fix']}"
        )


@main.command("explain")
@click.argument("code")
def explain(code: str) -> None:
    """Show a rule's full documentation."""
    from fp16lint.docgen import rule_markdown
    from fp16lint.rules import rule_by_code

    rule = rule_by_code(code.upper())
    if rule is None:
        _fail(f"unknown rule code `{code}` (see `fp16lint rules`)")
    click.echo(rule_markdown(rule))


main.add_command(explain, "rule")


@main.command()
@click.option("--output-format", type=click.Choice(("text", "json")), default="text")
def doctor(output_format: str) -> None:
    """Print the environment facts that decide fp16 advice."""
    import json

    from fp16lint.doctor import doctor_report, format_doctor

    report = doctor_report()
    click.echo(json.dumps(report, indent=2) if output_format == "json" else format_doctor(report))
