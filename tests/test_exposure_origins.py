"""Float16 origins the exposure follows into a model (analysis/index.py, analysis/exposure.py):
submodules appended to a container kept on ``self``, and a submodule's input under autocast."""

from __future__ import annotations

from lintutil import lint_project

NORM = (
    "import torch\n"
    "from torch import nn\n"
    "\n"
    "\n"
    "class LayerNorm(nn.Module):\n"
    "    def __init__(self, dim, eps=1e-5):\n"
    "        super().__init__()\n"
    "        self.eps = eps\n"
    "        self.g = nn.Parameter(torch.ones(dim))\n"
    "\n"
    "    def forward(self, x):\n"
    "        var = torch.var(x, dim=-1, unbiased=False, keepdim=True)\n"  # line 12
    "        mean = torch.mean(x, dim=-1, keepdim=True)\n"
    "        return (x - mean) * (var + self.eps).rsqrt() * self.g\n"
    "\n"
    "\n"
    "class Block(nn.Module):\n"
    "    def __init__(self, dim):\n"
    "        super().__init__()\n"
    "        self.norm = LayerNorm(dim)\n"
    "        self.proj = nn.Linear(dim, dim)\n"
    "\n"
    "    def forward(self, x):\n"
    "        return self.proj(self.norm(x))\n"
    "\n"
    "\n"
    "class Net(nn.Module):\n"
    "    def __init__(self, dim, depth):\n"
    "        super().__init__()\n"
    "        self.stem = nn.Linear(dim, dim)\n"
    "        self.blocks = nn.ModuleList([])\n"
    "        for _ in range(depth):\n"
    "            self.blocks.append(nn.ModuleList([Block(dim), nn.GELU()]))\n"
    "\n"
    "    def forward(self, x):\n"
    "        x = self.stem(x)\n"
    "        for block, act in self.blocks:\n"
    "            x = act(block(x))\n"
    "        return x\n"
)
HALF = "import torch\nfrom model import Net\n\nmodel = Net(8, 2).cuda().half()\n"
AUTOCAST = (
    "import torch\n"
    "from model import Net\n"
    "\n"
    "\n"
    "def train(loader):\n"
    "    model = Net(8, 2).cuda()\n"
    "    for x in loader:\n"
    "        with torch.autocast('cuda', dtype=torch.float16):\n"  # line 8
    "            loss = model(x).mean()\n"
    "        loss.backward()\n"
)


def _where(findings, code="FP203"):
    return sorted(
        (f.path.rsplit("/", 1)[-1], f.span.start.line) for f in findings if f.code == code
    )


def test_modules_appended_to_a_container_on_self_are_submodules(tmp_path):
    result = lint_project(tmp_path, {"model.py": NORM, "train.py": HALF}, select=("FP203",))
    assert _where(result.findings) == [("model.py", 14)]
    assert "because `Net` is cast with `.half()` at " in result.findings[0].message


def test_a_submodule_under_autocast_gets_its_parent_s_float16_activations(tmp_path):
    result = lint_project(tmp_path, {"model.py": NORM, "train.py": AUTOCAST}, select=("FP203",))
    assert _where(result.findings) == [("model.py", 14)]
    finding = result.findings[0]
    assert "; float16 here: called from the autocast region at " in finding.message
    assert finding.message.endswith("train.py:8.")
    assert [r.message for r in finding.related][1:] == [
        "`Net.forward` runs under autocast here",
        "`Block.forward` runs under autocast as a submodule",
        "float16 passed to `LayerNorm.forward` here",
    ]


def test_submodules_under_a_bfloat16_region_or_an_upcasting_norm_stay_quiet(tmp_path):
    bf16 = AUTOCAST.replace("dtype=torch.float16", "dtype=torch.bfloat16")
    result = lint_project(tmp_path / "a", {"model.py": NORM, "train.py": bf16})
    assert _where(result.findings) == []
    upcast = NORM.replace("    def forward(self, x):\n        var", "    def forward(self, x):\n"
                          "        x = x.float()\n        var")  # fmt: skip
    result = lint_project(tmp_path / "b", {"model.py": upcast, "train.py": AUTOCAST})
    assert _where(result.findings) == []


HELPERS = (
    "import torch\n"
    "from torch import nn\n"
    "\n"
    "\n"
    "def to_half(model):\n"
    "    model.half()\n"  # line 6
    "\n"
    "\n"
    "def halve_parameters(m):\n"
    "    for p in m.parameters():\n"
    "        p.data = p.data.half()\n"  # line 11
    "\n"
    "\n"
    "def convert_weights(model):\n"
    "    def _convert(layer):\n"
    "        if isinstance(layer, (nn.Linear, nn.Conv2d)):\n"
    "            layer.weight.data = layer.weight.data.half()\n"
    "\n"
    "    model.apply(_convert)\n"  # line 19
)


