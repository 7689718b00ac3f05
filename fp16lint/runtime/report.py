"""The runtime report: runs, places (op sites and modules) with per-run figures and verdicts.

Torch is not imported here: a report can be rebuilt from its JSON (``Report.from_dict``), joined to
static findings and formatted anywhere.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from fp16lint.data.amp_ops import AUTOCAST_FP16_OPS, AUTOCAST_FP32_OPS, OPS_BY_NAME

from .records import (
    AT_RISK,
    CONFIRMED,
    FP16_MAX,
    NOT_OBSERVED,
    NOT_REACHED,
    POISONED,
    RUN_AUTOCAST,
    RUN_BF16,
    RUN_FP16,
    RUN_FP32,
    RUN_ORDER,
    VERDICT_RANK,
    ModuleRecord,
    OpRecord,
    RunRecord,
    Thresholds,
    headroom,
    place_headroom,
    put_float,
)

REPORT_VERSION = 1
_LOW_FP16 = (RUN_FP16, RUN_AUTOCAST)


# -- formatting helpers --------------------------------------------------------------------------


def fmt_num(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-2:
        return f"{value:.2e}"
    return f"{value:.3g}"


def fmt_max(max_abs: float | None, n_inf: int = 0, n_nan: int = 0) -> str:
    """max |x| as every output shows it: the finite figure, and inf/NaN when present (an
    all-NaN output reads "NaN", never 0)."""
    flags = "/".join(f for f, n in (("inf", n_inf), ("NaN", n_nan)) if n)
    if not flags:
        return fmt_num(max_abs)
    if not max_abs:
        return flags
    return f"{fmt_num(max_abs)} +{flags}"


def fmt_headroom(value: float | None) -> str:
    if value is None:
        return "unbounded"
    if value == 0:
        return "0x (inf/NaN)"
    if value >= 1e4:
        return f"{value:.1e}x"
    return f"{value:.3g}x"


def fmt_pct(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if value == 0:
        return "0"
    if value < 1e-4:
        return f"{value * 100:.1e}%"
    if value >= 0.01:
        return f"{value * 100:.3g}%"
    return f"{value * 100:.2g}%"


def short_path(path: str | None, root: str | None = None) -> str:
    """A path for people: relative to ``root`` (or the working directory) when under it, or from
    the package folder when installed (``transformers/models/t5/modeling_t5.py``)."""
    if not path:
        return "?"
    if path.startswith("<"):
        return path
    base = os.path.abspath(root or os.getcwd())
    ap = os.path.abspath(path)
    for marker in ("site-packages", "dist-packages"):
        i = ap.find(os.sep + marker + os.sep)
        if i >= 0:
            return ap[i + len(marker) + 2 :]
    if ap.startswith(base + os.sep):
        return os.path.relpath(ap, base)
    return ap


def is_user_file(path: str | None) -> bool:
    """Code a user can edit: not inside an installed package, not generated."""
    if not path or path.startswith("<"):
        return False
    return not any(
        m in path for m in (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)
    )


def weights_line(report: Report) -> str:
    """Trained or random, and where the weights came from: a verdict depends on it."""
    if report.weights == "trained":
        return f"trained ({report.weights_source})" if report.weights_source else "trained"
    return (
        "random (nothing loaded by the factory: random weights miss a trained model's outliers, "
        "so a clean run does not clear fp16)"
    )


# -- places --------------------------------------------------------------------------------------


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    if math.isnan(a) or math.isnan(b):
        return math.inf if (math.isinf(a) or math.isinf(b)) else math.nan
    return max(a, b)


@dataclass
class PlaceFigures:
    """One place (op site or module) in one run, over all its calls."""

    calls: int = 0
    dtypes: list[str] = field(default_factory=list)
    max_abs: float | None = None
    n_inf: int = 0
    n_nan: int = 0
    inf_created: int = 0
    nan_created: int = 0
    clamped: int = 0
    new_zero_rows: int = 0
    local_rel_error: float | None = None
    local_underflow: float | None = None
    rel_error: float | None = None
    rel_error_in: float | None = None
    underflow: float | None = None
    raised: str | None = None
    #: backward: the worst gradient underflow of the module's own parameters, inf/NaN in them
    grad_underflow: float | None = None
    grad_nonfinite: int = 0
    #: confirmed only because CPU autocast keeps in float16 an op CUDA autocast runs in float32
    cpu_only: bool = False
    verdict: str = NOT_OBSERVED
    reasons: list[str] = field(default_factory=list)

    @property
    def headroom(self) -> float | None:
        return place_headroom(self.max_abs, self.n_inf, self.n_nan, self.inf_created)

    @property
    def max_text(self) -> str:
        return fmt_max(self.max_abs, self.n_inf, self.n_nan)

    def _add_call(self, r: OpRecord | ModuleRecord) -> None:
        """The figures op and module records share."""
        self.calls += 1
        for d in r.out_dtypes:
            if d not in self.dtypes:
                self.dtypes.append(d)
        self.max_abs = _max(self.max_abs, r.max_abs)
        self.n_inf += r.n_inf
        self.n_nan += r.n_nan
        self.inf_created += r.inf_created
        self.nan_created += r.nan_created
        if "float16" in r.out_dtypes:
            self.clamped += r.clamped

    def add_op(self, r: OpRecord) -> None:
        self._add_call(r)
        self.local_rel_error = _max(self.local_rel_error, r.local_rel_error)
        self.local_underflow = _max(self.local_underflow, r.local_underflow)
        self.rel_error = _max(self.rel_error, r.rel_error)
        self.underflow = _max(self.underflow, r.underflow)
        if r.raised and not self.raised:
            self.raised = r.raised

    def add_module(self, r: ModuleRecord) -> None:
        self._add_call(r)
        self.new_zero_rows += r.new_zero_rows
        self.underflow = _max(self.underflow, r.underflow)
        if r.rel_error is not None:
            # the error this module created: large out, still small in
            rin = r.rel_error_in
            created = rin is None or (math.isfinite(rin) and rin <= r.rel_error / 4)
            if created:
                self.local_rel_error = _max(self.local_rel_error, r.rel_error)
        self.rel_error = _max(self.rel_error, r.rel_error)
        self.rel_error_in = _max(self.rel_error_in, r.rel_error_in)
        if r.raised and not self.raised:
            self.raised = r.raised

    def judge(self, run: str, thr: Thresholds, fp32: PlaceFigures | None, kind: str) -> None:
        reasons: list[str] = []
        verdict = NOT_OBSERVED
        if run != RUN_FP32:
            if self.raised:
                reasons.append(f"raised {self.raised}")
            if self.inf_created:
                reasons.append(f"{self.inf_created} inf created")
            if self.nan_created:
                reasons.append(f"{self.nan_created} NaN created")
            if self.clamped:
                reasons.append(f"{self.clamped} values clamped at ±64512/±65504 (overflow hidden)")
            if self.new_zero_rows:
                reasons.append(f"{self.new_zero_rows} all-zero rows after a norm (silent failure)")
            if self.local_rel_error is not None and self.local_rel_error > thr.rel_error:
                where = "by this op" if kind == "op" else "in this module"
                reasons.append(f"relative error {fmt_pct(self.local_rel_error)} created {where}")
            if self.grad_nonfinite:
                reasons.append(f"{self.grad_nonfinite} inf/NaN gradient values in its parameters")
            if (
                run == RUN_FP16
                and self.grad_underflow is not None
                and self.grad_underflow >= thr.heavy_underflow
            ):
                # pure fp16: a GradScaler refuses fp16 parameters, nothing brings these back
                reasons.append(
                    f"gradient underflow: {fmt_pct(self.grad_underflow)} of its parameters' "
                    "non-zero fp32 gradients are 0 here"
                )
            if reasons:
                verdict = CONFIRMED
            else:
                # inf/NaN that arrived from upstream (and that the fp32 run does not have here)
                ref_inf = fp32.n_inf if fp32 is not None else 0
                ref_nan = fp32.n_nan if fp32 is not None else 0
                if self.n_inf > ref_inf or self.n_nan > ref_nan:
                    verdict = POISONED
                    reasons.append(
                        f"poisoned: {self.n_inf} inf / {self.n_nan} NaN arrived from upstream"
                    )
        if verdict not in (CONFIRMED, POISONED):
            risk: list[str] = []
            # magnitude matters where values are (or would be) float16: the fp32 run as the
            # prediction, the fp16 and autocast runs where this place's outputs are fp16
            if run == RUN_FP32 or (run in _LOW_FP16 and "float16" in self.dtypes):
                worst = self.max_abs
                if fp32 is not None and run != RUN_FP32:
                    worst = _max(worst, fp32.max_abs)
                if worst is not None and worst >= thr.risk_level:
                    risk.append(
                        f"max |x| {fmt_num(worst)}: headroom {fmt_headroom(headroom(worst))} "
                        f"(within {thr.risk_factor:g}x of 65504)"
                    )
            if (
                run != RUN_FP32
                and kind == "op"
                and self.local_underflow is not None
                and self.local_underflow >= thr.heavy_underflow
            ):
                risk.append(f"{fmt_pct(self.local_underflow)} of non-zero values flush to zero")
            if (
                run not in (RUN_FP32, RUN_FP16)
                and self.grad_underflow is not None
                and self.grad_underflow >= thr.heavy_underflow
            ):
                risk.append(
                    f"gradient underflow {fmt_pct(self.grad_underflow)} without loss scaling: "
                    "needs a GradScaler"
                )
            if risk:
                verdict = AT_RISK
                reasons.extend(risk)
        self.verdict = verdict
        self.reasons = reasons

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "calls": self.calls,
            "dtypes": list(self.dtypes),
            "n_inf": self.n_inf,
            "n_nan": self.n_nan,
            "inf_created": self.inf_created,
            "nan_created": self.nan_created,
            "clamped": self.clamped,
            "new_zero_rows": self.new_zero_rows,
            "raised": self.raised,
            "grad_nonfinite": self.grad_nonfinite,
            "cpu_only": self.cpu_only,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
        }
        for key in (
            "grad_underflow",
            "max_abs",
            "headroom",
            "local_rel_error",
            "local_underflow",
            "rel_error",
            "rel_error_in",
            "underflow",
        ):
            put_float(data, key, getattr(self, key))
        return data


@dataclass
class Place:
    """An op site (file, line, op) or a module (qualified name), with figures per run."""

    kind: str  # "op" or "module"
    key: tuple
    file: str | None = None
    line: int | None = None
    op: str | None = None
    module: str | None = None  # op: innermost module; module: its qualified name
    class_name: str | None = None
    attr: str | None = None
    parent_class: str | None = None
    parent_file: str | None = None
    is_leaf: bool = True
    is_norm: bool = False
    order: int = 0
    param_dtypes: dict[str, str] = field(default_factory=dict)
    runs: dict[str, PlaceFigures] = field(default_factory=dict)

    def shown(self, run: str) -> bool:
        """Worth a row in the tables: op sites, leaf modules, and containers that clamped
        values or zeroed rows themselves (their other verdicts repeat their children's)."""
        if self.kind == "op" or self.is_leaf:
            return True
        fig = self.runs.get(run)
        return fig is not None and bool(fig.clamped or fig.new_zero_rows or fig.raised)

    def figures(self, run: str) -> PlaceFigures | None:
        return self.runs.get(run)

    def verdict(self, run: str) -> str:
        fig = self.runs.get(run)
        return fig.verdict if fig else NOT_REACHED

    @property
    def where(self) -> str:
        if self.kind == "op":
            return f"{short_path(self.file)}:{self.line}"
        if self.file:
            return f"{short_path(self.file)}:{self.line}"
        return "?"

    @property
    def what(self) -> str:
        if self.kind == "op":
            return str(self.op)
        return f"{self.module or '(model)'} ({self.class_name})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            "line": self.line,
            "op": self.op,
            "module": self.module,
            "class_name": self.class_name,
            "attr": self.attr,
            "parent_class": self.parent_class,
            "parent_file": self.parent_file,
            "is_leaf": self.is_leaf,
            "is_norm": self.is_norm,
            "param_dtypes": dict(self.param_dtypes),
            "runs": {name: fig.to_dict() for name, fig in self.runs.items()},
        }


