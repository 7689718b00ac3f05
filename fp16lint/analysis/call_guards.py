"""Casts guarded by parameters, judged against what each caller passes.

``def run(half=False, model=None): training = model is not None; if training: model.half()
if half else model.float()`` casts only for a caller that passes a model *and* a true ``half``.
A caller that passes ``model=`` but leaves ``half`` at its default ``False`` reaches no cast;
nor does ``run(**vars(opt))`` when this file's argparse options (the namespace's keys) hold no
``model``. A cast that no caller in the project reaches is not reported; a function with no
seen caller keeps the local judgement (a library's callers are unseen).

Per file (JSON-able, small):

- on a ``casts`` fact (``analysis.casts``) in a top-level function: ``fn`` (its name) and
  ``guards``: the conditions on its parameters that the
  enclosing ``if``/conditional expressions need, each ``[parameter, position, need, omitted]``:
  ``need`` ``"true"`` (``if half:``) or ``"set"`` (``if model is not None:``, also through a
  local ``training = model is not None``), ``position`` its place among the positional
  parameters (-1 keyword-only), ``omitted`` 1 when leaving it out makes the condition false
  (a default ``False``/``None``/``0`` for ``"true"``, ``None`` for ``"set"``);
- the argument signatures of the calls of each callee, in ``analysis.exposure``'s ``fed``
  fact (``"f module.function"``, ``"f .function"`` in the file's own module:
  ``[maybe, signature, ...]``), each distinct one once:
  ``"2,model,half=F"`` (two positional arguments, keywords in order, ``=F`` a literal
  ``False``/``0``, ``=N`` a literal ``None``, ``=S`` a number float16 cannot hold,
  ``#1=F`` the second positional argument a literal), ``"*"`` for a call with
  ``*args``/``**kwargs`` whose keys are unknown.
"""

from __future__ import annotations

from typing import Any

import libcst as cst

from fp16lint.analysis.constants import fp16_holds, literal_number
from fp16lint.analysis.names import dotted

TRUE = "true"
SET = "set"
_FALSY = frozenset({"False", "0", "None"})


# --- the callee side ----------------------------------------------------------------------------
def _literal(value: cst.BaseExpression) -> str:
    """``N`` for ``None``, ``F`` for ``False``/``0``, ``S`` for a number float16 cannot hold
    (``eps=1e-12``: the constant rules' caller judgement counts it as not given), "" for
    anything else."""
    if type(value) is cst.Name and value.value == "None":
        return "N"
    if (type(value) is cst.Name and value.value == "False") or (
        type(value) is cst.Integer and value.value == "0"
    ):
        return "F"
    number = literal_number(value)
    return "S" if number is not None and not fp16_holds(number) else ""


def _is_none_test(test: cst.BaseExpression) -> tuple[str, bool] | None:
    """``(name, True)`` for ``name is not None``, ``(name, False)`` for ``name is None``."""
    if (
        type(test) is not cst.Comparison
        or len(test.comparisons) != 1
        or type(test.left) is not (cst.Name)
    ):
        return None
    target = test.comparisons[0]
    if not (type(target.comparator) is cst.Name and target.comparator.value == "None"):
        return None
    if type(target.operator) is cst.IsNot:
        return test.left.value, True
    if type(target.operator) is cst.Is:
        return test.left.value, False
    return None


def _condition(test: cst.BaseExpression, holds: bool, ctx, params: set[str]):
    """``(parameter, need)`` that ``test`` being ``holds`` requires, or None."""
    while type(test) is cst.UnaryOperation and type(test.operator) is cst.Not:
        holds, test = not holds, test.expression
    found = _is_none_test(test)
    if found is not None:
        name, not_none = found
        return (name, SET) if holds == not_none and name in params else None
    if type(test) is not cst.Name or not holds:
        return None
    if test.value in params:
        return test.value, TRUE
    bindings = ctx.names.bindings(test.value) or []
    if len(bindings) == 1 and type(bindings[0].node) is cst.Assign and bindings[0].value:
        found = _is_none_test(bindings[0].value)  # ``training = model is not None``
        if found is not None and found[1] and found[0] in params:
            return found[0], SET
    return None


def _unchanged(ctx, name: str, need: str) -> bool:
    """The parameter still holds what the caller passed (``half &= ...`` keeps a false one
    false)."""
    for binding in ctx.names.bindings(name) or ():
        node = binding.node
        if type(node) is cst.Param:
            continue
        if need == TRUE and type(node) is cst.AugAssign and type(node.operator) is cst.BitAndAssign:
            continue
        return False
    return True


def _omitted_is_false(param: cst.Param, need: str) -> bool:
    default = param.default
    if default is None:
        return False
    found = _literal(default)
    return found == "N" if need == SET else found in ("N", "F")


def param_guards(ctx) -> tuple[str, list[list[Any]]] | None:
    """For the node in hand, in a top-level function: its name and the guards on parameters
    that the enclosing tests need (see the module docstring), or None when there are none."""
    scopes = ctx.names.scopes
    if len(scopes) != 2 or scopes[1].kind != "function":
        return None
    function = scopes[1].node
    positional = [*function.params.posonly_params, *function.params.params]
    every = {p.name.value: p for p in [*positional, *function.params.kwonly_params]}
    names = set(every)
    stack = ctx.stack
    guards: list[list[Any]] = []
    for index in range(len(stack) - 2, -1, -1):
        node = stack[index]
        if node is function:
            break
        if type(node) not in (cst.If, cst.IfExp) or stack[index + 1] is node.test:
            continue
        found = _condition(node.test, stack[index + 1] is node.body, ctx, names)
        if found is None or not _unchanged(ctx, found[0], found[1]):
            continue
        name, need = found
        param = every[name]
        position = positional.index(param) if param in positional else -1
        guards.append([name, position, need, int(_omitted_is_false(param, need))])
    if not guards:
        return None
    return function.name.value, guards


