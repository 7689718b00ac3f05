"""FP101 lists what is fp16-unsafe inside a cast model once per label: two alike losses in one
forward (text and image parts of one model), both shortened to `F.cross_entropy(...)`, are one
entry, not a repeated one."""

from __future__ import annotations

from fp16lint.api import lint_text

SCRIPT = """\
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.text_length = 4

    def forward(self, x, y, z):
        logits = self.proj(x)
        a = F.cross_entropy(logits[:, : self.text_length], y[:, : self.text_length])
        b = F.cross_entropy(logits[:, self.text_length :], z[:, self.text_length :])
        return a + b


model = Net().half()
optimizer = torch.optim.Adam(model.parameters())
"""


def test_alike_unsafe_sites_are_listed_once():
    found = [f for f in lint_text(SCRIPT, path="train.py") if f.code == "FP101"]
    assert len(found) == 1
    message = found[0].message
    assert message.count("`F.cross_entropy(...)` in `Net.forward`") == 1, message
