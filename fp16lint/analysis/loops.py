"""Loops over data loaders: which loader a ``for`` target's values come from, at which position.

``for i, (x, y) in enumerate(tqdm(loader))`` iterates ``loader`` with the target ``(x, y)``:
``enumerate`` and ``tqdm`` only wrap the iterable (``zip`` mixes several, so it is not read).
A name is a loader when every value it is bound to is a ``DataLoader(...)`` call. The receiver
analysis reads loop targets as tensors from here; the dtype analysis reads what the loader's
dataset shows about the samples' dtype (``dtypes.loader_sample_dtype``).
"""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.names import NameResolver

DATA_LOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
_LOOP_WRAPPERS = frozenset({"builtins.enumerate", "tqdm.tqdm", "tqdm.auto.tqdm", "builtins.zip"})
_MAX_DEPTH = 6


def unwrap_loop(
    iterable: cst.BaseExpression, target: cst.BaseExpression, names: NameResolver
) -> tuple[cst.BaseExpression, cst.BaseExpression] | None:
    """The iterable and target under ``enumerate``/``tqdm`` wrappers (``enumerate`` takes the
    second item of a 2-tuple target); None when a wrapper hides which is which (``zip``, an
    ``enumerate`` target that is not a pair)."""
    while type(iterable) is cst.Call and iterable.args:
        wrapper = names.qualname(iterable.func)
        if wrapper not in _LOOP_WRAPPERS:
            break
        if wrapper == "builtins.zip":
            return None
        iterable = iterable.args[0].value
        if wrapper == "builtins.enumerate":
            if type(target) not in (cst.Tuple, cst.List) or len(target.elements) != 2:
                return None
            target = target.elements[1].value
    return iterable, target


def data_loader_calls(
    expr: cst.BaseExpression, names: NameResolver, _depth: int = 0
) -> list[cst.Call] | None:
    """The ``DataLoader(...)`` calls ``expr`` evaluates to (one per binding of a name), or
    None when it may be anything else."""
    if type(expr) is cst.Call:
        return [expr] if names.qualname(expr.func) in DATA_LOADERS else None
    if type(expr) is not cst.Name or _depth > _MAX_DEPTH:
        return None
    values = names.values(expr.value)
    calls: list[cst.Call] = []
    for value in values:
        found = data_loader_calls(value, names, _depth + 1) if value is not None else None
        if found is None:
            return None
        calls += found
    return calls or None


def target_position(target: cst.BaseExpression, name: str) -> int | None:
    """``name``'s position in a flat tuple target (``x, y``), -1 for a bare name target, None
    when it is not there (or sits in a starred or nested element)."""
    if type(target) is cst.Name:
        return -1 if target.value == name else None
    if type(target) in (cst.Tuple, cst.List):
        if any(type(element) is cst.StarredElement for element in target.elements):
            return None
        for position, element in enumerate(target.elements):
            if type(element.value) is cst.Name and element.value.value == name:
                return position
    return None
