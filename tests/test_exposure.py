"""The float16 exposure analysis (analysis/exposure.py): where float16 really flows, with the
chain from its origin, across functions and files; and the rules judged on it."""

from __future__ import annotations

import json

from lintutil import lint_code, lint_project

from fp16lint.analysis.exposure import Chain, with_chain
from fp16lint.engine import lint_source
from fp16lint.rules import all_rules

LOSS = (
    "import torch\n"
    "\n"
    "\n"
    "def bbox_iou(box1, box2, eps=1e-9):\n"
    "    w1, h1 = box1[..., 2], box1[..., 3]\n"
    "    w2, h2 = box2[..., 2], box2[..., 3]\n"
    "    inter = torch.min(w1, w2) * torch.min(h1, h2)\n"
    "    union = w1 * h1 + w2 * h2 - inter + eps\n"  # line 8
    "    return inter / union\n"
    "\n"
    "\n"
    "class ComputeLoss:\n"
    "    def __init__(self, model):\n"
    "        self.model = model\n"
    "\n"
    "    def __call__(self, pred, targets):\n"
    "        iou = bbox_iou(pred, targets)\n"  # line 17
    "        return (1.0 - iou).mean()\n"
)
TRAIN = (
    "import torch\n"
    "from loss import ComputeLoss\n"
    "\n"
    "\n"
    "def train(model, loader):\n"
    "    compute_loss = ComputeLoss(model)\n"
    "    for imgs, targets in loader:\n"
    "        with torch.autocast('cuda', dtype=torch.float16):\n"  # line 8
    "            pred = model(imgs)\n"
    "            loss = compute_loss(pred, targets)\n"  # line 10
    "        loss.backward()\n"
)


def _codes(findings, code):
    return [(f.path.rsplit("/", 1)[-1], f.span.start.line) for f in findings if f.code == code]


def test_cross_file_iou_eps_under_autocast_is_reported_with_its_chain(tmp_path):
    result = lint_project(tmp_path, {"loss.py": LOSS, "train.py": TRAIN}, select=("FP304",))
    (finding,) = result.findings
    assert (finding.path.rsplit("/", 1)[-1], finding.span.start.line) == ("loss.py", 8)
    assert "; float16 here: called from the autocast region at " in finding.message
    assert finding.message.endswith("train.py:8.")
    steps = [(r.path.rsplit("/", 1)[-1], r.span.start.line, r.message) for r in finding.related]
    assert [step[:2] for step in steps[1:]] == [("train.py", 8), ("train.py", 10), ("loss.py", 17)]
    assert steps[1][2].startswith("float16 origin: the autocast region at ")
    assert [step[2] for step in steps[2:]] == [
        "float16 passed to `ComputeLoss.__call__` here",
        "float16 passed to `bbox_iou` here",
    ]


def test_a_helper_only_called_with_float32_is_not_reported(tmp_path):
    train = (
        "import torch\nfrom loss import bbox_iou\n\n\ndef evaluate(model, boxes, gt):\n"
        "    with torch.autocast('cuda', dtype=torch.float16):\n        pred = model(boxes)\n"
        "    return bbox_iou(pred.float(), gt)\n"
    )
    result = lint_project(tmp_path, {"loss.py": LOSS, "train.py": train}, select=("FP304",))
    assert result.findings == []
    # library mode keeps a site on a tensor whose callers are unseen (a library's function)
    lib = "import torch\n\n\ndef unit(x: torch.Tensor):\n    return x / (x.norm() + 1e-12)\n"
    assert lint_code(lib, select=("FP304",)).findings == []
    alone = lint_code(lib, select=("FP304",), assume_fp16=True, library_info=True).findings
    assert [f.span.start.line for f in alone] == [5]
    # without library-info, only where the norm can be 0 (tests/test_zero_evidence.py)
    assert lint_code(lib, select=("FP304",), assume_fp16=True).findings == []


def test_unpacked_max_keeps_float16_and_indices_do_not():
    code = (
        "import torch\n\n\ndef scale(scores):\n    scores = scores.half()\n"
        "    max_scores, idx = torch.max(scores, dim=1, keepdim=True)\n"
        "    min_scores, _ = scores.min(dim=1, keepdim=True)\n"
        "    spread = (scores - min_scores) / (max_scores - min_scores + 1e-8)\n"
        "    return spread, idx / (idx.sum() + 1e-8)\n"
    )
    findings = lint_code(code, select=("FP304",)).findings
    assert [f.span.start.line for f in findings] == [8]
    assert findings[0].message.endswith("float16 here: from `scores.half()` at example.py:5.")


def test_a_later_reassignment_does_not_erase_an_earlier_cast():
    code = (
        "import torch\n\n\ndef f(feats, path):\n    x = feats.half()\n"
        "    y = x / (x.sum(-1, keepdim=True) + 1e-8)\n"
        "    x = torch.hub.load(path, 'features')\n"
        "    return y, x / (x.sum(-1, keepdim=True) + 1e-8)\n"
    )
    findings = lint_code(code, select=("FP304",)).findings
    assert [f.span.start.line for f in findings] == [6]


