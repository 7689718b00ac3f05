"""The LSP wiring (pygls): buffers in, diagnostics, code actions and hovers out.

Linting runs on one worker thread, so the event loop keeps answering while a file is linted
and lints happen one at a time in the order asked. The first ``didChange`` after a pause in
typing is linted at once; the changes that follow it within ``debounce`` seconds wait for that
much quiet. A lint always reads the buffer as it is when it starts, so the rest of a burst
costs one lint. Every handler logs and carries on when something fails: an editor
must never lose its linter to one bad request or one unparsable buffer.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lsprotocol import converters, types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import to_fs_path

from fp16lint import __version__
from fp16lint.config import CONFIG_NAMES
from fp16lint.discovery import SUFFIXES
from fp16lint.findings import Applicability, Edit, Finding
from fp16lint.formatters import split_lines
from fp16lint.formatters.lsp_format import diagnostic, lsp_range
from fp16lint.lsp.edits import minimal_edit, noqa_edit
from fp16lint.lsp.session import Linted, Session
from fp16lint.rules import rule_by_code

logger = logging.getLogger(__name__)

FIX_ALL = "source.fixAll.fp16lint"
DEBOUNCE = 0.05  # seconds of quiet after a change before linting
PYTHON_SUFFIXES = (".py", ".pyi")  # buffers linted; the project index also reads notebooks
WATCHED = (*(f"**/*{suffix}" for suffix in SUFFIXES), *(f"**/{name}" for name in CONFIG_NAMES))


class _Protocol(LanguageServerProtocol):
    def structure_message(self, data: dict[str, Any]) -> Any:
        """pygls drops a request whose params it cannot read; answer it with the error
        (``InvalidParams``) so the client does not wait for ever."""
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if "id" in data and "method" in data:
                self._send_response(data["id"], error=exc.to_response_error())
            raise


class Fp16lintServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("fp16lint", __version__, protocol_cls=_Protocol)
        self.session = Session(isolate=True)
        self.debounce = DEBOUNCE
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="fp16lint-lint")
        self.uris: dict[str, str] = {}  # path -> the URI the client uses for it
        self.indexing: asyncio.Task | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._linting: set[str] = set()  # paths with a lint running now
        self._last_change: dict[str, float] = {}  # path -> event-loop time of its last change
        self._converter = converters.get_converter()

    # --- helpers ------------------------------------------------------------------------------
    @property
    def encoding(self) -> str:
        return str(self.workspace.position_encoding or "utf-16")

    def log(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        self.window_log_message(types.LogMessageParams(type=kind, message=message))

    def report_server_error(self, error: Exception, source: Any) -> None:
        """A message that could not be read or handled: log it (no pop-up) and go on."""
        self.log(f"fp16lint: {type(error).__name__}: {error}", types.MessageType.Error)

    def warn_config_errors(self) -> None:
        while self.session.errors:
            message = f"fp16lint: {self.session.errors.pop(0)}"
            self.log(message, types.MessageType.Error)
            self.window_show_message(types.ShowMessageParams(types.MessageType.Error, message))

    async def in_worker(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.worker, function, *args)

    def line_text(self, linted: Linted, path: str) -> Callable[[str, int, int | None], str | None]:
        """Line lookup for positions: the linted buffer for its own path, else open buffers or
        the file on disk (for related locations in other files)."""

        @functools.cache
        def lines_of(other: str) -> list[str]:
            if other == path:
                return split_lines(linted.text)
            doc = self.session.documents.get(other)
            if doc is not None:
                return split_lines(doc.text)
            try:
                return split_lines(Path(other).read_text(encoding="utf-8", errors="replace"))
            except OSError:
                return []

        def line_text(other: str, line: int, cell: int | None) -> str | None:
            lines = lines_of(other)
            return lines[line - 1] if 0 < line <= len(lines) else None

        return line_text

    def diagnostics(self, path: str, linted: Linted | None) -> list[types.Diagnostic]:
        if linted is None:
            return []
        line_text = self.line_text(linted, path)
        return [
            self._converter.structure(diagnostic(f, line_text, self.encoding), types.Diagnostic)
            for f in linted.findings
        ]

    def publish(self, paths: Iterable[str]) -> None:
        for path in paths:
            uri = self.uris.get(path)
            linted = self.session.linted.get(path)
            if uri is None or linted is None:
                continue
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri, self.diagnostics(path, linted), linted.version)
            )

    # --- linting ------------------------------------------------------------------------------
    def schedule(self, path: str, delay: float) -> None:
        timer = self._timers.pop(path, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._timers[path] = loop.call_later(delay, lambda: asyncio.ensure_future(self.lint(path)))

    def change_delay(self, path: str) -> float:
        """No wait for the first change after a pause in typing (over ``debounce`` seconds
        since the last one) when no lint of the file is pending or running; else ``debounce``
        seconds of quiet, so the rest of a burst costs one more lint."""
        now = asyncio.get_running_loop().time()
        last = self._last_change.get(path)
        self._last_change[path] = now
        paused = last is None or now - last > self.debounce
        idle = path not in self._timers and path not in self._linting
        return 0.0 if paused and idle else self.debounce

    async def lint(self, path: str) -> None:
        timer = self._timers.pop(path, None)
        if timer is not None:
            timer.cancel()
        self._linting.add(path)
        try:
            changed = await self.in_worker(self.session.lint, path)
        except Exception:
            self.log(
                f"fp16lint: linting {path} failed:\n{traceback.format_exc()}",
                types.MessageType.Error,
            )
            return
        finally:
            self._linting.discard(path)
        self.warn_config_errors()
        self.publish(changed)
        # The trees kept for re-parsing and the project's summaries live long: moved out of the
        # cyclic collector's reach, they no longer cost a ~100 ms full collection now and then
        # in the middle of a lint (the p95 of bench_lsp.py). Garbage is freed by reference
        # counting all the same (the engine leaves no cycles behind).
        gc.collect(1)
        gc.freeze()

    async def current(self, path: str) -> Linted | None:
        """The document's findings for its latest text (linting it now if a lint is due)."""
        doc = self.session.documents.get(path)
        linted = self.session.linted.get(path)
        if doc is None:
            return None
        if linted is None or linted.version != doc.version or linted.text != doc.text:
            await self.lint(path)
        return self.session.linted.get(path)

    async def reindex(self) -> None:
        """Summarise every file of the workspace (for the project pass), one per worker turn so
        that edits are linted in between."""
        targets = await self.in_worker(lambda: list(self.session.index_targets()))
        for target in targets:
            await self.in_worker(self.session.index_file, target)
        self.publish(await self.in_worker(self.session.join_all))
        self.log(f"fp16lint: indexed {len(targets)} file{'s' if len(targets) != 1 else ''}")

    def start_indexing(self) -> None:
        if self.indexing is not None:
            self.indexing.cancel()
        self.indexing = asyncio.ensure_future(self.reindex())

    async def settings_changed(self) -> None:
        """A config file changed: read the configs again, re-index and re-lint what is open."""
        open_paths = list(self.session.documents)
        await self.in_worker(self.session.reset)
        for path in open_paths:
            await self.lint(path)
        self.start_indexing()

    # --- code actions ---------------------------------------------------------------------------
    def text_edits(self, linted: Linted, path: str, edits: Iterable[Edit]) -> list[types.TextEdit]:
        line_text = self.line_text(linted, path)
        return [
            types.TextEdit(
                self._converter.structure(
                    lsp_range(path, e.span, line_text, self.encoding), types.Range
                ),
                e.content,
            )
            for e in edits
        ]

    def workspace_edit(
        self, uri: str, version: int | None, edits: list[types.TextEdit]
    ) -> types.WorkspaceEdit:
        if self.client_capabilities.workspace and getattr(
            self.client_capabilities.workspace.workspace_edit, "document_changes", False
        ):
            document = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
            return types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(document, edits)])
        return types.WorkspaceEdit(changes={uri: edits})

    def finding_actions(
        self, uri: str, path: str, linted: Linted, finding: Finding, diag: types.Diagnostic
    ) -> list[types.CodeAction]:
        actions = []
        fix = finding.fix
        if fix is not None:
            unsafe = fix.applicability is Applicability.UNSAFE
            actions.append(
                types.CodeAction(
                    title=f"fp16lint ({finding.code}): {fix.message}{' (unsafe)' if unsafe else ''}",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diag],
                    is_preferred=not unsafe,
                    edit=self.workspace_edit(
                        uri, linted.version, self.text_edits(linted, path, fix.edits)
                    ),
                )
            )
        noqa = noqa_edit(linted.text, finding.span.start.line, finding.code)
        if noqa is not None:
            actions.append(
                types.CodeAction(
                    title=f"fp16lint ({finding.code}): suppress with `# noqa: {finding.code}`",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diag],
                    edit=self.workspace_edit(
                        uri, linted.version, self.text_edits(linted, path, [noqa])
                    ),
                )
            )
        return actions

    async def fix_all_edit(self, uri: str, path: str) -> types.WorkspaceEdit | None:
        linted = await self.current(path)
        if linted is None:
            return None
        fixed = await self.in_worker(self.session.fix_all, path)
        if fixed is None:
            return None
        edits = self.text_edits(linted, path, [minimal_edit(linted.text, fixed)])
        return self.workspace_edit(uri, linted.version, edits)


