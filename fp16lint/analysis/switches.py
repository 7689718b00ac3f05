"""Frameworks' float16 switches as float16 origins: a project model handed to a framework
that runs it under fp16 autocast, or casts it to float16 (``data.fp16_switches``).

Per file, ``SwitchTracker`` finds the call that hands a model over — ``Trainer(model=m,
args=TrainingArguments(fp16=True))``, ``accelerator.prepare(m, ...)`` of an
``Accelerator(mixed_precision="fp16")``, ``trainer.fit(m)`` of a Lightning
``Trainer(precision="16-mixed")``, ``fabric.setup(m)``, ``deepspeed.initialize(model=m,
config={"fp16": {"enabled": True}})`` — and records ``ctx.facts["fp16_entries"]``::

    {"kind": "autocast" | "cast", "target": ["c", qualname], "methods": [...],
     "step": {"what": "switch", "span": [...], "text": "Trainer(fp16=True)"}, "when": "--fp16"}

``target``: what made the model (``casts.constructor_of``: a project class, or a function that
returns one; ``Net.from_pretrained``/``load_from_checkpoint`` count as ``Net``); models built by
a library (``AutoModel.from_pretrained``) are left out. ``methods`` (autocast only): the
methods the framework runs under autocast. ``when``: the switch is on only when this
command-line option is given (an argparse ``store_true`` flag, or a choice of one;
``HfArgumentParser`` over ``TrainingArguments`` gives every script ``--fp16``). A switch set
from anything else the file does not show is unknown, and not an origin.

Only files that name a framework are read (``TOKENS``); the rest cost one substring search.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import libcst as cst

from fp16lint.analysis.base import Tracker
from fp16lint.analysis.calls import argument, literal_bool
from fp16lint.analysis.casts import CastFacts, constructor_of
from fp16lint.analysis.dtypes import string_value
from fp16lint.analysis.hf_config import is_training_arguments
from fp16lint.analysis.receivers import unwrap_chain
from fp16lint.analysis.tree import walk
from fp16lint.data import fp16_switches as table

TOKENS = ("Trainer", "Accelerator", "Fabric", "deepspeed")  # a framework is named
# the values a switch takes that select float16: a function returning one is recorded
SWITCH_VALUES = frozenset({*table.LIGHTNING_PRECISION, table.ACCELERATE_FP16})
_LOADERS = frozenset({"from_pretrained", "from_config", "load_from_checkpoint"})
_MAX_DEPTH = 3

# A switch's state: None (off or unknown), or (on, when): ``when`` the option that turns it on.
State = tuple[bool, str | None] | None
_ON: State = (True, None)


class SwitchTracker(Tracker):
    """Records ``fp16_entries`` (see the module docstring)."""

    requires = (CastFacts,)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.on = any(token in ctx.text for token in TOKENS)
        self.entries: list[dict[str, Any]] = []
        self._options: dict[str, cst.Call] | None = None  # argparse dest -> add_argument call
        self._casts = 0  # cast facts seen

    # --- events -------------------------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        casts = self.ctx.facts.get("casts")
        if casts and len(casts) > self._casts:  # CastFacts recorded ``node`` as a cast
            self._casts = len(casts)
            when = self._gate()
            if when is not None:
                casts[-1]["when"] = when
        if not self.on:
            return
        func = node.func
        qualname = self.ctx.names.qualname(func)
        if qualname in table.DEEPSPEED_INITIALIZE:
            self._deepspeed(node)
        elif type(func) is cst.Attribute:
            method = func.attr.value
            if method in table.LIGHTNING_RUNS or method in table.FABRIC_SETUP:
                self._lightning(node, method)
            elif method in table.ACCELERATE_PREPARE:
                self._accelerate(node)
        if _last_name(func).endswith("Trainer") and qualname not in table.LIGHTNING_TRAINERS:
            self._hf_trainer(node)

    def leave_Module(self, node: cst.Module) -> None:
        if self.entries:
            self.ctx.facts["fp16_entries"] = self.entries

    def _gate(self) -> str | None:
        """The command-line flag an enclosing ``if args.half:`` turns the current node on
        with (a ``store_true`` option of this file), if any."""
        stack = self.ctx.stack
        for index in range(len(stack) - 2, -1, -1):
            node = stack[index]
            if type(node) is cst.If and stack[index + 1] is node.body:
                state = self._flag(node.test) if type(node.test) is cst.Attribute else None
                if state is not None and state[1] is not None:
                    return state[1]
            elif type(node) in (cst.FunctionDef, cst.ClassDef):
                return None
        return None

    # --- each framework ---------------------------------------------------------------------
    def _hf_trainer(self, call: cst.Call) -> None:
        args = argument(call, *table.HF_TRAINER_ARGS)
        model = argument(call, *table.HF_TRAINER_MODEL)
        if args is None or model is None:
            return
        found = self._training_arguments(args)
        if found is None:
            return
        name = _last_name(call.func)
        for option, (kind, when, deepspeed) in found.items():
            text = f"{name}({option}=True)"
            self._add(kind, [model], table.HF_TRAINER_METHODS, call, text, when, deepspeed)

    def _training_arguments(self, expr: cst.BaseExpression, depth: int = 0) -> dict | None:
        """``{option: (kind, when)}`` for the float16 options ``TrainingArguments`` given as
        ``expr`` may set; None when it is not seen to be one."""
        if type(expr) is cst.Name and depth < _MAX_DEPTH:
            found = [self._binding_arguments(b) for b in self.ctx.names.bindings(expr.value) or ()]
            if not found or any(f is None for f in found):
                return None
            return next((f for f in found if f), {})
        if type(expr) is not cst.Call or not is_training_arguments(
            self.ctx.names.qualname(expr.func)
        ):
            return None
        out = {}
        deepspeed = argument(expr, table.TRAINING_ARGUMENT_DEEPSPEED)
        deepspeed = deepspeed is not None and not _is_none(deepspeed)
        for option, kind in table.TRAINING_ARGUMENT_SWITCHES.items():
            state = self._flag(argument(expr, option))
            if state is not None:
                out[option] = (table.CAST if deepspeed else kind, state[1], deepspeed)
        return out

    def _binding_arguments(self, binding) -> dict | None:
        if binding.value is not None:
            return self._training_arguments(binding.value, _MAX_DEPTH - 1)
        node = binding.node
        if type(node) is cst.Assign and self._parsed_training_arguments(node.value):
            return {"fp16": (table.AUTOCAST, "--fp16", False)}
        return None

    def _parsed_training_arguments(self, value: cst.BaseExpression) -> bool:
        """``parser.parse_args_into_dataclasses()`` (any ``parse_*``) of an
        ``HfArgumentParser`` over ``TrainingArguments``: ``--fp16`` selects fp16."""
        if type(value) is cst.Subscript:
            value = value.value
        if type(value) is not cst.Call or type(value.func) is not cst.Attribute:
            return False
        if not value.func.attr.value.startswith("parse_"):
            return False
        parser = self._construction(value.func.value, table.HF_ARGUMENT_PARSERS)
        return parser is not None and any(
            type(n) in (cst.Name, cst.Attribute) and self._is_arguments_class(n)
            for arg in parser.args
            for n in walk(arg.value)
        )

    def _is_arguments_class(self, expr: cst.BaseExpression) -> bool:
        if is_training_arguments(self.ctx.names.qualname(expr)):
            return True
        if type(expr) is not cst.Name:
            return False
        bindings = self.ctx.names.bindings(expr.value) or []
        return any(
            type(b.node) is cst.ClassDef
            and any(is_training_arguments(self.ctx.names.qualname(a.value)) for a in b.node.bases)
            for b in bindings
        )

    def _accelerate(self, call: cst.Call) -> None:
        maker = self._construction(call.func.value, table.ACCELERATORS)  # type: ignore[attr-defined]
        if maker is None or literal_bool(argument(maker, "cpu"), False) is True:
            return
        state = self._choice(argument(maker, "mixed_precision"), {table.ACCELERATE_FP16})
        if state is None:
            return
        deepspeed = argument(maker, "deepspeed_plugin") is not None
        kind = table.CAST if deepspeed else table.AUTOCAST
        models = [a.value for a in call.args if a.keyword is None and not a.star]
        text = 'Accelerator(mixed_precision="fp16")'
        for _, returned in _values(state[2], (table.ACCELERATE_FP16,)):
            self._add(
                kind, models, table.ACCELERATE_METHODS, call, text, state[1], deepspeed, returned
            )

    def _lightning(self, call: cst.Call, method: str) -> None:
        fabric = method in table.FABRIC_SETUP
        makers = table.LIGHTNING_FABRICS if fabric else table.LIGHTNING_TRAINERS
        maker = self._construction(call.func.value, makers)  # type: ignore[attr-defined]
        if maker is None:
            return
        state = self._choice(argument(maker, "precision"), set(table.LIGHTNING_PRECISION))
        model = argument(call, "module" if fabric else "model", 0)
        if state is None or model is None:
            return
        deepspeed = "deepspeed" in (_text(maker, "strategy") or "")
        methods = table.FABRIC_METHODS if fabric else table.LIGHTNING_METHODS
        for value, returned in _values(state[2], table.LIGHTNING_PRECISION):
            kind = table.LIGHTNING_PRECISION[value]
            if deepspeed:
                kind = table.CAST  # DeepSpeed's own fp16: the engine casts the model
            elif kind == table.AUTOCAST and _text(maker, "accelerator") == "cpu":
                continue  # 16-mixed on the CPU falls back to bf16
            shown = value if value == "16" else f'"{value}"'
            text = f"{'Fabric' if fabric else 'Trainer'}(precision={shown})"
            params_only = deepspeed and value != "16-true"
            self._add(kind, [model], methods, call, text, state[1], params_only, returned)

    def _deepspeed(self, call: cst.Call) -> None:
        model = argument(call, *table.DEEPSPEED_MODEL)
        for keyword in table.DEEPSPEED_CONFIGS:
            config = self._dict(argument(call, keyword))
            section = self._dict(config.get(table.DEEPSPEED_FP16_KEY)) if config else None
            state = self._flag(section.get("enabled")) if section else None
            if state is not None and model is not None:
                text = '"fp16": {"enabled": True}'
                self._add(table.CAST, [model], (), call, text, state[1], params_only=True)
                return

    # --- values -------------------------------------------------------------------------------
    def _construction(self, expr: cst.BaseExpression, makers: frozenset[str]) -> cst.Call | None:
        """The ``makers(...)`` call ``expr`` is (or a name bound only to one is)."""
        if type(expr) is cst.Name:
            values = self.ctx.names.values(expr.value)
            calls = [v for v in values if type(v) is cst.Call]
            if not calls or len(calls) != len(values):
                return None
            expr = calls[-1]
        if type(expr) is cst.Call and self.ctx.names.qualname(expr.func) in makers:
            return expr
        return None

    def _dict(self, expr: cst.BaseExpression | None) -> dict[str, cst.BaseExpression] | None:
        """A dict literal's string keys (also through a name bound once to one)."""
        if type(expr) is cst.Name:
            values = self.ctx.names.values(expr.value)
            expr = values[0] if len(values) == 1 else None
        if type(expr) is not cst.Dict:
            return None
        out = {}
        for element in expr.elements:
            if type(element) is cst.DictElement:
                key = string_value(element.key)
                if key is not None:
                    out[key] = element.value
        return out

    def _flag(self, expr: cst.BaseExpression | None) -> State:
        """A boolean switch: ``True`` (on), or ``args.fp16`` of a ``store_true`` option."""
        if expr is None:
            return None
        if literal_bool(expr, None) is True:
            return _ON
        if type(expr) is cst.Attribute:
            option = self._option(expr.attr.value)
            if option is not None and _text(option, "action") == "store_true":
                return True, _flag_name(option)
        return None

    def _choice(
        self, expr: cst.BaseExpression | None, values: set[str], depth: int = 0
    ) -> tuple | None:
        """A switch taking a value (``"fp16"``, ``16``): ``(on, when, value)`` where it is one
        of ``values`` — literally, as the default of an argparse option, one of its
        ``choices`` (when that choice is given), the default of a function parameter, a name
        bound to one of these, either side of ``a or b``, or the branch of ``a if args.flag
        else b`` (also ``a if amp else b`` with ``amp`` a parameter: fp16 when the caller sets
        it). A project function's result (``get_precision(training=True)``) is ``value`` as a
        ``Returned``: the project join (``resolved``) knows which strings it returns."""
        if expr is None:
            return None
        text = _literal(expr)
        if text is not None:
            return (True, None, text) if text in values else None
        if type(expr) is cst.Name:
            return self._name_choice(expr, values, depth) if depth < _MAX_DEPTH else None
        if type(expr) is cst.BooleanOperation and type(expr.operator) is cst.Or:
            return self._choice(expr.left, values, depth + 1) or self._choice(
                expr.right, values, depth + 1
            )
        if type(expr) is cst.Call:
            return self._returned(expr)
        if type(expr) is cst.IfExp:
            for branch in (expr.body, expr.orelse):
                found = self._choice(branch, values, depth + 1)
                if found is not None:
                    test = self._flag(expr.test) or self._parameter(expr.test)
                    return (True, test[1] or found[1], found[2]) if test else None
            return None
        if type(expr) is not cst.Attribute:
            return None
        option = self._option(expr.attr.value)
        if option is None:
            return None
        default = argument(option, "default")
        if default is not None and _literal(default) in values:
            return True, None, _literal(default)
        choices = argument(option, "choices")
        if type(choices) in (cst.List, cst.Tuple, cst.Set):
            for element in choices.elements:  # type: ignore[union-attr]
                found = _literal(element.value)
                if found in values:
                    return True, f"{_flag_name(option)} {found}", found
        return None

    def _name_choice(self, name: cst.Name, values: set[str], depth: int) -> tuple | None:
        """The first binding of ``name`` that may choose one of ``values``: a parameter whose
        default does (the caller may pass another: still fp16 by default), or a value."""
        for binding in self.ctx.names.bindings(name.value) or ():
            node = binding.node
            if type(node) is cst.Param:
                found = self._choice(node.default, values, depth + 1)
            else:
                found = self._choice(binding.value, values, depth + 1)
            if found is not None:
                return found
        return None

    def _returned(self, call: cst.Call) -> tuple | None:
        """``(True, None, Returned)`` for a call of a function that may be the project's."""
        func = call.func
        name = self.ctx.names.qualname(func)
        if name is None and type(func) is cst.Name:
            bindings = self.ctx.names.bindings(func.value) or ()
            if bindings and all(type(b.node) is cst.FunctionDef for b in bindings):
                name = f"{self.ctx.module_name}.{func.value}" if self.ctx.module_name else None
        if name is None or name.startswith((*table.LIBRARY_PACKAGES, "builtins.", "os.", "sys.")):
            return None
        args = {}
        for arg in call.args:
            flag = literal_bool(arg.value, None) if arg.keyword is not None else None
            if flag is not None:
                args[arg.keyword.value] = flag  # type: ignore[union-attr]
        return True, None, Returned(name, args)

    def _parameter(self, test: cst.BaseExpression) -> State:
        """A condition that is a function parameter (``amp``): on when the caller sets it."""
        if type(test) is not cst.Name:
            return None
        bindings = self.ctx.names.bindings(test.value) or ()
        if bindings and all(type(b.node) is cst.Param for b in bindings):
            return True, f"`{test.value}`"
        return None

    def _option(self, dest: str) -> cst.Call | None:
        """The ``add_argument`` call of this file whose destination is ``dest``."""
        if self._options is None:
            self._options = argparse_options(self.ctx.module, self.ctx.text)[0]
        return self._options.get(dest)

    # --- recording ----------------------------------------------------------------------------
    def _add(
        self,
        kind: str,
        models: list[cst.BaseExpression],
        methods: tuple[str, ...],
        call: cst.Call,
        text: str,
        when: str | None,
        params_only: bool = False,
        returned: dict[str, Any] | None = None,
    ) -> None:
        for target in sorted({t for model in models for t in self._targets(model)}):
            entry: dict[str, Any] = {"kind": kind, "target": ["c", target]}
            if kind == table.AUTOCAST:
                entry["methods"] = list(methods)
            entry["step"] = {"what": "switch", "span": self.ctx.span_ref(call), "text": text}
            if when:
                entry["when"] = when
            if params_only:
                entry["params_only"] = True  # DeepSpeed: buffers keep their dtype
            if returned is not None:
                entry["returned"] = returned  # on only if the function returns the value
            self.entries.append(entry)

    def _targets(self, model: cst.BaseExpression, depth: int = 0) -> set[str]:
        """What may have made ``model``, where that is project code: ``Net(...)``,
        ``Net.from_pretrained(...)``, or what a name is bound to (each binding; bindings
        that hand the same model back, ``model, opt = accelerator.prepare(model, opt)``, are
        looked through)."""
        inner = unwrap_chain(model)
        if type(inner) is cst.Call:
            func = inner.func
            if type(func) is cst.Attribute and func.attr.value in _LOADERS:
                inner = cst.Call(func.value)  # Net.from_pretrained(...): Net
            made = _project(constructor_of(inner, self.ctx))
            return {made} if made is not None else set()
        if type(inner) is not cst.Name or depth >= _MAX_DEPTH:
            return set()
        found: set[str] = set()
        for binding in self.ctx.names.bindings(inner.value) or ():
            node = binding.node
            value = binding.value if binding.value is not None else getattr(node, "value", None)
            if binding.value is not None and not (
                type(value) is cst.Call and _passes(value, inner.value)
            ):
                found |= self._targets(binding.value, depth + 1)
        return found


