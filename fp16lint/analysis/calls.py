"""Reading a call's arguments: by keyword or position, and literal booleans."""

from __future__ import annotations

import libcst as cst


def argument(
    call: cst.Call, keyword: str, position: int | None = None
) -> cst.BaseExpression | None:
    """The value passed as ``keyword=`` or as the ``position``-th positional argument."""
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    if position is not None and position < len(positional):
        return positional[position].value
    return None


def literal_bool(expr: cst.BaseExpression | None, default: bool | None = True) -> bool | None:
    """``True``/``False`` for those literals, ``default`` when absent, None when computed."""
    if expr is None:
        return default
    if type(expr) is cst.Name and expr.value in ("True", "False"):
        return expr.value == "True"
    return None
