"""Float16 options of Hugging Face training configs: ``TrainingArguments(fp16=True)``,
``TrainingArguments(fp16_full_eval=True)``, ``Accelerator(mixed_precision="fp16")``.

``TrainingArguments`` is any transformers class whose name ends in ``TrainingArguments``
(``Seq2SeqTrainingArguments`` too), in any import spelling. Only literal values count: an
option set from a variable (``fp16=args.fp16``) is unknown.

What they do (transformers 5.24, accelerate): ``fp16=True`` trains under float16 autocast with
a GradScaler; ``fp16_full_eval=True`` makes ``Trainer.evaluation_loop`` cast the whole model
with ``model.to(dtype=torch.float16)`` before evaluating (transformers/trainer.py);
``Accelerator(mixed_precision="fp16")`` wraps the forward pass in float16 autocast.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from fp16lint.analysis.dtypes import string_value
from fp16lint.analysis.names import NameResolver
from fp16lint.data.fp16_switches import ACCELERATORS


@dataclass(frozen=True)
class Fp16Option:
    call: cst.Call  # the config's constructor call
    arg: cst.Arg  # the argument asking for float16
    option: str  # "fp16", "fp16_full_eval" or "mixed_precision"

    @property
    def casts_model(self) -> bool:
        """The option converts the model itself to float16 (not autocast)."""
        return self.option == "fp16_full_eval"


def is_training_arguments(qualname: str | None) -> bool:
    return (
        bool(qualname)
        and qualname.startswith("transformers.")
        and qualname.endswith("TrainingArguments")
    )


def fp16_options(call: cst.Call, names: NameResolver) -> list[Fp16Option]:
    """The float16 options ``call`` sets, when it builds a training config."""
    qualname = names.qualname(call.func)
    keywords = {a.keyword.value: a for a in call.args if a.keyword is not None}
    found = []
    if is_training_arguments(qualname):
        for option in ("fp16", "fp16_full_eval"):
            arg = keywords.get(option)
            if arg is not None and type(arg.value) is cst.Name and arg.value.value == "True":
                found.append(Fp16Option(call, arg, option))
    elif qualname in ACCELERATORS:
        arg = keywords.get("mixed_precision")
        if arg is not None and string_value(arg.value) == "fp16":
            found.append(Fp16Option(call, arg, "mixed_precision"))
    return found
