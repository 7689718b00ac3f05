"""Plain records of what the probe saw: one per module call, one per op call, one per run.

This module never imports torch, so reports can be loaded, joined and formatted without it.
Numeric JSON fields are numbers or ``null``: a float that is not finite (an infinite relative
error) is written as ``null`` with a flag next to it, ``"<field>_nonfinite": "inf" | "-inf" |
"nan"``, read back by ``from_dict``. A headroom of ``None`` means "nothing non-zero was seen"
(unbounded); a headroom of 0 means the values were inf/NaN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

FP16_MAX = 65504.0
#: transformers clamps hidden states to ``finfo(float16).max - 1000``, which is 64512 in fp16.
FP16_CLAMP_VALUES = (64512.0, 65504.0)
BF16_MAX = 3.3895313892515355e38

CONFIRMED = "confirmed"
#: inf/NaN arrived from upstream: the place is not the cause, but its figures are not to be trusted
POISONED = "poisoned"
AT_RISK = "at-risk"
NOT_OBSERVED = "not-observed"
NOT_REACHED = "not-reached"
VERDICT_RANK = {CONFIRMED: 4, AT_RISK: 3, POISONED: 2, NOT_OBSERVED: 1, NOT_REACHED: 0}

#: Run names, in the order reports show them.
RUN_FP32 = "fp32"
RUN_FP16 = "fp16"
RUN_AUTOCAST = "autocast-fp16"
RUN_BF16 = "bf16"
RUN_ORDER = (RUN_FP32, RUN_FP16, RUN_AUTOCAST, RUN_BF16)


@dataclass(frozen=True)
class Thresholds:
    """What turns a figure into a verdict. Every figure is reported whatever these say."""

    #: relative error created at a place (an op against its own fp32 recomputation, a module
    #: against the fp32 run when its input was still close) above which the place is confirmed
    rel_error: float = 0.05
    #: at-risk when max |x| is within this factor of 65504
    risk_factor: float = 10.0
    #: at-risk when at least this fraction of non-zero fp32 values flush to zero
    heavy_underflow: float = 0.05
    #: a GradScaler is needed when at least this fraction of non-zero fp32 gradients flush to zero
    grad_underflow: float = 0.001

    @property
    def risk_level(self) -> float:
        return FP16_MAX / self.risk_factor


def nonfinite_flag(value: float | None) -> str | None:
    """``"inf"``, ``"-inf"`` or ``"nan"`` for a float that is not finite, else None."""
    if value is None or math.isfinite(value):
        return None
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def clean_float(value: float | None) -> float | None:
    """JSON-safe number: a non-finite float becomes None (see :func:`put_float` for the flag)."""
    if value is None or not math.isfinite(value):
        return None
    return value


def put_float(data: dict[str, Any], key: str, value: float | None) -> None:
    """``data[key] = value`` as JSON allows: null plus ``<key>_nonfinite`` when not finite."""
    data[key] = clean_float(value)
    flag = nonfinite_flag(value)
    if flag is not None:
        data[f"{key}_nonfinite"] = flag


def get_float(data: dict[str, Any], key: str) -> float | None:
    """The float :func:`put_float` wrote (older reports held the flag strings in place)."""
    flag = data.get(f"{key}_nonfinite")
    if flag is not None:
        return float(flag)
    value = data.get(key)
    return None if value is None else float(value)


def read_float(value: Any) -> float | None:
    return None if value is None else float(value)


def headroom(max_abs: float | None) -> float | None:
    """65504 / max |x|; ``None`` when nothing non-zero was seen (unbounded)."""
    if max_abs is None or max_abs == 0:
        return None
    if math.isinf(max_abs) or math.isnan(max_abs):
        return 0.0
    return FP16_MAX / max_abs


def place_headroom(
    max_abs: float | None, n_inf: int, n_nan: int, inf_created: int = 0
) -> float | None:
    """Headroom of a place: 0 where inf was made, or where nothing but inf/NaN came out (an
    all-NaN output has no headroom, it is not "unbounded"); inf passed through next to finite
    values (a -inf mask) does not hide the finite figure."""
    if inf_created or ((n_inf or n_nan) and not max_abs):
        return 0.0
    return headroom(max_abs)


def _record_to_dict(record: Any) -> dict[str, Any]:
    data = asdict(record)
    for key, value in list(data.items()):
        if isinstance(value, float):
            put_float(data, key, value)
    return data


def _record_from_dict(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            continue
        if isinstance(value, str) and value in ("inf", "-inf", "nan"):
            value = float(value)
        flag = data.get(f"{key}_nonfinite")
        if flag is not None:
            value = float(flag)
        kwargs[key] = value
    return cls(**kwargs)


@dataclass
class OpRecord:
    """One call of an op of interest (see ``probe.OPS_OF_INTEREST``)."""

    run: str
    op: str
    file: str
    line: int
    occurrence: int
    module: str | None = None  # innermost module's qualified name
    in_dtypes: list[str] = field(default_factory=list)
    out_dtypes: list[str] = field(default_factory=list)
    max_abs_in: float | None = None
    max_abs: float | None = None  # finite values of floating, non-mask outputs
    numel: int = 0
    n_inf: int = 0
    n_nan: int = 0
    inf_created: int = 0
    nan_created: int = 0
    clamped: int = 0
    #: against the same op recomputed in fp32 on the same inputs: the error this op creates
    local_rel_error: float | None = None
    local_underflow: float | None = None
    #: against the fp32 run at the same (file, line, op, occurrence): the error accumulated so far
    rel_error: float | None = None
    underflow: float | None = None
    raised: str | None = None

    @property
    def headroom(self) -> float | None:
        return place_headroom(self.max_abs, self.n_inf, self.n_nan, self.inf_created)

    @property
    def site(self) -> tuple[str, int, str]:
        return (self.file, self.line, self.op)

    def to_dict(self) -> dict[str, Any]:
        data = _record_to_dict(self)
        put_float(data, "headroom", self.headroom)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpRecord:
        return _record_from_dict(cls, data)


@dataclass
class ModuleRecord:
    """One call of one module (forward pre-hook plus forward hook)."""

    run: str
    qualname: str
    class_name: str
    attr: str
    parent_class: str | None
    parent_file: str | None
    call_index: int
    order: int
    call_file: str | None = None
    call_line: int | None = None
    is_leaf: bool = True
    is_norm: bool = False
    in_dtypes: list[str] = field(default_factory=list)
    out_dtypes: list[str] = field(default_factory=list)
    param_dtypes: dict[str, str] = field(default_factory=dict)
    buffer_dtypes: dict[str, str] = field(default_factory=dict)
    max_abs_in: float | None = None
    max_abs: float | None = None
    numel: int = 0
    n_inf: int = 0
    n_nan: int = 0
    inf_created: int = 0
    nan_created: int = 0
    clamped: int = 0
    zero_rows: int = 0
    #: all-zero rows that the fp32 run does not have at the same call: a silent failure
    new_zero_rows: int = 0
    rel_error_in: float | None = None
    rel_error: float | None = None
    underflow: float | None = None
    raised: str | None = None

    @property
    def headroom(self) -> float | None:
        return place_headroom(self.max_abs, self.n_inf, self.n_nan, self.inf_created)

    def to_dict(self) -> dict[str, Any]:
        data = _record_to_dict(self)
        put_float(data, "headroom", self.headroom)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModuleRecord:
        return _record_from_dict(cls, data)


@dataclass
class GradStats:
    """Backward pass figures of one run against the fp32 run (sum loss)."""

    n_params: int = 0
    n_values: int = 0
    n_inf: int = 0
    n_nan: int = 0
    #: fraction of non-zero fp32 gradient values that are zero in this run
    underflow: float | None = None
    #: fraction of non-zero fp32 gradient values below fp16's smallest subnormal (2**-24)
    below_fp16_subnormal: float | None = None
    #: fraction of non-zero fp32 gradient values below fp16's smallest normal (6.1e-05)
    below_fp16_normal: float | None = None
    min_nonzero_abs: float | None = None
    max_abs: float | None = None
    gradscaler_needed: bool = False
    note: str | None = None
    worst_params: list[tuple[str, float]] = field(default_factory=list)
    #: per parameter: the fraction of non-zero fp32 gradient values that are 0 here (> 0 only),
    #: and its inf/NaN gradient values; the report puts them on the owning module's place
    param_underflow: dict[str, float] = field(default_factory=dict)
    param_nonfinite: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = _record_to_dict(self)
        data["worst_params"] = [[n, clean_float(v)] for n, v in self.worst_params]  # finite
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GradStats:
        rec = _record_from_dict(cls, data)
        rec.worst_params = [(n, read_float(v)) for n, v in data.get("worst_params", [])]
        return rec


@dataclass
class OutputStats:
    """The model's floating outputs taken together (attention-mask-like tensors left out)."""

    names: list[str] = field(default_factory=list)
    dtypes: list[str] = field(default_factory=list)
    max_abs: float | None = None
    n_inf: int = 0
    n_nan: int = 0
    clamped: int = 0
    rel_error: float | None = None  # against the fp32 run, padding positions left out
    cosine: float | None = None  # cosine similarity with the fp32 run's first output

    @property
    def headroom(self) -> float | None:
        if self.n_inf or self.n_nan:
            return 0.0
        return headroom(self.max_abs)

    def to_dict(self) -> dict[str, Any]:
        data = _record_to_dict(self)
        put_float(data, "headroom", self.headroom)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputStats:
        return _record_from_dict(cls, data)


