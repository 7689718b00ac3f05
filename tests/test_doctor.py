"""Tests for ``fp16lint.doctor``: the environment report behind ``fp16lint doctor``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from fp16lint import __version__
from fp16lint.doctor import NOT_INSTALLED, doctor_report, format_doctor

KEYS = {
    "python",
    "platform",
    "fp16lint",
    "torch",
    "torch_importable",
    "transformers",
    "cuda_available",
    "cuda_version",
    "hip_version",
    "device_count",
    "device_name",
    "compute_capability",
    "bf16_supported",
    "bf16_native",
    "fp16_tensor_cores",
    "mps_available",
    "recommendation",
    "notes",
}


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# A meta-path finder that makes ``import torch`` (and its submodules) raise ImportError,
# as on a machine without torch.
BLOCK_TORCH = """
import sys

class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, _NoTorch())
"""

# Also hide torch's distribution metadata, so the machine looks like torch was never installed.
HIDE_TORCH_METADATA = """
import importlib.metadata as _md

_real_version = _md.version

def _version(name):
    if name.lower() == "torch":
        raise _md.PackageNotFoundError(name)
    return _real_version(name)

_md.version = _version
"""

REPORT_AS_JSON = """
import json
from fp16lint.doctor import doctor_report, format_doctor
report = doctor_report()
text = format_doctor(report)
print(json.dumps({"report": report, "text": text, "torch_loaded": "torch" in sys.modules,
                  "transformers_loaded": "transformers" in sys.modules}))
"""


# --------------------------------------------------------------------------- with real torch


def test_report_with_torch_matches_the_installed_torch():
    torch = pytest.importorskip("torch")
    report = doctor_report()
    assert set(report) == KEYS
    assert report["torch"] == torch.__version__
    assert report["torch_importable"] is True
    assert report["fp16lint"] == __version__
    assert report["python"] == ".".join(map(str, sys.version_info[:3]))
    assert report["cuda_available"] == torch.cuda.is_available()
    assert report["cuda_version"] == torch.version.cuda
    json.dumps(report)  # the CLI prints it with --output-format json


def test_transformers_version_comes_from_metadata():
    from importlib import metadata

    try:
        expected = metadata.version("transformers")
    except metadata.PackageNotFoundError:
        expected = NOT_INSTALLED
    assert doctor_report()["transformers"] == expected


def test_cpu_only_report_recommends_bfloat16():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CPU-only fact")
    report = doctor_report()
    assert report["cuda_available"] is False
    assert report["device_name"] is None
    assert report["fp16_tensor_cores"] is False
    assert report["bf16_supported"] is False
    assert "bfloat16" in report["recommendation"]
    assert "CPU" in report["recommendation"]


@pytest.mark.cuda
def test_cuda_report_fills_device_fields():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    report = doctor_report()
    major, minor = torch.cuda.get_device_capability()
    assert report["device_name"] == torch.cuda.get_device_name()
    assert report["compute_capability"] == f"{major}.{minor}"
    assert report["bf16_supported"] == torch.cuda.is_bf16_supported()
    assert report["fp16_tensor_cores"] == ((major, minor) >= (7, 0) or bool(torch.version.hip))


# --------------------------------------------------------------------------- simulated GPUs


GPUS = {
    # name: (capability, bf16 including emulation, native bf16)
    "NVIDIA A100-SXM4-40GB": ((8, 0), True, True),
    "Tesla T4": ((7, 5), True, False),
    "Tesla P100-PCIE-16GB": ((6, 0), False, False),
}


@pytest.fixture(params=list(GPUS))
def fake_gpu(request, monkeypatch):
    torch = pytest.importorskip("torch")
    name = request.param
    capability, bf16_any, bf16_native = GPUS[name]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(
        torch.cuda,
        "is_bf16_supported",
        lambda including_emulation=True: bf16_any if including_emulation else bf16_native,
    )
    monkeypatch.setattr(torch.version, "hip", None)
    return name


def test_simulated_gpu_report(fake_gpu):
    capability, bf16_any, bf16_native = GPUS[fake_gpu]
    report = doctor_report()
    assert report["cuda_available"] is True
    assert report["device_name"] == fake_gpu
    assert report["compute_capability"] == "{}.{}".format(*capability)
    assert report["bf16_supported"] is bf16_any
    assert report["bf16_native"] is bf16_native
    assert report["fp16_tensor_cores"] is (capability >= (7, 0))
    recommendation = report["recommendation"]
    if fake_gpu.startswith("NVIDIA A100"):
        assert "dtype=torch.bfloat16" in recommendation
        assert "no GradScaler" in recommendation
    elif fake_gpu == "Tesla T4":
        assert "dtype=torch.float16" in recommendation
        assert "GradScaler" in recommendation
        assert any("emulation" in note for note in report["notes"])
    else:
        assert "no float16 tensor cores" in recommendation
    text = format_doctor(report)
    assert fake_gpu in text
    assert "compute capability" in text


# --------------------------------------------------------------------------- formatting


def test_format_doctor_lists_every_fact_and_the_recommendation():
    report = {
        "python": "3.12.1",
        "fp16lint": "9.9.9",
        "torch": NOT_INSTALLED,
        "transformers": "5.24.0",
        "cuda_available": None,
        "recommendation": "install torch " * 20,
        "notes": ["a note"],
    }
    text = format_doctor(report)
    assert text.startswith("fp16lint doctor\n")
    assert "3.12.1" in text
    assert "9.9.9" in text
    assert f"torch           {NOT_INSTALLED}" in text
    assert "CUDA available  -" in text
    assert "recommendation:" in text
    assert "  - a note" in text
    assert all(len(line) <= 90 for line in text.splitlines())


# --------------------------------------------------------------------------- without torch


def test_module_import_does_not_import_torch():
    result = _run_python("import sys\nimport fp16lint.doctor\nprint('torch' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_report_without_torch():
    result = _run_python(BLOCK_TORCH + HIDE_TORCH_METADATA + REPORT_AS_JSON)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    report = out["report"]
    assert set(report) == KEYS
    assert report["torch"] == NOT_INSTALLED
    assert report["torch_importable"] is False
    assert report["cuda_available"] is None
    assert report["device_name"] is None
    assert report["notes"] == []
    assert "install PyTorch" in report["recommendation"]
    assert f"torch           {NOT_INSTALLED}" in out["text"]
    assert out["torch_loaded"] is False
    assert out["transformers_loaded"] is False  # its version is read from metadata only


def test_report_when_torch_is_installed_but_cannot_be_imported():
    result = _run_python(BLOCK_TORCH + REPORT_AS_JSON)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["report"]
    assert report["torch_importable"] is False
    assert report["torch"].endswith("(installed, but import failed)")
    assert any("blocked by the test" in note for note in report["notes"])
    assert "install PyTorch" in report["recommendation"]
