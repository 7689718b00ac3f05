"""Frameworks' float16 switches as float16 origins (analysis/switches.py, data/fp16_switches.py):
the ``fp16_entries`` facts, and the index making the models a casting switch converts
resident (analysis/index.py)."""

from __future__ import annotations

import re

import pytest
from lintutil import lint_project

from fp16lint.analysis.switches import SwitchTracker
from fp16lint.engine import lint_source

HEAD = (
    "import argparse\n"
    "import deepspeed\n"
    "import lightning.pytorch as pl\n"
    "from accelerate import Accelerator\n"
    "from lightning import Fabric\n"
    "from transformers import AutoModel, HfArgumentParser, Trainer, TrainingArguments\n"
    "from models import Net, LitNet\n"
    "\n"
    "\n"
    "def main(opt):\n"
    "    model = Net(8)\n"
)


def entries(body: str) -> list[dict]:
    """The ``fp16_entries`` of ``HEAD + body`` (module ``train``), spans left out."""
    summary = lint_source("train.py", HEAD + body, [], module_name="train",
                          fact_trackers=(SwitchTracker,))  # fmt: skip
    out = []
    for entry in summary.facts.get("fp16_entries", []):
        entry = dict(entry)
        step = entry.pop("step")
        assert step["what"] == "switch" and step["span"][0] > HEAD.count("\n")
        entry["text"] = step["text"]
        out.append(entry)
    return out


def autocast(target: str, methods: tuple[str, ...], text: str, **extra) -> dict:
    return {"kind": "autocast", "target": ["c", target], "methods": list(methods), "text": text,
            **extra}  # fmt: skip


def cast(text: str, **extra) -> dict:
    return {"kind": "cast", "target": ["c", "models.Net"], "text": text, **extra}


