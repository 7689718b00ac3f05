"""Lint one file: parse it once, walk it once, and return a plain serialisable summary.

The walk is iterative (no recursion limit on deeply nested code) and dispatches each node to
the handlers of the shared analyses ("trackers", first) and the enabled rules. Positions are
computed only when something needs one, after the walk, for the reported nodes only (see
``positions``); libcst's metadata providers are not used (``analysis.names`` resolves names).
"""

from __future__ import annotations

import ast
import gc
import re
import signal
import threading
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import libcst as cst

from fp16lint import suppression
from fp16lint.analysis.base import Tracker
from fp16lint.analysis.context import FileContext, FileSummary, NodeEdit
from fp16lint.analysis.names import ScopeTracker
from fp16lint.analysis.tree import Memo, children, shared_children
from fp16lint.findings import Edit, Finding, Fix, Position, Related, Span
from fp16lint.parsing import parse_module
from fp16lint.positions import KnownOffsets, Range, located_ranges
from fp16lint.rules import INTERNAL_ERROR, SYNTAX_ERROR
from fp16lint.rules.base import Rule

FILE_LEVEL = Span(Position(1, 1), Position(1, 1))


def engine_finding(code: Any, path: str, span: Span, message: str, detail: str | None = None):
    return Finding(
        code.code, code.name, code.severity, message, path, span, url=code.url(), detail=detail
    )


def _span(ranges: dict[int, Range], node: cst.CSTNode) -> Span:
    line, column, end_line, end_column = ranges[id(node)]
    return Span(Position(line, column + 1), Position(end_line, end_column + 1))


def _edit(ranges: dict[int, Range], edit: NodeEdit) -> Edit:
    span = _span(ranges, edit.node)
    if edit.where == "before":
        span = Span(span.start, span.start)
    elif edit.where == "after":
        span = Span(span.end, span.end)
    return Edit(span, edit.content)


def applicable(text: str, units: Iterable[Any]) -> list[Any]:
    """The rules (or trackers) whose ``tokens`` occur in ``text``: only they can find anything
    in it. A unit without tokens always applies; a token shared by several is searched once."""
    seen: dict[str, bool] = {}

    def has(token: str) -> bool:
        found = seen.get(token)
        if found is None:
            found = seen[token] = token in text
        return found

    return [unit for unit in units if not unit.tokens or any(has(t) for t in unit.tokens)]


# --- inputs libcst's native parser cannot take ---------------------------------------------
# libcst's Rust parser recurses once per nesting level: a few thousand nested brackets or
# chained operators overflow its stack (a segmentation fault, not an exception) or take minutes
# (its time grows quadratically with a chain's length), and it cannot be interrupted meanwhile.
# CPython's parser rejects such files cleanly (over 200 nested brackets, or its recursion
# limit), so a file that looks deep is checked with ``ast.parse`` before libcst sees it.
_NOT_BRACKETS = re.compile(r"[^()\[\]{}]+")
_DEEP_BRACKETS = 100
_LONG_LINE = 2000


def looks_deep(text: str) -> bool:
    """Whether libcst's native parser may crash or stall on ``text`` (checked with CPython's
    parser first). A cheap, conservative trigger: brackets nested over 100 levels, or a line over 2000
    characters (a chain of thousands of operators needs one or the other in practice)."""
    if len(max(text.split("\n"), key=len)) > _LONG_LINE:
        return True
    brackets = _NOT_BRACKETS.sub("", text)
    for _ in range(_DEEP_BRACKETS):
        reduced = brackets.replace("()", "").replace("[]", "").replace("{}", "")
        if reduced == brackets:
            return False
        brackets = reduced
    return True


