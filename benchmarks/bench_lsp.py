"""Language-server latency: from a ``didChange`` to the ``publishDiagnostics`` for that version.

    .venv/bin/python benchmarks/bench_lsp.py [--lines 2000] [--changes 40] [--pause 0.3]
        [--file path/to/real_model.py] [--inside]

starts the real ``fp16lint lsp`` over stdio (as an editor does), opens a generated
``--lines``-line PyTorch file with a few hazards (or ``--file``, a real one that imports
torch), then makes ``--changes`` edits (at the top level, or with ``--inside`` in a function
body), one every ``--pause`` seconds (a typist's pause: the server lints a change after a
pause at once), each changing the file's findings, and times each until the diagnostics for
its version arrive. It
prints p50/p95/max and, for comparison, the median time of the same lints run in this process
without the server (the floor: the server adds the JSON-RPC round trip). The target is
p95 <= 200 ms for 2,000 lines.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from fp16lint.lsp.server import DEBOUNCE

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
BLOCK = '''\
class Block{i}(nn.Module):
    """Residual MLP block {i}."""

    def __init__(self, dim: int = 256, hidden: int = 1024) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(self.norm(x))
        h = F.gelu(h)
        h = self.drop(self.down(h))
        return x + h


'''
TRAIN = """\
def train(model, loader, steps: int = 100):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.cuda.amp.GradScaler()
    for step, (x, y) in enumerate(loader):
        with torch.autocast("cuda", dtype=torch.float16):
            loss = F.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        if step >= steps:
            break


"""


def make_source(lines: int) -> str:
    parts = [HEADER]
    i = 0
    while sum(p.count("\n") for p in parts) + TRAIN.count("\n") < lines:
        parts.append(BLOCK.format(i=i))
        i += 1
    parts.append(TRAIN)
    text = "".join(parts)
    return "\n".join(text.split("\n")[:lines]) + "\n"


def in_process_ms(path: Path, texts: list[str], rounds: int = 6) -> float:
    """The median time of the same lints without the server: the session's own work (engine,
    project pass, suppression) on the same versions of the buffer, in this process."""
    from fp16lint.lsp.session import Session

    session = Session([path.parent])
    times = []
    for version in range(1, rounds + 2):
        session.open(str(path), texts[version % 2], version)
        start = time.perf_counter()
        session.lint(str(path))
        if version > 1:  # the first one warms up
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def wait_for_version(published: dict[int, float], arrived: asyncio.Event, version: int):
    while version not in published:
        arrived.clear()
        if version not in published:
            await asyncio.wait_for(arrived.wait(), timeout=60)


def edit_line(text: str, inside: bool) -> tuple[int, str]:
    """The 0-based line nearest the middle of ``text`` to insert a statement before, and its
    indentation: a top-level class or function after a blank line (not under a decorator), or
    with ``inside`` a ``return`` statement in a function body."""
    lines = text.split("\n")
    if inside:
        returns = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Return)]
        starts = {n.lineno - 1: " " * n.col_offset for n in returns}
    else:
        starts = {
            i: ""
            for i in range(1, len(lines))
            if lines[i].startswith(("class ", "def ")) and not lines[i - 1]
        }
    line = min(starts, key=lambda i: abs(i - len(lines) // 2))
    return line, starts[line]


async def measure(
    lines: int, changes: int, pause: float, file: Path | None = None, inside: bool = False
) -> dict:
    root = Path(tempfile.mkdtemp(prefix="fp16lint-bench-lsp-"))
    path = root / "model.py"
    text = file.read_text(encoding="utf-8") if file is not None else make_source(lines)
    path.write_text(text, encoding="utf-8")
    uri = path.as_uri()

    published: dict[int, float] = {}
    counts: dict[int, int] = {}
    arrived = asyncio.Event()  # set on each publish: waiting costs no CPU the server needs
    client = LanguageClient("bench-lsp", "1")

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
        if params.uri == uri and params.version is not None:
            published.setdefault(params.version, time.perf_counter())
            counts[params.version] = len(params.diagnostics)
            arrived.set()

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def on_log(params: types.LogMessageParams) -> None:
        pass  # the server's "indexed N files" note

    await client.start_io(sys.executable, "-m", "fp16lint", "lsp")
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(root.as_uri(), "bench")],
        )
    )
    client.initialized(types.InitializedParams())
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, text))
    )
    await wait_for_version(published, arrived, 1)

    hazard = "scaler2 = torch.cuda.amp.GradScaler()\n"
    # Each edit adds or removes a line with a deprecated-API call in the middle of the file (at
    # the top level, or with --inside in a function), so every version parses and has its own
    # findings.
    lines = text.split("\n")
    line, indent = edit_line(text, inside)
    hazard = indent + hazard
    texts = [text, "\n".join([*lines[:line], hazard.rstrip("\n"), *lines[line:]])]
    latencies = []
    for version in range(2, changes + 2):
        await asyncio.sleep(pause)
        position = types.Position(line, 0)
        if version % 2 == 0:
            change = types.TextDocumentContentChangePartial(
                range=types.Range(position, position), text=hazard
            )
        else:
            end = types.Position(line + 1, 0)
            change = types.TextDocumentContentChangePartial(
                range=types.Range(position, end), text=""
            )
        sent = time.perf_counter()
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=version), [change]
            )
        )
        await wait_for_version(published, arrived, version)
        latencies.append(published[version] - sent)

    # Sanity: the edits really change the findings (no version fails to parse).
    assert {counts[v] for v in range(2, changes + 2, 2)} == {counts[1] + 1}, counts
    assert {counts[v] for v in range(3, changes + 2, 2)} == {counts[1]}, counts
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    ms = sorted(x * 1000 for x in latencies)
    return {
        "lines": text.count("\n"),
        "changes": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(statistics.quantiles(ms, n=20)[-1], 1),
        "max_ms": round(ms[-1], 1),
        "in_process_lint_p50_ms": round(in_process_ms(path, texts), 1),
        "debounce_ms": DEBOUNCE * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--pause", type=float, default=0.3)
    parser.add_argument("--file", type=Path, help="a real file to edit instead")
    parser.add_argument(
        "--inside", action="store_true", help="edit inside a function body, not at the top level"
    )
    args = parser.parse_args()
    result = asyncio.run(measure(args.lines, args.changes, args.pause, args.file, args.inside))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
