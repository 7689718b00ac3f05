"""What transformers' ``PreTrainedModel`` adds to float16 casts, checked on a tiny offline T5.

The checkpoints are built by the session fixtures in conftest.py (random weights, saved with
``save_pretrained`` to a temporary folder): nothing is downloaded.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from transformers import T5ForConditionalGeneration  # noqa: E402
from transformers.utils.quantization_config import QuantizationMethod  # noqa: E402

HALF = torch.float16
WO = "DenseReluDense.wo.weight"


def _wo_dtypes(model) -> set[torch.dtype]:
    found = {name: p.dtype for name, p in model.named_parameters() if name.endswith(WO)}
    assert len(found) == 2  # one in the encoder, one in the decoder
    return set(found.values())


def _inputs():
    return {
        "input_ids": torch.tensor([[5, 6, 7, 1]]),
        "decoder_input_ids": torch.tensor([[0, 5]]),
    }


def test_t5_keeps_wo_in_fp32():
    """``T5ForConditionalGeneration._keep_in_fp32_modules`` is ``["wo"]`` (and T5 has no ``_keep_in_fp32_modules_strict``)."""
    assert T5ForConditionalGeneration._keep_in_fp32_modules == ["wo"]
    assert T5ForConditionalGeneration._keep_in_fp32_modules_strict is None


def test_from_pretrained_fp16_keeps_wo_weights_fp32(tiny_t5_fp32_dir):
    """``from_pretrained(..., dtype=torch.float16)`` loads T5 in float16 except the ``wo`` weights, which stay float32."""
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_fp32_dir, dtype=HALF)
    assert model.dtype == HALF
    assert model.shared.weight.dtype == HALF
    assert _wo_dtypes(model) == {torch.float32}


def test_fp16_loaded_t5_runs_mixed(tiny_t5_fp32_dir):
    """A T5 loaded with ``dtype=torch.float16`` really runs mixed: its feed-forward blocks output float32."""
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_fp32_dir, dtype=HALF)
    seen: dict[str, torch.dtype] = {}

    def remember(name):
        return lambda module, args, output: seen.__setitem__(name, output.dtype)

    for name, module in model.named_modules():
        if name.endswith("DenseReluDense"):
            module.register_forward_hook(remember(name))
    with torch.no_grad():
        model(**_inputs())
    assert seen
    assert set(seen.values()) == {torch.float32}


@pytest.mark.parametrize(
    "cast", [lambda m: m.half(), lambda m: m.to(torch.float16)], ids=["half", "to_float16"]
)
def test_cast_after_fp32_load_converts_wo_too(tiny_t5_fp32_dir, cast):
    """``.half()`` or ``.to(torch.float16)`` after an fp32 load converts the ``wo`` weights as well: ``_keep_in_fp32_modules`` acts only at load time."""
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_fp32_dir)
    assert _wo_dtypes(model) == {torch.float32}
    cast(model)
    assert _wo_dtypes(model) == {HALF}


def test_half_after_fp16_load_converts_wo_too(tiny_t5_fp32_dir):
    """Calling ``.half()`` on a model loaded with ``dtype=torch.float16`` undoes the fp32 ``wo`` weights."""
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_fp32_dir, dtype=HALF)
    model.half()
    assert _wo_dtypes(model) == {HALF}


def test_keep_in_fp32_does_not_apply_to_bfloat16(tiny_t5_fp32_dir):
    """``_keep_in_fp32_modules`` applies only to float16 loads: with ``dtype=torch.bfloat16`` the ``wo`` weights are bfloat16."""
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_fp32_dir, dtype=torch.bfloat16)
    assert _wo_dtypes(model) == {torch.bfloat16}


def test_torch_dtype_argument_still_works(tiny_t5_fp32_dir, hf_log):
    """``from_pretrained(..., torch_dtype=torch.float16)`` still works like ``dtype=`` and, in transformers 5.24, logs no deprecation message."""
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_fp32_dir, torch_dtype=HALF)
    assert model.dtype == HALF
    assert _wo_dtypes(model) == {torch.float32}
    assert not [m for m in hf_log if "torch_dtype" in m]


def test_dtype_wins_over_torch_dtype(tiny_t5_fp32_dir):
    """When both are given, ``dtype=`` wins over ``torch_dtype=``."""
    model = T5ForConditionalGeneration.from_pretrained(
        tiny_t5_fp32_dir, dtype=torch.bfloat16, torch_dtype=HALF
    )
    assert model.dtype == torch.bfloat16


def test_config_torch_dtype_attribute_is_deprecated(tiny_t5_config, hf_log):
    """Reading ``config.torch_dtype`` logs "`torch_dtype` is deprecated! Use `dtype` instead!"."""
    tiny_t5_config.dtype = HALF
    assert tiny_t5_config.torch_dtype == HALF
    assert any("`torch_dtype` is deprecated" in m for m in hf_log)


def test_from_config_torch_dtype_is_deprecated(tiny_t5_config, hf_log):
    """``_from_config(config, torch_dtype=...)`` works but logs the ``torch_dtype`` deprecation message."""
    model = T5ForConditionalGeneration._from_config(tiny_t5_config, torch_dtype=HALF)
    assert model.dtype == HALF
    assert any("`torch_dtype` is deprecated" in m for m in hf_log)


def test_default_dtype_is_auto_fp16_checkpoint_loads_fp16(tiny_t5_fp16_dir):
    """With no dtype argument, transformers 5 uses ``"auto"``: an fp16 checkpoint loads as float16 (with T5's ``wo`` kept float32)."""
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_fp16_dir)
    assert model.dtype == HALF
    assert _wo_dtypes(model) == {torch.float32}


