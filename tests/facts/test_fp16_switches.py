"""What the Hugging Face fp16 switches do to a model (data/fp16_switches.py), on the installed
transformers and accelerate, on the CPU: accelerate's fp16 autocast needs a GPU, so its
mechanism is shown with bf16, which takes the same path (``native_amp``) on the CPU."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")
accelerate = pytest.importorskip("accelerate")


@pytest.fixture(autouse=True)
def _fresh_accelerate() -> Iterator[None]:
    """accelerate keeps its mixed-precision state per process: start and leave it blank."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


class Net(nn.Module):
    """Records the dtype of its linear output and whether CPU autocast is on, per method."""

    def __init__(self, seen: list[tuple[str, torch.dtype, bool]]):
        super().__init__()
        self.proj = nn.Linear(4, 2)
        self.seen = seen

    def forward(self, x, labels=None):
        y = self.proj(x.to(self.proj.weight.dtype))
        self.seen.append(("forward", y.dtype, torch.is_autocast_enabled("cpu")))
        out = {"logits": y}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(y.float(), labels)
        return out

    def helper(self, x):
        y = self.proj(x)
        self.seen.append(("helper", y.dtype, torch.is_autocast_enabled("cpu")))


def _data() -> list[dict[str, torch.Tensor]]:
    return [{"x": torch.randn(4), "labels": torch.tensor(1)} for _ in range(2)]


def _args(tmp_path, **options):
    return transformers.TrainingArguments(
        str(tmp_path), use_cpu=True, report_to=[], disable_tqdm=True,
        per_device_train_batch_size=2, per_device_eval_batch_size=2, **options,
    )  # fmt: skip


def _prepared(mixed_precision: str) -> list:
    seen: list = []
    accelerator = accelerate.Accelerator(mixed_precision=mixed_precision, cpu=True)
    model = accelerator.prepare(Net(seen))
    seen.append(("output", model(torch.randn(2, 4))["logits"].dtype, False))
    model.helper(torch.randn(2, 4))
    return seen


def test_accelerate_prepare_runs_only_forward_under_autocast_and_returns_float32():
    """``accelerator.prepare(model)`` with mixed precision wraps the model's ``forward`` in
    autocast (its linear output is in the low precision) and converts what it returns to
    float32; the model's other methods are not wrapped."""
    assert _prepared("bf16") == [
        ("forward", torch.bfloat16, True),
        ("output", torch.float32, False),
        ("helper", torch.float32, False),
    ]


def test_accelerate_fp16_on_the_cpu_is_no_autocast():
    """``Accelerator(mixed_precision="fp16", cpu=True)`` leaves the forward in float32 (fp16
    autocast needs a GPU), so ``cpu=True`` turns the switch off."""
    assert _prepared("fp16")[0] == ("forward", torch.float32, False)


def test_trainer_fp16_is_accelerate_mixed_precision_and_adds_no_autocast_of_its_own(tmp_path):
    """``TrainingArguments(fp16=True)`` sets ``mixed_precision = "fp16"``, which the Trainer
    hands to its Accelerator; the Trainer's own ``autocast_smart_context_manager`` is a
    ``nullcontext`` (a ``compute_loss`` override runs outside autocast)."""
    assert transformers.TrainingArguments(str(tmp_path), fp16=True).mixed_precision == "fp16"
    trainer = transformers.Trainer(model=Net([]), args=_args(tmp_path))
    assert trainer._build_accelerator_args()["mixed_precision"] == trainer.args.mixed_precision
    assert type(trainer.autocast_smart_context_manager()).__name__ == "nullcontext"


def test_trainer_step_runs_forward_under_autocast_and_compute_loss_outside(tmp_path):
    """A Trainer training step with mixed precision (bf16 on the CPU: the fp16 path's twin)
    runs the model's ``forward`` under autocast and a ``compute_loss`` override outside it,
    on outputs converted to float32."""
    seen: list = []

    class MyTrainer(transformers.Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
            labels = inputs.pop("labels")
            logits = model(**inputs)["logits"]
            seen.append(("compute_loss", logits.dtype, torch.is_autocast_enabled("cpu")))
            return nn.functional.cross_entropy(logits, labels)

    args = _args(tmp_path, bf16=True, max_steps=1)
    MyTrainer(model=Net(seen), args=args, train_dataset=_data()).train()
    assert seen == [("forward", torch.bfloat16, True), ("compute_loss", torch.float32, False)]


def test_fp16_full_eval_casts_the_model_for_evaluation(tmp_path):
    """``TrainingArguments(fp16_full_eval=True)`` makes ``Trainer.evaluate`` run the model with
    float16 parameters (``evaluation_loop`` casts it with ``model.to(dtype=torch.float16)``)."""
    seen: list = []
    args = _args(tmp_path, fp16_full_eval=True)
    transformers.Trainer(model=Net(seen), args=args, eval_dataset=_data()).evaluate()
    assert seen and {dtype for _, dtype, _ in seen} == {torch.float16}
