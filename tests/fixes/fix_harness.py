"""Running a rule's example before and after its fix, in torch (issue 18).

A ``Case`` names a source (an INVALID example of the rule, or code written for the purpose), a
``driver`` that builds the inputs and calls the code, and the dtypes to run it in. ``outcome``
execs a source in a fresh namespace (``torch`` pre-imported, as the examples assume) and runs the
driver; ``check`` asserts what every fix claims (no new exception, same output dtypes and
shapes, no inf/NaN where the original overflowed or raised, masks still mask, a fully masked
row does not become NaN where the original did not, float32 unchanged where the rule says so).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fp16lint.runner import Options, lint_text
from fp16lint.settings import Settings

Driver = Callable[[dict[str, Any], torch.dtype], dict[str, Any]]
HALF, FLOAT = torch.float16, torch.float32


@dataclass(frozen=True)
class Case:
    rule: str
    name: str  # "invalid[3]" for the rule's own example, else a short label
    source: str
    driver: Driver | None  # None: not run (``unproven`` says why)
    dtypes: tuple[torch.dtype, ...] = (HALF, FLOAT)
    # Textual changes made to both versions before running them (a model id, "cuda" -> "cpu").
    subs: tuple[tuple[str, str], ...] = ()
    same_in_fp32: bool = True  # the fix leaves float32 results as they were
    unsafe_because: str = ""  # the fix is proven to change behaviour: the check expects it
    unproven: str = ""  # why this case cannot be run here
    needs: tuple[str, ...] = field(default=())  # "cuda", "transformers"
    converts_to: torch.dtype | None = None  # FP102: the discarded conversion now happens


@dataclass
class Outcome:
    outputs: dict[str, Any] | None = None
    error: BaseException | None = None

    def __str__(self) -> str:
        return f"raised {self.error!r}" if self.error else f"returned {sorted(self.outputs)}"


def fixed_source(source: str, rule: str, root: Path) -> str:
    """The fix of ``source``, linted in library mode: a case proves the fix wherever the rule
    reports, whether or not the case's few lines show where float16 comes from."""
    settings = Settings(root=root, select=(rule,), assume_fp16=True, library_info=True)
    return lint_text(source, "case.py", settings, Options(fix=True, unsafe_fixes=True)).fixed_text


def _autocast_state() -> tuple:
    return tuple(
        (torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in ("cpu", "cuda")
    )


def outcome(
    source: str, case: Case, dtype: torch.dtype, context: Mapping[str, str] | None = None
) -> Outcome:
    """Run ``source`` (after ``case.subs``, formatted with ``context``) and ``case.driver``.
    ``_probe(x=None)`` in the source records the autocast state into ``_probes``."""
    for old, new in case.subs:
        source = source.replace(old, new.format(**(context or {})))
    probes: list[tuple] = []

    def probe(value: Any = None) -> Any:
        probes.append(_autocast_state())
        return value

    namespace: dict[str, Any] = {
        "torch": torch, "__name__": "fix_case", "_probe": probe, "_probes": probes
    }  # fmt: skip
    torch.manual_seed(0)
    try:
        with warnings.catch_warnings():  # deprecated AMP names, autocast("cuda") on CPU
            warnings.simplefilter("ignore", (FutureWarning, UserWarning))
            exec(compile(source, "case.py", "exec"), namespace)
            assert case.driver is not None
            return Outcome(outputs=case.driver(namespace, dtype))
    except Exception as exc:  # the exception is the observation
        return Outcome(error=exc)


def _tensors(outputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in outputs.items() if isinstance(v, torch.Tensor)}


def _finite(t: torch.Tensor) -> bool:
    return not t.is_floating_point() or bool(torch.isfinite(t).all())


def check(case: Case, before: Outcome, after: Outcome, dtype: torch.dtype) -> None:
    """Assert what the fix claims for one dtype (see the module docstring)."""
    if after.error is not None:
        raise AssertionError(f"{case.rule} {case.name} ({dtype}): the fixed code {after}")
    out = after.outputs or {}
    for key, value in out.items():
        if key.startswith("masked:"):  # a probability tensor and its masked places: weight 0
            probs, masked = value
            assert not torch.isnan(probs).any(), f"{key}: NaN after the fix"
            assert (probs[masked] == 0).all(), f"{key}: a masked place got weight"
    for key, value in out.items():
        if key.startswith("close:"):  # the fixed result is the float32 reference's, in dtype
            result, reference = value
            torch.testing.assert_close(result.float(), reference.float(), rtol=2e-2, atol=2e-2)
    for key, value in out.items():
        if key.startswith("kept:"):  # FP501: the modules a load keeps in float32 stay float32
            assert value == FLOAT, f"{key}: {value} after the fix"
    if before.error is not None:  # the original raised: everything must now be finite
        for key, t in _tensors(out).items():
            assert _finite(t), f"{key}: inf/NaN after the fix where the original raised"
        return
    old = before.outputs or {}
    assert old.keys() == out.keys()
    if case.converts_to is not None:
        for key, t in _tensors(out).items():
            assert t.dtype == case.converts_to, f"{key}: the conversion did not happen"
            torch.testing.assert_close(t, old[key].to(case.converts_to))
        return
    for key, t in _tensors(out).items():
        assert (t.dtype, t.shape) == (old[key].dtype, old[key].shape), key
        if not _finite(old[key]) and dtype is HALF:
            assert _finite(t), f"{key}: still inf/NaN after the fix"
        if _finite(old[key]):
            assert _finite(t), f"{key}: the fix created inf/NaN"
        if dtype is FLOAT and case.same_in_fp32:
            torch.testing.assert_close(t, old[key], equal_nan=True, msg=f"{key} changed in fp32")
    for key, value in out.items():
        if key.startswith("same:"):
            assert value == old[key], f"{key}: {old[key]!r} became {value!r}"
        if key.startswith("masked:"):
            old_probs, _ = old[key]
            # a fully masked row does not become NaN where the original did not
            assert not (torch.isnan(value[0]) & ~torch.isnan(old_probs)).any(), key
