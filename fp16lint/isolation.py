"""Run each file's parse and lint in a worker process, with a wall-clock limit per file.

libcst's native parser can crash the process (a segmentation fault on a 10,000-term ``and``
chain) or run for minutes without ever returning to Python, where no signal can stop it. So
every file goes through a worker, in every mode (one job, one file, the language server): a
worker that dies or passes the limit costs the file it was on a finding, and a fresh worker
takes the rest. Workers are long-lived (forked once, fed chunks of files over a pipe and
answering file by file), so isolation costs a fork per run, not per file.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")

DIED = "died"
TIMED_OUT = "timed out"


# The parent's ends of the workers' pipes. A forked worker inherits them all and closes them
# first: otherwise a pipe never reports end-of-file while a sibling holds a copy, and workers
# would outlive a parent that was killed.
_parent_ends: list[Connection] = []


def _serve(conn: Connection, initializer: Callable[..., None], initargs: tuple, handler) -> None:
    """A worker's loop: a list of jobs in, one result per job out, until the pipe closes."""
    for end in _parent_ends:
        end.close()
    faulthandler.disable()  # a crash is reported as the file's finding, not a dump on stderr
    try:
        initializer(*initargs)
        while True:
            try:
                batch = conn.recv()
            except EOFError:
                return
            for job in batch:
                conn.send(handler(job))
    except (KeyboardInterrupt, BrokenPipeError):  # the parent is stopping: no traceback
        return


def _nothing() -> None:
    pass


class _Worker:
    def __init__(self, context: Any, target: Callable, args: tuple):
        self.conn, child = context.Pipe()
        _parent_ends.append(self.conn)
        self.process = context.Process(target=target, args=(child, *args), daemon=True)
        self.process.start()
        child.close()
        self.chunk: list[int] = []  # job indices sent, not yet answered
        self.deadline = 0.0

    def stop(self, kill: bool = False) -> None:
        _parent_ends.remove(self.conn)
        self.conn.close()
        if kill and self.process.is_alive():
            self.process.kill()
        self.process.join(None if kill else 5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class Workers(Generic[Job, Result]):
    """Up to ``count`` worker processes running ``handler(job)``; use as a context manager,
    or keep one for the life of a server and call ``close``."""

    def __init__(
        self,
        count: int,
        handler: Callable[[Job], Result],
        initializer: Callable[..., None] = _nothing,
        initargs: tuple = (),
        method: str | None = None,
    ):
        """``method``: how to start workers (default ``fork`` on POSIX); a threaded server asks
        for ``forkserver``, which forks from a clean single-threaded process."""
        self.count = max(1, count)
        self._args = (initializer, initargs, handler)
        method = method or ("fork" if os.name == "posix" else "spawn")
        if method not in multiprocessing.get_all_start_methods():
            method = "spawn"
        self._context = multiprocessing.get_context(method)
        if method == "forkserver":
            self._context.set_forkserver_preload([handler.__module__])
        self._idle: list[_Worker] = []

    def __enter__(self) -> Workers[Job, Result]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for worker in self._idle:
            worker.stop()
        self._idle.clear()

    def _start(self) -> _Worker:
        return self._idle.pop() if self._idle else _Worker(self._context, _serve, self._args)

    def run(
        self,
        jobs: Sequence[Job],
        chunks: list[list[int]],
        limit: float | None,
        failed: Callable[[Job, str], Result],
    ) -> list[Result]:
        """Results of ``jobs`` in order, running ``chunks`` (lists of job indices covering
        them) on the workers; a job whose worker died, or that ran over ``limit`` wall
        seconds, gets ``failed(job, DIED or TIMED_OUT)``."""
        results: dict[int, Result] = {}
        queue = deque(chunks)
        busy: list[_Worker] = []
        try:
            while queue or busy:
                while queue and len(busy) < self.count:
                    worker = self._start()
                    worker.chunk = queue.popleft()
                    worker.deadline = time.monotonic() + limit if limit else float("inf")
                    try:
                        worker.conn.send([jobs[i] for i in worker.chunk])
                    except OSError:  # it died before its first chunk: try a fresh one
                        queue.appendleft(worker.chunk)
                        worker.stop(kill=True)
                        continue
                    busy.append(worker)
                timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
                ready = set(
                    wait([w.conn for w in busy], None if timeout == float("inf") else timeout)
                )
                for worker in list(busy):
                    why = None
                    if worker.conn in ready:
                        try:
                            results[worker.chunk.pop(0)] = worker.conn.recv()
                            worker.deadline = time.monotonic() + limit if limit else worker.deadline
                        except (EOFError, OSError):
                            why = DIED
                    elif time.monotonic() >= worker.deadline:
                        why = TIMED_OUT
                    if why is not None:
                        index = worker.chunk.pop(0)
                        results[index] = failed(jobs[index], why)
                        if worker.chunk:
                            queue.appendleft(worker.chunk)
                        worker.stop(kill=True)
                        busy.remove(worker)
                    elif not worker.chunk:
                        busy.remove(worker)
                        self._idle.append(worker)
        finally:
            for worker in busy:
                worker.stop(kill=True)
        return [results[i] for i in range(len(jobs))]
