"""Targets: which models to build and with which inputs.

From ``--target pkg.mod:make_model --inputs pkg.mod:make_inputs`` or from pyproject.toml::

    [tool.fp16lint.runtime]
    targets = [
      {factory = "pkg.mod:make_model", inputs = "pkg.mod:example_inputs", name = "tiny", device = "cpu", seed = 0},
    ]

A spec is ``module:attr`` (dotted attributes allowed) or ``path/to/file.py:attr``. A spec without
``:attr`` names a module: every ``nn.Module`` class defined in it whose constructor needs no
arguments becomes a target, with inputs guessed from its first layer (automatic mode). Only the
modules that targets name are imported. Torch is imported only when a target is resolved.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class TargetSpecError(Exception):
    """A target that cannot be resolved (bad spec, import error, missing attribute)."""


@dataclass
class TargetSpec:
    factory: str | None = None
    inputs: str | None = None
    name: str | None = None
    device: str | None = None
    seed: int | None = None
    source: str = "cli"
    #: a local Hugging Face model or diffusers pipeline folder, built with from_pretrained
    hf_model: str | None = None
    hf_dtype: str = "float16"
    #: a state_dict file loaded into the factory's model
    checkpoint: str | None = None


@dataclass
class ResolvedTarget:
    name: str
    label: str
    factory: Any
    inputs: Any  # callable or None (guess)
    device: str | None = None
    seed: int | None = None
    error: str | None = None
    checkpoint: str | None = None


def targets_from_table(table: dict[str, Any] | None, source: str = "pyproject") -> list[TargetSpec]:
    """Targets from a parsed ``[tool.fp16lint.runtime]`` table (the lead's config hand-off)."""
    if not table:
        return []
    raw = table.get("targets", [])
    if not isinstance(raw, list):
        raise TargetSpecError("[tool.fp16lint.runtime] targets must be a list of tables")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            out.append(TargetSpec(factory=item, source=source))
            continue
        if not isinstance(item, dict) or not ("factory" in item or "hf_model" in item):
            raise TargetSpecError(
                f'[tool.fp16lint.runtime] targets[{i}] needs a factory = "pkg.mod:make_model" '
                'or an hf_model = "path/to/folder"'
            )
        unknown = set(item) - set(_KEY_TYPES)
        if unknown:
            raise TargetSpecError(
                f"[tool.fp16lint.runtime] targets[{i}]: unknown key(s) {', '.join(sorted(unknown))}"
            )
        for key, value in item.items():
            wanted, example = _KEY_TYPES[key]
            if type(value) is not wanted:  # not isinstance: a bool is not a seed
                what = "an integer" if wanted is int else "a string"
                raise TargetSpecError(
                    f"[tool.fp16lint.runtime] targets[{i}]: {key} must be {what} "
                    f"({key} = {example}), not {value!r}"
                )
        if "seed" in item and not SEED_MIN <= item["seed"] <= SEED_MAX:
            raise TargetSpecError(
                f"[tool.fp16lint.runtime] targets[{i}]: seed must be within "
                f"[{SEED_MIN}, {SEED_MAX}] (torch.manual_seed's range), not {item['seed']}"
            )
        out.append(
            TargetSpec(
                factory=str(item["factory"]) if "factory" in item else None,
                inputs=item.get("inputs"),
                name=item.get("name"),
                device=item.get("device"),
                seed=item.get("seed"),
                source=source,
                hf_model=item.get("hf_model"),
                hf_dtype=str(item.get("hf_dtype", "float16")),
                checkpoint=item.get("checkpoint"),
            )
        )
    return out


#: the seeds torch.manual_seed accepts
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1

# each target key's type, with an example for the message
_KEY_TYPES: dict[str, tuple[type, str]] = {
    "factory": (str, '"pkg.mod:make_model"'),
    "inputs": (str, '"pkg.mod:example_inputs"'),
    "name": (str, '"tiny"'),
    "device": (str, '"cpu"'),
    "seed": (int, "0"),
    "hf_model": (str, '"path/to/model-folder"'),
    "hf_dtype": (str, '"float16"'),
    "checkpoint": (str, '"weights.pt"'),
}


def timeout_from_table(table: dict[str, Any] | None) -> float | None:
    """``timeout`` of ``[tool.fp16lint.runtime]`` (seconds, 0: no limit), or None when unset."""
    value = (table or {}).get("timeout")
    if value is None:
        return None
    if type(value) not in (int, float) or not value >= 0:
        raise TargetSpecError(
            f"[tool.fp16lint.runtime] timeout must be a number of seconds >= 0 (timeout = 600; "
            f"0: no limit), not {value!r}"
        )
    return float(value)


def add_import_paths(*paths: str | os.PathLike[str]) -> None:
    for p in paths:
        s = str(Path(p).resolve())
        if s not in sys.path:
            sys.path.insert(0, s)


def _import_module(name: str, root: Path) -> Any:
    if name.endswith(".py") or os.sep in name or "/" in name:
        path = Path(name)
        if not path.is_absolute():
            path = root / path
        if not path.is_file():
            raise TargetSpecError(f"no such file: {path}")
        mod_name = "fp16lint_target_" + path.stem
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise TargetSpecError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        add_import_paths(path.parent)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            raise TargetSpecError(f"importing {path} raised {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise TargetSpecError(f"importing {name!r} raised {type(exc).__name__}: {exc}") from exc


def _split(spec: str) -> tuple[str, str | None]:
    # "C:\\x\\m.py:f" has a drive colon; the attribute is after the last colon that follows ".py"
    if ".py:" in spec:
        i = spec.rindex(".py:")
        return spec[: i + 3], spec[i + 4 :]
    if ":" in spec:
        mod, _, attr = spec.partition(":")
        return mod, attr or None
    return spec, None


def load_object(spec: str, root: Path) -> Any:
    mod_name, attr = _split(spec)
    module = _import_module(mod_name, root)
    if attr is None:
        return module
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise TargetSpecError(f"{mod_name!r} has no attribute {attr!r}") from exc
    return obj


def _no_arg_constructor(cls: type) -> bool:
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return False
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is inspect.Parameter.empty:
            return False
    return True


def auto_classes(module: Any) -> list[type]:
    """nn.Module classes defined in ``module`` whose constructor needs no arguments."""
    import torch

    out = []
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if obj.__module__ != module.__name__ or not issubclass(obj, torch.nn.Module):
            continue
        if inspect.isabstract(obj) or not _no_arg_constructor(obj):
            continue
        out.append(obj)
    return out


def resolve(spec: TargetSpec, root: Path) -> list[ResolvedTarget]:
    """Import what the spec names and return its target(s); errors are kept per target."""
    if spec.hf_model:
        return [_resolve_hf(spec, root)]
    assert spec.factory is not None
    label = spec.factory
    try:
        obj = load_object(spec.factory, root)
        inputs = load_object(spec.inputs, root) if spec.inputs else None
    except TargetSpecError as exc:
        return [
            ResolvedTarget(
                spec.name or label, label, None, None, spec.device, spec.seed, error=str(exc)
            )
        ]
    if inspect.ismodule(obj):
        classes = auto_classes(obj)
        if not classes:
            msg = f"{spec.factory}: no nn.Module class with a no-argument constructor is defined there"
            return [
                ResolvedTarget(
                    spec.name or label, label, None, None, spec.device, spec.seed, error=msg
                )
            ]
        return [
            ResolvedTarget(
                name=f"{spec.name + ':' if spec.name else ''}{cls.__name__}",
                label=f"{spec.factory}:{cls.__name__} (automatic)",
                factory=cls,
                inputs=inputs,
                device=spec.device,
                seed=spec.seed,
            )
            for cls in classes
        ]
    if not callable(obj):
        import torch

        if not isinstance(obj, torch.nn.Module):
            msg = f"{spec.factory} is a {type(obj).__name__}: name a callable that returns an nn.Module"
            return [
                ResolvedTarget(
                    spec.name or label, label, None, None, spec.device, spec.seed, error=msg
                )
            ]
    name = spec.name or spec.factory.rsplit(":", 1)[-1]
    return [
        ResolvedTarget(name, label, obj, inputs, spec.device, spec.seed, checkpoint=spec.checkpoint)
    ]


def _resolve_hf(spec: TargetSpec, root: Path) -> ResolvedTarget:
    from .weights import WeightsError, hf_factory

    path = Path(spec.hf_model or "")
    if not path.is_absolute():
        path = root / path if (root / path).exists() else path.resolve()
    label = f"--hf-model {spec.hf_model} (dtype={spec.hf_dtype})"
    name = spec.name or path.name
    try:
        factory, guessed = hf_factory(str(path), spec.hf_dtype)
        inputs = load_object(spec.inputs, root) if spec.inputs else guessed
    except (WeightsError, TargetSpecError) as exc:
        return ResolvedTarget(name, label, None, None, spec.device, spec.seed, error=str(exc))
    return ResolvedTarget(name, label, factory, inputs, spec.device, spec.seed)