def _param_module_figures(by_key: dict[tuple, Place], param: str, run: str) -> PlaceFigures | None:
    """The figures of the module that owns parameter ``param`` ("a.b.weight" -> "a.b")."""
    owner = param.rpartition(".")[0]
    pl = by_key.get(("module", owner))
    return pl.runs.get(run) if pl is not None else None


def cpu_autocast_differs(op: str | None) -> bool:
    """CUDA fp16 autocast runs ``op`` in float32, CPU fp16 autocast keeps it in float16
    (data/amp_ops.py, FACTS §4): a failure of it under CPU autocast says nothing about CUDA."""
    if not op:
        return False
    name = op.strip("_")
    if op not in AUTOCAST_FP32_OPS and name not in AUTOCAST_FP32_OPS:
        return False
    known = OPS_BY_NAME.get(name)
    return not (known is not None and known.cpu_fp32)


def _mark_cpu_only(places: list[Place]) -> None:
    """Mark autocast-run places that fail only because of CPU autocast's op lists: ops CUDA
    autocast runs in float32, and modules whose confirmed ops are all such ops."""
    run = RUN_AUTOCAST
    bad_ops: dict[str, list[bool]] = {}
    for pl in places:
        fig = pl.runs.get(run)
        if pl.kind != "op" or fig is None or fig.verdict != CONFIRMED:
            continue
        fig.cpu_only = cpu_autocast_differs(pl.op)
        if fig.cpu_only:
            fig.reasons.insert(0, f"CPU-only: CUDA autocast runs {pl.op} in float32")
        bad_ops.setdefault(pl.module or "", []).append(fig.cpu_only)
    # an unlisted op (div, add: it runs in its inputs' dtype) next to a CPU-only failure in
    # the same module would get float32 inputs on CUDA: CPU-only too
    for pl in places:
        fig = pl.runs.get(run)
        if (
            pl.kind == "op"
            and fig is not None
            and fig.verdict == CONFIRMED
            and not fig.cpu_only
            and pl.op not in AUTOCAST_FP16_OPS
            and any(bad_ops.get(pl.module or "", []))
        ):
            fig.cpu_only = True
            fig.reasons.insert(
                0, "CPU-only: its inputs come from ops CUDA autocast runs in float32"
            )
            flags = bad_ops[pl.module or ""]
            flags[flags.index(False)] = True
    for pl in places:
        fig = pl.runs.get(run)
        if pl.kind != "module" or fig is None or fig.verdict != CONFIRMED or fig.raised:
            continue
        prefix = (pl.module or "") + "."
        inside = [
            flag
            for mod, flags in bad_ops.items()
            if mod == pl.module or mod.startswith(prefix) or not pl.module
            for flag in flags
        ]
        if inside and all(inside):
            fig.cpu_only = True
            fig.reasons.insert(0, "CPU-only: its failing ops run in float32 under CUDA autocast")


