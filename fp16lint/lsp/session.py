"""What the language server knows, kept in memory: the open buffers, the settings of each
config file, and one ``FileSummary`` per Python file of the workspace (open buffers first).

A change re-lints that one file with the engine (re-parsing only the statements the edit
touched, see ``incremental``) and joins the summaries again with the project pass, so
cross-file findings follow edits without re-reading the workspace. Nothing here speaks LSP;
the server calls it from a single worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from fp16lint import isolation, notebook, source, suppression
from fp16lint.analysis.context import FileSummary
from fp16lint.config import ConfigError, find_config, load_settings
from fp16lint.discovery import discover
from fp16lint.findings import Finding
from fp16lint.lsp import worker
from fp16lint.project import run_project
from fp16lint.rules.base import Rule
from fp16lint.runner import (
    MAX_FILE_CHARS,
    Options,
    _filter,
    _read_error,
    fix_text,
    lost_summary,
    module_name_for,
    selected_rules,
)
from fp16lint.settings import Settings


@dataclass
class Document:
    path: str  # absolute
    text: str
    version: int | None


@dataclass
class Config:
    """One config file's settings and the rules they enable (``key`` is the file or a folder)."""

    key: str
    settings: Settings
    rules: list[type[Rule]]
    error: str | None = None

    @property
    def has_project_rules(self) -> bool:
        return any(rule.is_project_rule() for rule in self.rules)


@dataclass
class Linted:
    """The findings published for one open document, and the text they refer to."""

    version: int | None
    text: str
    findings: list[Finding] = field(default_factory=list)


