"""Calls that hand back the module they are given, and pipelines that hold the modules given
to them: both share parameters with the caller's module, so a cast of either converts it.

Sources (checked by tests/facts/test_pipeline_casts.py on the installed versions):

- accelerate ``Accelerator.unwrap_model(m)`` returns the module inside a DDP / DeepSpeed /
  torch.compile wrapper, and ``Accelerator.prepare(m)`` of one module returns ``m`` or a wrapper
  holding its parameters (accelerate/accelerator.py). Inside a helper that unwraps by hand,
  DDP's ``module`` and torch.compile's ``_orig_mod`` attributes are the wrapped module.
- diffusers ``DiffusionPipeline.to(...)`` calls ``module.to(device, dtype)`` on each
  ``nn.Module`` component, in place, and returns the pipeline itself; ``from_pretrained``
  uses a component passed as a keyword as it is, without applying its ``dtype``
  (diffusers/pipelines/pipeline_utils.py). Every class diffusers exports under a name ending
  in ``Pipeline`` derives from ``DiffusionPipeline``, except the ``...ModularPipeline``,
  ONNX and Flax ones; ``AutoPipelineFor...`` loaders return one.
"""

from __future__ import annotations

SAME_MODULE_METHODS = {"accelerate.Accelerator": frozenset({"unwrap_model", "prepare"})}
WRAPPED_MODULE_ATTRIBUTES = frozenset({"module", "_orig_mod"})
# Class methods that build a pipeline from keyword components.
PIPELINE_LOADERS = frozenset({"from_pretrained", "from_single_file", "from_pipe"})


def is_diffusers_pipeline(qualname: str | None) -> bool:
    """``diffusers.StableDiffusionPipeline``, ``diffusers.AutoPipelineForText2Image``..."""
    if not qualname or not qualname.startswith("diffusers."):
        return False
    last = qualname.rsplit(".", 1)[-1]
    if last.startswith("AutoPipelineFor"):
        return True
    return (
        last.endswith("Pipeline")
        and not last.endswith("ModularPipeline")
        and "Onnx" not in last
        and not last.startswith("Flax")
    )
