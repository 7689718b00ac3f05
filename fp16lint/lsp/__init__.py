"""The language server: ``fp16lint lsp`` speaks LSP over standard input/output.

Only click is imported here, so listing the CLI's commands stays fast; pygls and the engine
load when the server starts.
"""

from __future__ import annotations

import sys

import click


@click.command("lsp")
@click.option(
    "--stdio", is_flag=True, help="Use standard input/output (the default, and the only transport)."
)
def lsp_command(stdio: bool) -> None:
    """Run the fp16lint language server over standard input/output."""
    try:
        from fp16lint.lsp.server import serve
    except ImportError as exc:
        click.echo(
            f"error: the language server needs the `lsp` extra "
            f"(pip install 'fp16lint[lsp]'): {exc}",
            err=True,
        )
        sys.exit(2)
    serve()
