"""Run the user's targets in a child process, so that nothing a target does can end, hang or
garble the run.

In-process, a target's ``sys.exit``/``os._exit``, a forward pass that never returns, a native
crash or a closed stdout ended the whole run and lost the other targets' reports, and whatever a
target printed landed in ``--output-format json``. Here one child runs every target, one after
another: torch is imported once (while the parent lints), and each step (importing a target's
modules, checking one target) has ``timeout`` seconds. After a timeout or a crash the child is
killed, that target gets an error, and a fresh child takes the remaining targets. A child per
target would pay the torch import (1-7 s) for every target; a thread cannot be stopped.

The child's ``sys.path`` is the parent's without ``''``, plus fp16lint's own folder at the end;
the project (the working directory and the config's folder) is added only once torch and the
runtime are imported, just before the first target is imported. The parent imports neither torch nor the user's code: reports come back
pickled (the report model does not import torch).

Protocol: pickled messages framed by their length, on the child's stdin and stdout, which the
child moves to private descriptors at start-up. The child's stdin then reads /dev/null, its
stdout and stderr go to a file, and the parent relays that file to its stderr after each step,
under the step's name.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

from .report import Report
from .targets import TargetSpec

#: seconds for each step (importing a target's modules, checking one target); 0: no limit
DEFAULT_TIMEOUT = 600.0
#: seconds for the child to start (import torch, check the devices), whatever ``timeout`` says
START_TIMEOUT = 600.0
#: lines of a step's captured output relayed to stderr (the last ones: tracebacks end there)
RELAY_LINES = 40

_HEADER = struct.Struct(">Q")


@dataclass
class RunSettings:
    """The command-line options every target runs with (``None``: the target's own or default)."""

    device: str | None = None
    require_cuda: bool = False
    backward: bool = False
    seed: int | None = None


@dataclass
class Planned:
    """A resolved target as the parent knows it: ``index`` among the targets of spec
    ``spec_index``, or an error found while importing it."""

    name: str
    label: str
    spec_index: int
    index: int
    error: str | None = None


class SetupError(Exception):
    """A problem of the run as a whole (an unknown or unavailable device): exit 2 before any target
    runs."""


class _StepFailed(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


# -- framing ------------------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class _PlainPickler(pickle.Pickler):
    """Pickles str/int/float subclasses as the plain type: ``torch.__version__`` is a
    ``TorchVersion``, and unpickling one would import torch in the parent."""

    def reducer_override(self, obj: Any) -> Any:
        for base in (str, int, float):
            if isinstance(obj, base) and type(obj) is not base and type(obj) is not bool:
                return base, (base(obj),)
        return NotImplemented


def _dumps(message: Any) -> bytes:
    buffer = io.BytesIO()
    _PlainPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(message)
    return buffer.getvalue()


def _send(stream: IO[bytes], data: bytes) -> None:
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> bytes | None:
    """The next message's bytes, or None at end of stream."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    return data if len(data) == size else None


# -- parent -------------------------------------------------------------------------------------


def _exit_message(code: int) -> tuple[str, str]:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return "crash", f"the process running it died ({name}): a crash in native code?"
    return (
        "exit",
        f"the process running it ended with exit code {code} (os._exit, or an exit from a thread): "
        "a target must return, not end the process",
    )


class ChildRunner:
    """The parent's side: start the child, send it steps, wait for each with the timeout."""

    def __init__(
        self,
        root: Path,
        settings: RunSettings,
        devices: list[str | None],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        err: TextIO,
    ) -> None:
        self.root = root
        self.settings = settings
        self.devices = devices
        self.timeout = timeout if timeout and math.isfinite(timeout) and timeout > 0 else None
        self.err = err
        self._proc: subprocess.Popen[bytes] | None = None
        self._replies: queue.Queue[Any] = queue.Queue()
        self._capture: IO[bytes] | None = None
        self._capture_path: str | None = None
        self._pending = False  # a step was sent and its reply has not come

    # lifecycle

    def start(self) -> None:
        """Start the child and send it the set-up step; :meth:`wait_setup` collects the answer,
        so that the child imports torch while the caller does something else."""
        fd, self._capture_path = tempfile.mkstemp(prefix="fp16lint-runtime-", suffix=".log")
        self._capture = open(self._capture_path, "rb")  # noqa: SIM115 - closed in close()
        path = [p for p in sys.path if p]
        # fp16lint's own folder, last: `python -m fp16lint` run in a checkout of fp16lint (an
        # editable install, a GPU machine with no install) stripped it from the parent's path
        # as the working directory, after fp16lint itself was imported
        home = str(Path(__file__).resolve().parents[2])
        if home not in path:
            path.append(home)
        boot = (
            f"import sys; sys.path[:] = {path!r}; "
            "from fp16lint.runtime.isolate import child_main; child_main()"
        )
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", boot],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=fd,
                # its own session: the user's Ctrl-C reaches the parent only, which stops the child
                start_new_session=os.name == "posix",
            )
        finally:
            os.close(fd)
        self._replies = queue.Queue()
        threading.Thread(
            target=self._read_replies, args=(self._proc.stdout, self._replies), daemon=True
        ).start()
        self._post(("setup", self.devices, self.settings.require_cuda))

    def wait_setup(self) -> None:
        """Raise :class:`SetupError` when the devices are unknown or unavailable."""
        try:
            status, value = self._wait("the runtime's start-up", START_TIMEOUT)
        except _StepFailed as exc:
            raise SetupError(f"the process that runs the targets failed: {exc.message}") from exc
        if status != "ok":
            raise SetupError(value)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if self._pending:  # interrupted mid-step: do not wait for the target
                self._kill(proc)
                self._pending = False
            elif proc.poll() is None:
                with contextlib.suppress(OSError):
                    _send(proc.stdin, _dumps(("stop",)))  # type: ignore[arg-type]
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._kill(proc)
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    stream.close()  # type: ignore[union-attr]
        if self._capture is not None:
            self._capture.close()
            self._capture = None
        if self._capture_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._capture_path)
            self._capture_path = None

    def __enter__(self) -> ChildRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # steps

    def resolve(self, spec_index: int, spec: TargetSpec) -> list[Planned]:
        """Import what ``spec`` names, in the child; an import that fails, hangs or exits is one
        planned target with its error."""
        label = spec.factory or f"--hf-model {spec.hf_model}"
        try:
            status, value = self._step(("resolve", spec_index, spec, str(self.root)), label)
        except _StepFailed as exc:
            return [Planned(spec.name or label, label, spec_index, 0, f"importing: {exc.message}")]
        if status != "ok":
            return [Planned(spec.name or label, label, spec_index, 0, f"importing: {value}")]
        return [Planned(n, lb, spec_index, j, e) for j, (n, lb, e) in enumerate(value)]

    def check(self, target: Planned, spec: TargetSpec) -> Report:
        """Check one planned target in the child; a timeout, exit or crash is its error."""
        msg = ("run", target.spec_index, spec, str(self.root), target.index, self.settings)
        try:
            status, value = self._step(msg, target.name)
        except _StepFailed as exc:
            return Report(
                name=target.name, factory=target.label, error=exc.message, error_kind=exc.kind
            )
        if status != "ok":
            return Report(
                name=target.name, factory=target.label, error=value, error_kind="internal"
            )
        return value

    # plumbing

    def _step(self, message: Any, label: str) -> tuple[str, Any]:
        if self._proc is None or self._proc.poll() is not None:
            self.close()
            self.start()
            try:
                self.wait_setup()
            except SetupError as exc:
                raise _StepFailed("crash", str(exc)) from exc
        self._post(message)
        return self._wait(label)

    def _post(self, message: Any) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._pending = True
        with contextlib.suppress(OSError):  # a dead child shows as the end of its replies
            _send(self._proc.stdin, _dumps(message))

    def _wait(self, label: str, timeout: float | None = None) -> tuple[str, Any]:
        assert self._proc is not None
        timeout = timeout or self.timeout
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            self._kill(self._proc)
            self._pending = False
            self._relay(label)
            self.close()
            raise _StepFailed(
                "timeout",
                f"no result after {timeout:g} s"
                + (" (--timeout)" if timeout == self.timeout else "")
                + ": the process running it was stopped",
            ) from None
        if reply is None:
            try:
                code = self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # alive, but its replies are gone
                self._kill(self._proc)
                code = self._proc.returncode
            self._pending = False
            self._relay(label)
            self.close()
            raise _StepFailed(*_exit_message(code))
        self._pending = False
        self._relay(label)
        return reply

    @staticmethod
    def _read_replies(stream: IO[bytes], replies: queue.Queue[Any]) -> None:
        try:
            while (data := _receive(stream)) is not None:
                try:
                    replies.put(pickle.loads(data))  # our own child, started by us
                except Exception as exc:  # a report this process cannot rebuild
                    replies.put(("error", f"its result could not be read: {_short(exc)}"))
        except OSError:  # a broken stream is the end of the replies
            pass
        replies.put(None)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(OSError):
            if os.name == "posix":
                os.killpg(proc.pid, signal.SIGKILL)  # and whatever the target started
            else:  # pragma: no cover - Windows
                proc.kill()
        proc.wait()

    def _relay(self, label: str) -> None:
        """What the step printed, to stderr under its label (never to stdout: JSON stays valid)."""
        if self._capture is None:
            return
        text = self._capture.read().decode("utf-8", "replace")
        lines = text.rstrip().splitlines()
        if not lines:
            return
        print(f"fp16lint runtime: output of {label}:", file=self.err)
        if len(lines) > RELAY_LINES:
            print(f"  | ... ({len(lines) - RELAY_LINES} lines before)", file=self.err)
        for line in lines[-RELAY_LINES:]:
            print(f"  | {line}", file=self.err)


