"""Light name resolution: imports, ``as`` aliases, and names bound once to a value.

libcst's ``QualifiedNameProvider`` is exact but costs about 8x the parse (measured on timm, see
issue 9). fp16lint needs far less: which dotted name an expression such as ``th.cuda.amp.autocast``
or ``amp.GradScaler`` stands for, and what a name was assigned. This module answers those from
the import statements and assignments of the module and of the enclosing functions, which the
engine's traversal keeps up to date as it walks (see ``engine.Walker``).

A name that is a parameter, a loop target or otherwise bound to something we cannot see
resolves to ``None``: unknown stays unknown.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass, field

import libcst as cst

from fp16lint.analysis.base import Tracker

_BUILTINS = frozenset(dir(builtins))
_MAX_ALIAS_DEPTH = 8


@dataclass(frozen=True)
class Binding:
    """What one statement bound a name to.

    ``qualname`` is set for imports; ``value`` for plain assignments; neither for anything
    opaque (parameters, loop targets, unpacking), which shadows outer bindings.
    """

    qualname: str | None = None
    value: cst.BaseExpression | None = None
    node: cst.CSTNode | None = None


@dataclass
class Scope:
    kind: str  # "module", "class" or "function"
    node: cst.CSTNode | None
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)  # analyses' per-scope caches

    def bind(self, name: str, binding: Binding) -> None:
        self.bindings.setdefault(name, []).append(binding)


def dotted(expr: cst.BaseExpression) -> str | None:
    """``a.b.c`` as text for a pure Name/Attribute chain, else None."""
    parts: list[str] = []
    while type(expr) is cst.Attribute:
        parts.append(expr.attr.value)
        expr = expr.value
    if type(expr) is not cst.Name:
        return None
    parts.append(expr.value)
    return ".".join(reversed(parts))


def self_attribute(expr: cst.BaseExpression, self_name: str = "self") -> str | None:
    """``x`` for ``self.x`` (with ``self`` spelled ``self_name``), else None."""
    if (
        type(expr) is cst.Attribute
        and type(expr.value) is cst.Name
        and expr.value.value == self_name
    ):
        return expr.attr.value
    return None


def module_name_of(node: cst.Attribute | cst.Name) -> str:
    """The dotted text of an import's module part (``torch.cuda.amp``)."""
    text = dotted(node)
    assert text is not None  # import statements always hold Name/Attribute chains
    return text


def resolve_relative(current: str, is_package: bool, level: int, module: str | None) -> str:
    """Absolute module for ``from <level dots><module> import ...`` inside ``current``."""
    parts = current.split(".") if current else []
    if not is_package and parts:
        parts = parts[:-1]
    if level > 1:
        parts = parts[: max(0, len(parts) - (level - 1))]
    if module:
        parts.append(module)
    return ".".join(parts)