@dataclass
class Recommendation:
    action: str  # keep | upcast-lines | autocast | bf16 | fp32 | fix-error
    text: str
    lines: list[str] = field(default_factory=list)
    alternatives: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "text": self.text,
            "lines": list(self.lines),
            "alternatives": list(self.alternatives),
        }


# -- the report ----------------------------------------------------------------------------------


@dataclass
class Report:
    name: str
    factory: str | None = None
    factory_file: str | None = None
    #: first and last line of the factory function in ``factory_file`` (None for a class)
    factory_lines: tuple[int, int] | None = None
    model_class: str | None = None
    #: "trained" (from_pretrained, a checkpoint, load_state_dict in the factory) or "random"
    weights: str = "random"
    weights_source: str | None = None
    device: str = "cpu"
    device_note: str | None = None
    seed: int = 0
    thresholds: Thresholds = field(default_factory=Thresholds)
    versions: dict[str, Any] = field(default_factory=dict)
    inputs: str | None = None
    inputs_guessed: bool = False
    notes: list[str] = field(default_factory=list)
    runs: dict[str, RunRecord] = field(default_factory=dict)
    prepared: str = RUN_FP16
    error: str | None = None
    error_kind: str | None = None
    _places: list[Place] | None = field(default=None, repr=False, compare=False)

    # -- places and verdicts ------------------------------------------------------------------

    def run_names(self) -> list[str]:
        return [r for r in RUN_ORDER if r in self.runs] + [
            r for r in self.runs if r not in RUN_ORDER
        ]

    def places(self) -> list[Place]:
        """Op sites and modules with figures and verdicts per run (computed once)."""
        if self._places is not None:
            return self._places
        by_key: dict[tuple, Place] = {}
        for run_name in self.run_names():
            run = self.runs[run_name]
            for r in run.ops:
                key = ("op", r.file, r.line, r.op)
                pl = by_key.get(key)
                if pl is None:
                    pl = by_key[key] = Place(
                        kind="op", key=key, file=r.file, line=r.line, op=r.op, module=r.module
                    )
                pl.runs.setdefault(run_name, PlaceFigures()).add_op(r)
            for m in run.modules:
                key = ("module", m.qualname)
                pl = by_key.get(key)
                if pl is None:
                    pl = by_key[key] = Place(
                        kind="module",
                        key=key,
                        file=m.call_file,
                        line=m.call_line,
                        module=m.qualname,
                        class_name=m.class_name,
                        attr=m.attr,
                        parent_class=m.parent_class,
                        parent_file=m.parent_file,
                        is_leaf=m.is_leaf,
                        is_norm=m.is_norm,
                        order=m.order,
                    )
                if run_name == self.prepared:
                    pl.param_dtypes = dict(m.param_dtypes)
                    pl.order = m.order
                pl.runs.setdefault(run_name, PlaceFigures()).add_module(m)
        for run_name in self.run_names():
            grads = self.runs[run_name].grads
            if grads is None:
                continue
            for pname, value in grads.param_underflow.items():
                fig = _param_module_figures(by_key, pname, run_name)
                if fig is not None:
                    fig.grad_underflow = _max(fig.grad_underflow, value)
            for pname, count in grads.param_nonfinite.items():
                fig = _param_module_figures(by_key, pname, run_name)
                if fig is not None:
                    fig.grad_nonfinite += count
        thr = self.thresholds
        for pl in by_key.values():
            fp32 = pl.runs.get(RUN_FP32)
            for run_name, fig in pl.runs.items():
                fig.judge(run_name, thr, fp32, pl.kind)
        self._places = list(by_key.values())
        if self.device.startswith("cpu") and RUN_AUTOCAST in self.runs:
            _mark_cpu_only(self._places)
        return self._places

    def invalidate(self) -> None:
        self._places = None

    def sorted_places(self, run: str | None = None) -> list[Place]:
        run = run or self.prepared

        def key(pl: Place):
            fig = pl.runs.get(run)
            if fig is None:
                return (0, 0.0, 0)
            hr = fig.headroom
            return (
                -VERDICT_RANK[fig.verdict],
                hr if hr is not None else math.inf,
                pl.order,
            )

        return sorted((p for p in self.places() if run in p.runs), key=key)

    def run_verdict(self, run: str) -> tuple[str, list[str]]:
        """The verdict of one run as a whole, with the reasons."""
        rec = self.runs.get(run)
        if rec is None:
            return NOT_REACHED, ["not run"]
        if rec.error:
            where = ""
            if rec.error_site:
                f, ln, op = rec.error_site
                where = f" at {short_path(f)}:{ln}" + (f" ({op})" if op else "")
            if run == RUN_FP32:
                return NOT_REACHED, [f"raised{where}: {rec.error}"]
            return CONFIRMED, [f"raised{where}: {rec.error}"]
        reasons: list[str] = []
        verdict = NOT_OBSERVED
        ref_rec = self.runs.get(RUN_FP32)
        new_bad = {
            n: c
            for n, c in rec.nonfinite_params.items()
            if run != RUN_FP32 and not (ref_rec and ref_rec.nonfinite_params.get(n))
        }
        if new_bad:
            verdict = CONFIRMED
            names = ", ".join(f"{n} ({c})" for n, c in list(new_bad.items())[:4])
            reasons.append(f"the cast made parameters inf/NaN: {names}")
        for pl in self.places():
            fig = pl.runs.get(run)
            if fig is None:
                continue
            if VERDICT_RANK[fig.verdict] > VERDICT_RANK[verdict]:
                verdict = fig.verdict
        n_conf = sum(1 for pl in self.places() if pl.verdict(run) == CONFIRMED)
        n_risk = sum(1 for pl in self.places() if pl.verdict(run) == AT_RISK)
        n_poisoned = sum(1 for pl in self.places() if pl.verdict(run) == POISONED)
        if n_poisoned and verdict != CONFIRMED:
            # inf/NaN in the run, created where no recorded place saw it happen
            verdict = CONFIRMED
        ref = self.runs.get(RUN_FP32)
        out = rec.output
        if run != RUN_FP32 and out is not None:
            ref_bad = (ref.output.n_inf + ref.output.n_nan) if ref and ref.output else 0
            if out.n_inf + out.n_nan > ref_bad:
                verdict = CONFIRMED
                reasons.append(f"outputs hold {out.n_inf} inf / {out.n_nan} NaN")
            if out.clamped and "float16" in out.dtypes:
                verdict = CONFIRMED
                reasons.append(f"outputs hold {out.clamped} clamped values")
            if out.rel_error is not None and out.rel_error > self.thresholds.rel_error:
                verdict = CONFIRMED
                reasons.append(f"output error {fmt_pct(out.rel_error)} against fp32")
        grads = rec.grads
        if run != RUN_FP32 and grads is not None:
            if grads.n_inf or grads.n_nan:
                verdict = CONFIRMED
                reasons.append(f"gradients hold {grads.n_inf} inf / {grads.n_nan} NaN")
            if grads.gradscaler_needed:
                share = fmt_pct(
                    grads.underflow if grads.underflow is not None else grads.below_fp16_subnormal
                )
                if run == RUN_FP16:
                    # a GradScaler refuses fp16 parameters: nothing rescues these gradients
                    verdict = CONFIRMED
                    reasons.append(f"gradient underflow {share} (GradScaler refuses fp16 params)")
                else:
                    if VERDICT_RANK[verdict] < VERDICT_RANK[AT_RISK]:
                        verdict = AT_RISK
                    reasons.append(f"gradient underflow {share}: needs a GradScaler")
        n_cpu = sum(
            1 for pl in self.places() if pl.verdict(run) == CONFIRMED and pl.runs[run].cpu_only
        )
        if n_cpu and n_cpu == n_conf and verdict == CONFIRMED and not new_bad:
            # every failure comes from CPU autocast's op lists: never confirmed for CUDA
            verdict = AT_RISK
            reasons.insert(0, f"{n_cpu} place(s) confirmed on CPU only (see below)")
            note = self.cuda_autocast_note()
            if note:
                reasons.append(note)
        if n_conf:
            reasons.insert(0, f"{n_conf} confirmed place(s)")
        if n_poisoned:
            reasons.append(f"{n_poisoned} place(s) poisoned by inf/NaN from upstream")
        if n_risk:
            reasons.append(f"{n_risk} place(s) at risk")
        return verdict, reasons

    @property
    def verdict(self) -> str:
        if self.error:
            return NOT_REACHED
        return self.run_verdict(self.prepared)[0]

    @property
    def ok(self) -> bool:
        """No error, and the run as prepared shows no confirmed overflow, inf/NaN or error."""
        return self.error is None and self.verdict != CONFIRMED

    def summary(self) -> str:
        if self.error:
            return f"{self.name}: error ({self.error_kind}): {self.error}"
        v, reasons = self.run_verdict(self.prepared)
        lines = [
            f"{self.name}: {self.prepared} run {v}"
            + (f" ({'; '.join(reasons)})" if reasons else "")
        ]
        for pl in self.sorted_places()[:8]:
            fig = pl.runs[self.prepared]
            if fig.verdict != CONFIRMED:
                break
            lines.append(f"  {pl.where} {pl.what}: {'; '.join(fig.reasons)}")
        rec = self.recommendation()
        lines.append(f"  recommendation: {rec.text}")
        return "\n".join(lines)

    def assert_ok(self) -> None:
        if not self.ok:
            raise AssertionError("fp16lint runtime check failed\n" + self.summary())

    # -- recommendation -----------------------------------------------------------------------

    def _weights_caveat(self) -> str:
        if self.weights == "trained":
            return ""
        return (
            "; the weights are random: they do not reproduce a trained model's outliers, so this "
            "does not clear fp16. Rerun with trained weights (--hf-model PATH, --checkpoint FILE, "
            "or a factory that loads them)"
        )

    def _failures(self, run: str) -> list[str]:
        """Every raise and confirmed place of a run, as "where (what)": user code first."""
        rec = self.runs.get(run)
        out: list[str] = []
        if rec is not None and rec.error:
            if rec.error_site:
                f, ln, op = rec.error_site
                out.append(f"{short_path(f)}:{ln} ({op or 'raise'}: {rec.error})")
            else:
                out.append(f"raise: {rec.error}")
        places = [
            pl
            for pl in self.sorted_places(run)
            if pl.verdict(run) == CONFIRMED and (pl.kind == "op" or pl.is_leaf)
        ]
        places.sort(key=lambda pl: not is_user_file(pl.file))
        out.extend(f"{pl.where} ({pl.what})" for pl in places)
        return out

    def cuda_autocast_note(self) -> str | None:
        """What CUDA autocast would do where a CPU autocast failure is CPU-only."""
        ops = sorted(
            {
                str(pl.op)
                for pl in self.places()
                if RUN_AUTOCAST in pl.runs
                and pl.runs[RUN_AUTOCAST].cpu_only
                and cpu_autocast_differs(pl.op)
            }
        )
        if not ops:
            return None
        return (
            f"CUDA autocast runs {', '.join(ops)} in float32 (CPU autocast kept them in float16): "
            "the autocast failures here are CPU-only and not confirmed for CUDA; confirm on CUDA "
            "(benchmarks/cuda_check.sh)"
        )

    def recommendation(self) -> Recommendation:
        if self.error:
            return Recommendation("fix-error", f"fix the target first: {self.error}")
        prep = self.prepared
        prep_label = self.runs[prep].label if prep in self.runs else prep
        keep_text = (
            "keep .half()" if prep_label == ".half()" else f"keep the {prep} model ({prep_label})"
        )
        caveat = self._weights_caveat()
        v, _ = self.run_verdict(prep)
        ac = self.run_verdict(RUN_AUTOCAST)[0] if RUN_AUTOCAST in self.runs else None
        bf = self.run_verdict(RUN_BF16)[0] if RUN_BF16 in self.runs else None
        cuda_note = self.cuda_autocast_note()
        grads = self.runs[prep].grads if prep in self.runs else None
        alternatives = []
        if ac and ac != CONFIRMED and prep != RUN_AUTOCAST:
            alt = "switch to autocast (fp32 weights under torch.autocast(dtype=torch.float16))"
            if grads is not None and grads.gradscaler_needed:
                alt += " with a torch.amp.GradScaler"
            if cuda_note:
                alt += f"; {cuda_note}"
            alternatives.append(alt)
        if bf and bf != CONFIRMED and prep != RUN_BF16:
            alternatives.append("use bf16 (model.to(torch.bfloat16))")
        if v == NOT_OBSERVED:
            if caveat:
                return Recommendation(
                    "retest-trained",
                    "no overflow, inf/NaN or large error seen" + caveat,
                    alternatives=alternatives,
                )
            return Recommendation(
                "keep",
                f"{keep_text}: no overflow, inf/NaN or large error seen (trained weights)",
                alternatives=alternatives,
            )
        if v == AT_RISK:
            risky = [pl for pl in self.sorted_places(prep) if pl.verdict(prep) == AT_RISK]
            names = ", ".join(f"{pl.where} ({pl.what})" for pl in risky[:3])
            head = f"{keep_text}, but" if not caveat else "nothing confirmed, but"
            return Recommendation(
                "keep" if not caveat else "retest-trained",
                f"{head} {len(risky)} place(s) are within "
                f"{self.thresholds.risk_factor:g}x of the fp16 limit or flush to zero: {names}"
                + caveat,
                lines=[pl.where for pl in risky[:10]],
                alternatives=alternatives,
            )
        failures = self._failures(prep)
        listed = "; ".join(failures[:8]) + (
            f" (+{len(failures) - 8} more)" if len(failures) > 8 else ""
        )
        where = f" [{prep} fails at: {listed}]" if listed else ""
        if grads is not None and grads.gradscaler_needed and prep == RUN_FP16:
            where += (
                f" [gradients: {fmt_pct(grads.underflow or grads.below_fp16_subnormal)} flush to "
                "zero; a GradScaler is needed and refuses fp16 parameters]"
            )
        confirmed = [
            pl
            for pl in self.sorted_places(prep)
            if pl.kind == "op" and pl.verdict(prep) == CONFIRMED
        ]
        rec_prep = self.runs.get(prep)
        raised_user = bool(
            rec_prep is not None
            and rec_prep.error
            and rec_prep.error_site
            and is_user_file(rec_prep.error_site[0])
        )
        user = [pl for pl in confirmed if is_user_file(pl.file)]
        other = [pl for pl in confirmed if not is_user_file(pl.file)]
        lines = sorted({pl.where for pl in user})
        if raised_user:
            f, ln, _op = rec_prep.error_site  # type: ignore[union-attr,misc]
            lines = sorted({*lines, f"{short_path(f)}:{ln}"})
        cpu_note = f" ({cuda_note})" if cuda_note else ""
        if (user or raised_user) and not other and len(lines) <= 5:
            return Recommendation(
                "upcast-lines",
                "upcast the named lines (compute them in float32, e.g. x.float()...; .to(dtype) "
                f"after): {', '.join(lines)}" + where,
                lines=lines,
                alternatives=alternatives,
            )
        if ac and ac != CONFIRMED:
            text = (
                "switch to autocast: keep fp32 weights and run under torch.autocast(device_type, "
                "dtype=torch.float16)"
            )
            if grads is not None and grads.gradscaler_needed:
                text += " with a torch.amp.GradScaler"
            return Recommendation(
                "autocast",
                text + cpu_note + where,
                lines=lines,
                alternatives=[a for a in alternatives if not a.startswith("switch")],
            )
        if bf and bf != CONFIRMED:
            return Recommendation(
                "bf16",
                "use bf16 (model.to(torch.bfloat16)): fp16 and fp16 autocast both fail here"
                + cpu_note
                + where,
                lines=lines,
            )
        if lines:
            return Recommendation(
                "upcast-lines",
                "upcast the named lines (every reduced-precision mode fails): "
                + ", ".join(lines[:5])
                + cpu_note
                + where,
                lines=lines,
            )
        return Recommendation(
            "fp32", "keep fp32: fp16, autocast and bf16 all fail" + cpu_note + where
        )

    # -- serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        verdicts = {}
        for name in self.run_names():
            v, reasons = self.run_verdict(name)
            verdicts[name] = {"verdict": v, "reasons": reasons}
        return {
            "version": REPORT_VERSION,
            "name": self.name,
            "factory": self.factory,
            "factory_file": self.factory_file,
            "factory_lines": list(self.factory_lines) if self.factory_lines else None,
            "weights": self.weights,
            "weights_source": self.weights_source,
            "model_class": self.model_class,
            "device": self.device,
            "device_note": self.device_note,
            "seed": self.seed,
            "thresholds": {
                "rel_error": self.thresholds.rel_error,
                "risk_factor": self.thresholds.risk_factor,
                "heavy_underflow": self.thresholds.heavy_underflow,
                "grad_underflow": self.thresholds.grad_underflow,
            },
            "versions": dict(self.versions),
            "inputs": self.inputs,
            "inputs_guessed": self.inputs_guessed,
            "notes": list(self.notes),
            "error": self.error,
            "error_kind": self.error_kind,
            "prepared": self.prepared,
            "ok": self.ok,
            "verdict": self.verdict,
            "run_verdicts": verdicts,
            "recommendation": self.recommendation().to_dict(),
            "fp16_max": FP16_MAX,
            "runs": {name: self.runs[name].to_dict() for name in self.run_names()},
            "places": [pl.to_dict() for pl in self.sorted_places()] if not self.error else [],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        thr = data.get("thresholds") or {}
        return cls(
            name=data["name"],
            factory=data.get("factory"),
            factory_file=data.get("factory_file"),
            factory_lines=tuple(data["factory_lines"]) if data.get("factory_lines") else None,  # type: ignore[arg-type]
            weights=data.get("weights", "random"),
            weights_source=data.get("weights_source"),
            model_class=data.get("model_class"),
            device=data.get("device", "cpu"),
            device_note=data.get("device_note"),
            seed=data.get("seed", 0),
            thresholds=Thresholds(**thr),
            versions=dict(data.get("versions", {})),
            inputs=data.get("inputs"),
            inputs_guessed=data.get("inputs_guessed", False),
            notes=list(data.get("notes", [])),
            runs={name: RunRecord.from_dict(r) for name, r in data.get("runs", {}).items()},
            prepared=data.get("prepared", RUN_FP16),
            error=data.get("error"),
            error_kind=data.get("error_kind"),
        )