def test_op_in_a_helper_is_protected_only_where_autocast_still_runs(tmp_path):
    helper = "def soft(logits):\n    return logits.exp()\n"
    inside = (
        "import torch\nfrom helpers import soft\n\n\ndef infer(model, x):\n"
        "    with torch.autocast('cuda', dtype=torch.float16):\n"
        "        return soft(model(x))\n"
    )
    quiet = lint_project(tmp_path / "a", {"helpers.py": helper, "infer.py": inside})
    assert _codes(quiet.findings, "FP202") == []
    outside = inside.replace("        return soft(model(x))\n", "        out = model(x)\n") + (
        "    return soft(out)\n"
    )
    loud = lint_project(tmp_path / "b", {"helpers.py": helper, "infer.py": outside})
    assert _codes(loud.findings, "FP202") == [("helpers.py", 2)]
    (finding,) = [f for f in loud.findings if f.code == "FP202"]
    assert "float16 here: called from the autocast region at " in finding.message
    assert finding.message.endswith("infer.py:6.")


def test_a_loss_object_kept_on_the_model_is_reached_through_its_attribute(tmp_path):
    files = {
        "model.py": (
            "import torch\nfrom torch import nn\n\n\nclass Dice:\n"
            "    def __call__(self, p, t):\n"
            "        return 1 - 2 * (p * t).sum() / (p.sum() + t.sum() + 1e-10)\n\n\n"
            "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.proj = nn.Linear(4, 4)\n        self.dice = Dice()\n\n"
            "    def forward(self, x, t):\n        return self.dice(self.proj(x), t)\n"
        ),
        "run.py": "from model import Net\n\nnet = Net().half()\n",
    }
    result = lint_project(tmp_path, files, select=("FP304",))
    (finding,) = result.findings
    assert finding.span.start.line == 7
    assert "float16 here: called from `.half()` of `Net` at " in finding.message


def test_subscript_store_of_a_mask_on_half_model_logits_across_functions():
    code = (
        "import torch\n\n\ndef ban(logits, banned):\n    logits[..., banned] = -1e10\n"
        "    return logits\n\n\ndef generate(model, ids, banned):\n    model = model.half()\n"
        "    return ban(model(ids), banned)\n"
    )
    findings = lint_code(code, select=("FP301",)).findings
    assert [f.span.start.line for f in findings] == [5]
    assert "float16 here: called from `model.half()` at example.py:10" in findings[0].message


def test_facts_are_plain_json():
    rules = [r for r in all_rules() if r.code in ("FP202", "FP304")]
    summary = lint_source("loss.py", LOSS, rules, module_name="loss")
    facts = json.loads(json.dumps(summary.facts))
    assert facts["functions"]["loss.ComputeLoss.__call__"] == ["pred", "targets"]
    (call,) = facts["calls"]
    assert call["callee"] == ["f", "loss.bbox_iou"] and call["in"] == "loss.ComputeLoss.__call__"
    assert call["args"] == [[0, {"params": ["pred"]}], [1, {"params": ["targets"]}]]


def test_the_chain_clause_is_formatted_in_one_place():
    chain = Chain((("train.py", (3, 1, 3, 9), "the autocast region at train.py:3"),))
    assert (
        with_chain("An op.", chain)
        == "An op; float16 here: from the autocast region at train.py:3."
    )
    assert with_chain("An op.", None) == "An op."


def test_sink_examples_without_float16_origins_stay_quiet_in_library_mode():
    """FP301/FP302/FP304's VALID examples written about the sink itself (no cast, no autocast) are
    quiet with `assume-fp16` too: library mode keeps today's judgement of the site."""
    from fp16lint.analysis.exposure import ORIGIN_TOKENS

    for rule in all_rules():
        if rule.code not in ("FP301", "FP302", "FP304"):
            continue
        for example in rule.valid:
            if isinstance(example, str) and not any(t in example for t in ORIGIN_TOKENS):
                found = lint_code(example, select=(rule.code,), assume_fp16=True).findings
                assert found == [], (rule.code, example)


def test_shapes_unpacked_from_a_float16_tensor_are_numbers():
    code = (
        "import torch\n\n\ndef attend(q):\n    q = q.half()\n    b, n, d = q.shape\n"
        "    scale = d ** -0.25\n    return q * scale / (n + 1e-8)\n"
    )
    assert lint_code(code, select=("FP202", "FP304")).findings == []


def test_sizes_and_flags_computed_from_a_float16_tensor_carry_no_float16():
    code = (
        "import torch\n\n\ndef scale(x, n, fused):\n    return x.float() / (n + 1e-8)\n\n\n"
        "def run(x):\n    x = x.half()\n    n = x.shape[0]\n"
        "    fused = not x.requires_grad and int(x.size(0)) == 1\n"
        "    return scale(x, n, fused)\n"
    )
    assert lint_code(code, select=("FP304",)).findings == []
    assert lint_code(code.replace("x.float() / (n", "x.float() / (x"), select=("FP304",)).findings


def test_a_hugging_face_model_output_loss_is_float32(tmp_path):
    """``outputs.loss`` of a model call in Hugging Face code is float32 (data.hf_outputs):
    sums of it are not float16 sums; the same code outside Hugging Face code still is."""
    helper = (
        "import torch\n{imp}\n\ndef sp_loss(model, inputs, group):\n"
        "    outputs = model(**inputs)\n"
        "    loss = outputs.loss\n"
        "    gathered = torch.stack(torch.distributed.nn.functional.all_gather(loss, group=group))\n"
        "    return (gathered * 4).sum()\n"
    )
    train = (
        "import torch\nfrom helper import sp_loss\n\n\ndef main(model, batch, group):\n"
        "    model.eval()\n    model = model.half()\n    return sp_loss(model, batch, group)\n"
    )
    for imp, expected in (("import transformers", []), ("import numpy", [("helper.py", 8)])):
        files = {"helper.py": helper.format(imp=imp), "train.py": train}
        result = lint_project(tmp_path / imp.split()[1], files, select=("FP202",))
        assert _codes(result.findings, "FP202") == expected
