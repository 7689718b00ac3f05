"""FP501 hf-cast-after-load: ``from_pretrained(...).half()`` converts the modules an fp16 load
keeps in float32."""

from __future__ import annotations

from dataclasses import replace

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.casts import CastFacts, CastSite, HfLoad, cast_of, hf_load_of, short_code
from fp16lint.analysis.context import NodeEdit
from fp16lint.analysis.dtypes import when_maybe
from fp16lint.analysis.guards import follows_fp16_data
from fp16lint.analysis.index import with_unsafe_contents
from fp16lint.analysis.receivers import ReceiverTracker
from fp16lint.analysis.requirements import lowest_version
from fp16lint.analysis.tree import walk
from fp16lint.data.hf_dtype_argument import DIFFUSERS_DTYPE_KEYWORD, TRANSFORMERS_DTYPE_SINCE
from fp16lint.data.hf_keep_fp32 import DIFFUSERS_VERSION, TRANSFORMERS_VERSION
from fp16lint.findings import Applicability, Finding, Severity
from fp16lint.rules.base import Invalid, Rule

_DTYPE_KEYWORDS = ("dtype", "torch_dtype")
# Per file: the transformers fixes written with ``dtype=``, and their ``torch_dtype=`` text for a
# project whose requirements admit a transformers before 4.56 (chosen in the project pass).
_FIX_FACT = "fp501_dtype_fixes"
_ADVICE = "Pass the dtype to `{name}.from_pretrained(..., {keyword}=...)` instead."


