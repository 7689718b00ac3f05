"""``scripts/lsp_transcript.py`` records a real session: the server answers every step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "lsp_transcript.py"


def test_the_transcript_shows_diagnostics_and_a_fix():
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--compact"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    messages = [(line[:3], json.loads(line[4:])) for line in run.stdout.splitlines()]
    methods = [m.get("method") for _, m in messages]
    assert methods[:4] == ["initialize", None, "initialized", "textDocument/didOpen"]
    published = next(m for _, m in messages if m.get("method") == "textDocument/publishDiagnostics")
    codes = [d["code"] for d in published["params"]["diagnostics"]]
    assert codes == ["FP201", "FP205", "FP301", "FP202", "FP101"]
    actions = next(m for d, m in messages if d == "<--" and m.get("id") == 2)["result"]
    titles = [a["title"] for a in actions]
    assert titles[0].startswith("fp16lint (FP301): Use `torch.finfo(scores.dtype).min`")
    assert titles[1] == "fp16lint (FP301): suppress with `# noqa: FP301`"
    assert messages[-1][1]["method"] == "exit"
