"""End to end: the pytest-lsp client drives ``fp16lint lsp`` as an editor would."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Editor, apply_edits, raw_notify, raw_request, wait_for
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcMethodNotFound

from fp16lint.rules.fp2xx_common import INHERITANCE_PROJECT

DEPRECATED = "import torch\n\nwith torch.cuda.amp.autocast():\n    pass\n"
FIXED = 'import torch\n\nwith torch.amp.autocast("cuda"):\n    pass\n'
DOCS = "https://github.com/fp16lint/fp16lint/blob/main/docs/rules/FP401.md"

pytestmark = pytest.mark.asyncio


def _range(line: int, start: int, end_line: int, end: int) -> types.Range:
    return types.Range(types.Position(line, start), types.Position(end_line, end))


async def test_initialize_advertises_what_the_server_does(editor: Editor):
    result = await editor.start()
    caps = result.capabilities
    assert result.server_info is not None and result.server_info.name == "fp16lint"
    assert caps.hover_provider
    assert caps.code_action_provider.resolve_provider
    assert set(caps.code_action_provider.code_action_kinds) == {
        types.CodeActionKind.QuickFix,
        "source.fixAll.fp16lint",
    }
    sync = caps.text_document_sync
    assert sync.change == types.TextDocumentSyncKind.Incremental and sync.open_close and sync.save


async def test_did_open_publishes_the_buffers_findings(editor: Editor):
    await editor.start()
    uri = editor.open("train.py", DEPRECATED)  # not on disk: the buffer is what is linted
    [diag] = await editor.diagnostics(uri, version=1)
    assert diag.range == _range(2, 5, 2, 30)
    assert diag.severity == types.DiagnosticSeverity.Warning
    assert diag.code == "FP401"
    assert diag.source == "fp16lint"
    assert diag.code_description.href == DOCS
    assert diag.message.startswith("`torch.cuda.amp.autocast` is deprecated")
    assert diag.data["fix"]["applicability"] == "safe"


async def test_a_burst_of_changes_costs_one_lint_after_the_one_started_at_once(editor: Editor):
    await editor.start(debounceMs=1000)
    uri = editor.open("train.py", "import torch\n")
    assert await editor.diagnostics(uri, version=1) == []
    for _ in range(5):  # five keystrokes well inside the debounce window
        editor.insert(uri, 1, 0, "x")
    last = editor.insert(uri, 1, 5, " = torch.cuda.amp.GradScaler()\n")
    diags = await editor.diagnostics(uri, version=last)
    assert [(d.code, d.range.start.line) for d in diags] == [("FP401", 1)]
    await asyncio.sleep(0.5)
    versions = [p.version for p in editor.published(uri)]
    # The first keystroke may be linted at once (the file was idle); the rest wait for quiet
    # and cost one lint, of the latest text.
    assert versions[0] == 1 and versions[-1] == last == 7
    assert len(versions) <= 3 and versions == sorted(versions)


async def test_a_change_after_a_pause_does_not_wait_for_the_debounce(editor: Editor):
    await editor.start(debounceMs=600_000)
    uri = editor.open("train.py", "import torch\n")
    assert await editor.diagnostics(uri, version=1) == []
    await asyncio.sleep(0.2)
    last = editor.insert(uri, 1, 0, "scaler = torch.cuda.amp.GradScaler()\n")
    assert [d.code for d in await editor.diagnostics(uri, version=last)] == ["FP401"]


async def test_did_save_and_did_close(editor: Editor):
    await editor.start(debounceMs=10_000)  # only the save may trigger the lint
    editor.write("train.py", DEPRECATED)
    uri = editor.open("train.py", "import torch\n")
    assert await editor.diagnostics(uri, version=1) == []
    editor.change(uri, DEPRECATED)
    editor.client.text_document_did_save(
        types.DidSaveTextDocumentParams(types.TextDocumentIdentifier(uri))
    )
    assert [d.code for d in await editor.diagnostics(uri, version=2)] == ["FP401"]
    editor.client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
    )
    await wait_for(lambda: not editor.published(uri)[-1].diagnostics)


async def test_quick_fix_and_noqa_actions(editor: Editor):
    await editor.start()
    uri = editor.open("train.py", DEPRECATED)
    [diag] = await editor.diagnostics(uri, version=1)
    actions = await editor.client.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(uri),
            _range(2, 10, 2, 10),
            types.CodeActionContext(diagnostics=[diag]),
        )
    )
    quick = [a for a in actions if a.kind == types.CodeActionKind.QuickFix]
    assert [a.title for a in quick] == [
        "fp16lint (FP401): Use `torch.amp.autocast`",
        "fp16lint (FP401): suppress with `# noqa: FP401`",
    ]
    fix, noqa = quick
    assert fix.is_preferred and fix.diagnostics[0].code == "FP401"
    assert apply_edits(DEPRECATED, fix.edit.document_changes[0].edits) == FIXED

    text = editor.apply(uri, noqa.edit)
    assert text.splitlines()[2] == "with torch.cuda.amp.autocast():  # noqa: FP401"
    assert await editor.diagnostics(uri, version=2) == []


async def test_no_actions_away_from_findings(editor: Editor):
    await editor.start()
    uri = editor.open("train.py", DEPRECATED)
    await editor.diagnostics(uri, version=1)
    actions = await editor.client.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(uri),
            _range(0, 0, 0, 0),
            types.CodeActionContext(diagnostics=[], only=[types.CodeActionKind.QuickFix]),
        )
    )
    assert not actions


async def test_fix_all_source_action(editor: Editor):
    await editor.start()  # VS Code resolves the edit lazily (codeAction/resolve)
    text = DEPRECATED + "scaler = torch.cuda.amp.GradScaler()\n"
    uri = editor.open("train.py", text)
    assert len(await editor.diagnostics(uri, version=1)) == 2
    [action] = await editor.client.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(uri),
            _range(0, 0, 0, 0),
            types.CodeActionContext(diagnostics=[], only=[types.CodeActionKind.SourceFixAll]),
        )
    )
    assert action.kind == "source.fixAll.fp16lint" and action.edit is None
    resolved = await editor.client.code_action_resolve_async(action)
    fixed = editor.apply(uri, resolved.edit)
    assert fixed == FIXED + 'scaler = torch.amp.GradScaler("cuda")\n'
    assert await editor.diagnostics(uri, version=2) == []


async def test_fix_all_without_resolve_support(editor: Editor):
    await editor.start(caps="emacs")  # eglot: no codeAction/resolve, so the edit comes at once
    uri = editor.open("train.py", DEPRECATED)
    await editor.diagnostics(uri, version=1)
    actions = await editor.client.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(uri),
            _range(0, 0, 0, 0),
            types.CodeActionContext(diagnostics=[], only=["source.fixAll.fp16lint"]),
        )
    )
    [action] = actions
    assert apply_edits(DEPRECATED, action.edit.document_changes[0].edits) == FIXED


async def test_hover_shows_the_rules_short_docs(editor: Editor):
    await editor.start()
    uri = editor.open("train.py", DEPRECATED)
    await editor.diagnostics(uri, version=1)
    hover = await editor.client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(2, 12))
    )
    assert hover.range == _range(2, 5, 2, 30)
    text = hover.contents.value
    assert "**FP401** `deprecated-amp-api` (warning)" in text
    assert (
        "Deprecated `torch.cuda.amp` / `torch.cpu.amp` API; use `torch.amp` with a device." in text
    )
    assert '**Help:** Use `torch.amp.autocast("cuda", ...)`.' in text
    assert DOCS in text
    nothing = await editor.client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(0, 1))
    )
    assert nothing is None


@pytest.mark.parametrize(
    ("caps", "encoding", "start", "end"),
    [
        # The emoji is 2 UTF-16 code units (4 UTF-8 bytes), "é" 1 (2 bytes).
        ("visual-studio-code", types.PositionEncodingKind.Utf16, 11, 38),
        ("emacs", types.PositionEncodingKind.Utf32, 10, 37),  # eglot offers utf-32 first
        ("neovim@v0.11.0", types.PositionEncodingKind.Utf8, 14, 41),
    ],
)
async def test_positions_follow_the_negotiated_encoding(
    editor: Editor, caps: str, encoding: str, start: int, end: int
):
    result = await editor.start(caps=caps)
    assert (result.capabilities.position_encoding or "utf-16") == encoding
    uri = editor.open("train.py", 'import torch\ns = "\U0001f525é"; torch.cuda.amp.GradScaler()\n')
    [diag] = await editor.diagnostics(uri, version=1)
    assert diag.range == _range(1, start, 1, end)


async def test_unparsable_buffers_and_bad_requests_never_crash(editor: Editor):
    await editor.start()
    uri = editor.open("broken.py", "import torch.cuda.amp\ndef broken(:\n    pass\n")
    [diag] = await editor.diagnostics(uri, version=1)
    assert diag.code == "FP000" and diag.severity == types.DiagnosticSeverity.Error
    assert diag.message.startswith("SyntaxError:") and diag.range.start.line in (1, 2)

    for text in ("amp = (" * 2000 + "\n", "amp = 1\x00\n", "\ufeffdef amp(:\n", ""):
        version = editor.change(uri, text)
        await editor.diagnostics(uri, version=version)

    unknown = types.TextDocumentIdentifier(editor.uri("never-opened.py"))
    hover = await editor.client.text_document_hover_async(
        types.HoverParams(unknown, types.Position(5, 5))
    )
    assert hover is None
    actions = await editor.client.text_document_code_action_async(
        types.CodeActionParams(unknown, _range(0, 0, 0, 0), types.CodeActionContext([]))
    )
    assert not actions
    with pytest.raises(JsonRpcException, match=r"(?i)invalid"):
        await raw_request(editor.client, "textDocument/hover", {"bogus": 1})
    with pytest.raises(JsonRpcMethodNotFound):
        await raw_request(editor.client, "fp16lint/noSuchMethod", {})
    raw_notify(
        editor.client, b'{"jsonrpc": "2.0", "method": "textDocument/didChange", "params": 3}'
    )
    raw_notify(editor.client, b"{this is not json")
    editor.client.text_document_did_change(  # a change to a buffer that was never opened
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=unknown.uri, version=2),
            [types.TextDocumentContentChangeWholeDocument(text="x")],
        )
    )

    version = editor.change(uri, DEPRECATED)  # the server still works
    assert [d.code for d in await editor.diagnostics(uri, version=version)] == ["FP401"]
    assert editor.client.error is None


async def test_workspace_config_is_honoured_and_followed(editor: Editor):
    config = editor.write("pyproject.toml", '[tool.fp16lint]\nignore = ["FP401"]\n')
    await editor.start()
    uri = editor.open("pkg/train.py", DEPRECATED)
    assert await editor.diagnostics(uri, version=1) == []

    config.write_text('[tool.fp16lint]\nper-file-ignores = {"other.py" = ["FP4"]}\n')
    editor.client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            [types.FileEvent(config.as_uri(), types.FileChangeType.Changed)]
        )
    )
    diags = await editor.diagnostics(uri, predicate=bool)
    assert [d.code for d in diags] == ["FP401"]


async def test_a_broken_config_is_reported_and_linting_goes_on(editor: Editor):
    editor.write("pyproject.toml", "[tool.fp16lint]\nselekt = []\n")
    await editor.start()
    uri = editor.open("train.py", DEPRECATED)
    assert [d.code for d in await editor.diagnostics(uri, version=1)] == ["FP401"]
    await wait_for(lambda: any("selekt" in m.message for m in editor.client.messages))


def _fp201_lines(diags: list[types.Diagnostic]) -> list[int]:
    return [d.range.start.line for d in diags if d.code == "FP201"]


async def test_cross_file_findings_follow_the_cast_site(editor: Editor):
    """FP201 in models.py exists because train.py casts the model: editing train.py's buffer
    updates models.py's diagnostics, with the cast site as related information."""
    for name, text in INHERITANCE_PROJECT.items():
        editor.write(name, text)
    await editor.start()
    await wait_for(lambda: any("indexed 2 files" in m.message for m in editor.client.log_messages))
    models = editor.open("models.py", INHERITANCE_PROJECT["models.py"])
    diags = await editor.diagnostics(models, version=1)
    assert _fp201_lines(diags) == [7, 20]
    for diag in diags:
        [related] = diag.related_information
        assert related.location.uri == editor.uri("train.py")
        assert related.location.range.start == types.Position(4, 8)
        assert related.message == "`Net` is cast to float16 here"

    # The other file's unsaved buffer counts: no fp16 cast, no FP2xx finding.
    train = editor.open("train.py", INHERITANCE_PROJECT["train.py"])
    await editor.diagnostics(train, version=1)
    editor.change(train, INHERITANCE_PROJECT["train.py"].replace("float16", "bfloat16"))
    await wait_for(lambda: not editor.published(models)[-1].diagnostics)

    # While a buffer does not parse, its last good facts stand.
    editor.change(train, INHERITANCE_PROJECT["train.py"])
    assert _fp201_lines(await editor.diagnostics(models, predicate=bool)) == [7, 20]
    editor.change(train, INHERITANCE_PROJECT["train.py"] + "def broken(:\n")
    assert [d.code for d in await editor.diagnostics(train, version=4)] == ["FP000"]
    await asyncio.sleep(0.5)
    assert _fp201_lines(editor.published(models)[-1].diagnostics) == [7, 20]

    # Closed without saving: the file on disk counts again.
    editor.change(train, INHERITANCE_PROJECT["train.py"].replace("float16", "bfloat16"))
    await wait_for(lambda: not editor.published(models)[-1].diagnostics)
    editor.client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(train))
    )
    assert _fp201_lines(await editor.diagnostics(models, predicate=bool)) == [7, 20]


async def test_files_created_on_disk_join_the_project(editor: Editor):
    editor.write("models.py", INHERITANCE_PROJECT["models.py"])
    await editor.start()
    models = editor.open("models.py", INHERITANCE_PROJECT["models.py"])
    assert await editor.diagnostics(models, version=1) == []
    editor.write("train.py", INHERITANCE_PROJECT["train.py"])
    editor.client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            [types.FileEvent(editor.uri("train.py"), types.FileChangeType.Created)]
        )
    )
    assert _fp201_lines(await editor.diagnostics(models, predicate=bool)) == [7, 20]
    (editor.root / "train.py").unlink()
    editor.client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            [types.FileEvent(editor.uri("train.py"), types.FileChangeType.Deleted)]
        )
    )
    await wait_for(lambda: not editor.published(models)[-1].diagnostics)
