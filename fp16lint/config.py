"""``[tool.fp16lint]`` configuration: finding it, validating it, and resolving rule selection.

Lookup follows ruff: walking up from the first path, the first folder holding
``.fp16lint.toml``, ``fp16lint.toml`` or a ``pyproject.toml`` with a ``[tool.fp16lint]`` table
wins. Every problem (malformed TOML, unknown key, wrong type, unknown code) is one
``ConfigError`` line naming the file and the key; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from fp16lint.settings import Settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_NAMES = (".fp16lint.toml", "fp16lint.toml", "pyproject.toml")


class ConfigError(Exception):
    pass


_LIST_KEYS = {
    "select": "select",
    "extend-select": "extend_select",
    "ignore": "ignore",
    "extend-ignore": "extend_ignore",
    "exclude": "exclude",
    "extend-exclude": "extend_exclude",
}
_BOOL_KEYS = {
    "respect-gitignore": "respect_gitignore",
    "assume-fp16": "assume_fp16",
    "library-info": "library_info",
}
_CODE_KEYS = ("select", "extend-select", "ignore", "extend-ignore")


def find_config(start: Path) -> Path | None:
    try:
        folder = start.resolve()
    except (OSError, RuntimeError):  # a symbolic link loop: look up from where the link sits
        folder = start.absolute()
    if not folder.is_dir():
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        for name in CONFIG_NAMES:
            path = candidate / name
            if path.is_file() and (name != "pyproject.toml" or _has_table(path)):
                return path
    return None


def _has_table(pyproject: Path) -> bool:
    try:
        text = pyproject.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "[tool.fp16lint" in text


def _read_table(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # editors may add a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from exc
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})  # `tool = "x"` is valid TOML, and not ours to judge
        data = tool.get("fp16lint", {}) if isinstance(tool, dict) else {}
    elif isinstance(data.get("tool"), dict) and "fp16lint" in data["tool"]:
        raise ConfigError(
            f"{path}: `{path.name}` takes top-level keys (`select = [...]`); the "
            "`[tool.fp16lint]` header belongs in pyproject.toml, remove it here"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [tool.fp16lint] must be a table")
    return data


def _string_list(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: `{key}` must be a list of strings, got {value!r}")
    return tuple(value)


def validate_codes(codes: tuple[str, ...], where: str) -> tuple[str, ...]:
    """Codes and prefixes (``FP3``, ``FP401``, ``ALL``) that name at least one known code."""
    from fp16lint.rules import all_codes

    known = all_codes()
    out = []
    for code in codes:
        upper = code.strip().upper()
        if upper != "ALL" and not any(k.startswith(upper) for k in known):
            raise ConfigError(f"{where}: unknown rule code or prefix `{code}`")
        out.append(upper)
    return tuple(out)


def load_settings(config: Path | None, start: Path) -> Settings:
    """Settings from ``config`` if given, else from the nearest config file above ``start``."""
    path = config or find_config(start)
    if path is None:
        return Settings(root=Path.cwd())
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    table = _read_table(path)
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{path}: `{key}`"
        if key in _LIST_KEYS:
            items = _string_list(path, key, value)
            values[_LIST_KEYS[key]] = validate_codes(items, where) if key in _CODE_KEYS else items
        elif key in _BOOL_KEYS:
            if not isinstance(value, bool):
                raise ConfigError(f"{path}: `{key}` must be true or false, got {value!r}")
            values[_BOOL_KEYS[key]] = value
        elif key == "per-file-ignores":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: `per-file-ignores` must be a table of glob = [codes]")
            values["per_file_ignores"] = {
                glob: validate_codes(_string_list(path, f"per-file-ignores.{glob}", codes), where)
                for glob, codes in value.items()
            }
        elif key == "runtime":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [tool.fp16lint.runtime] must be a table")
            values["runtime"] = value
        else:
            raise ConfigError(f"{path}: unknown key `{key}` in [tool.fp16lint]")
    return Settings(root=path.parent.resolve(), source=path, **values)


def _matches(code: str, selectors: tuple[str, ...]) -> bool:
    return any(s == "ALL" or code.startswith(s) for s in selectors)


def enabled_codes(settings: Settings) -> set[str]:
    """The rule codes to run; FP000/FP999 are always on."""
    from fp16lint.rules import all_rules

    enabled = set()
    for rule in all_rules():
        if settings.select is None:
            chosen = rule.enabled_by_default
        else:
            chosen = _matches(rule.code, settings.select)
        chosen = chosen or _matches(rule.code, settings.extend_select)
        if chosen and not _matches(rule.code, settings.ignore + settings.extend_ignore):
            enabled.add(rule.code)
    return enabled