def _wanted(kind: str, only: list[str] | None) -> bool:
    return only is None or any(kind == o or kind.startswith(o + ".") for o in only)


def _before(a: types.Position, b: types.Position) -> bool:
    return (a.line, a.character) < (b.line, b.character)


def _overlaps(a: types.Range, b: types.Range) -> bool:
    return not (_before(a.end, b.start) or _before(b.end, a.start))


def _guarded(default: Any = None) -> Callable:
    """Log a handler's exception to the client and answer ``default`` instead of failing."""

    def wrap(handler: Callable) -> Callable:
        def failed(ls: Fp16lintServer) -> Any:
            ls.log(
                f"fp16lint: {handler.__name__} failed:\n{traceback.format_exc()}",
                types.MessageType.Error,
            )
            return default

        if asyncio.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def run_async(ls: Fp16lintServer, params: Any) -> Any:
                try:
                    return await handler(ls, params)
                except Exception:
                    return failed(ls)

            return run_async

        @functools.wraps(handler)  # sync handlers stay sync: they run in message order
        def run(ls: Fp16lintServer, params: Any) -> Any:
            try:
                return handler(ls, params)
            except Exception:
                return failed(ls)

        return run

    return wrap


def _path(ls: Fp16lintServer, uri: str) -> str | None:
    path = to_fs_path(uri) if uri.startswith("file:") else None
    if path is None:
        return None
    path = os.path.abspath(path)
    ls.uris.setdefault(path, uri)
    return path