def _python_rejects(path: str, text: str) -> Finding | None:
    """FP000 if CPython's own parser rejects ``text`` (which then never reaches libcst)."""
    try:
        with warnings.catch_warnings():  # its SyntaxWarnings are not ours to print
            warnings.simplefilter("ignore")
            ast.parse(text)
    except SyntaxError as exc:
        line, column = max(1, exc.lineno or 1), max(1, exc.offset or 1)
        span = Span(Position(line, column), Position(line, column))
        return engine_finding(
            SYNTAX_ERROR, path, span, f"SyntaxError: {exc.msg}; the file was not linted."
        )
    except (RecursionError, MemoryError):
        message = "SyntaxError: too deeply nested for Python's parser; the file was not linted."
        return engine_finding(SYNTAX_ERROR, path, FILE_LEVEL, message)
    return None


# --- the per-file time bound ---------------------------------------------------------------
class TimedOut(BaseException):
    """Raised when a file's time limit passes; a BaseException so that a rule's
    ``except Exception`` cannot swallow it."""


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise ``TimedOut`` after ``seconds`` of CPU time (CPU, not wall time, so a loaded machine
    causes no false timeouts). Enforced only in the main thread and when no other virtual
    timer is set (an editor's worker thread, say, runs without the bound)."""
    usable = (
        seconds
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_VIRTUAL)[0] == 0
    )
    if not usable:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TimedOut

    previous = signal.signal(signal.SIGVTALRM, expire)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


_ERROR_AT = re.compile(r"error at (\d+):(\d+)")


def _parse_error(path: str, text: str, exc: Exception) -> Finding:
    """FP000 where the error is. libcst's ``raw_line``/``raw_column`` can point past it (the
    start of the next line, after a newline it expected), so CPython's parser places it; when
    CPython accepts the text, the position in libcst's own message does."""
    if type(exc) is cst.ParserSyntaxError:
        rejected = _python_rejects(path, text)
        if rejected is not None:
            return rejected
        found = _ERROR_AT.search(exc.message)
        line, column = (int(found[1]), int(found[2])) if found else (exc.raw_line, exc.raw_column)
        line, column = max(1, line), max(1, column)
        span = Span(Position(line, column), Position(line, column))
        message = f"SyntaxError: {exc.message}"
    else:
        span, message = FILE_LEVEL, "SyntaxError: too deeply nested for the parser"
    return engine_finding(SYNTAX_ERROR, path, span, message + "; the file was not linted.")


def _internal_error(path: str, who: str, exc: BaseException) -> Finding:
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    message = f"Internal error in {who}: {type(exc).__name__}: {exc}"
    return engine_finding(INTERNAL_ERROR, path, FILE_LEVEL, message, detail)


def _dispatch_tables(units: list[Any]) -> tuple[dict[type, list], dict[type, list]]:
    """``{node type: [(owner, bound handler), ...]}`` for visits (trackers first) and leaves
    (trackers last)."""
    visits: dict[type, list] = {}
    leaves: dict[type, list] = {}
    for unit in units:
        for is_visit, node_type, name in _handlers_of(type(unit)):
            table = visits if is_visit else leaves
            table.setdefault(node_type, []).append((unit, getattr(unit, name)))
    for handlers in leaves.values():
        handlers.reverse()
    return visits, leaves


_handlers: dict[type, list[tuple[bool, type, str]]] = {}


def _handlers_of(kind: type) -> list[tuple[bool, type, str]]:
    """``(is a visit, node type, method name)`` for each handler a rule or tracker class has."""
    found = _handlers.get(kind)
    if found is None:
        found = _handlers[kind] = []
        for name in dir(kind):
            prefix, _, node_name = name.partition("_")
            if prefix in ("visit", "leave") and hasattr(cst, node_name):
                found.append((prefix == "visit", getattr(cst, node_name), name))
    return found


def _required_trackers(rules: Iterable[type[Rule]]) -> list[type[Tracker]]:
    """Every tracker the rules read, each after the trackers it reads (transitively)."""
    ordered: list[type[Tracker]] = [ScopeTracker]

    def add(kind: type[Tracker]) -> None:
        if kind not in ordered:
            for dep in getattr(kind, "requires", ()):
                add(dep)
            ordered.append(kind)

    for rule in rules:
        for kind in rule.requires:
            add(kind)
    return ordered