class HfCastAfterLoad(Rule):
    code = "FP501"
    name = "hf-cast-after-load"
    severity = Severity.WARNING
    fix = Applicability.UNSAFE
    tokens = ("from_pretrained", "from_single_file")
    requires = (ReceiverTracker, AutocastTracker, CastFacts)

    summary = "A Hugging Face model cast to fp16 after loading loses its fp32-kept modules."
    what = (
        "Finds a transformers model or diffusers model/pipeline from `from_pretrained` that is "
        "then converted to float16 — `.half()`, `.to(torch.float16)`, "
        '`pipe.to("cuda", torch.float16)` — chained or through a name. The message names the '
        "modules the class keeps in float32 when they are known (from a table generated from "
        f"transformers {TRANSFORMERS_VERSION}'s and diffusers {DIFFUSERS_VERSION}'s sources by "
        "`scripts/gen_hf_keep_fp32.py`). Classes that declare no such modules "
        "(`BertModel`, `UNet2DConditionModel`) are left to FP101; `Auto*` classes and pipelines "
        "may hold any model, so they count — except an `Auto*` load of a checkpoint named by a "
        "string with `trust_remote_code=True` (ChatGLM, Baichuan...): its model is the "
        "checkpoint's own code, and the classes that keep modules in float32 load without it "
        "(unless the name shows one of their families: `flan-t5`, `blip2`, `rwkv`...). "
        "`from_config` keeps nothing in float32 (it builds every module in one dtype), so a cast "
        "after it is FP101's too."
    )
    why = (
        "`from_pretrained(..., dtype=torch.float16)` keeps the modules listed in the class's "
        "`_keep_in_fp32_modules` (and `_keep_in_fp32_modules_strict`) in float32 — T5's, mT5's "
        "and UMT5's `wo` feed-forward output layers, BLIP-2's `query_tokens` and `qformer`, "
        "RWKV's `time_decay` and `time_first` — because they overflow or lose precision in "
        "float16 (transformers issue #20287, PR #20683). `.half()` or `.to(torch.float16)` "
        "after loading converts them too. A diffusers pipeline's `.to(device, dtype)` calls "
        "`.to(device, dtype)` on each component, so its T5 text encoder loses its float32 `wo` "
        "the same way, while the pipeline's own `dtype=` load argument keeps it."
    )
    example = """\
model = T5ForConditionalGeneration.from_pretrained("t5-base").half()
"""
    use_instead = """\
model = T5ForConditionalGeneration.from_pretrained("t5-base", dtype=torch.float16)
"""
    fix_docs = (
        "Unsafe, for the chained form `X.from_pretrained(a).half()` / `.to(torch.float16)` / "
        '`.to("cuda", torch.float16)`: moves the dtype into the load call '
        '(`X.from_pretrained(a, dtype=torch.float16).to("cuda")`). The argument is `dtype=` '
        "(transformers 4.56 and later) unless the project's requirements admit an older "
        "transformers (`transformers<4.56`, `==4.40.2`, `>=4.30`, read from `pyproject.toml`, "
        "`requirements*.txt` or `setup.cfg` in the project root), or say nothing about it and "
        "the file already passes `torch_dtype=`: then `torch_dtype=`, which every version "
        "takes. diffusers loads get `torch_dtype=`. The result differs on purpose: the "
        "float32-kept modules stay float32."
    )
    references = (
        "https://github.com/huggingface/transformers/pull/20683",
        "https://huggingface.co/docs/transformers/main_classes/model#model-instantiation-dtype",
    )
    runtime_confirmable = "yes: the dtype inventory lists the modules left in float32"

    valid = (
        "import torch\nfrom transformers import AutoModel\n"
        "model = AutoModel.from_pretrained('t5-small', dtype=torch.float16)\n",
        # bfloat16 and float32 casts.
        "import torch\nfrom transformers import T5Model\n"
        "m = T5Model.from_pretrained('t5-small').to(torch.bfloat16)\nm.float()\n",
        # A tokenizer is no model.
        "import torch\nfrom transformers import AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained('t5-small')\nbatch = tok('hi', return_tensors='pt')\n"
        "batch.to('cuda')\n",
        # A class that keeps nothing in fp32 is FP101's.
        "import torch\nfrom transformers import BertModel\n"
        "model = BertModel.from_pretrained('bert-base-uncased').half()\n",
        # Not Hugging Face.
        "import torch\nfrom peft import PeftModel\n\ndef f(base):\n"
        "    return PeftModel.from_pretrained(base, 'adapter').half()\n",
        # Moved, not cast.
        "import torch\nfrom diffusers import DiffusionPipeline\n"
        "pipe = DiffusionPipeline.from_pretrained('x', torch_dtype=torch.float16)\npipe.to('cuda')\n",
        # A named checkpoint with its own model code; a model built from a config.
        "import torch\nfrom transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM\n"
        "CKPT = 'THUDM/chatglm-6b'\n"
        "model = AutoModel.from_pretrained(CKPT, trust_remote_code=True).half().cuda()\n"
        "config = AutoConfig.from_pretrained('google/flan-t5-xl')\n"
        "t5 = AutoModelForSeq2SeqLM.from_config(config).half()\n",
    )
    invalid = (
        Invalid(
            "import torch\nfrom transformers import T5ForConditionalGeneration\n"
            "model = T5ForConditionalGeneration.from_pretrained('t5-base').half()\n",
            (("FP501", 3),),
            fixed="import torch\nfrom transformers import T5ForConditionalGeneration\n"
            "model = T5ForConditionalGeneration.from_pretrained('t5-base', dtype=torch.float16)\n",
        ),
        Invalid(
            "import torch as th\nimport transformers\n"
            "model = transformers.AutoModelForSeq2SeqLM.from_pretrained(\n    'google/flan-t5-xl',\n"
            ").to('cuda', th.float16)\n",
            (("FP501", 3),),
            fixed="import torch as th\nimport transformers\n"
            "model = transformers.AutoModelForSeq2SeqLM.from_pretrained(\n    'google/flan-t5-xl',\n"
            "    dtype=th.float16,\n).to('cuda')\n",
        ),
        # Through a name; a diffusers pipeline.
        Invalid(
            "import torch\nfrom diffusers import DiffusionPipeline\n"
            "pipe = DiffusionPipeline.from_pretrained('black-forest-labs/FLUX.1-dev')\n"
            "pipe.to('cuda', torch.float16)\n",
            (("FP501", 4),),
        ),
        # A may-be-fp16 dtype; the file already says torch_dtype.
        Invalid(
            "import torch\nfrom transformers import AutoModel, Blip2Model\n\ndef load(args):\n"
            "    dtype = torch.float16 if args.fp16 else torch.float32\n"
            "    enc = AutoModel.from_pretrained('x', torch_dtype=dtype)\n"
            "    return Blip2Model.from_pretrained('blip2').to(dtype=dtype)\n",
            (("FP501", 7),),
            fixed="import torch\nfrom transformers import AutoModel, Blip2Model\n\ndef load(args):\n"
            "    dtype = torch.float16 if args.fp16 else torch.float32\n"
            "    enc = AutoModel.from_pretrained('x', torch_dtype=dtype)\n"
            "    return Blip2Model.from_pretrained('blip2', torch_dtype=dtype)\n",
        ),
        # A loader for any path, or a checkpoint the name shows is a T5: trust_remote_code=True
        # says nothing about which model it is.
        Invalid(
            "import torch\nfrom transformers import AutoModelForSeq2SeqLM as Seq2Seq\n\n"
            "def load(path):\n"
            "    return Seq2Seq.from_pretrained(path, trust_remote_code=True).half()\n\n"
            "t5 = Seq2Seq.from_pretrained('google/flan-t5-xl', trust_remote_code=True)\nt5.half()\n",
            (("FP501", 5), ("FP501", 8)),
        ),
        # Loaded in fp16 and cast again: the kept modules are converted; no fix.
        Invalid(
            "import torch\nfrom transformers import UMT5EncoderModel\n"
            "enc = UMT5EncoderModel.from_pretrained('u', dtype=torch.float16)\nenc = enc.eval().half()\n",
            (("FP501", 4),),
        ),
    )

    def __init__(self, ctx):
        super().__init__(ctx)
        self._keyword: str | None = None

    @classmethod
    def amend(cls, project, finding: Finding) -> Finding:
        if _old_transformers(project):
            finding = _with_torch_dtype(project, finding)
        return with_unsafe_contents(project, finding)

    def visit_Call(self, node: cst.Call) -> None:
        site = cast_of(node, self.ctx.names)
        if site is None or not site.to_fp16:
            return
        load = hf_load_of(site.receiver, self.ctx)
        if load is None or not load.loses_fp32_modules:
            return
        if follows_fp16_data(self.ctx.stack, self.ctx.names):
            return
        edits = self._fix(site, load)
        message, help_text = self._message(site, load)
        self.report(
            node,
            message,
            help=help_text,
            edits=edits,
            fix_message="Load the model in float16 with the dtype argument",
        )

    def _message(self, site: CastSite, load: HfLoad) -> tuple[str, str]:
        """The message and the help."""
        name = load.qualname.rsplit(".", 1)[-1]
        call = short_code(self.ctx, site.call)
        when = when_maybe(site.dtype)
        if load.keep_in_fp32:
            kept = ", ".join(f"`{m}`" for m in load.keep_in_fp32)
            lost = f"its float32 modules ({kept})"
        else:
            lost = "its float32 modules (`_keep_in_fp32_modules`)"
        advice = _ADVICE.format(name=name, keyword=self._dtype_keyword(load))
        return f"`{call}` casts a `from_pretrained` model to float16{when}, {lost} too.", advice

    # --- the fix ----------------------------------------------------------------------------
    def _fix(self, site: CastSite, load: HfLoad) -> list[NodeEdit]:
        call = load.call
        if site.receiver is not call or site.method not in ("half", "to"):
            return []
        if any(a.star for a in call.args) or any(
            a.keyword is not None and a.keyword.value in _DTYPE_KEYWORDS for a in call.args
        ):
            return []
        dtype_text, device_args = self._cast_parts(site)
        if dtype_text is None:
            return []
        keyword = self._dtype_keyword(load)
        loaded = self._loaded(call, keyword, dtype_text, device_args)
        if keyword == "dtype" and load.qualname.startswith("transformers."):
            older = self._loaded(call, "torch_dtype", dtype_text, device_args)
            self.ctx.facts.setdefault(_FIX_FACT, []).append(
                {"span": self.ctx.span_ref(site.call), "torch_dtype": older}
            )
        return [NodeEdit(site.call, loaded)]

    def _loaded(self, call: cst.Call, keyword: str, dtype_text: str, device: list[str]) -> str:
        """The load call with ``keyword=dtype_text`` added, then moved to ``device``."""
        arg = cst.Arg(
            cst.parse_expression(dtype_text),
            keyword=cst.Name(keyword),
            equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
        )
        args = list(call.args)
        if args and isinstance(args[-1].comma, cst.Comma):
            arg = arg.with_changes(comma=args[-1].comma)
            args[-1] = args[-1].with_changes(
                comma=cst.Comma(whitespace_after=call.whitespace_before_args)
            )
        loaded = self.ctx.code(call.with_changes(args=[*args, arg]))
        return f"{loaded}.to({', '.join(device)})" if device else loaded

    def _cast_parts(self, site: CastSite) -> tuple[str | None, list[str]]:
        """The dtype's text and the device arguments' texts of the cast (None: no fix)."""
        if site.method == "half":
            torch_name = self.ctx.names.local_name_for("torch")
            return (f"{torch_name}.float16" if torch_name else None), []
        dtype_text, device = None, []
        for arg in site.call.args:
            keyword = arg.keyword.value if arg.keyword is not None else None
            text = self.ctx.code(arg.value)
            if keyword == "dtype" or (
                keyword is None and dtype_text is None and _is_dtype(arg, site)
            ):
                dtype_text = text
            elif keyword in (None, "device"):
                device.append(text if keyword is None else f"device={text}")
            else:
                return None, []  # non_blocking=, copy=...: keep the call as written
        return dtype_text, device

    def _dtype_keyword(self, load: HfLoad) -> str:
        """``torch_dtype`` for diffusers, or when the file already passes it to a loader, else
        ``dtype`` (the project pass may still switch it, see ``amend``)."""
        if load.qualname.startswith("diffusers."):
            return DIFFUSERS_DTYPE_KEYWORD
        if self._keyword is None:
            self._keyword = "dtype"
            for node in walk(self.ctx.module):
                if type(node) is cst.Arg and getattr(node.keyword, "value", "") == "torch_dtype":
                    self._keyword = "torch_dtype"
                    break
        return self._keyword