def test_default_dtype_fp32_checkpoint_loads_fp32(tiny_t5_fp32_dir):
    """With no dtype argument, an fp32 checkpoint loads as float32."""
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_fp32_dir)
    assert model.dtype == torch.float32


def test_pretrained_model_half_is_plain_half_when_not_quantized(tiny_t5_config):
    """On an ordinary (not quantized) model, ``PreTrainedModel.half()`` converts exactly what ``nn.Module.half()`` converts and returns the model."""
    ours = T5ForConditionalGeneration(tiny_t5_config)
    plain = T5ForConditionalGeneration(tiny_t5_config)
    assert ours.half() is ours
    torch.nn.Module.half(plain)
    ours_dtypes = {name: t.dtype for name, t in ours.state_dict().items()}
    plain_dtypes = {name: t.dtype for name, t in plain.state_dict().items()}
    assert ours_dtypes == plain_dtypes
    assert set(ours_dtypes.values()) == {HALF}


def test_quantized_model_refuses_half_and_float(tiny_t5_config):
    """``PreTrainedModel.half()`` and ``.float()`` raise ValueError on a quantized model (flag set as the quantizer sets it)."""
    model = T5ForConditionalGeneration(tiny_t5_config)
    model.is_quantized = True  # what HfQuantizer.preprocess_model sets
    with pytest.raises(ValueError, match=r"`\.half\(\)` is not supported for quantized model"):
        model.half()
    with pytest.raises(ValueError, match=r"`\.float\(\)` is not supported for quantized model"):
        model.float()


def test_bitsandbytes_model_refuses_to_dtype_but_not_to_device(tiny_t5_config):
    """``PreTrainedModel.to(dtype)`` raises ValueError on a bitsandbytes model, while ``.to(device)`` is allowed."""
    model = T5ForConditionalGeneration(tiny_t5_config)
    model.is_quantized = True
    model.quantization_method = QuantizationMethod.BITS_AND_BYTES
    with pytest.raises(ValueError, match="cannot cast a bitsandbytes model in a new `dtype`"):
        model.to(torch.float16)
    with pytest.raises(ValueError, match="cannot cast a bitsandbytes model"):
        model.to(dtype=torch.float16)
    assert model.to("cpu") is model


@pytest.mark.parametrize("keyword", ["dtype", "torch_dtype"])
def test_from_config_keeps_nothing_in_fp32(tiny_t5_config, keyword):
    """``from_config`` builds every module in the dtype it is given, ``wo`` included: only the
    loads (``from_pretrained``) keep modules in float32, so a cast after ``from_config`` loses
    nothing a dtype argument would have kept (FP501 leaves it to FP101)."""
    model = T5ForConditionalGeneration._from_config(tiny_t5_config, **{keyword: HALF})
    assert _wo_dtypes(model) == {HALF}
