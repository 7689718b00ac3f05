"""``fp16lint runtime``: lint PATHS, run the named targets, join the two, report.

Registered into the main group lazily by the lead (``main.add_command(runtime_command)``). Importing
this module imports click only; torch is imported only by the child process that runs the targets.

Exit codes: 0 nothing confirmed; 1 a target (or a finding) is confirmed unsafe; 2 errors (torch
missing, no targets, a bad option or config value, an unknown or unavailable device, a factory
raising, inputs that do not fit, out of memory, a target that exits or times out, ...); 130
interrupted (Ctrl-C). Errors of one target do not stop the others.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import click

from fp16lint.findings import Finding

from .targets import SEED_MAX, SEED_MIN

EXIT_OK, EXIT_CONFIRMED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def _install_message() -> str:
    return (
        "fp16lint runtime needs PyTorch, which is not installed in this environment.\n"
        "Install torch for your platform first (https://pytorch.org/get-started/locally/), then:\n"
        "    pip install 'fp16lint[runtime]'"
    )


def _lint(paths: Sequence[str], err: TextIO) -> list[Finding] | None:
    """Static findings for the join, or None when linting failed (the runtime figures are
    still reported)."""
    from fp16lint import api

    try:
        return list(api.lint_paths(list(paths)).findings)
    except Exception as exc:  # a config error, say
        print(
            f"fp16lint runtime: static linting failed ({type(exc).__name__}: {exc}); no join",
            file=err,
        )
        return None


def _progress(i: int, n: int, name: str, status: str, err: TextIO) -> None:
    if n <= 1:
        return
    width = 20
    done = int(width * i / n)
    bar = "#" * done + "-" * (width - done)
    print(f"[{bar}] {i}/{n} {name}: {status}", file=err, flush=True)


def _html_problem(html_path: str) -> str | None:
    """Why the HTML report cannot be written there, found before any target runs."""
    folder = Path(html_path).parent
    if not folder.is_dir():
        return f"--html {html_path}: the folder {folder} does not exist"
    if not os.access(folder, os.W_OK):
        return f"--html {html_path}: the folder {folder} is not writable"
    return None


def run_runtime(
    paths: Sequence[str] = (),
    specs: Sequence[Any] = (),
    *,
    device: str | None = None,
    require_cuda: bool = False,
    backward: bool = False,
    output_format: str = "text",
    html_path: str | None = None,
    seed: int | None = None,
    root: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The command's body, callable with already-parsed target specs (``targets.TargetSpec``).

    The targets run in a child process (``isolate``), ``timeout`` seconds per step (default
    ``isolate.DEFAULT_TIMEOUT``; 0: no limit). This process imports neither torch nor the
    project's code, so the static lint cannot be shadowed by a project module.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    from . import torch_available

    if not torch_available():
        print(_install_message(), file=err)
        return EXIT_ERROR
    from .html import render_html
    from .isolate import DEFAULT_TIMEOUT, ChildRunner, RunSettings, SetupError
    from .join import join
    from .report import Report
    from .text import format_reports

    if root is None:
        from fp16lint.config import find_config

        config = find_config(Path(paths[0]) if paths else Path("."))
        root = config.parent if config else Path.cwd()
    root_path = Path(root)
    if not specs:
        print(
            "fp16lint runtime: no targets. Name one with --target pkg.mod:make_model [--inputs "
            "pkg.mod:make_inputs], or list them in pyproject.toml under [tool.fp16lint.runtime] "
            'targets = [{factory = "pkg.mod:make_model", inputs = "pkg.mod:example_inputs"}]',
            file=err,
        )
        return EXIT_ERROR
    if html_path and (problem := _html_problem(html_path)):
        print(f"fp16lint runtime: {problem}", file=err)
        return EXIT_ERROR

    devices = [device] if device else list(dict.fromkeys(s.device for s in specs))
    settings = RunSettings(device, require_cuda, backward, seed)
    reports: list[Report] = []
    try:
        with ChildRunner(
            root_path,
            settings,
            devices,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            err=err,
        ) as child:
            child.start()  # torch is imported there while this process lints
            findings = _lint(paths, err) if paths else None
            child.wait_setup()
            planned = [t for k, spec in enumerate(specs) for t in child.resolve(k, spec)]
            n = len(planned)
            for i, target in enumerate(planned):
                _progress(i, n, target.name, "running", err)
                t0 = time.perf_counter()
                report = child.check(target, specs[target.spec_index])
                reports.append(report)
                status = f"error ({report.error_kind})" if report.error else report.verdict
                _progress(
                    i + 1, n, target.name, f"{status} in {time.perf_counter() - t0:.1f}s", err
                )
                if report.error:
                    print(f"fp16lint runtime: {target.name}: {report.error}", file=err)
    except SetupError as exc:
        print(f"fp16lint runtime: {exc}", file=err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("fp16lint runtime: interrupted", file=err)
        return EXIT_INTERRUPTED

    # finding paths are as the linter printed them: relative to the working directory
    joined = (
        join(findings, reports, root=os.getcwd(), linted_paths=list(paths))
        if findings is not None
        else None
    )

    if output_format == "json":
        data = {
            "version": 1,
            "targets": [r.to_dict() for r in reports],
            "join": joined.to_dict() if joined is not None else None,
        }
        json.dump(data, out, indent=2, allow_nan=False)
        out.write("\n")
    elif output_format == "html":
        out.write(render_html(reports, joined))
    else:
        out.write(format_reports(reports, joined) + "\n")
    if html_path:
        try:
            Path(html_path).write_text(render_html(reports, joined), encoding="utf-8")
        except OSError as exc:
            print(f"fp16lint runtime: cannot write the HTML report: {exc}", file=err)
            return EXIT_ERROR
        print(f"fp16lint runtime: HTML report written to {html_path}", file=err)

    if any(r.error for r in reports):
        return EXIT_ERROR
    if any(not r.ok for r in reports) or (joined is not None and joined.any_confirmed):
        return EXIT_CONFIRMED
    return EXIT_OK


@click.command("runtime")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="MOD:FACTORY",
    help="A model factory (pkg.mod:make_model or path/to/file.py:make_model); repeatable. "
    "A module without :name checks every no-argument nn.Module class in it.",
)
@click.option(
    "--inputs",
    "inputs",
    multiple=True,
    metavar="MOD:CALLABLE",
    help="Inputs callable returning args or (args, kwargs); one for all targets or one per --target. "
    "Without it, inputs are guessed from the model's first layer.",
)
@click.option(
    "--device",
    default=None,
    help="Force a device (cpu, cuda, cuda:1). Default: CUDA when available.",
)
@click.option("--require-cuda", is_flag=True, help="Fail (exit 2) when CUDA is not available.")
@click.option(
    "--backward",
    is_flag=True,
    help="Also run backward (sum loss): gradient underflow, GradScaler need.",
)
@click.option(
    "--output-format",
    type=click.Choice(["text", "json", "html"]),
    default="text",
    show_default=True,
)
@click.option(
    "--hf-model",
    "hf_models",
    multiple=True,
    metavar="PATH",
    help="A local Hugging Face model folder or diffusers pipeline folder, built with "
    "from_pretrained(PATH, dtype=--hf-dtype): trained weights. Repeatable.",
)
@click.option(
    "--hf-dtype",
    type=click.Choice(["float16", "bfloat16", "float32"]),
    default="float16",
    show_default=True,
    help="The dtype your code passes to from_pretrained (float32: the check casts with .half()).",
)
@click.option(
    "--checkpoint",
    default=None,
    metavar="FILE",
    help="A state_dict file (torch.save or .safetensors) loaded into each --target's model.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a self-contained HTML report here.",
)
@click.option(
    "--seed",
    type=click.IntRange(SEED_MIN, SEED_MAX),
    default=None,
    help="Seed for the factory, the inputs and every run (default 0).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Stop a target whose import or check takes longer (default 600; 0: no limit; "
    "config: timeout).",
)
def runtime_command(
    paths: tuple[str, ...],
    targets: tuple[str, ...],
    inputs: tuple[str, ...],
    device: str | None,
    require_cuda: bool,
    backward: bool,
    output_format: str,
    hf_models: tuple[str, ...],
    hf_dtype: str,
    checkpoint: str | None,
    html_path: str | None,
    seed: int | None,
    timeout: float | None,
) -> None:
    """Run models in fp32, fp16, fp16 autocast and bf16 and confirm the static findings in PATHS.

    Only the modules named by targets (--target or [tool.fp16lint.runtime] in pyproject.toml) are
    imported and run.
    """
    from . import torch_available

    if not torch_available():
        click.echo(_install_message(), err=True)
        sys.exit(EXIT_ERROR)
    from fp16lint.config import ConfigError, load_settings

    from .targets import TargetSpec, TargetSpecError, targets_from_table, timeout_from_table

    if inputs and targets and len(inputs) not in (1, len(targets)):
        raise click.UsageError("give one --inputs for all targets or one per --target")
    if inputs and not targets:
        raise click.UsageError("--inputs needs --target")
    if timeout is not None and math.isnan(timeout):
        raise click.BadParameter("not a number of seconds", param_hint="--timeout")
    try:
        settings = load_settings(None, Path(paths[0]) if paths else Path("."))
    except ConfigError as exc:
        click.echo(f"fp16lint runtime: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    root = settings.root
    try:
        if timeout is None:
            timeout = timeout_from_table(settings.runtime)
    except TargetSpecError as exc:
        click.echo(f"fp16lint runtime: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    if targets or hf_models:
        specs = [
            TargetSpec(
                factory=t,
                inputs=(inputs[i] if len(inputs) == len(targets) else inputs[0])
                if inputs
                else None,
                checkpoint=checkpoint,
            )
            for i, t in enumerate(targets)
        ] + [TargetSpec(hf_model=h, hf_dtype=hf_dtype) for h in hf_models]
    else:
        try:
            specs = targets_from_table(settings.runtime, source=str(settings.source))
        except TargetSpecError as exc:
            click.echo(f"fp16lint runtime: {exc}", err=True)
            sys.exit(EXIT_ERROR)
    code = run_runtime(
        paths,
        specs,
        device=device,
        require_cuda=require_cuda,
        backward=backward,
        output_format=output_format,
        html_path=html_path,
        seed=seed,
        root=root,
        timeout=timeout,
    )
    sys.exit(code)


def main() -> None:  # pragma: no cover - `python -m fp16lint.runtime.cli` while unregistered
    runtime_command()


if __name__ == "__main__":  # pragma: no cover
    main()
