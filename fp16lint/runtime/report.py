"""The runtime report: runs, places (op sites and modules) with per-run figures and verdicts.

Torch is not imported here: a report can be rebuilt from its JSON (``Report.from_dict``), joined to
static findings and formatted anywhere.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from .records import (
    AT_RISK,
    CONFIRMED,
    FP16_MAX,
    NOT_OBSERVED,
    NOT_REACHED,
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
    clean_float,
    headroom,
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


def fmt_headroom(value: float | None) -> str:
    if value is None:
        return "unbounded"
    if value == 0:
        return "0x (inf)"
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
    verdict: str = NOT_OBSERVED
    reasons: list[str] = field(default_factory=list)

    @property
    def headroom(self) -> float | None:
        # inf made here, or nothing but inf (inherited): no headroom; inf passed through next to
        # finite values (a -inf mask, log(0) in position buckets) does not hide the finite figure
        if self.inf_created or (self.n_inf and not self.max_abs):
            return 0.0
        return headroom(self.max_abs)

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
            if reasons:
                verdict = CONFIRMED
        if verdict != CONFIRMED:
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
            if risk:
                verdict = AT_RISK
                reasons.extend(risk)
        self.verdict = verdict
        self.reasons = reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "dtypes": list(self.dtypes),
            "max_abs": clean_float(self.max_abs),
            "headroom": clean_float(self.headroom),
            "n_inf": self.n_inf,
            "n_nan": self.n_nan,
            "inf_created": self.inf_created,
            "nan_created": self.nan_created,
            "clamped": self.clamped,
            "new_zero_rows": self.new_zero_rows,
            "local_rel_error": clean_float(self.local_rel_error),
            "local_underflow": clean_float(self.local_underflow),
            "rel_error": clean_float(self.rel_error),
            "rel_error_in": clean_float(self.rel_error_in),
            "underflow": clean_float(self.underflow),
            "raised": self.raised,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
        }


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
    model_class: str | None = None
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
        thr = self.thresholds
        for pl in by_key.values():
            fp32 = pl.runs.get(RUN_FP32)
            for run_name, fig in pl.runs.items():
                fig.judge(run_name, thr, fp32, pl.kind)
        self._places = list(by_key.values())
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
        if n_conf:
            reasons.insert(0, f"{n_conf} confirmed place(s)")
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

    def recommendation(self) -> Recommendation:
        if self.error:
            return Recommendation("fix-error", f"fix the target first: {self.error}")
        prep = self.prepared
        prep_label = self.runs[prep].label if prep in self.runs else prep
        keep_text = (
            "keep .half()" if prep_label == ".half()" else f"keep the {prep} model ({prep_label})"
        )
        v, _ = self.run_verdict(prep)
        ac = self.run_verdict(RUN_AUTOCAST)[0] if RUN_AUTOCAST in self.runs else None
        bf = self.run_verdict(RUN_BF16)[0] if RUN_BF16 in self.runs else None
        alternatives = []
        if ac and ac != CONFIRMED and prep != RUN_AUTOCAST:
            alternatives.append(
                "switch to autocast (fp32 weights under torch.autocast(dtype=torch.float16))"
            )
        if bf and bf != CONFIRMED and prep != RUN_BF16:
            alternatives.append("use bf16 (model.to(torch.bfloat16))")
        if v == NOT_OBSERVED:
            return Recommendation(
                "keep",
                f"{keep_text}: no overflow, inf/NaN or large error seen",
                alternatives=alternatives,
            )
        confirmed = [
            pl
            for pl in self.sorted_places(prep)
            if pl.kind == "op" and pl.verdict(prep) == CONFIRMED
        ]
        if v == AT_RISK:
            risky = [pl for pl in self.sorted_places(prep) if pl.verdict(prep) == AT_RISK]
            names = ", ".join(f"{pl.where} ({pl.what})" for pl in risky[:3])
            return Recommendation(
                "keep",
                f"{keep_text}, but {len(risky)} place(s) are within "
                f"{self.thresholds.risk_factor:g}x of the fp16 limit or flush to zero: {names}",
                lines=[pl.where for pl in risky[:10]],
                alternatives=alternatives,
            )
        user = [pl for pl in confirmed if is_user_file(pl.file)]
        other = [pl for pl in confirmed if not is_user_file(pl.file)]
        lines = sorted({pl.where for pl in user})
        cpu_note = ""
        if self.device_note and ac == CONFIRMED:
            cpu_note = " (CPU autocast keeps pow/softmax/sum in fp16; on CUDA autocast may pass)"
        if user and not other and len(lines) <= 5:
            ops = ", ".join(f"{pl.where} ({pl.op})" for pl in user[:5])
            return Recommendation(
                "upcast-lines",
                f"upcast the named lines (compute them in float32, e.g. x.float()...; .to(dtype) after): {ops}",
                lines=lines,
                alternatives=alternatives,
            )
        if ac and ac != CONFIRMED:
            return Recommendation(
                "autocast",
                "switch to autocast: keep fp32 weights and run under torch.autocast(device_type, "
                "dtype=torch.float16)",
                lines=lines,
                alternatives=[a for a in alternatives if not a.startswith("switch")],
            )
        if bf and bf != CONFIRMED:
            return Recommendation(
                "bf16",
                "use bf16 (model.to(torch.bfloat16)): fp16 and fp16 autocast both fail here"
                + cpu_note,
                lines=lines,
            )
        if lines:
            return Recommendation(
                "upcast-lines",
                "upcast the named lines (every reduced-precision mode fails): "
                + ", ".join(lines[:5]),
                lines=lines,
            )
        return Recommendation("fp32", "keep fp32: fp16, autocast and bf16 all fail" + cpu_note)

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
