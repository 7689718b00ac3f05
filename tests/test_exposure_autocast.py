"""Functions that run under fp16 autocast (analysis/exposure.py, analysis/flow.py): the call
graph from autocast regions and from frameworks' fp16 switches (``fp16_entries``), the
``@autocast`` pseudo-parameter, and autocast's float32 list inside and outside regions."""

from __future__ import annotations

import json
from pathlib import Path

from lintutil import lint_code, lint_project

from fp16lint.analysis.context import FileSummary, Project
from fp16lint.analysis.exposure import AUTOCAST, exposure_of
from fp16lint.engine import lint_source
from fp16lint.project import run_project
from fp16lint.rules import all_rules
from fp16lint.runner import module_name_for, selected_rules
from fp16lint.settings import Settings

MODEL = (
    "import torch\n"
    "from torch import nn\n"
    "\n"
    "\n"
    "class Net(nn.Module):\n"
    "    def __init__(self, d):\n"
    "        super().__init__()\n"
    "        self.proj = nn.Linear(d, d)\n"
    "        self.norm = nn.LayerNorm(d)\n"
    "\n"
    "    def forward(self, x):\n"
    "        h = self.proj(x)\n"  # line 12: float16 under autocast
    "        gate = torch.sigmoid(h) / (h.abs() + 1e-8)\n"  # line 13: reported
    "        logp = torch.log(torch.softmax(h, -1) + 1e-8)\n"  # line 14: float32 under autocast
    "        n = self.norm(h)\n"
    "        return gate + logp + n / (n.abs() + 1e-8)\n"  # line 16: LayerNorm gives float32
)
LOSS = (
    "import torch\n"
    "\n"
    "\n"
    "def bbox_iou(box1, box2, eps=1e-9):\n"
    "    inter = torch.min(box1, box2)[..., 0]\n"
    "    union = box1[..., 0] * box1[..., 1] + box2[..., 0] - inter + eps\n"  # line 6
    "    return inter / union\n"
    "\n"
    "\n"
    "class ComputeLoss:\n"
    "    def __init__(self, head):\n"
    "        self.head = head\n"
    "\n"
    "    def __call__(self, feats, targets):\n"
    "        boxes = torch.matmul(feats, self.head)\n"  # float16 under autocast
    "        return (1.0 - bbox_iou(boxes, targets)).mean()\n"  # line 16
)
TRAIN = (
    "import torch\n"
    "from loss import ComputeLoss\n"
    "from model import Net\n"
    "\n"
    "model = Net(8)\n"
    "\n"
    "\n"
    "def train(loader, head):\n"
    "    compute_loss = ComputeLoss(head)\n"
    "    for x, targets in loader:\n"
    "        with torch.autocast('cuda', dtype=torch.float16):\n"  # line 11
    "            feats = model(x)\n"  # line 12
    "            loss = compute_loss(feats.float(), targets)\n"  # line 13
    "        loss.backward()\n"
)


def _where(findings, code="FP304"):
    return sorted(
        (f.path.rsplit("/", 1)[-1], f.span.start.line) for f in findings if f.code == code
    )


def _steps(finding):
    return [(r.path.rsplit("/", 1)[-1], r.span.start.line, r.message) for r in finding.related]


def test_forward_and_loss_helper_called_in_a_region_run_under_it(tmp_path):
    files = {"model.py": MODEL, "loss.py": LOSS, "train.py": TRAIN}
    result = lint_project(tmp_path, files, select=("FP304",))
    # line 14: softmax is on autocast's float32 list; line 16: LayerNorm's output is float32
    assert _where(result.findings) == [("loss.py", 6), ("model.py", 13)]
    by_line = {f.span.start.line: f for f in result.findings}
    iou = by_line[6]
    assert "; float16 here: called from the autocast region at " in iou.message
    assert iou.message.endswith("train.py:11.")
    assert [s[:2] for s in _steps(iou)][-3:] == [
        ("train.py", 11),
        ("train.py", 13),
        ("loss.py", 16),
    ]
    labels = [s[2] for s in _steps(iou)][-3:]
    assert labels[0].startswith("float16 origin: the autocast region at ")
    assert labels[1] == "`ComputeLoss.__call__` runs under autocast here"
    assert labels[2] == "float16 passed to `bbox_iou` here"
    gate = by_line[13]
    assert [s[:2] for s in _steps(gate)] == [("train.py", 11), ("train.py", 12)]
    assert _steps(gate)[1][2] == "`Net.forward` runs under autocast here"