class Returned(NamedTuple):
    """A switch's value is what the project function ``fn`` returns, called with the literal
    boolean keyword arguments ``args``."""

    fn: str
    args: dict[str, bool]


def _values(value: str | Returned, fp16: Any) -> list[tuple[str, dict[str, Any] | None]]:
    """Each float16 value of ``fp16`` the switch may take, with the condition on a function's
    result it needs (``{"fn", "args", "value"}``; None: the value is given)."""
    if isinstance(value, str):
        return [(value, None)]
    return [(v, {"fn": value.fn, "args": value.args, "value": v}) for v in fp16]


def returned_strings(expr: cst.BaseExpression, ctx) -> list[list[Any]]:
    """The switch values (``SWITCH_VALUES``) a ``return expr`` hands back, each as ``[value,
    parameter, truthy]``: ``"16-mixed" if training else "16-true"`` with ``training`` a
    parameter gives ``["16-mixed", "training", True]`` and ``["16-true", "training", False]``
    (parameter None: unconditional)."""
    test = None
    branches = [(expr, None)]
    if type(expr) is cst.IfExp:
        bindings = ctx.names.bindings(expr.test.value) if type(expr.test) is cst.Name else None
        if bindings and all(type(b.node) is cst.Param for b in bindings):
            test = expr.test.value  # type: ignore[attr-defined]
        branches = [(expr.body, True), (expr.orelse, False)]
    out = []
    for branch, truthy in branches:
        value = _literal(branch)
        if value in SWITCH_VALUES:
            out.append([value, test, truthy if test is not None else None])
    return out


