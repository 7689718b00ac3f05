"""End to end: the pytest-lsp client drives ``fp16lint lsp`` as an editor would."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Editor, apply_edits, raw_notify, raw_request, wait_for
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcMethodNotFound

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


async def test_did_change_is_debounced_and_the_latest_text_wins(editor: Editor):
    await editor.start(debounceMs=300)
    uri = editor.open("train.py", "import torch\n")
    assert await editor.diagnostics(uri, version=1) == []
    for _ in range(5):  # five keystrokes well inside the debounce window
        version = editor.insert(uri, 1, 0, "x")
    editor.insert(uri, 1, 5, " = torch.cuda.amp.GradScaler()\n")
    diags = await editor.diagnostics(uri, version=7)
    assert [(d.code, d.range.start.line) for d in diags] == [("FP401", 1)]
    await asyncio.sleep(0.5)
    assert [p.version for p in editor.published(uri)] == [1, 7], version


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
    assert "Deprecated `torch.cuda.amp` / `torch.cpu.amp` API; use `torch.amp` with a device." in text
    assert DOCS in text
    nothing = await editor.client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(0, 1))
    )
    assert nothing is None


async def test_positions_count_utf16_code_units(editor: Editor):
    await editor.start()
    text = 'import torch\ns = "\U0001f525é"; torch.cuda.amp.GradScaler()\n'
    uri = editor.open("train.py", text)
    [diag] = await editor.diagnostics(uri, version=1)
    # The emoji is two UTF-16 code units, "é" one: the call starts at unit 11, not 10.
    assert diag.range == _range(1, 11, 1, 38)


async def test_positions_follow_the_negotiated_encoding(editor: Editor):
    result = await editor.start(caps="emacs")  # offers utf-32 first
    assert result.capabilities.position_encoding == types.PositionEncodingKind.Utf32
    uri = editor.open("train.py", 'import torch\ns = "\U0001f525é"; torch.cuda.amp.GradScaler()\n')
    [diag] = await editor.diagnostics(uri, version=1)
    assert diag.range == _range(1, 10, 1, 37)


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
    with pytest.raises(JsonRpcException, match="(?i)invalid"):
        await raw_request(editor.client, "textDocument/hover", {"bogus": 1})
    with pytest.raises(JsonRpcMethodNotFound):
        await raw_request(editor.client, "fp16lint/noSuchMethod", {})
    raw_notify(editor.client, b'{"jsonrpc": "2.0", "method": "textDocument/didChange", "params": 3}')
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


async def test_cross_file_facts_follow_edits(probe_editor: Editor):
    editor = probe_editor
    editor.write("lib.py", "def probe_helper():\n    return 1\n")
    editor.write("main.py", "from lib import probe_helper\n\nprobe_helper()\n")
    await editor.start()
    await wait_for(lambda: any("indexed" in m.message for m in editor.client.log_messages))

    main = editor.open("main.py", "from lib import probe_helper\n\nprobe_helper()\n")
    [diag] = await editor.diagnostics(main, version=1)
    assert diag.code == "FP990" and diag.message == "`probe_helper` comes from another file."
    [related] = diag.related_information
    assert related.location.uri == editor.uri("lib.py")
    assert related.location.range == _range(0, 4, 0, 16)
    assert related.message == "`probe_helper` is defined here"

    # Renaming the function in the other (open, unsaved) buffer updates this file's findings.
    lib = editor.open("lib.py", "def probe_helper():\n    return 1\n")
    await editor.diagnostics(lib, version=1)
    editor.change(lib, "def probe_renamed():\n    return 1\n")
    diags = await editor.diagnostics(main, predicate=lambda d: d and "no file" in d[0].message)
    assert diags[0].message == "`probe_helper` is defined in no file of the project."

    # A buffer that does not parse keeps its last good facts for the other files.
    editor.change(lib, "def probe_helper(:\n")
    await editor.diagnostics(lib, version=3, predicate=bool)
    await asyncio.sleep(0.3)
    assert "no file" in editor.published(main)[-1].diagnostics[0].message

    # Closing it without saving: the file on disk counts again.
    editor.client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(lib))
    )
    diags = await editor.diagnostics(main, predicate=lambda d: d and "another" in d[0].message)
    assert diags[0].related_information[0].location.uri == editor.uri("lib.py")

    # A file created on disk is indexed when the client reports it.
    editor.write("more.py", "probe_missing()\n")
    editor.change(main, "from lib import probe_helper\n\nprobe_helper()\nprobe_extra()\n")
    diags = await editor.diagnostics(main, version=2)
    assert [d.message for d in diags][-1] == "`probe_extra` is defined in no file of the project."
    editor.write("more.py", "def probe_extra():\n    pass\n")
    editor.client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            [types.FileEvent(editor.uri("more.py"), types.FileChangeType.Created)]
        )
    )
    diags = await editor.diagnostics(main, predicate=lambda d: all("another" in x.message for x in d))
    assert [d.related_information[0].location.uri for d in diags] == [
        editor.uri("lib.py"),
        editor.uri("more.py"),
    ]


async def test_real_cross_file_finding_follows_the_cast_site(editor: Editor):
    """FP201 in models.py exists because train.py casts the model: editing train.py's buffer
    updates models.py's diagnostics, with the cast site as related information."""
    from fp16lint.rules.fp2xx_common import INHERITANCE_PROJECT

    for name, text in INHERITANCE_PROJECT.items():
        editor.write(name, text)
    await editor.start()
    await wait_for(lambda: any("indexed 2 files" in m.message for m in editor.client.log_messages))
    models = editor.open("models.py", INHERITANCE_PROJECT["models.py"])
    diags = [d for d in await editor.diagnostics(models, version=1) if d.code == "FP201"]
    assert [d.range.start.line for d in diags] == [7, 20]
    for diag in diags:
        [related] = diag.related_information
        assert related.location.uri == editor.uri("train.py")
        assert related.location.range.start == types.Position(4, 8)
        assert related.message == "`Net` is cast to float16 here"

    train = editor.open("train.py", INHERITANCE_PROJECT["train.py"])
    await editor.diagnostics(train, version=1)
    editor.change(train, INHERITANCE_PROJECT["train.py"].replace("float16", "bfloat16"))
    await wait_for(lambda: not editor.published(models)[-1].diagnostics)

    editor.client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(train))
    )
    diags = await editor.diagnostics(models, predicate=bool)
    assert [d.range.start.line for d in diags if d.code == "FP201"] == [7, 20]
