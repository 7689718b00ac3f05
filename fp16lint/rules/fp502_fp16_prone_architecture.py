"""FP502 fp16-prone-architecture: a model known to overflow in float16 (T5 family, Pegasus,
Flux, diffusers pipelines with a T5 text encoder) loaded, cast or trained in float16."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from fp16lint.analysis.casts import cast_of, loader_class, loader_of
from fp16lint.analysis.dtypes import DTypeFact, dtype_of, string_value, when_maybe
from fp16lint.analysis.hf_config import Fp16Option, fp16_options
from fp16lint.analysis.receivers import loader_owner
from fp16lint.data.fp16_prone import GENERIC_LOADERS, ProneArchitecture, by_class, by_model_id
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

_DTYPE_KEYWORDS = ("dtype", "torch_dtype")
_ID_KEYWORD = "pretrained_model_name_or_path"


@dataclass
class _Load:
    call: cst.Call
    entry: ProneArchitecture
    dtype: DTypeFact | None
    keyword: str  # the dtype keyword this loader takes ("dtype", "torch_dtype")


@dataclass
class _Scope:
    loads: list[_Load] = field(default_factory=list)
    casts: list[tuple[cst.Call, cst.Call, DTypeFact]] = field(default_factory=list)
    options: list[Fp16Option] = field(default_factory=list)


class Fp16ProneArchitecture(Rule):
    code = "FP502"
    name = "fp16-prone-architecture"
    severity = Severity.WARNING
    runtime_confirmable = "yes: overflow in the model as loaded"
    tokens = ("from_pretrained", "from_single_file")

    summary = "A model known to overflow in float16 is loaded, cast or trained in float16."
    what = (
        "Finds `from_pretrained` loads of architectures with a public record of float16 "
        "overflow — the T5 family (T5, T5 v1.1, Flan-T5, mT5, ByT5, UMT5, LongT5), Pegasus, "
        "Flux, and diffusers pipelines whose text encoder is a T5 (Stable Diffusion 3, "
        "PixArt, DeepFloyd IF, CogVideoX, Wan, ...) — recognised from the class or, for "
        "`AutoModel*` / `DiffusionPipeline` loads, from a literal model id. Reports the load "
        "when the same function casts the model to float16 (`.half()`, "
        '`.to(torch.float16)`, `pipe.to("cuda", torch.float16)`), builds a float16 '
        "`TrainingArguments` (`fp16=True`, `fp16_full_eval=True`) or "
        '`Accelerator(mixed_precision="fp16")`, or loads it with an fp16 `dtype` when '
        "nothing keeps the overflowing layers in float32."
    )
    why = (
        "These models produce activations beyond float16's 65504: T5's feed-forward outputs "
        "overflow to inf and NaN (the T5 authors trained with bfloat16 activations), Pegasus' "
        "encoder does the same, Flux's transformer gives NaN images. transformers keeps T5's "
        "`wo` layers in float32 when you load with `dtype=torch.float16` (that load alone is "
        "not reported), but a later `.half()` / `.to(torch.float16)` converts them too, "
        "and float16 autocast training runs them in float16 whatever their weights' dtype."
    )
    example = """\
model = AutoModelForSeq2SeqLM.from_pretrained("google/flan-t5-large")
args = Seq2SeqTrainingArguments("out", fp16=True)
"""
    use_instead = """\
