"""Generate ``fp16lint/data/hf_keep_fp32.py``: transformers and diffusers model classes that
keep modules in float32 when loaded with ``dtype=torch.float16``.

``PreTrainedModel.from_pretrained`` keeps the modules named by a class's
``_keep_in_fp32_modules`` (fp16 loads) and ``_keep_in_fp32_modules_strict`` (fp16 and bf16
loads) in float32 (transformers/modeling_utils.py); diffusers' ``ModelMixin.from_pretrained``
keeps ``_keep_in_fp32_modules`` whenever a dtype is given (diffusers/models/
model_loading_utils.py). ``model.half()`` afterwards converts them too. This script reads the
installed packages' model files with libcst — it never imports them — follows class inheritance
by class name, and writes every model class whose own or inherited lists are non-empty,
stamped with the package versions.

Run: ``.venv/bin/python scripts/gen_hf_keep_fp32.py`` (``--check`` exits 1 when the committed
table differs from what the installed packages give).
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import libcst as cst

from fp16lint.data.generated import write_or_check

TARGET = Path(__file__).resolve().parents[1] / "fp16lint" / "data" / "hf_keep_fp32.py"
_ATTRIBUTES = ("_keep_in_fp32_modules", "_keep_in_fp32_modules_strict")
_UNSET = object()


def _strings(value: cst.BaseExpression) -> list[str] | object | None:
    """A list/tuple/set of string literals (or None/[]) → the strings; anything else: unset."""
    if isinstance(value, cst.Name) and value.value == "None":
        return None
    if isinstance(value, (cst.List, cst.Tuple, cst.Set)):
        out = []
        for element in value.elements:
            if not isinstance(element.value, cst.SimpleString):
                return _UNSET
            out.append(element.value.evaluated_value)
        return out
    return _UNSET


def _class_sources(text: str) -> list[str]:
    """The source of each top-level class, reduced to what the table needs: a class whose body
    never names the attributes is parsed as its header plus ``pass`` (modeling files run to
    thousands of lines; parsing only this is ten times faster than the whole file)."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line[:1] not in ("", " ", "\t", "\n", "\r", "#")]
    out = []
    for index, start in enumerate(starts):
        if not lines[start].startswith("class "):
            continue
        end = starts[index + 1] if index + 1 < len(starts) else len(lines)
        block = "".join(lines[start:end])
        if "_keep_in_fp32_modules" in block:
            out.append(block)
            continue
        header = []
        for line in lines[start:end]:
            header.append(line)
            if re.sub(r"#[^'\"]*$", "", line).rstrip().endswith(":"):
                break
        out.append("".join(header) + "    pass\n")
    return out


def _parse_classes(text: str) -> list[cst.ClassDef]:
    try:
        blocks = [cst.parse_module(source) for source in _class_sources(text)]
    except cst.ParserSyntaxError:  # a layout the splitting does not expect: parse it all
        blocks = [cst.parse_module(text)]
    return [s for module in blocks for s in module.body if isinstance(s, cst.ClassDef)]


def _classes(path: Path) -> dict[str, tuple[list[str], dict[str, object]]]:
    """``{class: (base names, {attribute: strings or None})}`` for one modeling file."""
    found = {}
    for statement in _parse_classes(path.read_text(encoding="utf-8")):
        bases = []
        for base in statement.bases:
            expr = base.value
            while isinstance(expr, cst.Attribute):
                expr = expr.attr
            if isinstance(expr, cst.Name):
                bases.append(expr.value)
        own: dict[str, object] = {}
        for line in statement.body.body:
            if not isinstance(line, cst.SimpleStatementLine):
                continue
            for small in line.body:
                target = value = None
                if isinstance(small, cst.Assign) and len(small.targets) == 1:
                    target, value = small.targets[0].target, small.value
                elif isinstance(small, cst.AnnAssign) and small.value is not None:
                    target, value = small.target, small.value
                if isinstance(target, cst.Name) and target.value in _ATTRIBUTES:
                    strings = _strings(value)
                    if strings is not _UNSET:
                        own[target.value] = strings
        found[statement.name.value] = (bases, own)
    return found