def lint_source(
    path: str,
    text: str,
    rules: list[type[Rule]],
    *,
    module_name: str = "",
    is_package: bool = False,
    fact_trackers: tuple[type[Tracker], ...] = (),
    prefilter: bool = True,
    time_limit: float | None = None,
    module: cst.Module | None = None,
    known_offsets: KnownOffsets | None = None,
    kept_children: Memo | None = None,
) -> FileSummary:
    """Lint ``text`` (the contents of ``path``) with ``rules``; never raises for bad input.

    Only the rules whose ``tokens`` occur in the text run, and a file where none does is not
    parsed (``prefilter=False`` runs every rule on every file, to test that this loses
    nothing). ``time_limit`` bounds the CPU seconds spent on the file (FP999 past it).
    ``module``: the tree of ``text`` when the caller has it (the language server re-parses
    only the statements an edit touched), and ``known_offsets`` where the nodes it reported
    before sit in that tree's unchanged statements (see ``positions.KnownOffsets``), and
    ``kept_children`` the child lists of its last lint (read, then replaced: see
    ``tree.shared_children``)."""
    summary = FileSummary(path, noqa=suppression.scan(text))
    if prefilter:
        rules = applicable(text, rules)
        fact_trackers = tuple(applicable(text, fact_trackers))
        if not rules and not fact_trackers:
            return summary
    gc_was_enabled = gc.isenabled()
    # libcst trees hold no reference cycles, so the cyclic collector only slows the parse
    # (by about 15%); cycles made by trackers are collected once the collector is back on.
    gc.disable()
    try:
        with _deadline(time_limit), shared_children(kept_children):
            _lint_parsed(
                summary, text, rules, module_name, is_package, fact_trackers, module, known_offsets
            )
    except TimedOut:
        message = f"Linting this file took over {time_limit:g} s of CPU time and was stopped."
        summary.findings = [engine_finding(INTERNAL_ERROR, path, FILE_LEVEL, message)]
        summary.facts = {}
    finally:
        if gc_was_enabled:
            gc.enable()
    return summary


def _lint_parsed(
    summary: FileSummary,
    text: str,
    rules: list[type[Rule]],
    module_name: str,
    is_package: bool,
    fact_trackers: tuple[type[Tracker], ...],
    module: cst.Module | None,
    known_offsets: KnownOffsets | None = None,
) -> None:
    path = summary.path
    if module is None:
        if looks_deep(text):
            rejected = _python_rejects(path, text)
            if rejected is not None:
                summary.findings.append(rejected)
                return
        try:
            module = parse_module(text)
        except (cst.ParserSyntaxError, RecursionError) as exc:
            summary.findings.append(_parse_error(path, text, exc))
            return
    summary.parsed = True
    tracker_types = _required_trackers(rules)
    tracker_types += [t for t in fact_trackers if t not in tracker_types]
    ctx = FileContext(path, text, module, module_name, is_package)
    ctx.known_offsets = known_offsets
    try:
        _analyse(summary, ctx, rules, tracker_types)
    finally:
        ctx.release()


def _analyse(
    summary: FileSummary,
    ctx: FileContext,
    rules: list[type[Rule]],
    tracker_types: list[type[Tracker]],
) -> None:
    path = summary.path
    try:
        for kind in tracker_types:
            ctx.trackers[kind] = kind(ctx)
    except Exception as exc:
        summary.findings.append(_internal_error(path, "fp16lint's analysis", exc))
        return
    instances = [rule(ctx) for rule in rules]
    errors, completed = _walk(ctx, [*ctx.trackers.values(), *instances])
    summary.findings.extend(errors)
    if not completed:
        return
    try:
        summary.findings.extend(_resolve(ctx))
    except Exception as exc:  # a rule reported a node that is not in this file's tree
        summary.findings.append(_internal_error(path, "fp16lint's position pass", exc))
        return
    summary.facts = ctx.facts


