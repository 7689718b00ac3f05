"""What a diffusers pipeline's casts do to the modules it was given, behind FP108's validation
re-cast case.

Runs real diffusers (0.42) on a tiny randomly initialised ``UNet2DModel`` in a ``DDPMPipeline``,
saved and reloaded from a temporary folder: no hub access.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
# diffusers' deprecation notices (``torch_dtype``) and torch's, raised while diffusers imports
# its models: not facts here.
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]

HALF = torch.float16


@pytest.fixture(autouse=True)
def _quiet_diffusers():
    from diffusers.utils import logging as diffusers_logging

    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity(logging.ERROR)
    diffusers_logging.disable_progress_bar()
    yield
    diffusers_logging.set_verbosity(level)


def tiny_unet():
    return diffusers.UNet2DModel(
        sample_size=8,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )


def pipeline_with(unet):
    return diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler())


CASTS = {
    "to_dtype_keyword": lambda p: p.to(dtype=HALF),
    "to_device_dtype": lambda p: p.to("cpu", HALF),
    "to_device_dtype_keyword": lambda p: p.to("cpu", dtype=HALF),
    "to_dtype_positional": lambda p: p.to(HALF),
}


@pytest.mark.parametrize("cast", CASTS.values(), ids=CASTS.keys())
def test_pipeline_cast_converts_the_module_it_was_given_in_place(cast):
    """``pipe.to(dtype=torch.float16)`` (every spelling) converts the very module object passed to the pipeline, and so the parameters an optimizer built over it holds; it returns the pipeline itself."""
    unet = tiny_unet()
    optimizer = torch.optim.AdamW(unet.parameters())
    pipe = pipeline_with(unet)
    assert cast(pipe) is pipe and pipe.unet is unet
    assert {p.dtype for p in unet.parameters()} == {HALF}
    assert {p.dtype for group in optimizer.param_groups for p in group["params"]} == {HALF}


def test_pipeline_moves_and_other_dtypes_leave_float16_out():
    """``pipe.to(device)`` keeps the module float32, and so does ``pipe.to(device, torch_dtype=torch.float16)`` (``to`` reads only ``dtype=``; other keywords are ignored); ``pipe.to(torch.bfloat16)`` makes it bfloat16, not float16."""
    unet = tiny_unet()
    pipe = pipeline_with(unet)
    pipe.to("cpu")
    pipe.to("cpu", torch_dtype=HALF)
    assert {p.dtype for p in unet.parameters()} == {torch.float32}
    pipe.to(torch.bfloat16)
    assert {p.dtype for p in unet.parameters()} == {torch.bfloat16}


def test_pipeline_built_from_a_copy_leaves_the_trained_module_alone():
    """A pipeline given ``copy.deepcopy(unet)`` converts the copy, not ``unet``."""
    unet = tiny_unet()
    pipeline_with(copy.deepcopy(unet)).to(dtype=HALF)
    assert {p.dtype for p in unet.parameters()} == {torch.float32}


@pytest.mark.parametrize("keyword", ["dtype", "torch_dtype"])
def test_from_pretrained_dtype_does_not_cast_passed_components(tmp_path: Path, keyword):
    """``from_pretrained(path, unet=unet, dtype=torch.float16)`` (or ``torch_dtype=``) uses the passed ``unet`` as is, still float32, while the components it loads come back float16 (pipeline_utils.py: a passed object skips ``load_sub_model``)."""
    pipeline_with(tiny_unet()).save_pretrained(tmp_path)
    unet = tiny_unet()
    for loader in (diffusers.DDPMPipeline, diffusers.DiffusionPipeline):
        pipe = loader.from_pretrained(tmp_path, unet=unet, **{keyword: HALF})
        assert pipe.unet is unet
        assert {p.dtype for p in unet.parameters()} == {torch.float32}
    loaded = diffusers.DDPMPipeline.from_pretrained(tmp_path, **{keyword: HALF})
    assert {p.dtype for p in loaded.unet.parameters()} == {HALF}


def test_accelerate_hands_back_the_same_parameters():
    """``Accelerator.prepare(m)`` and ``unwrap_model`` return a module holding ``m``'s very parameters (``m`` itself in one process; for a torch.compile wrapper, whose ``_orig_mod`` is ``m``, the wrapper): a pipeline given ``accelerator.unwrap_model(unet)`` casts what the optimizer trains."""
    accelerate = pytest.importorskip("accelerate")
    accelerator = accelerate.Accelerator(cpu=True)
    module = torch.nn.Linear(2, 2)
    prepared = accelerator.prepare(module)
    assert prepared is module and accelerator.unwrap_model(prepared) is module
    compiled = torch.compile(module)
    assert compiled._orig_mod is module
    unwrapped = accelerator.unwrap_model(compiled)
    assert [id(p) for p in unwrapped.parameters()] == [id(p) for p in module.parameters()]
    unet = tiny_unet()
    optimizer = torch.optim.AdamW(accelerator.prepare(unet).parameters())
    pipeline_with(accelerator.unwrap_model(unet)).to(accelerator.device, dtype=HALF)
    assert {p.dtype for group in optimizer.param_groups for p in group["params"]} == {HALF}


def test_names_read_as_pipelines_are_diffusion_pipelines():
    """Every class diffusers exports that ``is_diffusers_pipeline`` accepts derives from ``DiffusionPipeline`` (``AutoPipelineFor...`` loaders return one); dummy placeholders for missing optional dependencies aside."""
    from fp16lint.data.shared_modules import is_diffusers_pipeline

    accepted = [n for n in dir(diffusers) if is_diffusers_pipeline(f"diffusers.{n}")]
    assert "StableDiffusionPipeline" in accepted and "DiffusionPipeline" in accepted
    for name in accepted:
        cls = getattr(diffusers, name)
        if "dummy" in cls.__module__ or name.startswith("AutoPipelineFor"):
            continue
        assert issubclass(cls, diffusers.DiffusionPipeline), name
    for name in ("ModularPipeline", "OnnxStableDiffusionPipeline", "PipelineQuantizationConfig"):
        assert not is_diffusers_pipeline(f"diffusers.{name}")
