"""Link check over the documentation.

Every ``*.md`` under ``docs/`` plus the repository-root ``README.md`` and ``DEVELOPERS.md`` (those
that exist) is checked: relative links must point at existing files inside the repository, and
``#anchors`` must match a heading (GitHub slug rules) or an explicit ``id``/``name`` in the
target markdown file. http(s), mailto and other ``scheme:`` links are skipped. Files added later
are picked up automatically.

A second check keeps the facts page honest: where a link to a ``.py`` file is followed by
backticked ``test_*`` names, those functions must be defined in that file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOT_FILES = ("README.md", "DEVELOPERS.md")


def markdown_files(root: Path = ROOT) -> list[Path]:
    files: list[Path] = []
    docs = root / "docs"
    if docs.is_dir():
        files += sorted(p for p in docs.rglob("*.md") if p.is_file())
    files += [root / name for name in ROOT_FILES if (root / name).is_file()]
    return files


# --------------------------------------------------------------------------- markdown parsing

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)")
INLINE_LINK = re.compile(
    r"!?\[(?P<text>[^\]]*)\]\(\s*(?:<(?P<angle>[^>]*)>|(?P<bare>[^()\s]*(?:\([^()\s]*\)[^()\s]*)*))"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
REFERENCE_DEF = re.compile(r"^ {0,3}\[(?P<label>[^\]]+)\]:\s*(?:<(?P<angle>[^>]*)>|(?P<bare>\S+))")
HTML_ATTR_LINK = re.compile(
    r"<(?:a|img|source)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']*)[\"']", re.I
)
HTML_ID = re.compile(r"<[a-z][^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
LINE_ANCHOR = re.compile(r"^L(\d+)(?:C\d+)?(?:-L(\d+)(?:C\d+)?)?$")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks, HTML comments removed."""
    text = HTML_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    out: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence = match.group(1)
                continue
            out.append((number, line))
        elif (
            match
            and match.group(1)[0] == fence[0]
            and len(match.group(1)) >= len(fence)
            and not line.strip()[len(match.group(1)) :].strip()
        ):
            fence = None
    return out


def _without_code_spans(line: str) -> str:
    return CODE_SPAN.sub(lambda m: "x" * len(m.group(0)), line)


@dataclass(frozen=True)
class Link:
    line: int
    target: str


def extract_links(text: str) -> list[Link]:
    links: list[Link] = []
    for number, line in prose_lines(text):
        line = _without_code_spans(line)
        for m in INLINE_LINK.finditer(line):
            target = m.group("angle") if m.group("angle") is not None else m.group("bare")
            links.append(Link(number, target))
        m = REFERENCE_DEF.match(line)
        if m:
            target = m.group("angle") if m.group("angle") is not None else m.group("bare")
            links.append(Link(number, target))
        links += [Link(number, target) for target in HTML_ATTR_LINK.findall(line)]
    return links


def _heading_text(raw: str) -> str:
    """Approximate the rendered text of a heading (what GitHub slugs)."""
    parts = re.split(r"(`+[^`]*`+)", raw)
    rendered: list[str] = []
    for part in parts:
        if part.startswith("`"):
            rendered.append(part.strip("`"))
            continue
        part = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", part)  # images -> alt text
        part = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", part)  # links -> text
        part = re.sub(r"\[([^\]]*)\]\[[^\]]*\]", r"\1", part)  # reference links -> text
        part = re.sub(r"<[^>]+>", "", part)  # inline HTML
        part = re.sub(r"(?<!\w)(_{1,2})(\S(?:.*?\S)?)\1(?!\w)", r"\2", part)  # _em_, __strong__
        rendered.append(part)
    return "".join(rendered).strip()


