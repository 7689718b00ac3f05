"""A diffusers pipeline folder as an --hf-model target: the denoiser (its UNet) is built with
from_pretrained in the pipeline's dtype and run on inputs made from its config (issue 19)."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from click.testing import CliRunner

from fp16lint.runtime.cli import runtime_command
from fp16lint.runtime.weights import WeightsError, hf_factory

diffusers = pytest.importorskip("diffusers")
# diffusers' own deprecation notices while it imports its models: not what is tested here
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(autouse=True)
def _quiet_diffusers():
    from diffusers.utils import logging as diffusers_logging

    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity(logging.ERROR)
    yield
    diffusers_logging.set_verbosity(level)


@pytest.fixture(scope="module")
def ddpm_folder(tmp_path_factory):
    """A tiny DDPM pipeline (UNet2DModel with an attention block) saved as a pipeline folder."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=8,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("ddpm")
    diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler()).save_pretrained(folder)
    return folder


def test_pipeline_folder_checks_its_unet_as_loaded(ddpm_folder):
    res = CliRunner().invoke(
        runtime_command,
        ["--hf-model", str(ddpm_folder), "--output-format", "json", "--device", "cpu"],
    )
    assert res.exit_code == 0, res.output
    (t,) = json.loads(res.stdout)["targets"]
    assert t["error"] is None
    assert t["model_class"] == "UNet2DModel"
    assert t["weights"] == "trained" and t["weights_source"].startswith("from_pretrained(")
    # from_pretrained(..., subfolder="unet", torch_dtype=torch.float16): fp16 as prepared
    assert t["runs"]["fp16"]["label"].startswith("as prepared (float16 weights")
    assert set(t["runs"]["fp16"]["params"].values()) == {"float16"}
    # inputs from the UNet's config: latents (batch 2, in_channels, sample_size^2) and timesteps
    assert t["inputs"] == "arg0: float32[2, 3, 8, 8]; timestep: int64[2]"
    assert set(t["runs"]) == {"fp32", "fp16", "autocast-fp16", "bf16"}
    assert all(r["error"] is None for r in t["runs"].values())
    ops = {o["op"] for o in t["runs"]["fp16"]["ops"]}
    assert {"group_norm", "linear"} <= ops  # the ResNet blocks and the attention block ran
    assert t["verdict"] == "not-observed" and t["recommendation"]["action"] == "keep"


def test_sdxl_style_unet_gets_inputs_that_fit(tmp_path):
    """A UNet2DConditionModel with SDXL's text_time embedding: text states of its cross-attention
    width and the pooled text embeddings and size/crop ids it requires."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), norm_num_groups=4,
        cross_attention_dim=16, attention_head_dim=4, addition_embed_type="text_time",
        addition_time_embed_dim=4, projection_class_embeddings_input_dim=12 + 6 * 4,
    )  # fmt: skip
    unet.save_pretrained(tmp_path / "unet")
    (tmp_path / "model_index.json").write_text(
        json.dumps({"_class_name": "X", "unet": ["diffusers", "UNet2DConditionModel"]})
    )
    factory, inputs = hf_factory(str(tmp_path), "float32")
    args, kwargs = inputs()
    assert kwargs["encoder_hidden_states"].shape == (2, 77, 16)
    assert kwargs["added_cond_kwargs"]["text_embeds"].shape == (2, 12)
    with torch.no_grad():
        out = factory()(*args, **kwargs).sample
    assert out.shape == (2, 4, 8, 8) and bool(torch.isfinite(out).all())


def test_a_denoiser_without_config_inputs_says_what_to_give(tmp_path):
    (tmp_path / "model_index.json").write_text(
        json.dumps({"transformer": ["diffusers", "FluxTransformer2DModel"]})
    )
    _, inputs = hf_factory(str(tmp_path))
    with pytest.raises(WeightsError, match="name an inputs callable"):
        inputs()