def resolved(entry: dict[str, Any], strings: list[list[Any]] | None) -> dict[str, Any] | None:
    """``entry`` as the project sees it: an entry whose switch takes a function's result
    (``"returned"``) is on when that function may return its value, with ``may`` saying so;
    ``strings`` is the function's ``returned_strings`` (None: unknown)."""
    returned = entry.get("returned")
    if returned is None:
        return entry
    args = returned["args"]
    if not any(
        value == returned["value"] and (param is None or args.get(param, truthy) == truthy)
        for value, param, truthy in strings or ()
    ):
        return None
    out = {k: v for k, v in entry.items() if k != "returned"}
    out["may"] = f'`{returned["fn"].rsplit(".", 1)[-1]}()` may return "{returned["value"]}"'
    return out


def condition(when: str | None, may: str | None) -> str:
    """The words after a switch's place: " when --fp16 is given", " (`f()` may return "16")"."""
    out = f" when {when} is given" if when else ""
    return f"{out} ({may})" if may else out


def _passes(call: cst.Call, name: str) -> bool:
    return any(type(a.value) is cst.Name and a.value.value == name for a in call.args)


def _project(qualname: str | None) -> str | None:
    if qualname is None or qualname.startswith(table.LIBRARY_PACKAGES):
        return None
    return qualname


