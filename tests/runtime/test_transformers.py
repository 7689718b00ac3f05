"""Tiny random BERT, GPT-2 and T5: saved, reloaded with dtype=torch.float16 and with .half().

The parameter-dtype inventory must show T5's ``_keep_in_fp32_modules`` (``wo``) staying fp32
when loaded with the fp16 dtype argument, and converted by ``.half()``.
"""

from __future__ import annotations

import pytest
import torch

import fp16lint.runtime as rt
from fp16lint.runtime.join import join
from fp16lint.runtime.text import format_report

transformers = pytest.importorskip("transformers")

VOCAB = 99


def _inputs(encoder_decoder: bool = False):
    torch.manual_seed(1)
    ids = torch.randint(0, VOCAB, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 7:] = 0  # padding in the second row
    kw = {"input_ids": ids, "attention_mask": mask}
    if encoder_decoder:
        kw["decoder_input_ids"] = ids[:, :4]
    return (), kw


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model, T5Config, T5Model

    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    models = {
        "bert": BertModel(
            BertConfig(
                vocab_size=VOCAB,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=32,
            )
        ),
        "gpt2": GPT2Model(
            GPT2Config(
                vocab_size=VOCAB,
                n_embd=32,
                n_layer=2,
                n_head=2,
                n_positions=32,
                bos_token_id=0,
                eos_token_id=0,
            )
        ),
        "t5": T5Model(
            T5Config(
                vocab_size=VOCAB,
                d_model=32,
                d_ff=64,
                d_kv=16,
                num_layers=2,
                num_heads=2,
                decoder_start_token_id=0,
            )
        ),
    }
    paths = {}
    for name, model in models.items():
        paths[name] = root / name
        model.save_pretrained(paths[name])
    return paths


def _load(name, path, **kw):
    from transformers import AutoModel

    return AutoModel.from_pretrained(path, **kw)


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_fp16_loaded_models_run_clean(saved, name):
    r = rt.check_target(lambda: _load(name, saved[name], dtype=torch.float16), _inputs(), name=name)
    assert r.error is None, r.error
    assert r.runs["fp16"].label.startswith("as prepared (float16 weights")
    assert set(r.runs["fp16"].dtype_counts()) == {"float16"}
    assert r.runs["fp32"].dtype_counts() == {"float32": len(r.runs["fp32"].params)}
    assert r.runs["fp16"].output.cosine > 0.999
    assert any("padding positions" in n for n in r.notes)
    assert r.ok, r.summary()
    for run in r.runs.values():
        assert not [n for n in run.notes if n.startswith("probe:")], run.notes
    # attention masks and integer ids never counted as activations
    root = next(m for m in r.runs["fp16"].modules if m.qualname == "")
    assert "int64" in root.in_dtypes
    assert root.max_abs < 1000


def test_bert_half_after_load(saved):
    r = rt.check_target(lambda: _load("bert", saved["bert"]), _inputs(), runs=("fp16",))
    assert r.runs["fp16"].label == ".half()"
    assert set(r.runs["fp16"].dtype_counts()) == {"float16"}
    assert r.ok


def _wo(params):
    return {n: dt for n, dt in params.items() if n.endswith("DenseReluDense.wo.weight")}


def test_t5_dtype_argument_keeps_wo_fp32(saved):
    r = rt.check_target(
        lambda: _load("t5", saved["t5"], dtype=torch.float16),
        _inputs(encoder_decoder=True),
        runs=("fp16",),
    )
    assert r.error is None, r.error
    wo = _wo(r.runs["fp16"].params)
    assert len(wo) == 4 and set(wo.values()) == {"float32"}
    others = {dt for n, dt in r.runs["fp16"].params.items() if n not in wo}
    assert others == {"float16"}
    assert "mixed" in r.runs["fp16"].label
    text = format_report(r)
    assert "not float16: encoder.block.0.layer.1.DenseReluDense.wo.weight" in text
    # the fp32 wo makes the FFN output fp32: the model really runs mixed
    wo_mod = [m for m in r.runs["fp16"].modules if m.qualname.endswith("DenseReluDense.wo")]
    assert wo_mod and all(m.out_dtypes == ["float32"] for m in wo_mod)


def test_t5_half_converts_wo(saved):
    def factory():
        return _load("t5", saved["t5"]).half()

    r = rt.check_target(factory, _inputs(encoder_decoder=True), runs=("fp16",))
    wo = _wo(r.runs["fp16"].params)
    assert len(wo) == 4 and set(wo.values()) == {"float16"}
    assert set(r.runs["fp16"].dtype_counts()) == {"float16"}


def test_t5_default_cast_of_fp32_load(saved, make_finding):
    def factory():
        return _load("t5", saved["t5"])  # FP501-LINE

    r = rt.check_target(factory, _inputs(encoder_decoder=True), runs=("fp16", "bf16"))
    assert r.runs["fp16"].label == ".half()"
    assert set(_wo(r.runs["fp16"].params).values()) == {"float16"}
    assert set(_wo(r.runs["bf16"].params).values()) == {"bfloat16"}
    # a model-level finding in this file gets the model's verdict, with the dtype inventory
    from runtime_support import marker_line

    line = marker_line(__import__("pathlib").Path(__file__), "# FP501-LINE")
    result = join([make_finding("FP501", __file__, line)], [r])
    (j,) = result.joined
    assert j.verdict in ("not-observed", "at-risk")
    assert "params float16" in j.evidence