FORWARD = ("forward",)
ACCELERATE = 'Accelerator(mixed_precision="fp16")'
LIGHTNING = ("training_step", "validation_step", "test_step", "predict_step", "forward")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "    args = TrainingArguments('out', fp16=True)\n    Trainer(model=model, args=args)\n",
            [autocast("models.Net", ("forward",), "Trainer(fp16=True)")],
        ),
        (  # a Trainer subclass, positional arguments, Seq2Seq arguments
            "    from transformers import Seq2SeqTrainingArguments as A\n"
            "    class MyTrainer(Trainer):\n        pass\n"
            "    MyTrainer(model, A('out', fp16=True))\n",
            [autocast("models.Net", ("forward",), "MyTrainer(fp16=True)")],
        ),
        (  # every HfArgumentParser script can select fp16 with --fp16
            "    parser = HfArgumentParser((TrainingArguments,))\n"
            "    (training_args,) = parser.parse_args_into_dataclasses()\n"
            "    Trainer(model=model, args=training_args)\n",
            [autocast("models.Net", ("forward",), "Trainer(fp16=True)", when="--fp16")],
        ),
        (
            "    accelerator = Accelerator(mixed_precision='fp16')\n"
            "    model, opt, dl = accelerator.prepare(model, torch.optim.SGD([]), dl)\n",
            [autocast("models.Net", FORWARD, ACCELERATE)],
        ),
        (  # an argparse option whose choices include fp16
            "    p = argparse.ArgumentParser()\n"
            "    p.add_argument('--mixed-precision', choices=['no', 'fp16', 'bf16'])\n"
            "    args = p.parse_args()\n"
            "    accelerator = Accelerator(mixed_precision=args.mixed_precision)\n"
            "    model = accelerator.prepare(model)\n",
            [autocast("models.Net", FORWARD, ACCELERATE, when="--mixed-precision fp16")],
        ),
        (
            "    trainer = pl.Trainer(precision='16-mixed')\n"
            "    trainer.fit(LitNet.load_from_checkpoint('x.ckpt'))\n",
            [autocast("models.LitNet", LIGHTNING, 'Trainer(precision="16-mixed")')],
        ),
        (  # a parameter's default chooses fp16 (litgpt-style ``setup(precision=...)``)
            "    def setup(precision='16-mixed'):\n"
            "        fabric = Fabric(precision=precision)\n"
            "        fabric.setup(Net(8))\n",
            [autocast("models.Net", ("forward",), 'Fabric(precision="16-mixed")')],
        ),
        (  # fp16 when the caller sets a flag parameter (denoising-diffusion-pytorch's Trainer)
            "    def fit(amp=False, mixed_precision_type='fp16'):\n"
            "        kind = mixed_precision_type if amp else 'no'\n"
            "        Accelerator(mixed_precision=kind).prepare(Net(8))\n",
            [autocast("models.Net", FORWARD, ACCELERATE, when="`amp`")],
        ),
        (  # precision=16 chosen by a store_true flag
            "    p = argparse.ArgumentParser()\n    p.add_argument('--amp', action='store_true')\n"
            "    a = p.parse_args()\n"
            "    pl.Trainer(precision=16 if a.amp else 32).test(model=model)\n",
            [autocast("models.Net", LIGHTNING, "Trainer(precision=16)", when="--amp")],
        ),
        (
            "    fabric = Fabric(precision='16-mixed')\n    model, opt = fabric.setup(model, opt)\n",
            [autocast("models.Net", ("forward",), 'Fabric(precision="16-mixed")')],
        ),
        (
            "    pl.Trainer(precision='16-true').fit(model)\n",
            [cast('Trainer(precision="16-true")')],
        ),
        (
            "    Trainer(model=model, args=TrainingArguments('o', fp16_full_eval=True))\n",
            [cast("Trainer(fp16_full_eval=True)")],
        ),
        (
            "    config = {'train_batch_size': 8, 'fp16': {'enabled': True}}\n"
            "    engine, *_ = deepspeed.initialize(model=model, config=config)\n",
            [cast('"fp16": {"enabled": True}', params_only=True)],
        ),
        (  # HF fp16 with a DeepSpeed config: DeepSpeed casts the parameters
            "    args = TrainingArguments('out', fp16=True, deepspeed='ds.json')\n"
            "    Trainer(model=model, args=args)\n",
            [cast("Trainer(fp16=True)", params_only=True)],
        ),
    ],
)
def test_switches_that_make_a_project_model_fp16(body, expected):
    assert entries(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        "    Trainer(model=model, args=TrainingArguments('out', bf16=True))\n",
        "    Trainer(model=model, args=TrainingArguments('out', fp16=False))\n",
        "    Trainer(model=model, args=opt)\n",  # arguments the file does not show
        "    Trainer(model=model, args=TrainingArguments('out', fp16=opt.fp16))\n",  # no flag
        "    Trainer(model=AutoModel.from_pretrained('m'), args=TrainingArguments('o', fp16=True))\n",
        "    Accelerator(mixed_precision='no').prepare(model)\n",
        "    Accelerator(mixed_precision='bf16').prepare(model)\n",
        "    Accelerator().prepare(model)\n",  # configured outside the code: unknown
        "    Accelerator(mixed_precision='fp16', cpu=True).prepare(model)\n",  # no autocast on CPU
        "    pl.Trainer(precision=32).fit(model)\n",
        "    pl.Trainer(precision='bf16-mixed').fit(model)\n",
        "    pl.Trainer(precision=16, accelerator='cpu').fit(model)\n",  # falls back to bf16
        "    pl.Trainer().fit(model)\n",
        "    deepspeed.initialize(model=model, config={'bf16': {'enabled': True}})\n",
        "    deepspeed.initialize(model=model, config=opt.deepspeed_config)\n",
        "    def fit(kind='bf16'):\n        Accelerator(mixed_precision=kind).prepare(model)\n",
        "    def fit(amp, kind='fp16'):\n"  # the fp16 branch is never taken
        "        Accelerator(mixed_precision='no' if amp else 'no').prepare(model)\n",
        "    p = argparse.ArgumentParser()\n    p.add_argument('--precision', default='32')\n"
        "    pl.Trainer(precision=p.parse_args().precision).fit(model)\n",
    ],
)
def test_switches_that_are_off_or_unknown_are_no_origin(body):
    assert entries(body) == []


