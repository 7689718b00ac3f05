"""``fp16lint doctor``: the facts about this environment that decide float16 advice.

Which advice is right (float16 with a GradScaler, bfloat16, or neither) depends on the installed
torch and on the GPU, not on the code being linted. This module reports those facts.

It never imports torch at module import time: :func:`doctor_report` imports it lazily and still
works, with fewer fields filled in, where torch is not installed. transformers is never imported;
only its installed version is read from the package metadata.
"""

from __future__ import annotations

import platform
import textwrap
from importlib import metadata
from typing import Any

NOT_INSTALLED = "not installed"

# Compute capability from which NVIDIA GPUs have float16 tensor cores (Volta, sm_70).
FP16_TENSOR_CORE_CC = (7, 0)
# Compute capability from which bfloat16 is native rather than emulated (Ampere, sm_80).
NATIVE_BF16_CC = (8, 0)


def _distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return NOT_INSTALLED


def _fp16lint_version() -> str:
    try:
        from fp16lint import __version__
    except ImportError:  # pragma: no cover - only when the package itself is broken
        return "unknown"
    return __version__


def _empty_report() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "fp16lint": _fp16lint_version(),
        "torch": NOT_INSTALLED,
        "torch_importable": False,
        "transformers": _distribution_version("transformers"),
        "cuda_available": None,
        "cuda_version": None,
        "hip_version": None,
        "device_count": 0,
        "device_name": None,
        "compute_capability": None,
        "bf16_supported": None,
        "bf16_native": None,
        "fp16_tensor_cores": None,
        "mps_available": None,
        "recommendation": "",
        "notes": [],
    }


def doctor_report() -> dict[str, Any]:
    """Collect the environment facts that decide float16 advice.

    Returns a JSON-serialisable dict. Keys are always present; a value is ``None`` where it
    cannot be known (no torch, no GPU). ``torch`` and ``transformers`` hold a version string or
    ``"not installed"``.
    """
    report = _empty_report()
    notes: list[str] = report["notes"]
    try:
        import torch
    except Exception as exc:  # ImportError, or OSError & co. from a broken install
        torch = None
        installed = _distribution_version("torch")
        if installed != NOT_INSTALLED:
            report["torch"] = f"{installed} (installed, but import failed)"
            notes.append(f"importing torch failed: {type(exc).__name__}: {exc}")
        elif not isinstance(exc, ImportError):  # pragma: no cover - exotic installs
            notes.append(f"importing torch failed: {type(exc).__name__}: {exc}")

    if torch is not None:
        _fill_torch_facts(report, torch, notes)
    report["recommendation"] = _recommend(report)
    return report


