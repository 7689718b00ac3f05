"""Statement flow: a may-analysis over one function body, through branches and loops.

``run(body, state, step)`` follows ``body`` statement by statement, calling ``step(node,
state) -> state`` on each simple statement and on each compound statement's header (an ``if``
test, a loop's iterable, ``with`` items); branches are joined by union (a fact that holds on any
path holds after the join), loops are repeated until their state stops growing, nested
functions and classes are not entered. ``calls_in_order(node)`` gives the calls a node makes, in
evaluation order (arguments and receivers before the call).

(Reconstructed after an accidental overwrite: the interface FP403 uses.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import libcst as cst

from fp16lint.analysis.tree import children

State = frozenset
Step = Callable[[cst.CSTNode, State], State]
_NESTED = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
_MAX_LOOP_ROUNDS = 8


def calls_in_order(node: cst.CSTNode) -> Iterator[cst.Call]:
    """Calls in ``node`` in evaluation order (inner calls first), not inside nested functions."""
    stack: list[tuple[cst.CSTNode, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        if done:
            if isinstance(current, cst.Call):
                yield current
            continue
        if current is not node and isinstance(current, _NESTED):
            continue
        stack.append((current, True))
        stack.extend((child, False) for child in reversed(children(current)))


def _block(body: cst.BaseSuite | None) -> Sequence[cst.CSTNode]:
    if body is None:
        return ()
    if isinstance(body, cst.IndentedBlock):
        return body.body
    return (body,)  # SimpleStatementSuite: one line of small statements


def run(body: Sequence[cst.CSTNode], state: State, step: Step) -> State:
    """The state after ``body``, starting from ``state``."""
    for statement in body:
        state = _statement(statement, state, step)
    return state


def _statement(node: cst.CSTNode, state: State, step: Step) -> State:
    if isinstance(node, _NESTED):
        return state
    if isinstance(node, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
        for small in node.body:
            state = step(small, state)
        return state
    if isinstance(node, cst.If):
        state = step(node.test, state)
        taken = run(_block(node.body), state, step)
        if node.orelse is None:
            return taken | state
        if isinstance(node.orelse, cst.If):
            return taken | _statement(node.orelse, state, step)
        return taken | run(_block(node.orelse.body), state, step)
    if isinstance(node, (cst.For, cst.While)):
        state = step(node.iter if isinstance(node, cst.For) else node.test, state)
        entry = state
        for _ in range(_MAX_LOOP_ROUNDS):
            after = entry | run(_block(node.body), entry, step)
            if after == entry:
                break
            entry = after
        if node.orelse is not None:
            entry = run(_block(node.orelse.body), entry, step)
        return entry
    if isinstance(node, cst.With):
        for item in node.items:
            state = step(item.item, state)
        return run(_block(node.body), state, step)
    if isinstance(node, cst.Try):
        after_body = run(_block(node.body), state, step)
        handled = state | after_body
        out = after_body
        for handler in node.handlers:
            out = out | run(_block(handler.body), handled, step)
        if node.orelse is not None:
            out = out | run(_block(node.orelse.body), after_body, step)
        if node.finalbody is not None:
            out = run(_block(node.finalbody.body), out, step)
        return out
    return step(node, state)