def _walk(ctx: FileContext, units: list[Any]) -> tuple[list[Finding], bool]:
    """Run every handler; returns the FP999 findings and whether the walk completed (a failing
    tracker stops it, since every rule depends on the shared analyses)."""
    visits, leaves = _dispatch_tables(units)
    failed: set[int] = set()
    errors: list[Finding] = []
    stack: list[Any] = [ctx.module]
    node_stack = ctx.stack

    def call(handlers: list[tuple[Any, Callable]], node: cst.CSTNode) -> bool:
        for owner, handler in handlers:
            if failed and id(owner) in failed:
                continue
            try:
                handler(node)
            except Exception as exc:
                if isinstance(owner, Tracker):
                    errors.append(_internal_error(ctx.path, "fp16lint's analysis", exc))
                    return False
                failed.add(id(owner))
                errors.append(_internal_error(ctx.path, f"rule {owner.code}", exc))
        return True

    # Nodes to enter are pushed bare, nodes to leave wrapped in a 1-tuple (no per-node tuple
    # for the common case keeps this loop, which sees every node, cheap).
    while stack:
        item = stack.pop()
        if type(item) is tuple:
            node = item[0]
            handlers = leaves.get(type(node))
            if handlers and not call(handlers, node):
                return errors, False
            node_stack.pop()
            continue
        node_stack.append(item)
        kind = type(item)
        handlers = visits.get(kind)
        if handlers and not call(handlers, item):
            return errors, False
        below = children(item)
        if below or kind in leaves:
            stack.append((item,))
            stack += reversed(below)
        else:  # a leaf without leave handlers is done (over a third of the nodes are names)
            node_stack.pop()
    return errors, True


def _ancestors(node: cst.CSTNode, stack: tuple[cst.CSTNode, ...]) -> tuple[cst.CSTNode, ...]:
    """``node``'s ancestors from the module down, found from where the walk was when it was
    reported: on that path, or below its last node; ``()`` when neither (then positions
    generate the whole module)."""
    for index in range(len(stack) - 1, -1, -1):
        if stack[index] is node:
            return stack[:index]
    if not stack:
        return ()
    below: list[tuple[cst.CSTNode, int]] = [(stack[-1], 0)]
    path: list[cst.CSTNode] = []
    while below:
        current, depth = below.pop()
        del path[depth:]
        path.append(current)
        if current is node:
            return (*stack, *path[1:-1])
        below.extend((child, depth + 1) for child in reversed(children(current)))
    return ()


def _resolve(ctx: FileContext) -> list[Finding]:
    """Turn pending reports and span references into positioned records."""
    if not ctx._pending and not ctx._span_refs:
        return []
    wanted = [(node, _ancestors(node, stack)) for node, _, stack in ctx._span_refs]
    for p in ctx._pending:
        nodes = [p.node, *(e.node for e in p.edits)]
        nodes += [node for _, node, _ in p.related if node is not None]
        wanted += [(node, _ancestors(node, p.stack)) for node in nodes]
    ranges = located_ranges(ctx.module, ctx.text, wanted, ctx.known_offsets)
    for node, ref, _ in ctx._span_refs:
        span = _span(ranges, node)
        ref[:] = [span.start.line, span.start.column, span.end.line, span.end.column]
    findings = []
    for p in ctx._pending:
        fix = None
        if p.edits and p.applicability is not None:
            edits = tuple(_edit(ranges, e) for e in p.edits)
            fix = Fix(p.fix_message, p.applicability, edits)
        related = tuple(
            Related(path, _span(ranges, node) if node is not None else FILE_LEVEL, message)
            for path, node, message in p.related
        )
        rule = type(p.rule)
        findings.append(
            Finding(
                rule.code,
                rule.name,
                p.severity or rule.severity,
                p.message,
                ctx.path,
                _span(ranges, p.node),
                fix,
                related,
                rule.url(),
                help=p.help,
            )
        )
    return findings