def test_files_that_name_no_framework_are_not_read():
    text = "import torch\n\n\ndef f(model):\n    model.fit(model)\n"
    tracker_off = lint_source("a.py", text, [], fact_trackers=(SwitchTracker,))
    assert "fp16_entries" not in tracker_off.facts


MODELS = (
    "import torch\n"
    "from torch import nn\n"
    "\n"
    "\n"
    "class Net(nn.Module):\n"
    "    def __init__(self, d):\n"
    "        super().__init__()\n"
    "        self.proj = nn.Linear(d, d)\n"
    "        self.norm = nn.BatchNorm1d(d)\n"  # line 9
    "\n"
    "    def forward(self, x):\n"
    "        h = self.proj(x)\n"
    "        return h.pow(2).sum()\n"  # line 13
)


def _train(switch: str) -> str:
    return (
        "import deepspeed\nimport lightning.pytorch as pl\nimport torch\nfrom models import Net\n"
        "\n\ndef main(loader):\n    model = Net(8)\n"
        "    optimizer = torch.optim.AdamW(model.parameters(), eps=1e-8)\n"
        f"{switch}"
    )


_PLACE = re.compile(r"[^\s(`]*/(?=\w+\.py:)")  # the folders before a file name


def _findings(tmp_path, switch: str):
    """Findings with ``library-info``: the BatchNorm on line 9 (whose buffers a real cast
    converts and DeepSpeed keeps) is then reported too, and shows which casts convert them."""
    files = {"models.py": MODELS, "train.py": _train(switch)}
    result = lint_project(tmp_path, files, library_info=True)
    return [(f.code, f.path.rsplit("/", 1)[-1], f.span.start.line, _PLACE.sub("", f.message))
            for f in result.findings]  # fmt: skip


def test_deepspeed_fp16_makes_the_model_resident_without_cast_findings(tmp_path):
    found = _findings(
        tmp_path,
        "    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer,\n"
        "        config={'fp16': {'enabled': True}})\n"
        "    for x in loader:\n        engine.backward(engine(x))\n        engine.step()\n",
    )
    # no FP101/FP108/FP109 at a place that is no cast: DeepSpeed keeps float32 master weights
    assert [f[:3] for f in found] == [("FP203", "models.py", 13)]
    reason = 'because `Net` is cast to float16 by `"fp16": {"enabled": True}` at train.py:10'
    assert reason in found[0][3]


def test_lightning_16_true_casts_buffers_too(tmp_path):
    found = _findings(tmp_path, "    pl.Trainer(precision='16-true').fit(model)\n")
    assert [f[:3] for f in found] == [("FP201", "models.py", 9), ("FP203", "models.py", 13)]
    assert 'cast to float16 by `Trainer(precision="16-true")` at train.py:10' in found[0][3]


def test_a_cast_models_batch_norm_is_reported_only_with_library_info(tmp_path):
    """Its kernel accumulates in float32 (tests/facts/test_norm_kernels.py): FP201 leaves it out
    in default mode too; the hand-written square stays."""
    files = {
        "models.py": MODELS,
        "train.py": _train("    pl.Trainer(precision='16-true').fit(model)\n"),
    }
    result = lint_project(tmp_path, files)
    assert [(f.code, f.span.start.line) for f in result.findings] == [("FP203", 13)]


def test_a_switch_gated_by_a_flag_says_so(tmp_path):
    found = _findings(
        tmp_path,
        "    import argparse\n    p = argparse.ArgumentParser()\n"
        "    p.add_argument('--precision', choices=['32', '16-true'])\n"
        "    pl.Trainer(precision=p.parse_args().precision).fit(model)\n",
    )
    assert [f[:3] for f in found] == [("FP201", "models.py", 9), ("FP203", "models.py", 13)]
    assert found[0][3].count("train.py:13 when --precision 16-true is given") == 1