model = AutoModelForSeq2SeqLM.from_pretrained("google/flan-t5-large")
args = Seq2SeqTrainingArguments("out", bf16=True)
"""
    references = (
        "https://github.com/huggingface/transformers/issues/9295",
        "https://github.com/huggingface/transformers/issues/23918",
        "https://github.com/huggingface/transformers/pull/20683",
        "https://github.com/huggingface/transformers/issues/12225",
        "https://github.com/huggingface/diffusers/issues/9096",
    )

    valid = (
        # The supported fp16 inference path: transformers keeps `wo` in float32.
        "import torch\nfrom transformers import T5ForConditionalGeneration\n"
        "model = T5ForConditionalGeneration.from_pretrained('t5-base', dtype=torch.float16)\n"
        "model.to('cuda')\n",
        # bfloat16 training and loading.
        "import torch\nfrom transformers import AutoModelForSeq2SeqLM, Seq2SeqTrainingArguments\n\n"
        "def main():\n    model = AutoModelForSeq2SeqLM.from_pretrained('google/flan-t5-xl')\n"
        "    args = Seq2SeqTrainingArguments('out', bf16=True)\n",
        "import torch\nfrom diffusers import FluxPipeline\n"
        "pipe = FluxPipeline.from_pretrained('black-forest-labs/FLUX.1-dev', torch_dtype=torch.bfloat16)\n"
        "pipe.to('cuda')\n",
        # Not a prone architecture.
        "import torch\nfrom transformers import AutoModel, TrainingArguments\n"
        "model = AutoModel.from_pretrained('bert-base-uncased').half()\n"
        "args = TrainingArguments('out', fp16=True)\n",
        # SD3 loaded in float16: its T5 keeps `wo` in float32.
        "import torch\nfrom diffusers import StableDiffusion3Pipeline\n"
        "pipe = StableDiffusion3Pipeline.from_pretrained(\n"
        "    'stabilityai/stable-diffusion-3-medium-diffusers', torch_dtype=torch.float16\n)\n"
        "pipe.to('cuda')\n",
        # The tokenizer is not the model; the fp16 config is in another function.
        "from transformers import T5Tokenizer, TrainingArguments\n\ndef load():\n"
        "    return T5Tokenizer.from_pretrained('t5-base')\n\ndef config():\n"
        "    return TrainingArguments('out', fp16=True)\n",
        # accelerate in bf16.
        "from accelerate import Accelerator\nfrom transformers import T5ForConditionalGeneration\n"
        "accelerator = Accelerator(mixed_precision='bf16')\n"
        "model = T5ForConditionalGeneration.from_pretrained('t5-small')\n",
    )
    invalid = (
        Invalid(
            "from transformers import AutoModelForSeq2SeqLM, Seq2SeqTrainingArguments\n\n"
            "def main():\n    model = AutoModelForSeq2SeqLM.from_pretrained('google/flan-t5-large')\n"
            "    args = Seq2SeqTrainingArguments('out', fp16=True)\n",
            (("FP502", 4),),
        ),
        Invalid(
            "import torch\nfrom transformers import T5EncoderModel\n\n"
            "encoder = T5EncoderModel.from_pretrained('google/t5-v1_1-xxl').half().eval()\n",
            (("FP502", 4),),
        ),
        Invalid(
            "import torch\nfrom diffusers import DiffusionPipeline\n\nMODEL = 'DeepFloyd/IF-I-XL-v1.0'\n"
            "pipe = DiffusionPipeline.from_pretrained(MODEL)\n"
            "for prompt in prompts:\n    with torch.inference_mode():\n"
            "        pipe.to('cuda', torch.float16)\n        image = pipe(prompt).images[0]\n",
            (("FP502", 5),),
        ),
        Invalid(
            "import torch\nfrom transformers import PegasusForConditionalGeneration as Pegasus\n\n"
            "def summarizer(name='google/pegasus-xsum'):\n"
            "    return Pegasus.from_pretrained(name, torch_dtype=torch.float16).to('cuda')\n",
            (("FP502", 5),),
        ),
        Invalid(
            "import torch\nfrom diffusers import FluxPipeline\n"
            "pipe = FluxPipeline.from_pretrained('black-forest-labs/FLUX.1-schnell', torch_dtype=torch.half)\n",
            (("FP502", 3),),
        ),
        Invalid(
            "import torch\nfrom accelerate import Accelerator\n"
            "from transformers import MT5ForConditionalGeneration, TrainingArguments\n\n"
            "def train():\n    accelerator = Accelerator(mixed_precision='fp16')\n"
            "    model = MT5ForConditionalGeneration.from_pretrained('google/mt5-base')\n"
            "    model = accelerator.prepare(model)\n",
            (("FP502", 7),),
        ),
    )

    def __init__(self, ctx):
        super().__init__(ctx)
        self.scopes: list[_Scope] = [_Scope()]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scopes.append(_Scope())

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._check(self.scopes.pop())

    def leave_Module(self, node: cst.Module) -> None:
        self._check(self.scopes[0])

    def visit_Call(self, node: cst.Call) -> None:
        scope = self.scopes[-1]
        scope.options.extend(fp16_options(node, self.ctx.names))
        cast = cast_of(node, self.ctx.names)
        if cast is not None and cast.to_fp16 and cast.dtype is not None:
            load = loader_of(cast.receiver, self.ctx)
            if load is not None:
                scope.casts.append((node, load, cast.dtype))
        if loader_owner(node) is not None:
            entry = self._architecture(node)
            if entry is not None:
                arg = next(
                    (a for a in node.args if a.keyword and a.keyword.value in _DTYPE_KEYWORDS), None
                )
                dtype = dtype_of(arg.value, self.ctx.names, strings=True) if arg else None
                keyword = arg.keyword.value if arg and arg.keyword else "dtype"
                scope.loads.append(_Load(node, entry, dtype, keyword))

    def _architecture(self, call: cst.Call) -> ProneArchitecture | None:
        owner = loader_class(call, self.ctx).rsplit(".", 1)[-1]
        entry = by_class(owner)
        if entry is not None or not owner.startswith(GENERIC_LOADERS):
            return entry
        ids = {by_model_id(text) for text in self._model_ids(call)}
        return ids.pop() if len(ids) == 1 else None

    def _model_ids(self, call: cst.Call) -> list[str]:
        positional = [a for a in call.args if a.keyword is None and not a.star]
        keyword = [a for a in call.args if a.keyword and a.keyword.value == _ID_KEYWORD]
        arg = (keyword or positional or [None])[0]
        if arg is None:
            return []
        value = arg.value
        options = self.ctx.names.values(value.value) if type(value) is cst.Name else [value]
        texts = [string_value(v) if v is not None else None for v in options]
        return [t for t in texts if t is not None] if all(texts) else []

    def _check(self, scope: _Scope) -> None:
        for load in scope.loads:
            trigger = self._trigger(load, scope)
            if trigger is None:
                continue
            how, node, note, instead = trigger
            entry = load.entry
            self.report(
                load.call,
                f"{entry.subject} is {how}, and {entry.cause}.",
                related=[(self.ctx.path, node, note)] if node is not None else [],
                help=f"{instead[0].upper()}{instead[1:]}.",
            )

    def _trigger(self, load: _Load, scope: _Scope):
        """(how, node, related note, what to do) for the first float16 use of ``load``."""
        entry = load.entry
        bf16 = "use bfloat16 (or float32) instead"
        for cast, target, dtype in scope.casts:
            if target is load.call:
                how = f"cast to float16{when_maybe(dtype)}"
                if entry.load_keeps_fp32:
                    how += " whole, float32-kept layers too"
                    bf16 = (
                        f"load it with `{load.keyword}=torch.float16` instead of casting, or use "
                        "bfloat16"
                    )
                return how, cast, "the float16 cast", bf16
        for option in scope.options:
            if option.casts_model:
                how = "evaluated in pure float16 (`fp16_full_eval=True` casts it whole)"
                return how, option.arg, "fp16_full_eval", "use `bf16_full_eval` or drop it"
        for option in scope.options:
            text = f"{option.option}={self.ctx.code(option.arg.value)}"
            how = f"trained under float16 autocast (`{text}`)"
            return how, option.arg, "float16 training", "train in bfloat16 (or float32) instead"
        if load.dtype is not None and load.dtype.is_fp16 and not entry.load_keeps_fp32:
            how = f"loaded in float16{when_maybe(load.dtype)}"
            return how, None, "", f"load it with `{load.keyword}=torch.bfloat16` or in float32"
        return None
