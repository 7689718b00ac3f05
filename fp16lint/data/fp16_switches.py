"""Frameworks' float16 switches: the calls that make a project model run under float16
autocast, or cast it to float16, once it is handed to the framework.

Each entry says what the switch does to the model handed over and where that was read (the
sources were read, never imported; tests/facts/test_fp16_switches.py checks the HF and
accelerate claims that run on a CPU):

- transformers 5.24.0 (installed): ``TrainingArguments(fp16=True)`` sets ``mixed_precision =
  "fp16"`` (training_args.py ``__post_init__``), which the ``Trainer`` passes to its
  ``Accelerator`` (trainer.py ``_build_accelerator_args``) and whose ``prepare`` wraps the
  model's ``forward``. The Trainer adds no autocast of its own: ``autocast_smart_context_manager``
  returns ``nullcontext()``, so ``compute_loss``/``training_step``/``prediction_step`` bodies
  run outside autocast on the forward's outputs, which accelerate converts to float32.
  ``fp16_full_eval=True`` makes ``evaluation_loop`` cast the model with
  ``model.to(dtype=torch.float16)``. With a DeepSpeed config, ``fp16``/``fp16_full_eval`` fill
  the config's ``"fp16": {"enabled": "auto"}`` (integrations/deepspeed.py) and DeepSpeed casts
  the model (below). There is no ``half_precision_backend`` argument in this version.
- accelerate 1.15.0 (installed): ``Accelerator(mixed_precision="fp16")`` on a GPU (not with
  ``cpu=True``, nor under DeepSpeed/Megatron, accelerator.py ``__init__``) makes
  ``prepare``/``prepare_model`` replace ``model.forward`` by
  ``convert_outputs_to_fp32(autocast(forward))`` (accelerator.py ``prepare_model``;
  utils/operations.py ``convert_to_fp32``).
- lightning 2.6.6 (``pip download lightning``): ``Trainer(precision=16 | "16" | "16-mixed")``
  selects ``MixedPrecision("16-mixed", "cuda")`` (trainer/connectors/accelerator_connector.py
  ``_check_and_init_precision``; with ``accelerator="cpu"`` it falls back to bf16), whose
  ``forward_context`` is ``torch.autocast``; the strategy runs ``training_step``,
  ``validation_step``, ``test_step`` and ``predict_step`` inside it (strategies/strategy.py).
  ``precision="16-true"`` selects ``HalfPrecision``, whose ``convert_module`` is
  ``module.to(dtype=torch.float16)`` (plugins/precision/half.py). ``Fabric(precision=...)``
  does the same to ``fabric.setup(model)``'s forward (fabric/wrappers.py ``_FabricModule``).
  With a DeepSpeed strategy, 16-mixed and 16-true enable DeepSpeed fp16
  (fabric/strategies/deepspeed.py ``_format_precision_config``).
- deepspeed 0.19.8 (``pip download deepspeed``): a config with ``"fp16": {"enabled": True}``
  makes ``DeepSpeedEngine._configure_distributed_model`` cast the model's parameters to
  float16 (runtime/engine.py); the optimizer keeps float32 master weights.
"""

from __future__ import annotations

AUTOCAST = "autocast"  # the model's ``METHODS`` run under float16 autocast
CAST = "cast"  # the model's parameters are converted to float16

# --- Hugging Face transformers ---------------------------------------------------------------
# A ``TrainingArguments`` keyword set to True -> what it does to the Trainer's model.
TRAINING_ARGUMENT_SWITCHES: dict[str, str] = {"fp16": AUTOCAST, "fp16_full_eval": CAST}
# ``TrainingArguments(deepspeed=...)``: fp16 then means DeepSpeed's cast, not autocast.
TRAINING_ARGUMENT_DEEPSPEED = "deepspeed"
HF_ARGUMENT_PARSERS = frozenset(
    {"transformers.HfArgumentParser", "transformers.hf_argparser.HfArgumentParser"}
)
# ``Trainer(model, args, ...)``: (keyword, position) of the model and of the arguments.
HF_TRAINER_MODEL = ("model", 0)
HF_TRAINER_ARGS = ("args", 1)
HF_TRAINER_METHODS = ("forward",)

# --- accelerate --------------------------------------------------------------------------------
ACCELERATORS = frozenset({"accelerate.Accelerator", "accelerate.accelerator.Accelerator"})
ACCELERATE_FP16 = "fp16"  # the ``mixed_precision`` value
ACCELERATE_PREPARE = frozenset({"prepare", "prepare_model"})
ACCELERATE_METHODS = ("forward",)

# --- Lightning ---------------------------------------------------------------------------------
LIGHTNING_TRAINERS = frozenset(
    {
        f"{package}.{path}Trainer"
        for package in ("lightning.pytorch", "pytorch_lightning")
        for path in ("", "trainer.", "trainer.trainer.")
    }
    | {"lightning.Trainer"}
)
LIGHTNING_FABRICS = frozenset(
    {"lightning.Fabric", "lightning.fabric.Fabric", "lightning.fabric.fabric.Fabric"}
    | {"lightning_fabric.Fabric", "lightning_fabric.fabric.Fabric"}
)
# ``precision=`` values (as text: ``16`` and ``"16"`` alike) -> what they do.
LIGHTNING_PRECISION: dict[str, str] = {"16": AUTOCAST, "16-mixed": AUTOCAST, "16-true": CAST}
LIGHTNING_RUNS = frozenset({"fit", "validate", "test", "predict"})  # trainer.fit(model)
FABRIC_SETUP = frozenset({"setup", "setup_module"})  # fabric.setup(model)
# The LightningModule methods the strategy runs under autocast; ``forward`` is what
# ``self(x)`` in them runs.
LIGHTNING_METHODS = ("training_step", "validation_step", "test_step", "predict_step", "forward")
FABRIC_METHODS = ("forward",)

# --- DeepSpeed ---------------------------------------------------------------------------------
DEEPSPEED_INITIALIZE = frozenset({"deepspeed.initialize"})
DEEPSPEED_MODEL = ("model", 1)  # deepspeed.initialize(args=None, model=None, ...)
DEEPSPEED_CONFIGS = ("config", "config_params")
DEEPSPEED_FP16_KEY = "fp16"  # config["fp16"]["enabled"]

# Packages whose classes are never project code: a model they build is left out.
LIBRARY_PACKAGES = (
    "torch.",
    "torchvision.",
    "transformers.",
    "diffusers.",
    "timm.",
    "peft.",
    "accelerate.",
    "lightning.",
    "pytorch_lightning.",
    "deepspeed.",
    "trl.",
    "builtins.",
)
