"""The FP501 knowledge table is current for the installed transformers and diffusers."""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata
from pathlib import Path

import pytest
from lintutil import REPO

from fp16lint.data import hf_keep_fp32

pytest.importorskip("transformers")
pytest.importorskip("diffusers")


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_hf_keep_fp32", REPO / "scripts" / "gen_hf_keep_fp32.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_table_is_stamped_with_the_installed_versions():
    assert metadata.version("transformers") == hf_keep_fp32.TRANSFORMERS_VERSION
    assert metadata.version("diffusers") == hf_keep_fp32.DIFFUSERS_VERSION


def test_table_is_what_the_generator_gives_now():
    """Regenerate with `python scripts/gen_hf_keep_fp32.py` after upgrading transformers."""
    generated = _generator().generate()
    committed = Path(hf_keep_fp32.__file__).read_text(encoding="utf-8")
    assert committed == generated


def test_known_entries_match_facts_md():
    """../shared/FACTS.md §6: T5's `wo`, BLIP-2's `query_tokens`/`qformer`, RWKV's time mixing."""
    table = hf_keep_fp32.KEEP_IN_FP32
    assert table["T5ForConditionalGeneration"] == ("wo",)
    assert table["MT5EncoderModel"] == ("wo",)
    assert table["Blip2ForConditionalGeneration"] == ("query_tokens", "qformer")
    assert table["RwkvForCausalLM"] == ("time_decay", "time_first")
    assert "BertModel" not in table
    diffusers = hf_keep_fp32.DIFFUSERS_KEEP_IN_FP32
    assert diffusers["CosmosTransformer3DModel"] == ("learnable_pos_embed",)
    assert "UNet2DConditionModel" not in diffusers