def github_slug(heading: str) -> str:
    """GitHub's heading anchor: lowercase, drop punctuation but ``-`` and ``_``, spaces to ``-``."""
    text = _heading_text(heading).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(text: str) -> set[str]:
    """Every anchor a markdown file defines: heading slugs (deduplicated like GitHub) and ids."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}

    def add_heading(raw: str) -> None:
        slug = github_slug(raw)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")

    previous = ""
    for _, line in prose_lines(text):
        atx = ATX_HEADING.match(line)
        if atx:
            add_heading(atx.group(2) or "")
            previous = ""
            continue
        if (
            SETEXT_UNDERLINE.match(line)
            and previous.strip()
            and not previous.lstrip().startswith(("-", "*", "+", ">", "|"))
        ):
            add_heading(previous.strip())
            previous = ""
            continue
        anchors.update(HTML_ID.findall(line))
        previous = line
    return anchors


@cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- checking


def check_link(source: Path, link: Link, root: Path = ROOT) -> str | None:
    """Return a problem description, or None when the link is fine or not checkable."""
    target = link.target.strip()
    where = f"{source.relative_to(root)}:{link.line}: [{target}]"
    if not target:
        return f"{where} empty link target"
    if SCHEME.match(target) or target.startswith("//"):
        return None  # http(s), mailto and other external links
    path_part, _, anchor = target.partition("#")
    path_part = unquote(path_part.split("?", 1)[0])
    anchor = unquote(anchor)
    if path_part:
        base = root if path_part.startswith("/") else source.parent
        resolved = (base / path_part.lstrip("/")).resolve()
        try:
            resolved.relative_to(root)
        except ValueError:
            return f"{where} points outside the repository"
        if not resolved.exists():
            return f"{where} points at a missing file: {resolved.relative_to(root)}"
    else:
        resolved = source
    if not anchor:
        return None
    if resolved.is_dir():
        return None
    if resolved.suffix.lower() in {".md", ".markdown"}:
        anchors = anchors_of(_read(resolved))
        if anchor not in anchors:
            known = ", ".join(sorted(anchors)) or "none"
            return f"{where} anchor #{anchor} not found in {resolved.relative_to(root)} (anchors: {known})"
        return None
    lines = LINE_ANCHOR.match(anchor)
    if lines:
        count = len(_read(resolved).splitlines())
        last = int(lines.group(2) or lines.group(1))
        if last > count:
            return (
                f"{where} line anchor past the end of {resolved.relative_to(root)} ({count} lines)"
            )
    return None


MD_FILES = markdown_files()


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("md_file", MD_FILES, ids=_id)
def test_relative_links_resolve(md_file: Path):
    problems = [
        problem
        for link in extract_links(_read(md_file))
        if (problem := check_link(md_file, link)) is not None
    ]
    assert not problems, "\n".join(problems)


CITED_TESTS = re.compile(
    r"\[(?P<text>[^\]]*)\]\((?P<target>[^)\s#]+\.py)\)"
    r"(?P<names>(?:[\s,;/]*(?:(?:and|or)\s+)?`[^`]+`)*)"
)


def cited_test_names(text: str) -> list[tuple[int, str, str]]:
    """(line, target, name) for each backticked ``test_*`` name right after a link to a .py file.

    A link written ``[test](path.py)`` with no test name after it yields ``(line, path, "")``.
    Names may continue on the next lines (the docs wrap their paragraphs).
    """
    lines = prose_lines(text)
    joined = "\n".join(line for _, line in lines)
    starts: list[int] = []
    offset = 0
    for _, line in lines:
        starts.append(offset)
        offset += len(line) + 1
    found: list[tuple[int, str, str]] = []
    for m in CITED_TESTS.finditer(joined):
        index = max(i for i, start in enumerate(starts) if start <= m.start())
        number = lines[index][0]
        names = [
            bare
            for name in re.findall(r"`([^`]+)`", m.group("names"))
            if re.fullmatch(r"test_\w+", bare := name.split("[", 1)[0].split("::")[-1])
        ]
        if names:
            found += [(number, m.group("target"), name) for name in names]
        elif m.group("text").strip() == "test":
            found.append((number, m.group("target"), ""))
    return found


@pytest.mark.parametrize("md_file", MD_FILES, ids=_id)
def test_cited_test_functions_exist(md_file: Path):
    problems: list[str] = []
    for number, target, name in cited_test_names(_read(md_file)):
        if not name:
            problems.append(f"{_id(md_file)}:{number}: [test]({target}) names no test function")
            continue
        path = (md_file.parent / unquote(target)).resolve()
        if not path.is_file():
            continue  # reported by test_relative_links_resolve
        if not re.search(rf"^\s*(?:async\s+)?def {re.escape(name)}\(", _read(path), re.M):
            problems.append(f"{_id(md_file)}:{number}: `{name}` is not defined in {target}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the checker itself


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("What a cast converts", "what-a-cast-converts"),
        ("`model.half()` vs `model.to(torch.float16)`", "modelhalf-vs-modeltotorchfloat16"),
        ("Folklore, corrected!", "folklore-corrected"),
        ("CUDA-only facts (cited)", "cuda-only-facts-cited"),
        ("`_keep_in_fp32_modules`", "_keep_in_fp32_modules"),
        ("A [linked](x.md) *word*", "a-linked-word"),
        ("_emphasis_ and snake_case", "emphasis-and-snake_case"),
        ("Ünïcode stays", "ünïcode-stays"),
    ],
)
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_anchor_collection_handles_duplicates_setext_ids_and_code_blocks():
    text = "\n".join(
        [
            "# Title",
            "## Same",
            "## Same",
            "Setext heading",
            "--------------",
            '<a id="custom-id"></a>',
            "```python",
            "# not a heading",
            "```",
            "## Closing hashes ##",
        ]
    )
    assert anchors_of(text) == {
        "title",
        "same",
        "same-1",
        "setext-heading",
        "custom-id",
        "closing-hashes",
    }


def test_link_extraction_skips_code_and_reads_every_form():
    text = "\n".join(
        [
            'See [a](a.md), [b](<b c.md> "title") and ![img](img/x.png).',
            "`[not](a-link.md)` and [c](c.md#part)",
            "```",
            "[fenced](nope.md)",
            "```",
            "<!-- [commented](nope.md) -->",
            "[ref]: d.md",
            '<a href="e.md">e</a>',
            "[web](https://example.com) [mail](mailto:x@y.z)",
            "[`code text`](f.py) `test_x`",
        ]
    )
    targets = [link.target for link in extract_links(text)]
    assert targets == [
        "a.md",
        "b c.md",
        "img/x.png",
        "c.md#part",
        "d.md",
        "e.md",
        "https://example.com",
        "mailto:x@y.z",
        "f.py",
    ]


def test_check_link_reports_missing_files_and_anchors(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("# Page\n## Known section\n", encoding="utf-8")
    (tmp_path / "code.py").write_text("a = 1\nb = 2\n", encoding="utf-8")

    def problem(target: str) -> str | None:
        return check_link(page, Link(1, target), root=tmp_path)

    assert problem("#known-section") is None
    assert problem("page.md#page") is None
    assert problem("../code.py#L2") is None
    assert problem("/code.py") is None
    assert problem("https://example.com/x#y") is None
    assert problem("mailto:someone@example.com") is None
    assert "missing file" in problem("missing.md")
    assert "anchor #nope not found" in problem("#nope")
    assert "line anchor past the end" in problem("../code.py#L9")
    assert "outside the repository" in problem("../../elsewhere.md")
    assert "empty link target" in problem("")


def test_cited_test_names_are_collected():
    text = "\n".join(
        [
            "claim ([test](../tests/facts/t.py) `test_a`, `test_b[x]` and `helper`)",
            "wrapped ([test](u.py)",
            "`test_c`), bare [test](v.py) and [source](w.py)",
        ]
    )
    assert cited_test_names(text) == [
        (1, "../tests/facts/t.py", "test_a"),
        (1, "../tests/facts/t.py", "test_b"),
        (2, "u.py", "test_c"),
        (3, "v.py", ""),
    ]


def test_markdown_files_are_discovered(tmp_path):
    (tmp_path / "docs" / "rules").mkdir(parents=True)
    (tmp_path / "docs" / "rules" / "FP101.md").write_text("# x\n", encoding="utf-8")
    (tmp_path / "README.md").write_text("# r\n", encoding="utf-8")
    found = [p.relative_to(tmp_path).as_posix() for p in markdown_files(tmp_path)]
    assert found == ["docs/rules/FP101.md", "README.md"]