@dataclass
class RunRecord:
    """One forward (and optionally backward) run of one precision mode."""

    name: str
    label: str
    dtype: str
    autocast: bool
    device: str
    error: str | None = None
    #: (file, line, op) of the torch call that raised, when the run raised inside one
    error_site: tuple[str, int, str] | None = None
    duration_s: float = 0.0
    params: dict[str, str] = field(default_factory=dict)
    buffers: dict[str, str] = field(default_factory=dict)
    #: parameters and buffers holding inf/NaN after the cast (fp16 weights beyond 65504): count
    nonfinite_params: dict[str, int] = field(default_factory=dict)
    output: OutputStats | None = None
    grads: GradStats | None = None
    modules: list[ModuleRecord] = field(default_factory=list)
    ops: list[OpRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ran(self) -> bool:
        return self.error is None

    def dtype_counts(self, which: str = "params") -> dict[str, int]:
        counts: dict[str, int] = {}
        for dt in (self.params if which == "params" else self.buffers).values():
            counts[dt] = counts.get(dt, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "dtype": self.dtype,
            "autocast": self.autocast,
            "device": self.device,
            "error": self.error,
            "error_site": list(self.error_site) if self.error_site else None,
            "duration_s": self.duration_s,
            "params": dict(self.params),
            "buffers": dict(self.buffers),
            "nonfinite_params": dict(self.nonfinite_params),
            "param_dtype_counts": self.dtype_counts("params"),
            "buffer_dtype_counts": self.dtype_counts("buffers"),
            "output": self.output.to_dict() if self.output else None,
            "grads": self.grads.to_dict() if self.grads else None,
            "modules": [m.to_dict() for m in self.modules],
            "ops": [o.to_dict() for o in self.ops],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        site = data.get("error_site")
        return cls(
            name=data["name"],
            label=data["label"],
            dtype=data["dtype"],
            autocast=data["autocast"],
            device=data["device"],
            error=data.get("error"),
            error_site=tuple(site) if site else None,  # type: ignore[arg-type]
            duration_s=data.get("duration_s", 0.0),
            params=dict(data.get("params", {})),
            buffers=dict(data.get("buffers", {})),
            nonfinite_params=dict(data.get("nonfinite_params", {})),
            output=OutputStats.from_dict(data["output"]) if data.get("output") else None,
            grads=GradStats.from_dict(data["grads"]) if data.get("grads") else None,
            modules=[ModuleRecord.from_dict(m) for m in data.get("modules", [])],
            ops=[OpRecord.from_dict(o) for o in data.get("ops", [])],
            notes=list(data.get("notes", [])),
        )