@pytest.mark.parametrize(
    "switch",
    [
        "    pl.Trainer(precision='bf16-true').fit(model)\n",
        "    pl.Trainer(precision=32).fit(model)\n",
        "    deepspeed.initialize(model=model, config={'fp16': {'enabled': False}})\n",
    ],
)
def test_no_switch_no_finding(tmp_path, switch):
    assert _findings(tmp_path, switch) == []


# --- end to end: the exposure runs the handed-over model's methods under fp16 autocast ---------
SCORER = (
    "import torch\n"
    "from torch import nn\n"
    "\n"
    "\n"
    "class Scorer(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.proj = nn.Linear(8, 8)\n"
    "\n"
    "    def {method}(self, x, labels=None):\n"
    "        z = self.proj(x)\n"
    "        return (z / (z.abs().amax(dim=-1, keepdim=True) + 1e-8)).sum()\n"  # line 12
)
_HF = "from transformers import HfArgumentParser, Trainer, TrainingArguments\n"
_PL = "import lightning.pytorch as pl\n"
_ACC = "from accelerate import Accelerator\n"


def _e2e(tmp_path, method: str, imports: str, switch: str):
    train = f"{imports}from model import Scorer\n\n\ndef main(loader):\n{switch}"
    files = {"model.py": SCORER.format(method=method), "train.py": train}
    result = lint_project(tmp_path, files, select=("FP304",))
    return [(f.path.rsplit("/", 1)[-1], f.span.start.line, _PLACE.sub("", f.message))
            for f in result.findings]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "imports", "on", "off"),
    [
        (
            "forward",
            _HF,
            "    Trainer(model=Scorer(), args=TrainingArguments('o', fp16=True)).train()\n",
            "    Trainer(model=Scorer(), args=TrainingArguments('o', bf16=True)).train()\n",
        ),
        (
            "forward",
            _ACC,
            "    model = Accelerator(mixed_precision='fp16').prepare(Scorer())\n",
            "    model = Accelerator(mixed_precision='no').prepare(Scorer())\n",
        ),
        (
            "training_step",
            _PL,
            "    pl.Trainer(precision='16-mixed').fit(Scorer())\n",
            "    pl.Trainer(precision=32).fit(Scorer())\n",
        ),
    ],
)
def test_a_hazard_in_a_model_a_switch_runs_under_autocast(tmp_path, method, imports, on, off):
    (finding,) = _e2e(tmp_path / "on", method, imports, on)
    assert finding[:2] == ("model.py", 12)
    assert finding[2].endswith("; float16 here: from `" + _text_of(on) + "` at train.py:6.")
    assert _e2e(tmp_path / "off", method, imports, off) == []


def _text_of(switch: str) -> str:
    if "TrainingArguments" in switch:
        return "Trainer(fp16=True)"
    if "Accelerator" in switch:
        return 'Accelerator(mixed_precision="fp16")'
    return 'Trainer(precision="16-mixed")'


def test_the_chain_names_the_command_line_option(tmp_path):
    switch = (
        "    (args,) = HfArgumentParser((TrainingArguments,)).parse_args_into_dataclasses()\n"
        "    Trainer(model=Scorer(), args=args).train()\n"
    )
    (finding,) = _e2e(tmp_path, "forward", _HF, switch)
    assert finding[2].endswith("from `Trainer(fp16=True)` at train.py:7 when --fp16 is given.")


def test_a_cast_under_a_command_line_flag_says_when(tmp_path):
    train = (
        "import argparse\nfrom models import Net\n\n\ndef main():\n"
        "    p = argparse.ArgumentParser()\n    p.add_argument('--half', action='store_true')\n"
        "    model = Net(8)\n    if p.parse_args().half:\n        model.half()\n"
    )
    result = lint_project(
        tmp_path, {"models.py": MODELS, "train.py": train}, select=("FP2",), library_info=True
    )
    messages = [_PLACE.sub("", f.message) for f in result.findings]
    assert len(messages) == 2
    assert all("`.half()` at train.py:10 when --half is given" in m for m in messages)