class Session:
    """``isolate``: parse and lint in a worker process (the server does; in-process, the trees
    kept for re-use are visible as ``parsed`` and ``offsets``)."""

    def __init__(self, roots: list[Path] | None = None, isolate: bool = False):
        self.roots = [root.resolve() for root in roots or []]
        self.documents: dict[str, Document] = {}
        self.summaries: dict[str, FileSummary] = {}  # open buffers and indexed files
        self.notebooks: dict[str, notebook.Notebook] = {}  # indexed notebooks, for positions
        self.linted: dict[str, Linted] = {}
        self._trees = worker.Trees({}, {})
        self.parsed = self._trees.parsed  # open buffers' trees, for re-use
        self.offsets = self._trees.offsets  # where their reported nodes were found
        self.children = self._trees.children  # their nodes' child lists
        self._workers: isolation.Workers | None = None
        if isolate:
            self._workers = isolation.Workers(1, worker.handle, method="forkserver")
        self._closed: list[str] = []  # buffers the worker may forget
        self._configs: dict[str, Config] = {}
        self._config_of_dir: dict[str, str] = {}
        self._group: dict[str, str] = {}  # path -> config key
        self.errors: list[str] = []  # config problems for the server to show, once each

    # --- settings --------------------------------------------------------------------------
    def config_for(self, path: str) -> Config:
        folder = os.path.dirname(path)
        key = self._config_of_dir.get(folder)
        if key is None:
            found = find_config(Path(folder))
            key = str(found) if found else self._root_of(path)
            self._config_of_dir[folder] = key
        if key not in self._configs:
            self._configs[key] = self._load(key)
        return self._configs[key]

    def _root_of(self, path: str) -> str:
        for root in self.roots:
            if Path(path).is_relative_to(root):
                return str(root)
        return os.path.dirname(path)

    def _load(self, key: str) -> Config:
        if os.path.isdir(key):
            settings = Settings(root=Path(key))
            return Config(key, settings, selected_rules(settings))
        try:
            settings = load_settings(Path(key), Path(key).parent)
        except ConfigError as exc:
            settings = Settings(root=Path(key).parent)
            config = Config(key, settings, selected_rules(settings), str(exc))
            self.errors.append(f"{exc}; using the default settings until it is fixed.")
            return config
        return Config(key, settings, selected_rules(settings))

    # --- buffers and files -----------------------------------------------------------------
    def open(self, path: str, text: str, version: int | None) -> None:
        self.documents[path] = Document(path, text, version)

    def close(self, path: str) -> list[str]:
        """Forget the buffer; the file on disk (if any) goes back into the project index.
        Returns the open documents whose findings changed."""
        self.documents.pop(path, None)
        self._trees.forget(path)
        self._closed.append(path)
        self.linted.pop(path, None)
        self.summaries.pop(path, None)
        key = self._group.pop(path, None)
        if os.path.isfile(path):
            self.index_file(path)
        return self.join(key) if key is not None else []

    def reset(self) -> None:
        """Settings changed: forget every config and summary; open buffers are linted anew."""
        self._configs.clear()
        self._config_of_dir.clear()
        self.summaries.clear()
        self.notebooks.clear()
        self._group.clear()
        self.linted.clear()

    def index_targets(self) -> Iterator[str]:
        """The files of each workspace folder whose config has project-wide rules."""
        for root in self.roots:
            config = self.config_for(str(root / "__init__.py"))
            if not config.has_project_rules:
                continue
            for found in discover([root], config.settings).files:
                yield str(found.resolve())

    def index_file(self, path: str) -> None:
        """Summarise a file from disk (open buffers win: they are what the user sees)."""
        if path in self.documents:
            return
        config = self.config_for(path)
        if not config.has_project_rules:
            return
        try:
            decoded = notebook.read(Path(path))
        except source.SourceError as exc:
            self._store(path, _read_error(path, exc), config)
            return
        if isinstance(decoded, notebook.Notebook):
            self.notebooks[path] = decoded
        self._store(path, self._summarize(path, decoded.text, config, buffer=False), config)

    def drop_file(self, path: str) -> None:
        self.notebooks.pop(path, None)
        if path not in self.documents:
            self.summaries.pop(path, None)
            self._group.pop(path, None)

    def _summarize(self, path: str, text: str, config: Config, buffer: bool) -> FileSummary:
        if len(text) > MAX_FILE_CHARS:  # libcst needs ~500 bytes of memory per character
            message = (
                f"{path}: not linted: {len(text) / 1e6:.1f} million characters is over the "
                f"{MAX_FILE_CHARS / 1e6:g} million limit for one file."
            )
            self.errors.append(message)
            return FileSummary(path, noqa=suppression.scan(text))
        module_name, is_package = module_name_for(Path(path))
        codes = tuple(rule.code for rule in config.rules)
        request = worker.Request(path, text, codes, module_name, is_package, buffer)
        if self._workers is None:
            return worker.summarize(request, config.rules, self._trees)
        request = replace(request, forget=tuple(self._closed))
        self._closed.clear()
        limit = worker.EDITOR_WALL_LIMIT
        return self._workers.run([request], [[0]], limit, lost_summary)[0]

    def shutdown(self) -> None:
        if self._workers is not None:
            self._workers.close()

    def _store(self, path: str, summary: FileSummary, config: Config) -> None:
        previous = self.summaries.get(path)
        if not summary.parsed and previous is not None:
            # While a buffer does not parse, its last good facts stand in for the project.
            summary.facts = previous.facts
        self.summaries[path] = summary
        self._group[path] = config.key

    # --- linting ---------------------------------------------------------------------------
    def lint(self, path: str) -> list[str]:
        """Lint the open document ``path`` as it is now and join the project again.

        Returns the open documents to publish: ``path`` whenever it was linted at a new
        version, and the others whose findings changed."""
        doc = self.documents.get(path)
        if doc is None:
            return []
        done = self.linted.get(path)
        if done is not None and done.version == doc.version and done.text == doc.text:
            return []
        config = self.config_for(path)
        self._store(path, self._summarize(path, doc.text, config, buffer=True), config)
        changed = self.join(config.key, fresh=doc)
        return changed if path in changed else [path, *changed]

    def join(self, key: str, fresh: Document | None = None) -> list[str]:
        """Run the project pass for one config's files and update the open documents' findings
        (``fresh``: a document just linted, published with its new text and version).

        Each ``Linted`` record is replaced whole, so a reader on another thread never sees a
        text with another version's findings."""
        config = self._configs.get(key)
        if config is None:
            return []
        members = {p: s for p, s in self.summaries.items() if self._group.get(p) == key}
        project = run_project(members.values(), config.rules, config.settings)
        shown = {
            p: s for p, s in members.items() if p in self.linted or (fresh and p == fresh.path)
        }
        project.findings = [f for f in project.findings if f.path in shown]
        found = _filter(shown, project, config.settings)
        found = notebook.to_cells(
            found, {p: self.notebooks[p] for p in members if p in self.notebooks}
        )
        by_path: dict[str, list[Finding]] = {p: [] for p in shown}
        for finding in sorted(found, key=lambda f: f.sort_key):
            by_path[finding.path].append(finding)
        changed = []
        for p, findings in by_path.items():
            if fresh is not None and p == fresh.path:
                self.linted[p] = Linted(fresh.version, fresh.text, findings)
                changed.append(p)
            elif self.linted[p].findings != findings:
                old = self.linted[p]
                self.linted[p] = Linted(old.version, old.text, findings)
                changed.append(p)
        return changed

    def join_all(self) -> list[str]:
        changed: list[str] = []
        for key in {self._group[p] for p in self.linted if p in self._group}:
            changed += self.join(key)
        return changed

    def fix_all(self, path: str) -> str | None:
        """The document's text with every safe fix applied, or None if nothing changes."""
        doc = self.documents.get(path)
        linted = self.linted.get(path)
        if doc is None or linted is None or linted.text != doc.text:
            return None
        config = self.config_for(path)
        text, fixed, _ = fix_text(
            path, doc.text, linted.findings, config.rules, config.settings, Options()
        )
        return text if fixed and text != doc.text else None
