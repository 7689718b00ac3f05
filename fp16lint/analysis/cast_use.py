"""Is an fp16 cast of a model a defect, or a deliberate fp16 inference or export cast?

Casting a whole model to float16 is the intended, working mode for inference and export
(ONNX/TensorRT, ``save_pretrained`` of fp16 weights) and for frozen sub-models of a training
script (a VAE or text encoder used only to encode inputs). It is a defect when the model is
trained or shares a training loop, runs on the CPU, or holds something that fails in float16
(the project index lists that; ``analysis.index.ProjectIndex.contents_of``).

Per function (and the module body), ``CastUse`` collects each fp16 cast of a module and what
the function does with the models it names, and decides once the function's walk is over
(``verdicts``, asked from a rule's ``leave_FunctionDef``/``leave_Module``):

- **trained**: its parameters go to an optimizer, it gets trainable adapters
  (``get_peft_model(m)``, ``m.add_adapter(cfg)``) in a function that builds an optimizer, ``m.requires_grad_(True)``, or ``m.train()`` without
  ``m.requires_grad_(False)`` (not ``accelerator.prepare(m)``: evaluation loops prepare
  models too);
- **training path**: the cast sits under a test of a training flag (``if training:``,
  ``if args.train_text_encoder:``); ``if not args.train_x:`` says the opposite, and then
  nothing else in the function makes the cast model trained;
- **CPU**: the cast or its chain names the CPU, or the model's last move does and the
  function then runs the float16 model there (as FP104: a model moved to the CPU only to be
  handed on, ``export(model.cpu())``, and never run there does not run on the CPU);
- **silent**: a round trip (``model.half().float()``), or a cast of a model, or a submodule of
  one, that this function already cast (one cast reports once);
- **unreached**: the cast sits under tests of the function's parameters that every caller in
  the project leaves false (``analysis.call_guards``; the project pass drops it);
- otherwise **deliberate**: not a defect by itself; the project pass reports it only when the
  model holds something that fails in float16 inference.

The verdict is also written on the cast's ``casts`` fact (``defect``, ``silent``) for the
project pass' casts of classes from other files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from fp16lint.analysis.base import Tracker
from fp16lint.analysis.call_guards import param_guards
from fp16lint.analysis.casts import CastFacts, cast_of
from fp16lint.analysis.dtypes import DType
from fp16lint.analysis.guards import follows_fp16_data
from fp16lint.analysis.names import dotted
from fp16lint.analysis.receivers import Kind, ReceiverTracker, unwrap_chain
from fp16lint.analysis.training import TrainingTracker, chain_calls

_ADAPTERS = frozenset(
    {"get_peft_model", "prepare_model_for_kbit_training", "inject_adapter_in_model"}
)
TRAINED = "trained"
TRAINING_PATH = "training path"
CPU = "cpu"
_WHY = {
    TRAINED: "it is trained here (an optimizer, adapters or train mode)",
    TRAINING_PATH: "it is cast on a training path",
    CPU: "it runs on the CPU",
}


@dataclass
class Verdict:
    defect: str | None = None  # TRAINED, TRAINING_PATH, CPU
    silent: bool = False

    @property
    def why(self) -> str:
        return _WHY[self.defect] if self.defect else ""


@dataclass
class _Cast:
    call: cst.Call
    key: str | None
    fact: dict[str, Any] | None
    verdict: Verdict
    not_trained: bool = False  # under ``if not args.train_x:``


@dataclass
class _Frame:
    casts: list[_Cast] = field(default_factory=list)
    trained: set[str] = field(default_factory=set)
    train_mode: set[str] = field(default_factory=set)
    frozen: set[str] = field(default_factory=set)
    adapters: set[str] = field(default_factory=set)
    optimizes: bool = False  # an optimizer is built here
    cpu_runs: set[str] = field(default_factory=set)  # fp16 models run after a move to the CPU
    decided: bool = False


def _mentions_training(test: cst.BaseExpression) -> bool | None:
    """True for ``training``/``args.train_x``, False for ``not ...`` of one, None otherwise."""
    positive = True
    while type(test) is cst.UnaryOperation and type(test.operator) is cst.Not:
        positive, test = not positive, test.expression
    text = dotted(test)
    if text is None:
        return None
    last = text.rsplit(".", 1)[-1].lower()
    if last.startswith("train") or last in ("is_training", "do_train", "is_in_train"):
        return positive
    return None


class CastUse(Tracker):
    """``ctx.get(CastUse).verdicts(node)``: ``{id(cast call): Verdict}`` for a function."""

    requires = (CastFacts, ReceiverTracker, TrainingTracker)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.frames: dict[int, _Frame] = {id(ctx.module): _Frame()}
        self.stack: list[_Frame] = [self.frames[id(ctx.module)]]
        self._facts_seen = 0  # ``casts`` facts already matched to a cast call

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        frame = _Frame()
        self.frames[id(node)] = frame
        self.stack.append(frame)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.stack.pop()
        self.frames.pop(id(node), None)

    # --- events ------------------------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        frame = self.stack[-1]
        site = cast_of(node, self.ctx.names)
        if site is not None and site.to_fp16:
            self._cast(node, site, frame)
            return
        training = self.ctx.get(TrainingTracker)
        model = training.called_model(node)
        if model is not None and model.key:
            holder = training.holder(model.key)
            placed = holder.devices.get(model.key) if holder is not None else None
            if placed is not None and placed[0].split(":")[0] == "cpu":
                frame.cpu_runs.add(model.key)
        owners = training.optimized_modules(node)
        if owners is not None:
            frame.optimizes = True
            frame.trained.update(k for k in map(_key, owners) if k)
            return
        func = node.func
        qualname = self.ctx.names.qualname(func) or ""
        if qualname.rsplit(".", 1)[-1] in _ADAPTERS and node.args:
            frame.adapters.add(_key(node.args[0].value) or "")
        if type(func) is not cst.Attribute:
            return
        method, key = func.attr.value, _key(func.value)
        if method == "add_adapter" and key is not None:
            frame.adapters.add(key)  # diffusers/peft: trainable LoRA layers inside the model
        if key is None:
            return
        if method == "requires_grad_":
            flag = node.args[0].value if node.args else None
            if type(flag) is cst.Name and flag.value == "False":
                frame.frozen.add(key)
            else:
                frame.trained.add(key)
        elif method == "train" and not node.args:
            frame.train_mode.add(key)

    def _cast(self, node: cst.Call, site, frame: _Frame) -> None:
        kind = self.ctx.get(ReceiverTracker).kind_of(site.receiver)
        if kind is Kind.TENSOR or follows_fp16_data(self.ctx.stack, self.ctx.names):
            return
        casts = self.ctx.facts.get("casts") or []
        fact = casts[-1] if len(casts) > self._facts_seen else None  # CastFacts' for this call
        self._facts_seen = len(casts)
        key = _key(site.receiver) or self._holder()
        verdict = Verdict()
        if self._round_trip(node) or any(
            c.key and key and (key == c.key or key.startswith(c.key + ".")) for c in frame.casts
        ):
            verdict.silent = True
        elif self._on_training_path() is True:
            verdict.defect = TRAINING_PATH
        elif self._on_cpu(site):
            verdict.defect = CPU
        if fact is not None and not verdict.silent:
            guarded = param_guards(self.ctx)
            if guarded is not None:
                fact["fn"], fact["guards"] = guarded
        frame.casts.append(_Cast(node, key, fact, verdict, self._on_training_path() is False))

    def _holder(self) -> str | None:
        """``model`` in ``model = Net().half().cuda()``: the name the cast chain is bound to."""
        stack = self.ctx.stack
        i = len(stack) - 1
        while (
            i >= 2
            and type(stack[i - 1]) is cst.Attribute
            and type(stack[i - 2]) is cst.Call
            and stack[i - 2].func is stack[i - 1]
        ):
            i -= 2
        parent = stack[i - 1] if i >= 1 else None
        if type(parent) is cst.Assign and len(parent.targets) == 1:
            return dotted(parent.targets[0].target)
        return None

    def _round_trip(self, node: cst.Call) -> bool:
        """``m.half().float()``: the cast is undone at once."""
        stack = self.ctx.stack
        if (
            len(stack) < 3
            or type(stack[-2]) is not cst.Attribute
            or type(stack[-3]) is not cst.Call
        ):
            return False
        outer = cast_of(stack[-3], self.ctx.names)
        return outer is not None and outer.dtype is not None and outer.dtype.dtype is DType.FP32

    def _on_training_path(self) -> bool | None:
        """True under ``if training:`` (or its else of ``if not training:``), False on the
        branch a training test says is not training, None when no such test is around."""
        stack = self.ctx.stack
        for index in range(len(stack) - 2, -1, -1):
            node = stack[index]
            if type(node) not in (cst.If, cst.IfExp) or stack[index + 1] is node.test:
                continue
            says = _mentions_training(node.test)
            if says is not None:
                return says == (stack[index + 1] is node.body)
        return None

    def _on_cpu(self, site) -> bool:
        if site.device is not None and site.device.split(":")[0] == "cpu":
            return True
        return any(
            type(c.func) is cst.Attribute and c.func.attr.value == "cpu"
            for c in chain_calls(site.receiver)
        )

    # --- decisions ---------------------------------------------------------------------------
    def verdicts(self, node: cst.CSTNode) -> dict[int, Verdict]:
        """The verdicts of the casts directly in ``node`` (a function or the module), once its
        walk is over."""
        frame = self.frames.get(id(node))
        if frame is None:
            return {}
        if not frame.decided:
            frame.decided = True
            for cast in frame.casts:
                verdict = cast.verdict
                if not verdict.silent and verdict.defect is None and cast.key:
                    root = cast.key
                    adapted = frame.optimizes and root in frame.adapters
                    if not cast.not_trained and (
                        root in frame.trained
                        or adapted
                        or (root in frame.train_mode and root not in frame.frozen)
                    ):
                        verdict.defect = TRAINED
                    elif root in frame.cpu_runs:
                        verdict.defect = CPU
                if cast.fact is not None:
                    if verdict.silent:
                        cast.fact["silent"] = True
                    if verdict.defect:
                        cast.fact["defect"] = verdict.defect
        return {id(c.call): c.verdict for c in frame.casts}


def _key(expr: cst.BaseExpression) -> str | None:
    return dotted(unwrap_chain(expr))