def _old_transformers(project) -> bool:
    """Whether the project's requirements admit a transformers without ``dtype=``."""
    lowest = project.derived(
        "transformers.lowest", lambda p: lowest_version(p.settings.root, "transformers")
    )
    return lowest is not None and lowest < TRANSFORMERS_DTYPE_SINCE


def _with_torch_dtype(project, finding: Finding) -> Finding:
    """``finding`` advising (and fixing with) ``torch_dtype=`` instead of ``dtype=``."""
    help_text = (finding.help or "").replace(", dtype=...)`", ", torch_dtype=...)`") or None
    fix = finding.fix
    summary = project.summaries.get(finding.path)
    if fix is None or summary is None:
        return replace(finding, help=help_text)
    start = finding.span.start
    for record in summary.facts.get(_FIX_FACT, ()):
        if record["span"][:2] == [start.line, start.column]:
            (edit,) = fix.edits
            fix = replace(fix, edits=(replace(edit, content=record["torch_dtype"]),))
    return replace(finding, help=help_text, fix=fix)


def _is_dtype(arg: cst.Arg, site: CastSite) -> bool:
    """Whether a positional argument of ``.to(...)`` is the dtype (the last one, since the
    device comes first)."""
    positional = [a for a in site.call.args if a.keyword is None]
    return arg is positional[-1] and (len(positional) == 2 or site.device is None)