def test_enabled_false_and_bfloat16_regions_do_not_put_callees_under_autocast(tmp_path):
    for region in (
        "torch.autocast('cuda', enabled=False)",
        "torch.autocast('cuda', dtype=torch.bfloat16)",
    ):
        train = TRAIN.replace("torch.autocast('cuda', dtype=torch.float16)", region)
        root = tmp_path / str(len(region))
        result = lint_project(root, {"model.py": MODEL, "loss.py": LOSS, "train.py": train})
        assert _where(result.findings) == [], region


def test_a_disabled_region_inside_a_function_under_autocast_stops_it(tmp_path):
    model = MODEL.replace(
        "        h = self.proj(x)\n",
        "        with torch.autocast('cuda', enabled=False):\n"
        "            return self.head(x)\n\n    def head(self, x):\n        h = self.proj(x)\n",
    )
    result = lint_project(tmp_path, {"model.py": model, "train.py": TRAIN}, select=("FP304",))
    assert _where(result.findings) == []
    # called plainly, ``head`` runs under the caller's autocast
    direct = model.replace(
        "        with torch.autocast('cuda', enabled=False):\n            ", "        "
    )
    result = lint_project(tmp_path / "b", {"model.py": direct, "train.py": TRAIN})
    assert _where(result.findings) == [("model.py", 16)]


def test_without_autocast_nothing_under_it_is_reported(tmp_path):
    train = TRAIN.replace("        with torch.autocast('cuda', dtype=torch.float16):\n", "")
    train = train.replace("            feats", "        feats").replace(
        "            loss", "        loss"
    )
    result = lint_project(tmp_path, {"model.py": MODEL, "loss.py": LOSS, "train.py": train})
    assert _where(result.findings) == []


def test_float32_list_outputs_inside_a_region_are_not_float16():
    code = (
        "import torch\n\n\ndef step(model, x, y):\n"
        "    with torch.autocast('cuda', dtype=torch.float16):\n"
        "        logits = x.half() @ y.half()\n"
        "        p = torch.softmax(logits, -1)\n"
        "        total = logits.sum()\n"
        "        a = torch.log(p + 1e-8)\n"
        "        b = logits / (total + 1e-8)\n"
        "        c = logits / (logits.abs() + 1e-8)\n"  # elementwise: still float16
        "    return a, b, c\n"
    )
    assert _where(lint_code(code, select=("FP304",)).findings) == [("example.py", 11)]
    cpu = code.replace("'cuda'", "'cpu'")  # CPU's float32 list is another one: left as it was
    assert len(_where(lint_code(cpu, select=("FP304",)).findings)) >= 1


def test_call_graph_facts_are_small_json():
    rules = [r for r in all_rules() if r.code == "FP304"]
    facts = json.loads(json.dumps(lint_source("train.py", TRAIN, rules, module_name="train").facts))
    assert facts["callees"]["train.train"][0][:2] == ["f", "loss.ComputeLoss"]
    calls = facts["autocast_calls"]
    assert [c["callee"] for c in calls] == [["i", "model.Net"], ["i", "loss.ComputeLoss"]]
    assert {tuple(c["region"][:2]) for c in calls} == {(11, 14)} and calls[0]["device"] == "cuda"
    disabled = TRAIN.replace("dtype=torch.float16", "enabled=False")
    facts = lint_source("train.py", disabled, rules, module_name="train").facts
    assert "autocast_calls" not in facts and len(facts["callees"]["train.train"]) == 1


def _summaries(files: dict[str, str], root: Path, settings: Settings) -> list[FileSummary]:
    rules = selected_rules(settings)
    out = []
    for rel, text in files.items():
        path = root / rel
        path.write_text(text)
        module, is_package = module_name_for(path)
        out.append(lint_source(rel, text, rules, module_name=module, is_package=is_package))
    return out