def _cast_by(tmp_path, call):
    script = f"from helpers import convert_weights, halve_parameters, to_half\nfrom model import Net\n\n{call}\n"
    files = {"model.py": NORM, "helpers.py": HELPERS, "run.py": script}
    return lint_project(tmp_path, files, select=("FP203",)).findings


def test_a_helper_casting_its_argument_in_place_makes_the_caller_s_model_float16(tmp_path):
    findings = _cast_by(tmp_path / "a", "model = Net(8, 2)\nto_half(model)")
    assert _where(findings) == [("model.py", 14)]
    assert "because `Net` is cast with `.half()` at " in findings[0].message
    assert "helpers.py:6" in findings[0].message
    findings = _cast_by(tmp_path / "b", "halve_parameters(Net(8, 2))")
    assert _where(findings) == [("model.py", 14)] and "helpers.py:11" in findings[0].message


def test_model_apply_of_a_function_that_halves_weights_casts_the_model(tmp_path):
    findings = _cast_by(tmp_path, "model = Net(8, 2)\nconvert_weights(model)")
    assert _where(findings) == [("model.py", 14)]
    assert "because `Net` is cast with `.apply(...)` at " in findings[0].message
    assert "helpers.py:19" in findings[0].message


def test_helpers_that_do_not_cast_to_float16_or_are_not_called_make_nothing_float16(tmp_path):
    assert _cast_by(tmp_path / "a", "model = Net(8, 2)") == []
    bf16 = HELPERS.replace(".half()", ".bfloat16()")
    files = {"model.py": NORM, "helpers.py": bf16, "run.py": "from helpers import *\n"
             "from model import Net\n\nto_half(Net(8, 2))\nconvert_weights(Net(8, 2))\n"}  # fmt: skip
    assert lint_project(tmp_path / "b", files, select=("FP203",)).findings == []
    upcast = HELPERS.replace("p.data.half()", "p.data.float()")
    files = {"model.py": NORM, "helpers.py": upcast,
             "run.py": "from helpers import *\nfrom model import Net\n\nhalve_parameters(Net(8, 2))\n"}  # fmt: skip
    assert lint_project(tmp_path / "c", files, select=("FP203",)).findings == []


TRAINER = (
    "import torch\n"
    "from accelerate import Accelerator\n"
    "\n"
    "\n"
    "class Trainer:\n"
    "    def __init__(self, model, fp16=False):\n"
    "        self.accelerator = Accelerator(mixed_precision='fp16' if fp16 else 'no')\n"
    "        self.model = model\n"
    "\n"
    "    def train(self, loader):\n"
    "        for x in loader:\n"
    "            with self.accelerator.autocast():\n"  # line 12
    "                loss = self.model(x).mean()\n"
    "            self.accelerator.backward(loss)\n"
)


def test_a_trainer_only_its_users_build_runs_the_models_defined_next_to_it_under_autocast(
    tmp_path,
):
    files = {"lib/__init__.py": "", "lib/model.py": f"{NORM}\n\n{TRAINER}"}
    findings = lint_project(tmp_path / "a", files, select=("FP203",)).findings
    assert _where(findings) == [("model.py", 14)]
    assert findings[0].message.endswith(f"model.py:{NORM.count(chr(10)) + 2 + 12}.")
    assert "`Net.forward` runs under autocast here, if it is the `model` given to `Trainer`" in [
        r.message for r in findings[0].related
    ]
    # built in the project with a model it does not show: no guess
    files["lib/run.py"] = "from lib.model import Trainer\n\nTrainer(load(), fp16=True)\n"
    assert lint_project(tmp_path / "b", files, select=("FP203",)).findings == []
    # models of another module are not the trainer's
    files = {"lib/__init__.py": "", "lib/trainer.py": TRAINER, "lib/model.py": NORM}
    assert lint_project(tmp_path / "c", files, select=("FP203",)).findings == []


RECAST = (
    "import torch\n"
    "from model import Net\n"
    "\n"
    "\n"
    "def log_validation(unet, device, torch_dtype):\n"
    "    return unet.to(device, dtype=torch_dtype)\n"  # line 6
    "\n"
    "\n"
    "def main(args):\n"
    "    unet = Net(8, 2)\n"
    "    weight_dtype = torch.float32\n"
    "    if args.mixed_precision == 'fp16':\n"
    "        weight_dtype = torch.float16\n"
    "    log_validation(unet, 'cuda', torch_dtype=weight_dtype)\n"
)