class NameResolver:
    """Scopes of bindings, innermost last, with qualified-name lookup."""

    def __init__(self, module: cst.Module, module_name: str = "", is_package: bool = False):
        self.module_name = module_name
        self.is_package = is_package
        self.scopes: list[Scope] = [Scope("module", module)]
        # (id(expr), receiver?) -> (expr, its qualname) while no binding or scope changes: the
        # trackers and rules ask for the same call's name many times (a sixth of the time to
        # lint a file of many small models went to these lookups before).
        self._known: dict[tuple[int, bool], tuple[cst.BaseExpression, str | None]] = {}
        for statement in _module_level_statements(module.body):
            self.bind_statement(statement)

    # --- scope maintenance (called by the engine's walker) -------------------------------
    @property
    def scope(self) -> Scope:
        return self.scopes[-1]

    def push(self, kind: str, node: cst.CSTNode) -> None:
        self.scopes.append(Scope(kind, node))
        self._known.clear()

    def pop(self) -> None:
        self.scopes.pop()
        self._known.clear()

    def _bind(self, name: str, binding: Binding) -> None:
        self.scope.bind(name, binding)
        self._known.clear()

    def bind_parameters(self, params: cst.Parameters) -> None:
        every = [*params.posonly_params, *params.params, *params.kwonly_params]
        if type(params.star_arg) is cst.Param:
            every.append(params.star_arg)
        if params.star_kwarg is not None:
            every.append(params.star_kwarg)
        for param in every:
            self._bind(param.name.value, Binding(node=param))

    def bind_statement(self, node: cst.CSTNode) -> None:
        """Record what an import or assignment binds in the current scope."""
        if type(node) is cst.SimpleStatementLine:
            for small in node.body:
                self.bind_statement(small)
        elif type(node) is cst.Import:
            for alias in node.names:
                full = module_name_of(alias.name)
                if alias.asname is not None and type(alias.asname.name) is cst.Name:
                    self._bind(alias.asname.name.value, Binding(full, node=node))
                else:
                    top = full.split(".")[0]
                    self._bind(top, Binding(top, node=node))
        elif type(node) is cst.ImportFrom:
            self._bind_import_from(node)
        elif type(node) is cst.Assign:
            value = node.value
            for target in node.targets:
                self.bind_target(target.target, value, node)
        elif type(node) is cst.AnnAssign:
            self.bind_target(node.target, node.value, node)
        elif type(node) is cst.AugAssign:
            self.bind_target(node.target, None, node)
        elif type(node) in (cst.FunctionDef, cst.ClassDef):
            self._bind(node.name.value, Binding(node=node))
        elif type(node) is cst.For:
            self.bind_target(node.target, None, node)

    def bind_target(
        self, target: cst.BaseExpression, value: cst.BaseExpression | None, node: cst.CSTNode
    ) -> None:
        if type(target) is cst.Name:
            self._bind(target.value, Binding(value=value, node=node))
        elif type(target) in (cst.Tuple, cst.List):
            for element in target.elements:
                inner = element.value
                self.bind_target(
                    inner.value if type(inner) is cst.StarredElement else inner, None, node
                )

    def _bind_import_from(self, node: cst.ImportFrom) -> None:
        if type(node.names) is cst.ImportStar:
            return
        base = module_name_of(node.module) if node.module is not None else None
        if node.relative:
            base = resolve_relative(self.module_name, self.is_package, len(node.relative), base)
        for alias in node.names:
            name = alias.name.value if type(alias.name) is cst.Name else dotted(alias.name)
            if name is None:
                continue
            local = name
            if alias.asname is not None and type(alias.asname.name) is cst.Name:
                local = alias.asname.name.value
            full = f"{base}.{name}" if base else name
            self._bind(local, Binding(full, node=node))

    # --- lookup ----------------------------------------------------------------------------
    def bindings(self, name: str) -> list[Binding] | None:
        """Bindings of ``name`` in the innermost scope that binds it (class scopes are only
        visible from their own body, as in Python)."""
        scope = self.scope_of(name)
        return scope.bindings[name] if scope is not None else None

    def scope_of(self, name: str) -> Scope | None:
        """The innermost visible scope that binds ``name``."""
        innermost = len(self.scopes) - 1
        for index in range(innermost, -1, -1):
            scope = self.scopes[index]
            if scope.kind == "class" and index != innermost:
                continue
            if scope.bindings.get(name):
                return scope
        return None

    def qualname(
        self, expr: cst.BaseExpression, _depth: int = 0, _receiver: bool = False
    ) -> str | None:
        """The dotted name ``expr`` stands for (``torch.cuda.amp.autocast``), or None."""
        if _depth:
            return self._qualname(expr, _depth, _receiver)
        key = (id(expr), _receiver)
        known = self._known.get(key)
        if known is None or known[0] is not expr:
            known = self._known[key] = (expr, self._qualname(expr, 0, _receiver))
        return known[1]

    def _qualname(self, expr: cst.BaseExpression, _depth: int, _receiver: bool) -> str | None:
        if _depth > _MAX_ALIAS_DEPTH:
            return None
        if type(expr) is cst.Attribute:
            base = self.qualname(expr.value, _depth, _receiver=True)
            return f"{base}.{expr.attr.value}" if base else None
        if type(expr) is not cst.Name:
            return None
        found = self.bindings(expr.value)
        if found is None:
            return f"builtins.{expr.value}" if expr.value in _BUILTINS else None
        if _receiver:
            # No attribute is read from None: an optional import's `amp = None` fallback
            # (``except ImportError``) is not what ``amp.scale_loss`` refers to.
            found = [b for b in found if not _is_none(b.value)] or found
        names = {self._binding_qualname(b, _depth) for b in found}
        return names.pop() if len(names) == 1 else None

    def _binding_qualname(self, binding: Binding, depth: int) -> str | None:
        if binding.qualname is not None:
            return binding.qualname
        if binding.value is not None and type(binding.value) in (cst.Name, cst.Attribute):
            return self.qualname(binding.value, depth + 1)
        return None

    def values(self, name: str) -> list[cst.BaseExpression | None]:
        """Every value the visible scope assigned to ``name`` (None for opaque bindings)."""
        return [b.value if b.qualname is None else None for b in self.bindings(name) or ()]

    def local_name_for(self, qualname: str) -> str | None:
        """A name in scope that is bound to ``qualname`` by an import (for writing fixes)."""
        for scope in reversed(self.scopes):
            for local, found in scope.bindings.items():
                if any(b.qualname == qualname for b in found) and len(found) == 1:
                    return local
        return None