def test_fp16_entries_of_a_framework_switch_put_methods_under_autocast(tmp_path):
    """The interface for the framework switches (HF Trainer ``fp16=True``, accelerate, Lightning):
    a per-file fact naming a project class and the methods that run under fp16 autocast."""
    base = (
        "import torch\nfrom torch import nn\n\n\nclass Base(nn.Module):\n"
        "    def training_step(self, x):\n        h = self.lin(x)\n"
        "        return h / (h.abs() + 1e-8)\n"  # line 8: inherited by Lit
    )
    lit = "import torch\nfrom base import Base\n\n\nclass Lit(Base):\n    pass\n"
    settings = Settings(root=tmp_path, select=("FP304",))
    summaries = _summaries({"base.py": base.replace("self.lin(x)", "x @ x"), "lit.py": lit},
                           tmp_path, settings)  # fmt: skip
    entry = {
        "kind": "autocast",
        "target": ["c", "lit.Lit"],
        "methods": ["forward", "training_step"],
        "step": {"what": "switch", "span": [3, 10, 3, 40], "text": "Trainer(precision=16)"},
    }
    # a casting switch is the index's (the class becomes resident), not an autocast seed
    cast_entry = {"kind": "cast", "target": ["c", "lit.Lit"], "step": {**entry["step"]}}
    summaries.append(
        FileSummary("fit.py", facts={"fp16_entries": [entry, cast_entry]}, parsed=True)
    )
    project = Project(summaries, settings)
    chain = exposure_of(project).chain_for("base.Base.training_step", [AUTOCAST])
    assert chain is not None and chain.autocast == "cuda"
    assert chain.clause == "float16 here: from `Trainer(precision=16)` at fit.py:3"
    result = run_project(summaries, selected_rules(settings), settings)
    (finding,) = result.replaced.values()
    assert finding is not None and finding.span.start.line == 8
    assert finding.message.endswith("float16 here: from `Trainer(precision=16)` at fit.py:3.")
    assert [(r.path, r.span.start.line) for r in finding.related][-1] == ("fit.py", 3)
    # without the entry the site is dropped: nothing shows it runs in float16
    alone = run_project(summaries[:-1], selected_rules(settings), settings)
    assert list(alone.replaced.values()) == [None]