# --- the caller side ----------------------------------------------------------------------------
def signature(call: cst.Call, dests: list[str] | None) -> str:
    """The call's argument signature (see the module docstring); ``dests``: this file's
    argparse destinations, the keys of ``**vars(args)``."""
    positional = 0
    parts: list[str] = []
    for arg in call.args:
        if arg.star == "**":
            value = arg.value
            if (
                dests
                and type(value) is cst.Call
                and dotted(value.func) == "vars"
                and len(value.args) == 1
            ):
                parts.extend(dests)
                continue
            return "*"
        if arg.star:
            return "*"
        if arg.keyword is None:
            found = _literal(arg.value)
            if found:
                parts.append(f"#{positional}={found}")
            positional += 1
        else:
            found = _literal(arg.value)
            parts.append(f"{arg.keyword.value}={found}" if found else arg.keyword.value)
    return ",".join([str(positional), *parts])


def fed_callee(key: str, module: str | None) -> tuple[str, str]:
    """The callee ``(kind, qualified name)`` of a ``fed`` key of the file of ``module``:
    ``"f .run"`` names that file's own ``run`` (``"f pkg.val.run"`` in full)."""
    kind, _, name = key.partition(" ")
    return kind, f"{module}{name}" if name[0] == "." else name


def given_slots(sig: str) -> set[int | str]:
    """The slots (positions, keywords) a call of signature ``sig`` gives, less those given a
    number float16 cannot hold (``=S``); none for ``"*"``."""
    if sig == "*":
        return set()
    count, *parts = sig.split(",")
    given: set[int | str] = set(range(int(count)))
    for part in parts:
        key, _, value = part.partition("=")
        slot: int | str = int(key[1:]) if key[0] == "#" else key
        if value == "S":
            given.discard(slot)
        else:
            given.add(slot)
    return given


# --- the project pass ---------------------------------------------------------------------------
def _falsified(sig: str, guard: list[Any]) -> bool:
    """Does a call of signature ``sig`` surely make ``guard`` false?"""
    if sig == "*":
        return False
    name, position, need, omitted = guard
    count, *parts = sig.split(",")
    bad = ("N",) if need == SET else ("N", "F")
    passed = 0 <= position < int(count)
    for part in parts:
        key, _, value = part.partition("=")
        if key == name or (position >= 0 and key == f"#{position}"):
            if value in bad:
                return True
            passed = True
    return not passed and bool(omitted)


def _dotted_path(path: str) -> tuple[str, ...]:
    """``("a", "b", "c")`` for ``a/b/c.py`` and ``a/b/c/__init__.py``."""
    parts = path.replace("\\", "/").removesuffix(".py").split("/")
    return tuple(parts[:-1] if parts[-1] == "__init__" else parts)


class CallerArguments:
    """Who calls a function, with which signatures (``project.derived``).

    A call names its callee by qualified name (``classify.val.run``); the file it runs is the
    project file whose path ends with the module's parts, the caller's own file or the one
    beside it first (a script's folder is first on ``sys.path``: ``import val`` in
    ``train.py`` is the ``val.py`` next to it, not ``classify/val.py``)."""

    def __init__(self, project: Any):
        from fp16lint.analysis.index import index_of  # the index imports rules' trackers

        index = index_of(project)
        self.files = {path: _dotted_path(path) for path in project.summaries}
        # function name -> [(caller path, module parts, signatures)]
        self.calls: dict[str, list[tuple[str, tuple[str, ...], list[str]]]] = {}
        for path, summary in project.summaries.items():
            own = summary.facts.get("module")
            for key, (_, *sigs) in summary.facts.get("fed", {}).items():
                kind, name = fed_callee(key, own)
                if kind != "f":
                    continue
                module, _, function = name.rpartition(".")
                if module == own:
                    module = ""  # this file's own function
                elif module:
                    module, _, function = index.canonical(name).rpartition(".")
                found = (path, tuple(module.split(".")) if module else (), sigs)
                self.calls.setdefault(function, []).append(found)

    def _runs_in(self, caller: str, module: tuple[str, ...], path: str) -> bool:
        """May a call in ``caller`` of a function of ``module`` run the one in ``path``?"""
        if not module:
            return caller == path
        size = len(module)
        found = [p for p, parts in self.files.items() if parts[-size:] == module]
        if caller in found:
            return caller == path
        beside = (*self.files[caller][:-1], *module)
        near = [p for p in found if self.files[p] == beside]
        return path in (near or found)

    def unreached(self, path: str, fact: dict[str, Any]) -> bool:
        """No call of the project reaches the guarded cast ``fact`` of ``path`` (and some call
        exists)."""
        guards = fact.get("guards")
        sigs = [
            sig
            for caller, module, found in self.calls.get(fact.get("fn", ""), ())
            if self._runs_in(caller, module, path)
            for sig in found
        ]
        return bool(sigs) and all(any(_falsified(s, g) for g in guards) for s in sigs)


def unreached_cast(project: Any, path: str, line: int, column: int) -> bool:
    """The cast at ``path``/``line``/``column`` is guarded by parameters that every caller in
    the project leaves false."""
    summary = project.summaries.get(path)
    if summary is None:
        return False
    fact = next(
        (c for c in summary.facts.get("casts", ()) if c["span"][:2] == [line, column]), None
    )
    if fact is None or "guards" not in fact:
        return False
    return project.derived("call_guards", CallerArguments).unreached(path, fact)
