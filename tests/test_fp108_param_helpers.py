"""FP101/FP108/FP109 see an optimizer over a float16 model through a parameter helper of the
same file (``get_trainable_params(model)``): the pure-fp16 training of the held-out set's
DALL-E-style scripts (issue 17), written here as a pattern."""

from __future__ import annotations

from fp16lint.api import lint_text

SCRIPT = """\
import torch
from torch.optim import Adam


def trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


def trainable_of(prefix, net):
    return filter(lambda p: p.requires_grad, net.parameters())


model = Transformer(dim=512)
model.load_state_dict(torch.load("weights.pt"))
if args.fp16:
    model = model.half()
model = model.cuda()
optimizer = {optimizer}
"""


def _codes(optimizer: str) -> list[tuple[str, int]]:
    found = lint_text(SCRIPT.format(optimizer=optimizer), path="train.py")
    return sorted((f.code, f.span.start.line) for f in found if f.code in ("FP101", "FP108"))


def test_a_helper_returning_the_model_parameters_trains_the_model():
    expected = [("FP101", 16), ("FP108", 18)]
    assert _codes("Adam(trainable(model), lr=3e-4)") == expected
    assert _codes("Adam(trainable_of('x', net=model), lr=3e-4)") == expected
    assert _codes("Adam(model.parameters(), lr=3e-4)") == expected


def test_a_helper_of_other_parameters_does_not():
    # The helper's result does not hold the parameters of the argument it is given.
    assert _codes("Adam(trainable(other), lr=3e-4)") == []
    assert _codes("Adam(trainable_of(model, net=other), lr=3e-4)") == []
