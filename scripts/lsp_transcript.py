"""Print the JSON-RPC messages of a short real session with ``fp16lint lsp`` over stdio.

    .venv/bin/python scripts/lsp_transcript.py [--compact]

The session an editor opens: ``initialize``, ``initialized``, ``textDocument/didOpen`` of a
small model file, the server's ``textDocument/publishDiagnostics``, a ``textDocument/codeAction``
request at the first fixable finding and its answer, then ``shutdown`` and ``exit``. Messages are
printed as they cross the pipe (``-->`` to the server, ``<--`` from it), one per line with
``--compact``; log notifications are left out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

INDENT = None if "--compact" in sys.argv[1:] else 2

SOURCE = """\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LocalResponseNorm(2)

    def forward(self, x):
        scores = x @ x.transpose(-1, -2)
        scores = scores.masked_fill(x[..., :1] == 0, -1e9)
        return self.norm(scores.softmax(-1))


model = Net().cuda().half()
"""


def send(pipe: IO[bytes], message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    pipe.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    pipe.flush()
    print("-->", json.dumps(message, indent=INDENT))


def receive(pipe: IO[bytes]) -> dict[str, Any]:
    length = 0
    while (line := pipe.readline().strip()) != b"":
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(pipe.read(length))


def wait_for(pipe: IO[bytes], *, method: str | None = None, id: int | None = None) -> dict:
    while True:
        message = receive(pipe)
        if message.get("method") == "window/logMessage":
            continue
        print("<--", json.dumps(message, indent=INDENT))
        if (method and message.get("method") == method) or (id and message.get("id") == id):
            return message


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="fp16lint-transcript-"))
    path = root / "model.py"
    path.write_text(SOURCE, encoding="utf-8")
    uri = path.as_uri()
    server = subprocess.Popen(
        [sys.executable, "-m", "fp16lint", "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert server.stdin is not None and server.stdout is not None
    to_server, from_server = server.stdin, server.stdout
    send(to_server, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "processId": None, "rootUri": root.as_uri(), "capabilities": {}}})  # fmt: skip
    wait_for(from_server, id=1)
    send(to_server, {"jsonrpc": "2.0", "method": "initialized", "params": {}})
    send(to_server, {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
        "textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": SOURCE}}})  # fmt: skip
    published = wait_for(from_server, method="textDocument/publishDiagnostics")
    diagnostics = published["params"]["diagnostics"]
    first = next((d for d in diagnostics if "fix" in d.get("data", {})), diagnostics[0])
    send(to_server, {"jsonrpc": "2.0", "id": 2, "method": "textDocument/codeAction", "params": {
        "textDocument": {"uri": uri}, "range": first["range"],
        "context": {"diagnostics": [first]}}})  # fmt: skip
    wait_for(from_server, id=2)
    send(to_server, {"jsonrpc": "2.0", "id": 3, "method": "shutdown", "params": None})
    wait_for(from_server, id=3)
    send(to_server, {"jsonrpc": "2.0", "method": "exit", "params": None})
    server.wait(timeout=10)


if __name__ == "__main__":
    main()