# -- child --------------------------------------------------------------------------------------


def _describe(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, SystemExit):
        return "exit", f"it raised SystemExit({exc.code!r}) (sys.exit): a target must return"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupt", "it raised KeyboardInterrupt"
    return "internal", f"unexpected error: {_short(exc)}"


class _Server:
    """The child's side: answers setup, resolve and run steps."""

    def __init__(self, capture: int) -> None:
        self.capture = capture
        self.resolved: dict[int, list[Any]] = {}
        self.project_added = False

    def handle(self, message: tuple[Any, ...]) -> tuple[str, Any]:
        kind, *args = message
        if kind == "setup":
            return self._setup(*args)
        if kind == "resolve":
            spec_index, spec, root = args
            targets = self._resolve(spec_index, spec, Path(root))
            return "ok", [(t.name, t.label, t.error) for t in targets]
        spec_index, spec, root, index, settings = args
        return "ok", self._run(self._resolve(spec_index, spec, Path(root))[index], settings)

    def _setup(self, devices: list[str | None], require_cuda: bool) -> tuple[str, Any]:
        # everything the child needs is imported here, before the project is on sys.path
        from . import report, targets  # noqa: F401
        from .runner import CudaRequiredError, TargetError, resolve_device

        for device in devices:
            try:
                resolve_device(device, require_cuda)
            except (TargetError, CudaRequiredError) as exc:
                return "error", str(exc)
        return "ok", None

    def _resolve(self, spec_index: int, spec: TargetSpec, root: Path) -> list[Any]:
        from .targets import ResolvedTarget, add_import_paths, resolve

        if spec_index in self.resolved:
            return self.resolved[spec_index]
        if not self.project_added:
            add_import_paths(os.getcwd(), root)
            self.project_added = True
        label = spec.factory or f"--hf-model {spec.hf_model}"
        try:
            targets = resolve(spec, root)
        except BaseException as exc:  # a target's exit is its error, not ours
            error = f"importing {label}: {_describe(exc)[1]}"
            targets = [ResolvedTarget(spec.name or label, label, None, None, error=error)]
        self.resolved[spec_index] = targets
        return targets

    def _run(self, target: Any, settings: RunSettings) -> Report:
        from .records import Thresholds
        from .runner import CudaRequiredError, RunOptions, run_target

        if target.error:
            return Report(
                name=target.name, factory=target.label, error=target.error, error_kind="target"
            )
        opts = RunOptions(
            device=settings.device or target.device,
            require_cuda=settings.require_cuda,
            backward=settings.backward,
            seed=settings.seed if settings.seed is not None else (target.seed or 0),
            thresholds=Thresholds(),
            checkpoint=target.checkpoint,
        )
        try:
            return run_target(
                target.factory,
                target.inputs,
                name=target.name,
                options=opts,
                factory_label=target.label,
            )
        except CudaRequiredError as exc:
            kind, error = "device", str(exc)
        except BaseException as exc:  # a target's exit is its error, not ours
            kind, error = _describe(exc)
        return Report(name=target.name, factory=target.label, error=error, error_kind=kind)

    def repair_stdio(self) -> None:
        """Give a target that closed stdout or stderr working ones again (onto the capture)."""
        for name, fd in (("stdout", 1), ("stderr", 2)):
            stream = getattr(sys, name)
            try:
                os.fstat(fd)
                broken = stream is None or stream.closed
            except OSError:
                broken = True
            if broken:
                os.dup2(self.capture, fd)
                stream = open(fd, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
                setattr(sys, name, stream)
            with contextlib.suppress(Exception):
                getattr(sys, name).flush()


def child_main() -> None:
    """The child's entry point: serve the parent's steps until it says stop or goes away."""
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)  # a target's prints go to the capture, never into the protocol
    for stream in (sys.stdout, sys.stderr):  # in the order they were printed
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    server = _Server(os.dup(2))
    while (data := _receive(requests)) is not None:
        message = pickle.loads(data)  # from the parent that started us
        if message[0] == "stop":
            break
        try:
            reply = server.handle(message)
            data = _dumps(reply)
        except BaseException as exc:  # reported, the parent decides
            reply = ("error", _describe(exc)[1])
            data = _dumps(reply)
        server.repair_stdio()
        _send(replies, data)
    # skip the interpreter's tear-down (about 2 s with torch loaded): nothing is left to save
    os._exit(0)
