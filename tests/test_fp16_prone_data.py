"""FP502's knowledge tables match the installed libraries' sources."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest
from lintutil import REPO

from fp16lint.data.diffusers_t5_pipelines import DIFFUSERS_VERSION, T5_TEXT_ENCODER_PIPELINES
from fp16lint.data.fp16_prone import ARCHITECTURES, FLUX, LONGT5, PEGASUS, T5, by_model_id
from fp16lint.data.hf_keep_fp32 import KEEP_IN_FP32


def test_t5_pipeline_table_is_current():
    """The generated table of diffusers pipelines with a T5 text encoder matches the installed
    diffusers (regenerate with scripts/gen_t5_pipelines.py after an upgrade)."""
    try:
        installed = metadata.version("diffusers")
    except metadata.PackageNotFoundError:
        pytest.skip("diffusers is not installed")
    if installed != DIFFUSERS_VERSION:
        pytest.skip(f"table is for diffusers {DIFFUSERS_VERSION}, {installed} is installed")
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_t5_pipelines.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert {"FluxPipeline", "StableDiffusion3Pipeline", "PixArtAlphaPipeline", "IFPipeline"} <= set(
        T5_TEXT_ENCODER_PIPELINES
    )


@pytest.mark.parametrize("entry", [T5, LONGT5, PEGASUS], ids=lambda e: e.name)
def test_load_keeps_fp32_matches_keep_in_fp32_modules(entry):
    """An entry says an fp16 load keeps its overflowing layers in float32 exactly when every
    class of it declares `_keep_in_fp32_modules` (``wo`` for the T5 family)."""
    kept = [KEEP_IN_FP32.get(name) for name in entry.classes]
    assert entry.load_keeps_fp32 == all(modules and "wo" in modules for modules in kept)
    assert entry.load_keeps_fp32 or not any(kept)


def test_every_entry_cites_its_evidence_and_ids_do_not_overlap():
    for entry in ARCHITECTURES:
        assert entry.citation and entry.classes and entry.model_ids
        for prefix in entry.model_ids:
            assert by_model_id(f"owner/{prefix}x") is entry
    assert FLUX.classes.isdisjoint(c for e in ARCHITECTURES if e is not FLUX for c in e.classes)
    assert by_model_id("google/pegasus-x-base") is None