def build_server() -> Fp16lintServer:
    server = Fp16lintServer()

    @server.feature(types.INITIALIZE)
    @_guarded()
    def initialize(ls: Fp16lintServer, params: types.InitializeParams) -> None:
        options = params.initialization_options
        if isinstance(options, dict) and isinstance(options.get("debounceMs"), (int, float)):
            ls.debounce = max(0.0, options["debounceMs"] / 1000)

    @server.feature(types.INITIALIZED)
    @_guarded()
    async def initialized(ls: Fp16lintServer, params: types.InitializedParams) -> None:
        roots = [to_fs_path(f.uri) for f in ls.workspace.folders.values()]
        roots = [r for r in roots if r] or (
            [ls.workspace.root_path] if ls.workspace.root_path else []
        )
        ls.session.roots = [Path(r).resolve() for r in roots]
        watch = (
            ls.client_capabilities.workspace
            and ls.client_capabilities.workspace.did_change_watched_files
        )
        if watch and watch.dynamic_registration:
            options = types.DidChangeWatchedFilesRegistrationOptions(
                watchers=[types.FileSystemWatcher(glob_pattern=g) for g in WATCHED]
            )
            registration = types.Registration(
                "fp16lint-watch", types.WORKSPACE_DID_CHANGE_WATCHED_FILES, options
            )
            ls.client_register_capability(types.RegistrationParams([registration]))
        ls.start_indexing()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @_guarded()
    def did_open(ls: Fp16lintServer, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        path = _path(ls, item.uri)
        if path is None or (item.language_id != "python" and not path.endswith(PYTHON_SUFFIXES)):
            return
        ls.session.open(path, item.text, item.version)
        ls.schedule(path, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    @_guarded()
    def did_change(ls: Fp16lintServer, params: types.DidChangeTextDocumentParams) -> None:
        path = _path(ls, params.text_document.uri)
        if path is None or path not in ls.session.documents:
            return
        document = ls.workspace.get_text_document(params.text_document.uri)
        ls.session.open(path, document.source, params.text_document.version)
        ls.schedule(path, ls.change_delay(path))

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    @_guarded()
    async def did_save(ls: Fp16lintServer, params: types.DidSaveTextDocumentParams) -> None:
        path = _path(ls, params.text_document.uri)
        if path is None:
            return
        if os.path.basename(path) in CONFIG_NAMES:
            await ls.settings_changed()
        elif path in ls.session.documents:
            ls.schedule(path, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @_guarded()
    async def did_close(ls: Fp16lintServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        path = _path(ls, uri)
        if path is None:
            return
        timer = ls._timers.pop(path, None)
        if timer is not None:
            timer.cancel()
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri, []))
        changed = await ls.in_worker(ls.session.close, path)
        ls.uris.pop(path, None)
        ls.publish(changed)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    @_guarded()
    async def watched_files(ls: Fp16lintServer, params: types.DidChangeWatchedFilesParams) -> None:
        configs = False
        for change in params.changes:
            path = _path(ls, change.uri)
            if path is None:
                continue
            if os.path.basename(path) in CONFIG_NAMES:
                configs = True
            elif change.type == types.FileChangeType.Deleted:
                await ls.in_worker(ls.session.drop_file, path)
            elif path.endswith(SUFFIXES):
                await ls.in_worker(ls.session.index_file, path)
        if configs:
            await ls.settings_changed()
        else:
            ls.publish(await ls.in_worker(ls.session.join_all))

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    @_guarded()
    def folders_changed(ls: Fp16lintServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
        roots = [to_fs_path(f.uri) for f in ls.workspace.folders.values()]
        ls.session.roots = [Path(r).resolve() for r in roots if r]
        ls.start_indexing()

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL], resolve_provider=True
        ),
    )
    @_guarded(default=[])
    async def code_action(
        ls: Fp16lintServer, params: types.CodeActionParams
    ) -> list[types.CodeAction]:
        uri = params.text_document.uri
        path = _path(ls, uri)
        linted = await ls.current(path) if path else None
        if path is None or linted is None:
            return []
        only = list(params.context.only) if params.context.only is not None else None
        actions: list[types.CodeAction] = []
        if _wanted(types.CodeActionKind.QuickFix, only):
            for finding, diag in zip(linted.findings, ls.diagnostics(path, linted), strict=True):
                if _overlaps(diag.range, params.range):
                    actions += ls.finding_actions(uri, path, linted, finding, diag)
        safe = any(f.fix and f.fix.applicability is Applicability.SAFE for f in linted.findings)
        if safe and _wanted(FIX_ALL, only):
            action = types.CodeAction(
                title="fp16lint: apply all safe fixes",
                kind=FIX_ALL,
                data={"uri": uri},
            )
            resolve = (
                ls.client_capabilities.text_document
                and ls.client_capabilities.text_document.code_action
            )
            props = (
                resolve.resolve_support.properties if resolve and resolve.resolve_support else []
            )
            if "edit" not in props:
                action.edit = await ls.fix_all_edit(uri, path)
            if action.edit is not None or "edit" in props:
                actions.append(action)
        return actions

    @server.feature(types.CODE_ACTION_RESOLVE)
    @_guarded()
    async def resolve_code_action(ls: Fp16lintServer, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        uri = data.get("uri")
        path = _path(ls, uri) if isinstance(uri, str) else None
        if action.kind == FIX_ALL and path is not None:
            action.edit = await ls.fix_all_edit(uri, path) or types.WorkspaceEdit(changes={})
        return action

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @_guarded()
    async def hover(ls: Fp16lintServer, params: types.HoverParams) -> types.Hover | None:
        path = _path(ls, params.text_document.uri)
        linted = await ls.current(path) if path else None
        if path is None or linted is None:
            return None
        point = types.Range(params.position, params.position)
        parts: list[str] = []
        hit: types.Range | None = None
        for finding, diag in zip(linted.findings, ls.diagnostics(path, linted), strict=True):
            if not _overlaps(diag.range, point):
                continue
            hit = hit or diag.range
            rule = rule_by_code(finding.code)
            summary = rule.summary if rule is not None else ""
            help_line = f"**Help:** {finding.help}\n\n" if finding.help else ""
            parts.append(
                f"**{finding.code}** `{finding.name}` ({finding.severity.value})\n\n"
                f"{finding.message}\n\n{help_line}{summary}\n\n[Rule documentation]({finding.url})"
            )
        if not parts:
            return None
        content = types.MarkupContent(types.MarkupKind.Markdown, "\n\n---\n\n".join(parts))
        return types.Hover(contents=content, range=hit)

    return server


def serve() -> None:
    """Run the server on standard input/output until the client says ``exit``."""
    logging.basicConfig(level=logging.WARNING, format="fp16lint-lsp %(levelname)s %(message)s")
    server = build_server()
    try:
        server.start_io()  # returns on `exit` (pygls swallows its SystemExit) or end of input
    finally:
        server.session.shutdown()
    # The LSP spec: exit code 0 after a `shutdown` request, 1 without one.
    sys.exit(0 if server.protocol._shutdown else 1)