def test_a_helper_recasting_a_model_to_a_float16_dtype_argument_makes_it_float16(tmp_path):
    findings = lint_project(tmp_path / "a", {"model.py": NORM, "train.py": RECAST}).findings
    assert _where(findings) == [("model.py", 14)]
    assert "`Net` may be cast to float16 (when mixed precision is fp16) with " in (
        findings[0].message
    )
    assert "train.py:6" in findings[0].message
    bf16 = RECAST.replace("torch.float16", "torch.bfloat16")
    findings = lint_project(tmp_path / "b", {"model.py": NORM, "train.py": bf16}).findings
    assert _where(findings) == []


def test_a_model_parameter_s_annotation_or_isinstance_assert_names_its_class(tmp_path):
    declared = TRAINER.replace(
        "    def __init__(self, model, fp16=False):\n",
        "    def __init__(self, model, fp16=False):\n        assert isinstance(model, (Net,))\n",
    ).replace("import torch\n", "import torch\nfrom lib.model import Net\n")
    build = (
        "from lib.trainer import Trainer\n\n\ndef make(model):\n    return Trainer(model, True)\n"
    )
    files = {"lib/__init__.py": "", "lib/model.py": NORM, "lib/trainer.py": declared,
             "lib/run.py": build}  # fmt: skip
    findings = lint_project(tmp_path / "a", files, select=("FP203",)).findings
    assert _where(findings) == [("model.py", 14)]
    assert "`Net.forward` runs under autocast here" in [r.message for r in findings[0].related]
    annotated = (
        declared.replace("        assert isinstance(model, (Net,))\n", "")
        .replace(
            "def __init__(self, model, fp16=False)",
            "def __init__(self, model: Optional[Net], fp16=False)",
        )
        .replace("import torch\n", "import torch\nfrom typing import Optional\n")
    )
    files["lib/trainer.py"] = annotated
    assert _where(lint_project(tmp_path / "b", files, select=("FP203",)).findings) == [
        ("model.py", 14)
    ]
    files["lib/trainer.py"] = TRAINER  # the project builds it with a model it does not show
    assert lint_project(tmp_path / "c", files, select=("FP203",)).findings == []


def test_a_model_cast_part_by_part_keeps_its_norm_layers_and_buffers(tmp_path):
    model = NORM.replace("LayerNorm(dim)", "nn.BatchNorm1d(dim)")
    script = (
        "from helpers import convert_weights, halve_parameters\nfrom model import Net\n\n"
        "convert_weights(Net(8, 2))\nhalve_parameters(Net(8, 2))\n"
    )
    files = {"model.py": model, "helpers.py": HELPERS, "run.py": script}
    # library-info lists the float32-accumulating norms FP201 leaves out by default
    shown = {"select": ("FP201",), "library_info": True}
    assert lint_project(tmp_path / "a", files, **shown).findings == []
    files["run.py"] = "from model import Net\n\nNet(8, 2).half()\n"  # a whole cast: listed
    assert len(lint_project(tmp_path / "b", files, **shown).findings) == 1


def test_every_step_of_a_chain_through_methods_under_autocast_has_its_line(tmp_path):
    """A method a module's forward calls (``self.attend(...)``) runs under the region too; the
    chain names the call's line (its span used to be copied before the walk filled it in)."""
    model = (
        "import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n"
        "    def __init__(self, d):\n        super().__init__()\n"
        "        self.qk = nn.Linear(d, 2 * d)\n\n"
        "    def forward(self, x):\n        return self.attend(x)\n\n"  # line 11
        "    def attend(self, x):\n        q, k = self.qk(x).chunk(2, dim=-1)\n"
        "        return torch.softmax(q @ k.transpose(-1, -2), -1)\n"  # line 15
    )
    train = (
        "import torch\nfrom model import Net\n\nnet = Net(8)\n\n"
        "with torch.autocast('cuda', dtype=torch.float16):\n    y = net(x)\n"
    )
    found = lint_project(tmp_path, {"model.py": model, "train.py": train}, select=("FP205",))
    assert [
        (f.span.start.line, [r.span.start.line for r in f.related]) for f in found.findings
    ] == [(15, [6, 7, 11])]


