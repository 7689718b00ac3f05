"""`fp16lint runtime` on the demo project: the walk-through in docs/guide.md, for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "demo"


def test_demo_runtime_confirms_the_exp_overflow_and_leaves_other_models_unjudged():
    run = subprocess.run(
        [sys.executable, "-m", "fp16lint", "runtime", ".", "--output-format", "json"],
        cwd=DEMO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 1, run.stderr  # something is confirmed unsafe
    joined = json.loads(run.stdout)["join"]["findings"]
    verdicts = {
        (j["finding"]["code"], j["finding"]["filename"], j["finding"]["location"]["row"]): j[
            "verdict"
        ]
        for j in joined
    }
    assert verdicts[("FP202", "demo_models/blocks.py", 50)] == "confirmed"  # exp of raw scores
    assert verdicts[("FP101", "train.py", 13)] == "confirmed"  # the Encoder the target builds
    # Findings about models no target builds (a BLIP-2 and a T5) are not judged by the encoder.
    assert verdicts[("FP501", "infer.py", 11)] == "not-reached"
    assert verdicts[("FP502", "load_t5.py", 17)] == "not-reached"
