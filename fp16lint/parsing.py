"""Parsing source text with libcst, without re-validating the nodes its parser builds.

Every libcst node checks its own fields when it is constructed (``CSTNode.__post_init__``),
including each of the hundreds of thousands of nodes the native parser builds from text it has
just parsed: about 11% of the parse (measured on 200 transformers files; libcst's own comment
there suggests validating elsewhere for this reason). The parser only builds nodes for valid
source, so the check is skipped while it runs; nodes built by code (a fix's replacement) are
still validated, and fixed text is parsed again before it is written.

While it runs, the node classes also take a plain ``__init__`` that sets each field through its
slot (``dataclasses``' frozen ``__init__`` goes through ``object.__setattr__`` by name, then
calls ``__post_init__``): building the nodes took about twice as long (issue 17).
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import libcst as cst
from libcst._nodes.base import CSTNode

_validate = CSTNode.__post_init__
_lock = threading.Lock()
_active = 0  # parses in progress (the language server parses in more than one thread)


def _skip_validation(self: CSTNode) -> None:
    pass


_MISSING = object()


def _plain_init(kind: type) -> Callable[..., None]:
    """``kind``'s dataclass ``__init__`` (same parameters, defaults and default factories),
    setting each field through its slot and calling no ``__post_init__``."""
    space: dict[str, object] = {"_MISSING": _MISSING}
    parameters, lines = [], []
    for f in dataclasses.fields(kind):
        space[f"_set_{f.name}"] = inspect.getattr_static(kind, f.name).__set__
        value = f.name
        if f.default is not dataclasses.MISSING:
            space[f"_default_{f.name}"] = f.default
            parameters.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            space[f"_factory_{f.name}"] = f.default_factory
            parameters.append(f"{f.name}=_MISSING")
            value = f"_factory_{f.name}() if {f.name} is _MISSING else {f.name}"
        else:
            parameters.append(f.name)
        lines.append(f"    _set_{f.name}(self, {value})")
    body = "\n".join(lines) or "    pass"
    exec(f"def __init__(self, {', '.join(parameters)}):\n{body}", space)
    return space["__init__"]  # type: ignore[return-value]


def _node_classes() -> list[type]:
    """Every concrete libcst node class whose fields are all set by ``__init__`` from slots."""
    found, stack = [], [CSTNode]
    while stack:
        kind = stack.pop()
        stack.extend(kind.__subclasses__())
        if (
            not inspect.isabstract(kind)
            and dataclasses.is_dataclass(kind)
            and "__init__" in vars(kind)
            and "__slots__" in vars(kind)
            and kind.__post_init__ is _validate
            and all(f.init for f in dataclasses.fields(kind))
        ):
            found.append(kind)
    return found


_inits: list[tuple[type, Callable[..., None], Callable[..., None]]] = []  # class, its, plain


@contextmanager
def _unvalidated() -> Iterator[None]:
    global _active
    with _lock:
        if not _inits:
            _inits.extend((k, vars(k)["__init__"], _plain_init(k)) for k in _node_classes())
        _active += 1
        if _active == 1:
            CSTNode.__post_init__ = _skip_validation
            for kind, _, plain in _inits:
                kind.__init__ = plain
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if not _active:
                CSTNode.__post_init__ = _validate
                for kind, dataclass_init, _ in _inits:
                    kind.__init__ = dataclass_init


def parse_module(text: str) -> cst.Module:
    """``libcst.parse_module(text)``, faster; raises what it raises."""
    with _unvalidated():
        return cst.parse_module(text)
