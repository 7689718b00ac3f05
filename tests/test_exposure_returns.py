"""The return-dtype fact (issue 17): a call of a project function or model whose every return
is upcast (``.float()``, ``.to(torch.float32)``) yields float32, and the float16 of its
arguments ends there; models reached through string annotations (``model: "Whisper"``)."""

from __future__ import annotations

import json

from lintutil import lint_project

from fp16lint.engine import lint_source
from fp16lint.rules import all_rules

MODEL = (
    "import torch\nfrom torch import nn\n\n\n"
    "class Decoder(nn.Module):\n"
    "    def __init__(self):\n        super().__init__()\n        self.proj = nn.Linear(4, 4)\n\n"
    "    def forward(self, x):\n"
    "        logits = self.proj(x){end}\n"
    "        return logits\n\n\n"
    "class Net(nn.Module):\n"
    "    def __init__(self):\n        super().__init__()\n        self.decoder = Decoder()\n\n"
    "    def forward(self, x):\n        return self.decoder(x)\n"
)
ALIGN = (
    "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from model import Net\n\n\n"
    "def align(model: {annotation}, mel):\n"
    "    logits = model(mel.unsqueeze(0))[0]\n"
    "    return logits.exp()\n"
)
RUN = (
    "import torch\nfrom align import align\n\n\n"
    "def main(model, audio):\n"
    "    mel = audio.to(torch.float16)\n"
    "    return align(model, mel)\n"
)


def _fp202(tmp_path, end: str, annotation: str = '"Net"') -> list[tuple[str, int]]:
    files = {
        "model.py": MODEL.format(end=end),
        "align.py": ALIGN.format(annotation=annotation),
        "run.py": RUN,
    }
    result = lint_project(tmp_path, files, select=("FP202",))
    return [(f.path.rsplit("/", 1)[-1], f.span.start.line) for f in result.findings]


def test_a_model_whose_forward_returns_upcast_logits_ends_the_flow(tmp_path):
    """Net.forward returns its decoder's result, and the decoder's forward returns
    ``.float()`` logits: the model's output is float32, though its input is float16."""
    assert _fp202(tmp_path / "float", ".float()") == []
    assert _fp202(tmp_path / "to", ".to(torch.float32)") == []


def test_a_model_that_returns_its_dtype_still_carries_float16(tmp_path):
    assert _fp202(tmp_path / "plain", "") == [("align.py", 9)]
    # one return that is not upcast is enough
    plain = _fp202(tmp_path / "branch", ".float()\n        if x.dim() > 2:\n            return x")
    assert plain == [("align.py", 9)]


def test_the_string_annotation_names_the_model(tmp_path):
    """Without the annotation, ``model`` could be any callable: the flow goes on."""
    assert _fp202(tmp_path / "bare", ".float()", annotation="object") == [("align.py", 9)]
    assert _fp202(tmp_path / "quoted", ".float()", annotation="'Net'") == []


def test_return_facts_are_small_and_json():
    code = MODEL.format(end=".float()") + "\n\ndef count(x):\n    return int(x.shape[0])\n"
    rules = [r for r in all_rules() if r.code == "FP202"]
    returns = lint_source("model.py", code, rules, module_name="model").facts["upcast_returns"]
    assert returns == {
        "model.Decoder.forward": [],
        "model.Net.forward": ["s model.Net.decoder"],
        "model.count": [],
    }
    assert json.loads(json.dumps(returns)) == returns


def test_tagged_dependencies_stay_one_per_parameter():
    """A parameter reaching a value through calls of two callees, or also directly, is kept
    once, untagged: facts stay small (x_transformers.py's grew 8x without this)."""
    code = (
        "from torch import nn\n\n\nclass A(nn.Module):\n    def forward(self, x):\n"
        "        return x.float()\n\n\nclass B(nn.Module):\n    def forward(self, x):\n"
        "        return x\n\n\na = A()\nb = B()\n\n\n"
        "def run(x, y):\n    h = b(a(x)) + a(y)\n    return b(h + y)\n"
    )
    rules = [r for r in all_rules() if r.code == "FP202"]
    facts = lint_source("m.py", code, rules, module_name="m").facts
    passed = {
        (c["callee"][1], c["span"][0]): c["args"] for c in facts["calls"] if c.get("in") == "m.run"
    }
    assert passed[("m.B", 19)] == [[0, {"params": ["x>i m.A"]}]]  # b(a(x)): the first call
    # h carries x through a(x) (then b: the first tag stays) and y through a(y); y also
    # reaches b directly: y once, untagged
    assert passed[("m.B", 20)] == [[0, {"params": ["x>i m.A", "y"]}]]
