"""Architectures known to overflow in float16, each with the public evidence for it.

An entry is recognised from the class a model is loaded with (``T5ForConditionalGeneration``,
``FluxPipeline``) or, for generic loaders (``AutoModel*``, ``DiffusionPipeline``,
``AutoPipeline*``), from a literal model id: the repository name after the owner (``flan-t5-xl``
in ``google/flan-t5-xl``), matched case-insensitively against ``model_ids`` prefixes.

``load_keeps_fp32``: ``from_pretrained`` with an fp16 dtype keeps the layers that overflow in
float32, so an fp16 *load* alone is the library's supported fp16 path and is not reported; a
later ``.half()`` / ``.to(torch.float16)`` (which converts them too, ../shared/FACTS.md §6) or
fp16 autocast training (where autocast runs those layers in float16 whatever their weights'
dtype) is.
"""

from __future__ import annotations

from dataclasses import dataclass

from fp16lint.data.diffusers_t5_pipelines import T5_TEXT_ENCODER_PIPELINES


@dataclass(frozen=True)
class ProneArchitecture:
    name: str  # the architecture
    subject: str  # starts messages: "This T5 model"
    classes: frozenset[str]
    model_ids: tuple[str, ...]  # lowercase prefixes of the repository name
    load_keeps_fp32: bool
    cause: str  # the overflow, as a clause
    citation: str


def _classes(*prefixes: str, suffixes: tuple[str, ...]) -> frozenset[str]:
    return frozenset(p + s for p in prefixes for s in suffixes)


_T5_SUFFIXES = (
    "Model",
    "ForConditionalGeneration",
    "EncoderModel",
    "ForSequenceClassification",
    "ForTokenClassification",
    "ForQuestionAnswering",
)
_T5_CAUSE = (
    "feed-forward outputs exceed float16's 65504 and become inf/NaN (T5 was trained with "
    "bfloat16 activations)"
)

T5 = ProneArchitecture(
    name="T5",
    subject="This T5 model",
    classes=_classes("T5", "MT5", "UMT5", suffixes=_T5_SUFFIXES),
    # t5-*, google-t5/t5-*, google/t5-v1_1-*, google/flan-t5-*, google/mt5-*, google/umt5-*,
    # google/byt5-*, google/t5-efficient-*, bigscience/mt0-* (all load into these classes).
    model_ids=("t5-", "t5_", "flan-t5", "mt5-", "umt5-", "byt5-", "mt0-"),
    load_keeps_fp32=True,
    cause=f"T5's {_T5_CAUSE}",
    citation=(
        "huggingface/transformers issues #5651, #9295 (every T5 size and version, mT5), "
        "#10819 (mT5), #10830, #11461, #23918 (flan-t5-xl, 2023); T5 authors: "
        "google-research/text-to-text-transfer-transformer#539 (bfloat16 activations); "
        "`_keep_in_fp32_modules = ['wo']` in modeling_t5.py / modeling_mt5.py / "
        "modeling_umt5.py (PR #20683, #21281)"
    ),
)
LONGT5 = ProneArchitecture(
    name="LongT5",
    subject="This LongT5 model",
    classes=frozenset({"LongT5Model", "LongT5ForConditionalGeneration", "LongT5EncoderModel"}),
    model_ids=("long-t5-",),
    load_keeps_fp32=False,
    cause="LongT5 has T5's float16 overflow (its fp16 training gives NaN losses)",
    citation="huggingface/transformers issue #17978 (LongT5 fp16 training gives NaN)",
)
PEGASUS = ProneArchitecture(
    name="Pegasus",
    subject="This Pegasus model",
    classes=frozenset({"PegasusModel", "PegasusForConditionalGeneration", "PegasusForCausalLM"}),
    # google/pegasus-xsum, -large, -cnn_dailymail...; not google/pegasus-x-* (PegasusX).
    model_ids=tuple(
        f"pegasus-{task}"
        for task in (
            "large",
            "xsum",
            "cnn_dailymail",
            "newsroom",
            "multi_news",
            "gigaword",
            "wikihow",
            "reddit_tifu",
            "arxiv",
            "pubmed",
            "bigpatent",
            "billsum",
            "aeslc",
        )
    ),
    load_keeps_fp32=False,
    cause="Pegasus' encoder activations overflow float16 and give NaN or empty output",
    citation=(
        'huggingface/transformers issue #12225 (Pegasus fp16 NaN), #9257 ("Pegasus and T5 '
        "currently don't work well with fp16\"), PR #7243 (clamping is not enough for the "
        "16-layer checkpoints)"
    ),
)
FLUX = ProneArchitecture(
    name="Flux",
    subject="This Flux model",
    classes=frozenset(
        {name for name in T5_TEXT_ENCODER_PIPELINES if name.startswith("Flux")}
        | {"FluxTransformer2DModel"}
    ),
    model_ids=("flux.1-",),
    load_keeps_fp32=False,
    cause=(
        "Flux's transformer activations exceed float16's range (diffusers clips them to "
        "±65504) and images come out NaN/black"
    ),
    citation=(
        "huggingface/diffusers issue #9096 (Flux in float16 outputs NaN); "
        "diffusers/models/transformers/transformer_flux.py (fp16 clipping); "
        "diffusers/pipelines/flux/pipeline_flux.py (T5EncoderModel text encoder)"
    ),
)
T5_PIPELINES = ProneArchitecture(
    name="T5 text encoder",
    subject="This pipeline's T5 text encoder",
    classes=frozenset(T5_TEXT_ENCODER_PIPELINES) - FLUX.classes,
    # stabilityai/stable-diffusion-3*-diffusers, PixArt-alpha/PixArt-*, DeepFloyd/IF-*,
    # THUDM/CogVideoX-*, Wan-AI/Wan2.*, Lightricks/LTX-Video, genmo/mochi-1-*, fal/AuraFlow*.
    model_ids=(
        "stable-diffusion-3",
        "pixart-",
        "if-i-",
        "if-ii-",
        "cogvideox",
        "wan2.",
        "ltx-video",
        "mochi-1",
        "auraflow",
    ),
    load_keeps_fp32=True,
    cause=f"T5's {_T5_CAUSE}",
    citation=(
        "data/diffusers_t5_pipelines.py (generated from the diffusers sources: the file of each "
        "pipeline whose text encoder is a T5) and the T5 evidence above"
    ),
)

ARCHITECTURES = (T5, LONGT5, PEGASUS, FLUX, T5_PIPELINES)
# Loaders that can load any architecture: the model id tells which.
GENERIC_LOADERS = ("Auto", "DiffusionPipeline")


def by_class(name: str) -> ProneArchitecture | None:
    for entry in ARCHITECTURES:
        if name in entry.classes:
            return entry
    return None


def by_model_id(model_id: str) -> ProneArchitecture | None:
    repo = model_id.rstrip("/").rsplit("/", 1)[-1].lower()
    for entry in ARCHITECTURES:
        if repo.startswith(entry.model_ids):
            return entry
    return None
