"""Real weights one flag away: a local Hugging Face model or diffusers pipeline folder
(``--hf-model PATH``), a ``state_dict`` checkpoint loaded into a factory's model
(``--checkpoint FILE``), and whether a factory's model holds trained or random weights.

Random weights do not reproduce a trained model's outliers (T5's FFN activations, LLM attention
sinks), so a report says which it ran and never clears fp16 on random weights alone.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

#: two sentences of different lengths: the batch has padding, as real batches do
EXAMPLE_SENTENCES = (
    "Mixed precision halves memory, but float16 overflows above 65504.",
    "A short one.",
)
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class WeightsError(Exception):
    """A folder or checkpoint that cannot be loaded (the message says why)."""


@contextlib.contextmanager
def watch_loads() -> Iterator[list[str]]:
    """Record weight loads made while the factory runs: ``nn.Module.load_state_dict`` calls and
    transformers/diffusers ``from_pretrained`` (seen afterwards through ``config.name_or_path``)."""
    seen: list[str] = []
    original = torch.nn.Module.load_state_dict

    def load_state_dict(self: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        seen.append(f"load_state_dict into {type(self).__name__}")
        return original(self, *args, **kwargs)

    torch.nn.Module.load_state_dict = load_state_dict  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        torch.nn.Module.load_state_dict = original  # type: ignore[method-assign]


def pretrained_source(model: torch.nn.Module) -> str | None:
    """``from_pretrained``'s folder or hub name when the model was loaded that way."""
    config = getattr(model, "config", None)
    name = getattr(config, "name_or_path", None) or getattr(config, "_name_or_path", None)
    return f"from_pretrained({name!r})" if isinstance(name, str) and name else None


def load_checkpoint(model: torch.nn.Module, path: str) -> str:
    """Load a ``state_dict`` file (``torch.save``'d, or ``.safetensors``) into ``model``; a dict
    with a ``state_dict`` or ``model`` entry (a training checkpoint) is unwrapped."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state_dict")
    try:
        model.load_state_dict(state, strict=True)
    except Exception as exc:
        raise WeightsError(
            f"the checkpoint does not fit the factory's model: {type(exc).__name__}: "
            + " ".join(str(exc).split())[:300]
        ) from exc
    return f"checkpoint {p.name}"


def hf_factory(path: str, dtype: str = "float16") -> tuple[Callable[[], torch.nn.Module], Any]:
    """A factory and an inputs callable for a local Hugging Face model folder (``config.json``)
    or diffusers pipeline folder (``model_index.json``: its ``unet`` or ``transformer``)."""
    folder = Path(path)
    if dtype not in _DTYPES:
        raise WeightsError(f"unknown dtype {dtype!r}: one of {', '.join(_DTYPES)}")
    torch_dtype = _DTYPES[dtype]
    if (folder / "model_index.json").is_file():
        return _diffusers_factory(folder, torch_dtype)
    if not (folder / "config.json").is_file():
        raise WeightsError(
            f"{path} is not a Hugging Face model folder (no config.json) nor a diffusers "
            "pipeline folder (no model_index.json)"
        )
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))

    def factory() -> torch.nn.Module:
        import transformers

        archs = config.get("architectures") or []
        cls = getattr(transformers, archs[0], None) if archs else None
        cls = cls or transformers.AutoModel
        return cls.from_pretrained(str(folder), dtype=torch_dtype)

    def inputs() -> dict[str, torch.Tensor]:
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(folder))
        except Exception:
            tok = None
        if tok is not None:
            batch = tok(list(EXAMPLE_SENTENCES), padding=True, return_tensors="pt")
            return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        vocab = int(config.get("vocab_size") or 1000)
        ids = torch.randint(0, vocab, (2, 16))
        mask = torch.ones_like(ids)
        mask[1, 10:] = 0
        return {"input_ids": ids, "attention_mask": mask}

    return factory, inputs


def _diffusers_factory(
    folder: Path, dtype: torch.dtype
) -> tuple[Callable[[], torch.nn.Module], Any]:
    """The pipeline's denoiser (``transformer`` or ``unet``): the model that runs at every step
    and holds nearly all the weights. Its inputs come from its config (``_diffusers_inputs``)."""
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    name = next((n for n in ("transformer", "unet") if n in index), None)
    if name is None:
        raise WeightsError(f"{folder}: the pipeline has no unet or transformer component")
    library, cls_name = index[name]

    def factory() -> torch.nn.Module:
        try:
            import diffusers
        except ImportError as exc:
            raise WeightsError("a diffusers pipeline folder needs `pip install diffusers`") from exc
        cls = getattr(diffusers, cls_name, None)
        if cls is None:
            raise WeightsError(f"diffusers has no {cls_name} ({library}); upgrade diffusers?")
        return cls.from_pretrained(str(folder), subfolder=name, torch_dtype=dtype)

    config_file = folder / name / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    return factory, lambda: _diffusers_inputs(cls_name, config)


#: batch of two, two timesteps of the schedule's two ends, 77 text tokens (CLIP's length)
_TIMESTEPS = (999, 10)
_TEXT_TOKENS = 77


def _diffusers_inputs(cls_name: str, config: dict[str, Any]) -> tuple[tuple, dict]:
    """``(sample, timestep)`` for a ``UNet2DModel``; with ``encoder_hidden_states`` (and SDXL's
    ``added_cond_kwargs``) for a ``UNet2DConditionModel``: random latents and text states of the
    shapes the config gives. Other denoisers need their own inputs callable."""
    how = (
        f"{cls_name}: no inputs can be made from its config; name an inputs callable "
        '(pyproject: {hf_model = "...", inputs = "pkg.mod:example_inputs"})'
    )
    if cls_name not in ("UNet2DModel", "UNet2DConditionModel"):
        raise WeightsError(how)
    if config.get("class_embed_type") or config.get("num_class_embeds"):
        raise WeightsError(how + " (class-conditional)")
    n = len(_TIMESTEPS)
    size = config.get("sample_size") or 64
    h, w = (size, size) if isinstance(size, int) else size
    sample = torch.randn(n, config.get("in_channels", 4), h, w)
    kwargs: dict[str, Any] = {"timestep": torch.tensor(_TIMESTEPS)}
    if cls_name == "UNet2DModel":
        return (sample,), kwargs
    dim = config.get("encoder_hid_dim") or config.get("cross_attention_dim") or 768
    if isinstance(dim, (list, tuple)):
        dim = dim[0]
    kwargs["encoder_hidden_states"] = torch.randn(n, _TEXT_TOKENS, dim)
    extra = config.get("addition_embed_type")
    time_dim = config.get("addition_time_embed_dim") or 0
    text_dim = (config.get("projection_class_embeddings_input_dim") or 0) - 6 * time_dim
    if extra == "text_time" and text_dim > 0:
        # SDXL: pooled text embeddings, and the six image sizes/crops in pixels (latents x 8)
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(n, text_dim),
            "time_ids": torch.tensor([[h * 8.0, w * 8.0, 0.0, 0.0, h * 8.0, w * 8.0]] * n),
        }
    elif extra:
        raise WeightsError(how + f" (addition_embed_type {extra!r})")
    return (sample,), kwargs