def _fill_torch_facts(report: dict[str, Any], torch: Any, notes: list[str]) -> None:
    report["torch"] = str(getattr(torch, "__version__", "unknown"))
    report["torch_importable"] = True
    version = getattr(torch, "version", None)
    report["cuda_version"] = getattr(version, "cuda", None)
    report["hip_version"] = getattr(version, "hip", None)
    try:
        mps = getattr(getattr(torch, "backends", None), "mps", None)
        report["mps_available"] = bool(mps.is_available()) if mps is not None else False
    except Exception:  # pragma: no cover - platform specific
        report["mps_available"] = False

    try:
        available = bool(torch.cuda.is_available())
    except Exception as exc:  # pragma: no cover - driver trouble
        notes.append(f"torch.cuda.is_available() failed: {type(exc).__name__}: {exc}")
        available = False
    report["cuda_available"] = available
    if not available:
        report["bf16_supported"] = False
        report["bf16_native"] = False
        report["fp16_tensor_cores"] = False
        return

    try:
        report["device_count"] = int(torch.cuda.device_count())
        index = torch.cuda.current_device()
        report["device_name"] = str(torch.cuda.get_device_name(index))
        major, minor = torch.cuda.get_device_capability(index)
        report["compute_capability"] = f"{major}.{minor}"
    except Exception as exc:  # pragma: no cover - driver trouble
        notes.append(f"querying the CUDA device failed: {type(exc).__name__}: {exc}")
        return

    hip = bool(report["hip_version"])
    report["fp16_tensor_cores"] = hip or (major, minor) >= FP16_TENSOR_CORE_CC
    try:
        report["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
    except Exception as exc:  # pragma: no cover - driver trouble
        notes.append(f"torch.cuda.is_bf16_supported() failed: {type(exc).__name__}: {exc}")
    try:
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch without the including_emulation argument
        native = hip or (major, minor) >= NATIVE_BF16_CC
    except Exception:  # pragma: no cover - driver trouble
        native = None
    report["bf16_native"] = None if native is None else bool(native)
    if report["bf16_supported"] and report["bf16_native"] is False:
        notes.append(
            "bfloat16 works on this GPU only through emulation "
            "(torch.cuda.is_bf16_supported() counts emulation); it is slow here."
        )
    if report["device_count"] > 1:
        notes.append(
            f"{report['device_count']} CUDA devices; facts shown for the current one "
            f"(index {index})."
        )


def _recommend(report: dict[str, Any]) -> str:
    if not report.get("torch_importable"):
        return (
            "torch is not importable here, so there is no device to judge. The static linter "
            "does not need torch; install PyTorch for your platform to get device advice and "
            "the runtime checks."
        )
    if report["cuda_available"]:
        if report["bf16_native"]:
            return (
                "bfloat16 is native on this GPU: prefer torch.autocast('cuda', "
                "dtype=torch.bfloat16) and keep the weights float32. bfloat16 has float32's "
                "range, so no GradScaler is needed and overflow-prone models (T5 and other "
                "bf16-pretrained ones) stay finite."
            )
        if report["fp16_tensor_cores"]:
            return (
                "This GPU has float16 tensor cores but no native bfloat16: use "
                "torch.autocast('cuda', dtype=torch.float16) with torch.amp.GradScaler('cuda'), "
                "keep the weights float32 (no model.half() for training), and watch for "
                "overflow in models pretrained in bfloat16."
            )
        return (
            "This GPU has no float16 tensor cores (compute capability below 7.0): float16 saves "
            "memory but little time. If you need the memory, use torch.autocast('cuda', "
            "dtype=torch.float16) with torch.amp.GradScaler('cuda'); otherwise stay in float32."
        )
    advice = (
        "No CUDA device: on CPU prefer bfloat16 (torch.autocast('cpu') defaults to it). "
        "float16 on CPU is slow and partial (no float16 kernels for torch.fft, torch.linalg "
        "solvers or torch.quantile), and CPU autocast uses different op lists from CUDA "
        "autocast, so a CPU run does not reproduce CUDA float16 behaviour."
    )
    if report.get("mps_available"):
        advice += " An Apple MPS device is present; this advice covers CUDA and CPU only."
    return advice


def _yes_no(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def format_doctor(report: dict[str, Any]) -> str:
    """Render :func:`doctor_report`'s dict as aligned text for a terminal."""
    rows = [
        ("python", report.get("python")),
        ("fp16lint", report.get("fp16lint")),
        ("torch", report.get("torch")),
        ("transformers", report.get("transformers")),
        ("CUDA available", report.get("cuda_available")),
    ]
    if report.get("cuda_version"):
        rows.append(("CUDA version", report.get("cuda_version")))
    if report.get("hip_version"):
        rows.append(("HIP version", report.get("hip_version")))
    if report.get("cuda_available"):
        rows += [
            ("device", report.get("device_name")),
            ("compute capability", report.get("compute_capability")),
            ("fp16 tensor cores", report.get("fp16_tensor_cores")),
            ("bf16 supported", report.get("bf16_supported")),
            ("bf16 native", report.get("bf16_native")),
        ]
    if report.get("mps_available"):
        rows.append(("MPS available", True))
    width = max(len(label) for label, _ in rows)
    lines = ["fp16lint doctor", ""]
    lines += [f"  {label.ljust(width)}  {_yes_no(value)}" for label, value in rows]
    lines += ["", "recommendation:"]
    lines += _wrap(str(report.get("recommendation", "")), indent="  ")
    notes = report.get("notes") or []
    if notes:
        lines += ["", "notes:"]
        for note in notes:
            lines += _wrap(str(note), indent="  - ", subsequent="    ")
    return "\n".join(lines) + "\n"


def _wrap(text: str, indent: str, subsequent: str | None = None) -> list[str]:
    return textwrap.wrap(
        text,
        width=88,
        initial_indent=indent,
        subsequent_indent=subsequent if subsequent is not None else indent,
    ) or [indent.rstrip()]