def _last_name(func: cst.BaseExpression) -> str:
    """``Trainer`` for ``Trainer`` and ``transformers.Trainer``."""
    if type(func) is cst.Attribute:
        return func.attr.value
    return func.value if type(func) is cst.Name else ""


def _text(call: cst.Call, keyword: str) -> str | None:
    value = argument(call, keyword)
    return string_value(value) if value is not None else None


def _is_none(expr: cst.BaseExpression) -> bool:
    return type(expr) is cst.Name and expr.value == "None"


def _literal(expr: cst.BaseExpression) -> str | None:
    """A string or integer literal's value as text."""
    if type(expr) is cst.Integer:
        return expr.value
    return string_value(expr)


def argparse_options(module: cst.Module, text: str) -> tuple[dict[str, cst.Call], bool]:
    """This file's ``add_argument`` calls by destination, and whether that is every key the
    parsed namespace holds (no option of unknown destination, no ``set_defaults``). ``text``,
    the module's source, spares the walk of a file that never writes either name (most files:
    the walk was 2.6% of the time to lint transformers files, asked for by any ``**kwargs``)."""
    options: dict[str, cst.Call] = {}
    complete = True
    if "add_argument" not in text and "set_defaults" not in text:
        return options, complete
    for node in walk(module):
        if type(node) is not cst.Call or type(node.func) is not cst.Attribute:
            continue
        method = node.func.attr.value
        if method == "set_defaults":
            complete = False
        elif method == "add_argument":
            name = _dest(node) or _positional_dest(node)
            if name is None:
                complete = False
            else:
                options.setdefault(name, node)
    return options, complete


def _positional_dest(call: cst.Call) -> str | None:
    """``parser.add_argument("data")``: a positional option's destination is its name."""
    first = call.args[0] if call.args and call.args[0].keyword is None else None
    text = string_value(first.value) if first is not None else None
    return text if text and not text.startswith("-") else None


def _dest(call: cst.Call) -> str | None:
    dest = argument(call, "dest")
    if dest is not None:
        return string_value(dest)
    for arg in call.args:
        text = string_value(arg.value) if arg.keyword is None else None
        if text is not None and text.startswith("--"):
            return text[2:].replace("-", "_")
    return None


def _flag_name(option: cst.Call) -> str:
    for arg in option.args:
        text = string_value(arg.value) if arg.keyword is None else None
        if text is not None and text.startswith("--"):
            return text
    return "the option"