def _is_none(value: cst.BaseExpression | None) -> bool:
    return type(value) is cst.Name and value.value == "None"


def _module_level_statements(body: tuple[cst.CSTNode, ...] | list) -> Iterator[cst.CSTNode]:
    """Statements that bind module-level names: top level, and inside if/try/with blocks."""
    for statement in body:
        if type(statement) is cst.If:
            yield from _module_level_statements(statement.body.body)
            orelse = statement.orelse
            while orelse is not None:
                yield from _module_level_statements(orelse.body.body)
                orelse = orelse.orelse if type(orelse) is cst.If else None
        elif type(statement) is cst.Try:
            yield from _module_level_statements(statement.body.body)
            for handler in statement.handlers:
                yield from _module_level_statements(handler.body.body)
            if statement.orelse is not None:
                yield from _module_level_statements(statement.orelse.body.body)
        elif type(statement) is cst.With:
            yield from _module_level_statements(statement.body.body)
        elif type(statement) in (cst.For, cst.While):
            if type(statement) is cst.For:
                yield statement  # binds its target
            yield from _module_level_statements(statement.body.body)
            if statement.orelse is not None:
                yield from _module_level_statements(statement.orelse.body.body)
        else:
            yield statement


class ScopeTracker(Tracker):
    """Keeps ``ctx.names`` in step with function and class scopes and their bindings."""

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.ctx.names.push("function", node)
        self.ctx.names.bind_parameters(node.params)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.ctx.names.pop()
        if self.ctx.names.scope.kind != "module":
            self.ctx.names.bind_statement(node)

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self.ctx.names.push("function", node)
        self.ctx.names.bind_parameters(node.params)

    def leave_Lambda(self, node: cst.Lambda) -> None:
        self.ctx.names.pop()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.ctx.names.push("class", node)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self.ctx.names.pop()
        if self.ctx.names.scope.kind != "module":
            self.ctx.names.bind_statement(node)

    # Module-level bindings come from the resolver's pre-pass; inner ones are bound when the
    # statement is left, so its own right-hand side still sees the previous binding.
    def _bind(self, node: cst.CSTNode) -> None:
        if self.ctx.names.scope.kind != "module":
            self.ctx.names.bind_statement(node)

    leave_Assign = leave_AnnAssign = leave_AugAssign = _bind
    leave_Import = leave_ImportFrom = _bind

    def visit_For(self, node: cst.For) -> None:
        if self.ctx.names.scope.kind != "module":
            self.ctx.names.bind_statement(node)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None and self.ctx.names.scope.kind != "module":
            self.ctx.names.bind_target(node.asname.name, None, node)