def test_the_call_chain_is_bounded():
    """A function reached through more calls than a chain holds (``_MAX_CHAIN``) is not put
    under autocast: its chain could not be shown."""
    helpers = "".join(
        f"def f{i}(x):\n    h = x @ x\n    f{i + 1}(x)\n    return h / (h.abs() + 1e-8)\n\n\n"
        for i in range(1, 10)
    )
    code = (
        "import torch\n\n\n" + helpers + "def f10(x):\n    return x\n\n\n"
        "def main(x):\n    with torch.autocast('cuda'):\n        f1(x)\n"
    )
    found = lint_code(code, select=("FP304",)).findings
    reached = [(f.span.start.line - 4) // 6 + 1 for f in found]
    assert reached == [1, 2, 3, 4, 5, 6, 7]
    assert all(len(f.related) <= 8 for f in found)


def test_a_model_wrapped_after_construction_is_still_resolved():
    code = (
        "import torch\nfrom torch import nn\n"
        "from torch.nn.parallel import DistributedDataParallel as DDP\n\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.proj = nn.Linear(4, 4)\n\n    def forward(self, x):\n"
        "        h = self.proj(x)\n        return h / (h.abs() + 1e-8)\n\n\n"
        "def train(x):\n    model = Net()\n    model = torch.compile(DDP(model))\n"
        "    with torch.autocast('cuda'):\n        return model(x)\n"
    )
    (finding,) = lint_code(code, select=("FP304",)).findings
    assert finding.span.start.line == 13
    assert finding.related[-1].message == "`Net.forward` runs under autocast here"


NET = (
    "import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n"
    "    def __init__(self):\n        super().__init__()\n        self.proj = nn.Linear(4, 4)\n\n"
    "    def forward(self, x):\n        h = self.proj(x)\n"
    "        return h / (h.abs() + 1e-8)\n"  # line 12
)


def test_a_model_passed_as_an_argument_or_kept_on_a_trainer_is_resolved(tmp_path):
    train = (
        "import torch\nfrom net import Net\n\n\ndef fit(model, x):\n"
        "    with torch.autocast('cuda'):\n        return model(x)\n\n\n"
        "class Trainer:\n    def __init__(self, model):\n        self.model = model\n\n"
        "    def step(self, x):\n        with torch.autocast('cuda'):\n"
        "            return self.model(x)\n"
    )
    by_function = train + "\n\nfit(Net().cuda(), 1)\n"
    result = lint_project(tmp_path / "a", {"net.py": NET, "train.py": by_function})
    (finding,) = [f for f in result.findings if f.code == "FP304"]
    assert finding.span.start.line == 12
    assert [(r.path.rsplit("/", 1)[-1], r.span.start.line) for r in finding.related] == [
        ("train.py", 6),
        ("train.py", 7),
    ]
    by_attribute = train + "\n\nnet = Net()\nTrainer(net).step(1)\n"
    result = lint_project(tmp_path / "b", {"net.py": NET, "train.py": by_attribute})
    (finding,) = [f for f in result.findings if f.code == "FP304"]
    assert finding.related[0].span.start.line == 15
    # no caller says what the model is: nothing is reported
    result = lint_project(tmp_path / "c", {"net.py": NET, "train.py": train})
    assert [f for f in result.findings if f.code == "FP304"] == []


def test_a_method_under_a_switch_passes_autocast_on_to_its_helpers(tmp_path):
    """``unit`` runs under the switch's autocast too: ``norm`` (float32 list) is protected and
    its output is float32, so neither FP202 nor FP304 reports; a plain op is reported."""
    model = (
        "import torch\nfrom torch import nn\n\n\ndef unit(x):\n"
        "    return x / (x.norm(dim=-1, keepdim=True) + 1e-12) + x / (x.abs() + 1e-9)\n\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.proj = nn.Linear(4, 4)\n\n    def forward(self, x):\n"
        "        return unit(self.proj(x))\n"
    )
    settings = Settings(root=tmp_path, select=("FP202", "FP304"))
    summaries = _summaries({"model.py": model}, tmp_path, settings)
    entry = {
        "kind": "autocast",
        "target": ["c", "model.Net"],
        "methods": ["forward"],
        "step": {"what": "switch", "span": [3, 1, 3, 30], "text": "Accelerator(fp16)"},
    }
    summaries.append(FileSummary("fit.py", facts={"fp16_entries": [entry]}, parsed=True))
    result = run_project(summaries, selected_rules(settings), settings)
    kept = [f for f in [*result.replaced.values(), *result.findings] if f is not None]
    assert [(f.code, f.span.start.line, f.span.start.column) for f in kept] == [("FP304", 6, 72)]


def test_submodules_run_under_autocast_however_they_are_called(tmp_path):
    model = (
        "import torch\nfrom torch import nn\n\n\nclass Norm(nn.Module):\n"
        "    def forward(self, x):\n        h = self(x) if False else x @ x\n"
        "        return h / (h.var(-1, keepdim=True) + 1e-8)\n\n\n"  # line 8
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.blocks = nn.ModuleList([Norm() for _ in range(2)])\n\n"
        "    def forward(self, x):\n        for block in self.blocks:\n"
        "            x = block(x)\n        return x\n\n\n"
        "net = Net()\nwith torch.autocast('cuda'):\n    net(1)\n"
    )
    result = lint_project(tmp_path, {"model.py": model}, select=("FP304",))
    (finding,) = result.findings
    assert finding.span.start.line == 8
    assert finding.related[-1].message == "`Norm.forward` runs under autocast as a submodule"
    assert finding.related[-1].span.start.line == 14


def test_an_op_cuda_autocast_runs_in_float32_is_protected_in_a_helper(tmp_path):
    helper = "import torch\n\n\ndef dist(q, k):\n    return torch.cdist(q, k, p=1)\n"
    run = (
        "import torch\nfrom helper import dist\n\n\ndef f(q, k):\n    q = q.cuda().half()\n"
        "    with torch.autocast('cuda', dtype=torch.float16):\n        a = dist(q, k)\n"
        "    return a, dist(q, k)\n"
    )
    result = lint_project(tmp_path, {"helper.py": helper, "run.py": run}, select=("FP204",))
    (finding,) = result.findings  # the call outside the region only
    assert finding.related[-1].span.start.line == 9


def test_regions_opened_through_a_name_bound_to_the_autocast_callable(tmp_path):
    """``scope = autocast if amp else nullcontext`` / ``partial(torch.autocast, ...)``, then
    ``with scope(...)``: the region the call opens (a null alternative makes it may-be)."""
    opened = {
        "choice": (
            "from contextlib import nullcontext\n",
            "scope = torch.autocast if amp else nullcontext\n",
            "scope('cuda', dtype=torch.float16)",
        ),
        "partial": (
            "from functools import partial\n",
            "scope = partial(torch.autocast, 'cuda', dtype=torch.float16)\n",
            "scope()",
        ),
        "alias": ("from torch.cuda.amp import autocast\n", "scope = autocast\n", "scope(True)"),
    }
    for name, (imports, binding, call) in opened.items():
        train = (
            TRAIN.replace("import torch\n", f"import torch\n{imports}", 1)
            .replace("model = Net(8)\n", f"model = Net(8)\namp = True\n{binding}")
            .replace("torch.autocast('cuda', dtype=torch.float16)", call)
        )
        result = lint_project(
            tmp_path / name, {"model.py": MODEL, "loss.py": LOSS, "train.py": train}
        )
        assert _where(result.findings) == [("loss.py", 6), ("model.py", 13)], name
    for name, binding in (
        ("bf16", "scope = partial(torch.autocast, 'cuda', dtype=torch.bfloat16)\n"),
        ("opaque", "scope = make_scope()\n"),
    ):
        train = (
            TRAIN.replace("import torch\n", "import torch\nfrom functools import partial\n", 1)
            .replace("model = Net(8)\n", f"model = Net(8)\n{binding}")
            .replace("torch.autocast('cuda', dtype=torch.float16)", "scope()")
        )
        result = lint_project(
            tmp_path / name, {"model.py": MODEL, "loss.py": LOSS, "train.py": train}
        )
        assert _where(result.findings) == [], name


PRECISION = (
    "import torch\n"
    "from contextlib import suppress\n"
    "from functools import partial\n"
    "\n"
    "\n"
    "def get_autocast(precision, device_type='cuda'):\n"
    "    if precision == 'amp':\n"
    "        dtype = torch.float16\n"
    "    elif precision == 'amp_bf16':\n"
    "        dtype = torch.bfloat16\n"
    "    else:\n"
    "        return suppress\n"
    "    return partial(torch.amp.autocast, device_type=device_type, dtype=dtype)\n"
)


def test_a_region_opened_by_what_a_function_of_another_module_returns(tmp_path):
    """``autocast = get_autocast(p)`` (``precision.py`` returns ``partial(torch.amp.autocast,
    dtype=...)`` or ``suppress``), then ``with autocast():`` opens a may-be fp16 region."""
    train = (
        TRAIN.replace("import torch\n", "import torch\nfrom precision import get_autocast\n", 1)
        .replace("def train(loader, head):\n", "def train(loader, head, precision):\n")
        .replace("    compute_loss = Comp", "    autocast = get_autocast(precision)\n    compute_loss = Comp")
        .replace("torch.autocast('cuda', dtype=torch.float16)", "autocast()")
    )  # fmt: skip
    files = {"model.py": MODEL, "loss.py": LOSS, "train.py": train, "precision.py": PRECISION}
    result = lint_project(tmp_path / "fp16", files, select=("FP304",))
    assert _where(result.findings) == [("loss.py", 6), ("model.py", 13)]
    gate = next(f for f in result.findings if f.path.endswith("model.py"))
    assert "; float16 here: called from the autocast region at " in gate.message
    assert gate.message.endswith("/train.py:13 (`get_autocast()` may return an fp16 autocast).")
    assert [s[:2] for s in _steps(gate)] == [("train.py", 13), ("train.py", 14)]
    for name, returned in (
        ("bf16", "dtype = torch.bfloat16\n        dtype = torch.bfloat16"),
        ("null", "return suppress\n        dtype = torch.bfloat16"),
    ):
        files["precision.py"] = PRECISION.replace("dtype = torch.float16", returned, 1)
        result = lint_project(tmp_path / name, files, select=("FP304",))
        assert _where(result.findings) == [], name
