"""A real LSP client (pytest-lsp) talking to the real ``fp16lint lsp`` process over stdio.

``Editor`` plays the editor's part: it opens, edits, saves and closes buffers in a temporary
workspace and waits for the diagnostics the server publishes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

SERVER = [sys.executable, "-m", "fp16lint", "lsp"]
TIMEOUT = 30.0
_RAW_IDS = itertools.count()


def make_client() -> LanguageClient:
    """pytest-lsp's client, also recording every ``publishDiagnostics`` with its version and
    accepting dynamic registrations (as VS Code does)."""
    client = LanguageClient(converter_factory=default_converter)
    client.published = []  # type: ignore[attr-defined]
    default = DEFAULT_CLIENT_FEATURES[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]

    def publish(client: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        client.published.append(params)  # type: ignore[attr-defined]
        default(client, params)

    def register(client: LanguageClient, params: types.RegistrationParams) -> None:
        client.registrations.extend(params.registrations)  # type: ignore[attr-defined]

    client.registrations = []  # type: ignore[attr-defined]
    features = {
        **DEFAULT_CLIENT_FEATURES,
        types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: publish,
        types.CLIENT_REGISTER_CAPABILITY: register,
    }
    register_lsp_features(client, features)
    return client


class Editor:
    def __init__(self, client: LanguageClient, root: Path):
        self.client = client
        self.root = root
        self.versions: dict[str, int] = {}
        self.texts: dict[str, str] = {}

    async def start(
        self, caps: str = "visual-studio-code", **options: Any
    ) -> types.InitializeResult:
        folder = types.WorkspaceFolder(uri=self.root.as_uri(), name="workspace")
        return await self.client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities(caps),
                root_uri=self.root.as_uri(),
                workspace_folders=[folder],
                initialization_options=options or None,
            )
        )

    def uri(self, name: str) -> str:
        return (self.root / name).as_uri()

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def open(self, name: str, text: str) -> str:
        uri = self.uri(name)
        self.versions[uri] = 1
        self.texts[uri] = text
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, text))
        )
        return uri

    def change(self, uri: str, text: str) -> int:
        """Replace the whole buffer (a full-document change event)."""
        self.versions[uri] += 1
        self.texts[uri] = text
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                [types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        return self.versions[uri]

    def insert(self, uri: str, line: int, character: int, text: str) -> int:
        """An incremental change: insert ``text`` at a position (ASCII buffers only)."""
        self.versions[uri] += 1
        lines = self.texts[uri].split("\n")
        lines[line] = lines[line][:character] + text + lines[line][character:]
        self.texts[uri] = "\n".join(lines)
        where = types.Range(types.Position(line, character), types.Position(line, character))
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                [types.TextDocumentContentChangePartial(range=where, text=text)],
            )
        )
        return self.versions[uri]

    def apply(self, uri: str, edit: types.WorkspaceEdit) -> str:
        """Apply a workspace edit to our copy of the buffer and send it as a change."""
        edits: list[types.TextEdit] = []
        for change in edit.document_changes or []:
            assert change.text_document.uri == uri
            assert change.text_document.version == self.versions[uri]
            edits += change.edits
        edits += (edit.changes or {}).get(uri, [])
        text = apply_edits(self.texts[uri], edits)
        self.change(uri, text)
        return text

    async def diagnostics(
        self, uri: str, version: int | None = None, predicate: Callable | None = None
    ) -> list[types.Diagnostic]:
        """The latest diagnostics published for ``uri`` (at ``version``, if given)."""

        def found() -> types.PublishDiagnosticsParams | None:
            for params in reversed(self.client.published):  # type: ignore[attr-defined]
                if params.uri != uri:
                    continue
                if version is not None and params.version != version:
                    return None
                if predicate is not None and not predicate(params.diagnostics):
                    return None
                return params
            return None

        await wait_for(found)
        return list(found().diagnostics)

    def published(self, uri: str) -> list[types.PublishDiagnosticsParams]:
        return [p for p in self.client.published if p.uri == uri]  # type: ignore[attr-defined]


def apply_edits(text: str, edits: list[types.TextEdit]) -> str:
    """Apply LSP text edits (UTF-16 positions; the test buffers are BMP-only) to ``text``."""
    starts = [0]
    for index, char in enumerate(text):
        if char == "\n":
            starts.append(index + 1)

    def offset(position: types.Position) -> int:
        return starts[position.line] + position.character

    ordered = sorted(edits, key=lambda e: offset(e.range.start), reverse=True)
    for edit in ordered:
        text = text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]
    return text


async def raw_request(client: LanguageClient, method: str, params: Any) -> Any:
    """Send a request exactly as given (no typed serialisation): for malformed requests."""
    msg_id = f"raw-{next(_RAW_IDS)}"
    future: concurrent.futures.Future = concurrent.futures.Future()
    client.protocol._request_futures[msg_id] = future
    message = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}
    client.protocol._send_data(message)
    return await asyncio.wait_for(asyncio.wrap_future(future), TIMEOUT)


def raw_notify(client: LanguageClient, body: bytes) -> None:
    """Write one message with ``body`` (any bytes, even invalid JSON) to the server."""
    client.protocol.writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)


async def wait_for(condition: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := condition()):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the server did not answer in time")
        await asyncio.sleep(0.01)
    return result


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, client_factory=make_client))
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


@pytest.fixture
def editor(client: LanguageClient, tmp_path: Path) -> Editor:
    return Editor(client, tmp_path)
