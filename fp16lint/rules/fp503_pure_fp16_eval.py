"""FP503 pure-fp16-eval: ``TrainingArguments(fp16_full_eval=True)``."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.hf_config import fp16_options
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule


class PureFp16Eval(Rule):
    code = "FP503"
    name = "pure-fp16-eval"
    severity = Severity.WARNING
    runtime_confirmable = "yes: overflow in the model run with .half()"
    tokens = ("fp16_full_eval",)

    summary = "`fp16_full_eval=True` evaluates a `.half()`-style float16 model, not autocast."
    what = (
        "Finds `fp16_full_eval=True` in `TrainingArguments` and its subclasses "
        "(`Seq2SeqTrainingArguments`), in any import spelling. `bf16_full_eval` is fine."
    )
    why = (
        "With `fp16_full_eval`, `Trainer.evaluation_loop` calls "
        "`model.to(dtype=torch.float16)`: every parameter and buffer becomes float16, the "
        "modules a model keeps in float32 (`_keep_in_fp32_modules`) included, and the forward "
        "pass runs in pure float16 with no autocast to keep softmax, norms and losses in "
        "float32. Activations above 65504 become inf, so eval losses and metrics can differ "
        "from training or turn NaN. The cast is in place: after `trainer.evaluate()` the "
        "model object is still float16."
    )
    example = """\
args = TrainingArguments("out", fp16=True, fp16_full_eval=True)
"""
    use_instead = """\
args = TrainingArguments("out", fp16=True)  # evaluation runs the fp32 model under autocast
# or, on hardware with bfloat16:
args = TrainingArguments("out", bf16=True, bf16_full_eval=True)
"""
    references = (
        "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments.fp16_full_eval",
    )

    valid = (
        "from transformers import TrainingArguments\nargs = TrainingArguments('out', fp16=True)\n",
        "from transformers import TrainingArguments\n"
        "args = TrainingArguments('out', bf16=True, bf16_full_eval=True)\n",
        "from transformers import TrainingArguments\n"
        "args = TrainingArguments('out', fp16_full_eval=False)\n",
        # Set from the command line: unknown.
        "import transformers\n\ndef main(cli):\n"
        "    return transformers.TrainingArguments('out', fp16_full_eval=cli.fp16_full_eval)\n",
        # accelerate has no full-eval option; not a TrainingArguments.
        "from accelerate import Accelerator\naccelerator = Accelerator(mixed_precision='fp16')\n"
        "config = dict(fp16_full_eval=True)\n",
    )
    invalid = (
        Invalid(
            "from transformers import TrainingArguments\n"
            "args = TrainingArguments('out', fp16=True, fp16_full_eval=True)\n",
            (("FP503", 2),),
        ),
        Invalid(
            "from transformers import Seq2SeqTrainingArguments as Args\n\ndef make(out):\n"
            "    return Args(\n        out,\n        predict_with_generate=True,\n"
            "        fp16_full_eval=True,\n    )\n",
            (("FP503", 7),),
        ),
        Invalid(
            "import transformers as tf\n\nfor lr in (1e-4, 3e-4):\n"
            "    args = tf.TrainingArguments(f'out-{lr}', learning_rate=lr, fp16_full_eval=True)\n",
            (("FP503", 4),),
        ),
        Invalid(
            "from transformers.training_args import TrainingArguments\n\n"
            "if __name__ == '__main__':\n    with open('log') as log:\n"
            "        args = TrainingArguments('out', fp16_full_eval=True, eval_strategy='steps')\n",
            (("FP503", 5),),
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        for option in fp16_options(node, self.ctx.names):
            if option.casts_model:
                self.report(
                    option.arg,
                    "`fp16_full_eval=True` evaluates the whole model in pure float16: inf or "
                    "NaN eval metrics.",
                    help="Drop it (with `fp16=True` the float32 model is evaluated under "
                    "autocast) or use `bf16_full_eval=True` where bfloat16 is available.",
                )