def test_a_model_declared_as_one_of_several_classes_runs_each_under_autocast(tmp_path):
    """``assert isinstance(model, (Net, Other))`` in a trainer: the autocast region runs
    whichever the caller gives, so each class's forward runs under it."""
    other = (
        "\n\nclass Other(nn.Module):\n"
        "    def __init__(self, dim):\n"
        "        super().__init__()\n"
        "        self.proj = nn.Linear(dim, dim)\n"
        "\n"
        "    def forward(self, x):\n"
        "        h = self.proj(x)\n"
        "        return h / h.pow(2).sum(-1, keepdim=True).sqrt()\n"
    )
    declared = TRAINER.replace(
        "    def __init__(self, model, fp16=False):\n",
        "    def __init__(self, model, fp16=False):\n"
        "        assert isinstance(model, (Net, Other))\n",
    ).replace("import torch\n", "import torch\nfrom lib.model import Net, Other\n")
    build = (
        "from lib.trainer import Trainer\n\n\ndef make(model):\n    return Trainer(model, True)\n"
    )
    files = {"lib/__init__.py": "", "lib/model.py": NORM + other, "lib/trainer.py": declared,
             "lib/run.py": build}  # fmt: skip
    findings = lint_project(tmp_path / "a", files, select=("FP203",)).findings
    found = _where(findings)
    assert ("model.py", 14) in found
    assert any(path == "model.py" and line > 40 for path, line in found), found
    related = {r.message for f in findings for r in f.related}
    assert {
        "`Net.forward` runs under autocast here",
        "`Other.forward` runs under autocast here",
    } <= related


ATTENTION = (
    "import torch\n"
    "from torch import nn\n"
    "\n"
    "\n"
    "class Net(nn.Module):\n"
    "    def __init__(self, dim):\n"
    "        super().__init__()\n"
    "        self.qkv = nn.Linear(dim, 3 * dim)\n"
    "\n"
    "    def forward(self, x):\n"
    "        q, k, v = self.qkv(x).chunk(3, dim=-1)\n"
    "        attn = (q @ k.transpose(-2, -1)) * 0.125\n"  # line 12
    "        return attn.softmax(dim=-1) @ v\n"
    "\n"
    "\n"
    "def net_small(**kwargs):\n"
    "    return Net(64, **kwargs)\n"
    "\n"
    "\n"
    "def _helper():\n"
    "    return nn.Linear(2, 2)\n"
)
REGISTRY = (
    "import torch\n"
    "import models\n"
    "\n"
    "\n"
    "def train(model, loader):\n"
    "    for x in loader:\n"
    "        with torch.autocast('cuda'):\n"
    "            model(x).sum().backward()\n"
    "\n"
    "\n"
    "def main(args, loader):\n"
    "    model = models.__dict__[args.arch]()\n"
    "    model, head = model.cuda(), torch.nn.Identity()\n"
    "    train(model, loader)\n"
)


def test_a_model_built_by_a_registry_name_and_moved_in_a_tuple_assignment_is_resolved(tmp_path):
    """``models.__dict__[args.arch]()`` makes what the module's builders make (the classes
    themselves and private helpers are no choice); ``model, head = model.cuda(), ...``
    keeps it (each name takes its own element)."""
    files = {"models.py": ATTENTION, "train.py": REGISTRY}
    findings = lint_project(tmp_path / "a", files, select=("FP205",)).findings
    assert _where(findings, "FP205") == [("models.py", 12)]
    assert "train.py:7" in findings[0].message
    # an opaque tuple (a call's result) says nothing of what ``model`` holds
    opaque = REGISTRY.replace("model.cuda(), torch.nn.Identity()", "make_pair(model)")
    files = {"models.py": ATTENTION, "train.py": opaque}
    assert lint_project(tmp_path / "b", files, select=("FP205",)).findings == []


HOPS = (
    "import torch\n"
    "from models import Net\n"
    "\n"
    "\n"
    "def step(model, x):\n"
    "    with torch.autocast('cuda'):\n"  # line 6
    "        return model.forward(x)\n"
    "\n"
    "\n"
    "def train(model, loader):\n"
    "    for x in loader:\n"
    "        step(model, x)\n"
    "\n"
    "\n"
    "def main(loader):\n"
    "    train(Net(8), loader)\n"
)


def test_a_model_passed_on_through_parameters_and_called_by_forward_is_resolved(tmp_path):
    """``main`` builds it, ``train`` passes its parameter on, ``step`` runs
    ``model.forward(x)`` under autocast: the instance follows the calls."""
    files = {"models.py": ATTENTION, "train.py": HOPS}
    findings = lint_project(tmp_path / "a", files, select=("FP205",)).findings
    assert _where(findings, "FP205") == [("models.py", 12)]
    assert "train.py:6" in findings[0].message
    # a parameter rebound before it is passed on holds something else
    rebound = HOPS.replace(
        "    for x in loader:\n", "    model = wrap(model)\n    for x in loader:\n"
    )
    files = {"models.py": ATTENTION, "train.py": rebound}
    assert lint_project(tmp_path / "b", files, select=("FP205",)).findings == []
