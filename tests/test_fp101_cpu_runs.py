"""FP101's "it runs on the CPU" needs the float16 model to run there: a cast model moved to the
CPU only to be handed to a converter (``export(model.cpu(), im)``) and never run there is a
deliberate export cast (yolov5's TF export branch), as FP104 does not report a model parked on
the CPU either; a cast model run after its move to the CPU is reported."""

from __future__ import annotations

from fp16lint.api import lint_text

SCRIPT = """\
import torch
from torch import nn
from exporters import export_tf


def run(weights, half=False, tf=False):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    model.load_state_dict(torch.load(weights))
    model.eval()
    im = torch.zeros(1, 4).cuda()
    model.cuda()
    y = model(im)
    if half:
        im, model = im.half(), model.half()
    if tf:
        export_tf(model.cpu(), im)
{after}"""


def _cpu_findings(after: str) -> list[int]:
    found = lint_text(SCRIPT.format(after=after), path="export.py")
    return [f.span.start.line for f in found if f.code == "FP101" and "CPU" in f.message]


def test_a_model_moved_to_the_cpu_only_to_be_handed_on_does_not_run_there():
    assert _cpu_findings("    return y\n") == []


def test_a_model_run_after_its_move_to_the_cpu_runs_there():
    assert _cpu_findings("    return model(im.cpu())\n") == [14]
    assert _cpu_findings("    model.to('cpu')\n    return model.forward(im.cpu())\n") == [14]