def _keeps(classes: dict, name: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether ``name`` sets one of the attributes or inherits it from a class known so far."""
    if name not in classes or name in seen:
        return False
    bases, own = classes[name]
    return bool(own) or any(_keeps(classes, base, seen | {name}) for base in bases)


# package -> (model files under its folder, the base class of its models)
PACKAGES = {
    "transformers": ("models/*/modeling_*.py", "PreTrainedModel"),
    "diffusers": ("models/**/*.py", "ModelMixin"),
}


def build(root: Path, pattern: str, base_class: str) -> dict[str, tuple[str, ...]]:
    """``{class name: modules kept in float32 by an fp16 load}`` for the package at ``root``."""
    classes: dict[str, tuple[list[str], dict[str, object]]] = {}
    texts = {path: path.read_text(encoding="utf-8") for path in sorted(root.glob(pattern))}
    # Parse the files that set the attributes, then (until nothing new) the files that mention
    # a class known to set or inherit them: only they can inherit the attributes. Parsing all
    # 1000+ files gives the same table in ten times the time.
    wanted = [path for path, text in texts.items() if "_keep_in_fp32_modules" in text]
    vocabulary: dict[Path, set[str]] = {}

    def words(path: Path) -> set[str]:
        if path not in vocabulary:
            vocabulary[path] = set(re.findall(r"\b[A-Z]\w*", texts[path]))
        return vocabulary[path]

    parsed: set[Path] = set()
    while wanted:
        for path in wanted:
            parsed.add(path)
            for name, info in _classes(path).items():
                classes.setdefault(name, info)
        keeping = {name for name in classes if _keeps(classes, name)}
        wanted = [p for p in texts if p not in parsed and not keeping.isdisjoint(words(p))]

    def resolve(name: str, attribute: str, seen: frozenset[str] = frozenset()) -> list[str]:
        if name not in classes or name in seen:
            return []
        bases, own = classes[name]
        if attribute in own:
            return list(own[attribute] or [])
        for base in bases:
            inherited = resolve(base, attribute, seen | {name})
            if inherited:
                return inherited
        return []

    def is_model(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name == base_class:
            return True
        if name not in classes or name in seen:
            return False
        return any(is_model(base, seen | {name}) for base in classes[name][0])

    table = {}
    for name in sorted(classes):
        if not is_model(name):
            continue
        modules = [m for attribute in _ATTRIBUTES for m in resolve(name, attribute)]
        if modules:
            table[name] = tuple(dict.fromkeys(modules))
    return table


def _entries(table: dict[str, tuple[str, ...]]) -> list[str]:
    lines = []
    for name, modules in table.items():
        items = ", ".join(f'"{m}"' for m in modules)
        entry = f'    "{name}": ({items}{"," if len(modules) == 1 else ""}),'
        if len(entry) > 100:
            lines.append(f'    "{name}": (')
            lines.extend(f'        "{m}",' for m in modules)
            lines.append("    ),")
        else:
            lines.append(entry)
    return lines


def render(tables: dict[str, dict[str, tuple[str, ...]]], versions: dict[str, str]) -> str:
    lines = [
        '"""Model classes that keep modules in float32 when loaded in float16.',
        "",
        "Generated by scripts/gen_hf_keep_fp32.py from the installed transformers and diffusers",
        "sources (read with libcst, never imported): each model class's own or inherited",
        "``_keep_in_fp32_modules`` and (transformers) ``_keep_in_fp32_modules_strict``, in that order.",
        "``from_pretrained(..., dtype=torch.float16)`` keeps them in float32",
        "(transformers/modeling_utils.py, diffusers/models/model_loading_utils.py); ``.half()`` after",
        "loading converts them too (tests/facts/test_transformers_dtypes.py). Do not edit;",
        "regenerate after upgrading.",
        '"""',
        "",
        f'TRANSFORMERS_VERSION = "{versions["transformers"]}"',
        f'DIFFUSERS_VERSION = "{versions["diffusers"]}"',
        "",
        "KEEP_IN_FP32: dict[str, tuple[str, ...]] = {",
        *_entries(tables["transformers"]),
        "}",
        "",
        "DIFFUSERS_KEEP_IN_FP32: dict[str, tuple[str, ...]] = {",
        *_entries(tables["diffusers"]),
        "}",
    ]
    return "\n".join(lines) + "\n"


def generate() -> str:
    tables, versions = {}, {}
    for package, (pattern, base_class) in PACKAGES.items():
        spec = find_spec(package)
        if spec is None or spec.origin is None:
            raise SystemExit(f"{package} is not installed")
        tables[package] = build(Path(spec.origin).parent, pattern, base_class)
        versions[package] = metadata.version(package)
    return render(tables, versions)


def main(argv: list[str]) -> int:
    return write_or_check(TARGET, generate(), "scripts/gen_hf_keep_fp32.py", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
