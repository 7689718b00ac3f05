"""Paths through one function body, for rules that ask "what may have happened before here".

A state is a frozen set of facts; where paths meet, states are joined by union, so a state holds
every fact that some path may bring. ``run`` walks the statements in execution order: both arms
of an ``if``, loop bodies until their entry state stops growing (so a second iteration sees
what the first left), ``break``/``continue`` to their loop's exit/head, ``return``/``raise``
ending their path, ``try`` handlers entered from before or after the body. Nested functions and
classes are skipped: their bodies run elsewhere. ``step(node, state)`` is called on each piece
of code that runs (a small statement, an ``if`` test, a loop iterable, a ``with`` item) and
returns the state after it; inside loops it may be called several times on one node, each time
with a state at least as large as before.

(``analysis.flow`` is the dtype flow of values; this module only orders events.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import libcst as cst

from fp16lint.analysis.tree import children

State = frozenset
Step = Callable[[cst.CSTNode, State], State]
_MAX_ROUNDS = 8


def join(*states: State | None) -> State | None:
    """Union of the reachable states (None: unreachable)."""
    live = [s for s in states if s is not None]
    return frozenset().union(*live) if live else None


def calls_in_order(node: cst.CSTNode) -> Iterator[cst.Call]:
    """The calls ``node`` makes, each after the calls in its callee and arguments (evaluation
    order), skipping lambdas, functions and classes defined inside it."""
    stack: list[tuple[cst.CSTNode, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        if done:
            assert type(current) is cst.Call
            yield current
            continue
        if type(current) in (cst.Lambda, cst.FunctionDef, cst.ClassDef) and current is not node:
            continue
        if type(current) is cst.Call:
            stack.append((current, True))
        stack.extend((child, False) for child in reversed(children(current)))


class _Paths:
    def __init__(self, step: Step):
        self.step = step
        self.loops: list[tuple[list[State], list[State]]] = []  # (breaks, continues)

    def block(self, statements: Sequence[cst.CSTNode], state: State | None) -> State | None:
        for statement in statements:
            if state is None:
                return None
            state = self.statement(statement, state)
        return state

    def body(self, suite: cst.BaseSuite, state: State | None) -> State | None:
        return self.block(suite.body, state)  # statements, or a one-line suite's small ones

    def statement(self, node: cst.CSTNode, state: State) -> State | None:
        if type(node) is cst.SimpleStatementLine:
            return self.block(node.body, state)
        if type(node) in (cst.Return, cst.Raise):
            self.step(node, state)
            return None
        if type(node) is cst.Break and self.loops:
            self.loops[-1][0].append(state)
            return None
        if type(node) is cst.Continue and self.loops:
            self.loops[-1][1].append(state)
            return None
        if type(node) is cst.If:
            after_test = self.step(node.test, state)
            taken = self.body(node.body, after_test)
            if type(node.orelse) is cst.If:
                other = self.statement(node.orelse, after_test)
            elif type(node.orelse) is cst.Else:
                other = self.body(node.orelse.body, after_test)
            else:
                other = after_test
            return join(taken, other)
        if type(node) in (cst.For, cst.While):
            return self.loop(node, state)
        if type(node) is cst.With:
            for item in node.items:
                state = self.step(item.item, state)
            return self.body(node.body, state)
        if type(node) in (cst.Try, cst.TryStar):
            return self.try_(node, state)
        if type(node) is cst.Match:
            after_subject = self.step(node.subject, state)
            return join(after_subject, *(self.body(c.body, after_subject) for c in node.cases))
        if type(node) in (cst.FunctionDef, cst.ClassDef):
            return state
        return self.step(node, state)

    def loop(self, node: cst.For | cst.While, state: State) -> State | None:
        entry = self.step(node.iter, state) if type(node) is cst.For else state
        head = entry
        breaks: list[State] = []
        for _ in range(_MAX_ROUNDS):
            breaks, continues = [], []
            self.loops.append((breaks, continues))
            test = self.step(node.test, head) if type(node) is cst.While else head
            out = self.body(node.body, test)
            self.loops.pop()
            grown = join(entry, out, *continues)
            if grown == head:
                break
            head = grown
        exit_state = self.step(node.test, head) if type(node) is cst.While else head
        if node.orelse is not None:
            exit_state = self.body(node.orelse.body, exit_state)
        return join(exit_state, *breaks)

    def try_(self, node: cst.Try | cst.TryStar, state: State) -> State | None:
        after_body = self.body(node.body, state)
        raised = join(state, after_body)
        outs = [self.body(h.body, raised) for h in node.handlers]
        normal = self.body(node.orelse.body, after_body) if node.orelse is not None else after_body
        out = join(normal, *outs)
        if node.finalbody is not None:
            finished = self.body(node.finalbody.body, out if out is not None else raised)
            return finished if out is not None else None
        return out


def run(statements: Iterable[cst.CSTNode], entry: State, step: Step) -> State | None:
    """Walk ``statements`` (a function's or module's body) from ``entry``; returns the state at
    the end of the body (None when no path reaches it)."""
    return _Paths(step).block(list(statements), entry)