def test_a_builder_function_resolves_to_its_class(tmp_path):
    found = _findings(
        tmp_path,
        "def build():\n    return Net(8)\n\n\n"
        "def run():\n    pl.Trainer(precision='16-true').fit(build())\n",
    )
    assert [f[:3] for f in found] == [("FP201", "models.py", 9), ("FP203", "models.py", 13)]


# --- a switch set from what a project function returns ----------------------------------------
UTILS = (
    "import torch\n"
    "\n"
    "\n"
    "def default_precision(training: bool) -> str:\n"
    "    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():\n"
    "        return '16-mixed' if training else '16-true'\n"
    "    return 'bf16-mixed' if training else 'bf16-true'\n"
)


def _fabric(training: bool, precision: str = "None") -> str:
    return (
        "from lightning import Fabric\nfrom utils import default_precision\n"
        f"def main(loader, precision={precision}):\n"
        f"    precision = precision or default_precision(training={training})\n"
        "    fabric = Fabric(devices=1, precision=precision)\n"
        "    model = fabric.setup(Net(8))\n"
    )


def test_a_precision_a_project_function_may_return_is_a_switch(tmp_path):
    """``precision = precision or default_precision(training=True)``: the function (another
    module) returns "16-mixed" or "bf16-mixed" by hardware; with ``training=False`` "16-true"
    (a cast) or "bf16-true"."""
    files = {"models.py": MODELS, "utils.py": UTILS}
    train = "from models import Net\n" + _fabric(True)
    result = lint_project(
        tmp_path / "mixed", {**files, "train.py": train}, select=("FP2",), library_info=True
    )
    assert [(f.code, f.span.start.line) for f in result.findings] == [("FP203", 13)]
    message = _PLACE.sub("", result.findings[0].message)
    assert message.endswith(
        'from `Fabric(precision="16-mixed")` at train.py:7 (`default_precision()` may return '
        '"16-mixed").'
    )
    train = "from models import Net\n" + _fabric(False)
    result = lint_project(
        tmp_path / "true", {**files, "train.py": train}, select=("FP2",), library_info=True
    )
    assert [(f.code, f.span.start.line) for f in result.findings] == [("FP201", 9), ("FP203", 13)]
    assert '(`default_precision()` may return "16-true")' in result.findings[0].message
    files["utils.py"] = UTILS.replace("'16-mixed' if training else '16-true'", "'bf16-mixed'")
    result = lint_project(
        tmp_path / "bf16", {**files, "train.py": train}, select=("FP2",), library_info=True
    )
    assert result.findings == []


def test_a_submodule_class_chosen_by_a_config_property_is_reached(tmp_path):
    """``self.norm = config.norm_class(d)`` with ``config: Config`` and ``Config.norm_class`` a
    property returning ``RMSNorm``: the cast model contains an ``RMSNorm``."""
    files = {
        "norms.py": (
            "import torch\n\n\nclass RMSNorm(torch.nn.Module):\n"
            "    def forward(self, x):\n"
            "        return x * torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True) + 1e-5)\n"
        ),
        "config.py": (
            "from functools import partial\n\n\nclass Config:\n    @property\n"
            "    def norm_class(self):\n        from norms import RMSNorm\n\n"
            "        return partial(RMSNorm, eps=1e-6)\n"
        ),
        "model.py": (
            "import torch\nfrom config import Config\n\n\nclass GPT(torch.nn.Module):\n"
            "    def __init__(self, config: Config) -> None:\n        super().__init__()\n"
            "        self.norm = config.norm_class(8)\n\n"
            "    def forward(self, x):\n        return self.norm(x)\n"
        ),
        "run.py": (
            "from lightning import Fabric\nfrom config import Config\nfrom model import GPT\n\n\n"
            "def main():\n    fabric = Fabric(precision='16-true')\n"
            "    model = fabric.setup(GPT(Config()))\n"
        ),
    }
    result = lint_project(tmp_path, files, select=("FP203",))
    assert [(f.path.rsplit("/", 1)[-1], f.span.start.line) for f in result.findings] == [
        ("norms.py", 6)
    ]
