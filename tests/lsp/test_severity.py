"""The server publishes each finding's own severity: FP108 (an error rule) warns about an fp16
autocast loss stepped without a GradScaler."""

from __future__ import annotations

import pytest
from conftest import Editor
from lsprotocol import types

pytestmark = pytest.mark.asyncio

GRADED = """\
import torch
import torch.nn as nn

def step(model, x, optimizer):
    with torch.autocast(device_type="cuda"):
        loss = model(x).mean()
    loss.backward()

net = nn.Linear(2, 2).cuda().half()
opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
"""


async def test_diagnostics_take_the_findings_severity(editor: Editor):
    await editor.start()
    uri = editor.open("train.py", GRADED)
    diags = await editor.diagnostics(uri, version=1)
    graded = {(d.range.start.line, d.severity) for d in diags if d.code == "FP108"}
    assert graded == {
        (6, types.DiagnosticSeverity.Warning),
        (9, types.DiagnosticSeverity.Error),
    }
