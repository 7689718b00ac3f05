"""Run one model in fp32, as prepared (pure fp16), under fp16 autocast and in bf16, with the probe.

Every run starts from a copy of the model (the caller's model is never changed), in eval mode,
with the same seed and the same inputs; floating inputs follow each run's dtype, integer inputs
(ids, masks) stay as they are.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import inspect
import math
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .probe import Probe, ProbeOptions, ReferenceStore, SiteFinder, _short_error
from .records import (
    RUN_AUTOCAST,
    RUN_BF16,
    RUN_FP16,
    RUN_FP32,
    RUN_ORDER,
    GradStats,
    OutputStats,
    RunRecord,
    Thresholds,
)
from .report import Report
from .tensors import compare, dtype_name, iter_named_tensors, map_tensors, summarize
from .weights import WeightsError, load_checkpoint, pretrained_source, watch_loads

CPU_NOTE = (
    "CPU run: CPU float16 kernels differ from CUDA's, and CPU autocast float16 uses bfloat16's op "
    "lists (softmax, log_softmax, layer_norm, exp, pow, sum stay float16 under CPU autocast; CUDA "
    "autocast runs them in float32). Treat the figures as indicative and confirm on CUDA."
)

FP16_SUBNORMAL_MIN = 2.0**-24
FP16_NORMAL_MIN = 6.103515625e-05


class CudaRequiredError(RuntimeError):
    """``require_cuda=True`` and no CUDA device is available."""


class TargetError(Exception):
    """A per-target failure with a kind: factory, inputs, model, outputs, oom, device."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class RunOptions:
    device: str | None = None
    require_cuda: bool = False
    backward: bool = False
    #: how the code prepares its fp16 model (default ``model.half()``); ignored when the factory
    #: already returns an fp16 model (``from_pretrained(..., dtype=torch.float16)``)
    cast: Callable[[torch.nn.Module], torch.nn.Module] | None = None
    cast_label: str | None = None
    runs: tuple[str, ...] = RUN_ORDER
    seed: int = 0
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: recompute reduced-precision ops in fp32 on their own inputs: "auto" (where the fp32 run
    #: disagrees), "always", "never" (True means "auto")
    local_check: bool | str = "auto"
    max_reference_bytes: int = 1 << 30
    #: a state_dict file loaded into the factory's model (trained weights)
    checkpoint: str | None = None


# -- devices -------------------------------------------------------------------------------------


def resolve_device(
    device: str | None, require_cuda: bool = False
) -> tuple[torch.device, str | None]:
    cuda = torch.cuda.is_available()
    if require_cuda and not cuda:
        raise CudaRequiredError(
            "CUDA was required (require_cuda / --require-cuda) but torch.cuda.is_available() is "
            f"False (torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})."
        )
    if device is None:
        dev = torch.device("cuda") if cuda else torch.device("cpu")
    else:
        dev = _parse_device(device)
        if dev.type == "cuda" and not cuda:
            raise TargetError("device", f"device {device!r} requested but CUDA is not available")
        _check_available(dev, device)
    if require_cuda and dev.type != "cuda":
        raise CudaRequiredError(f"CUDA was required but device {device!r} was forced")
    note = CPU_NOTE if dev.type == "cpu" else None
    return dev, note


def _parse_device(device: Any) -> torch.device:
    if not isinstance(device, (str, torch.device)):
        raise TargetError(
            "device", f"device must be a string such as 'cpu' or 'cuda', not {device!r}"
        )
    try:
        return torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise TargetError(
            "device", f"unknown device {device!r}: use cpu, cuda, cuda:N or another torch device"
        ) from exc


def _check_available(dev: torch.device, device: Any) -> None:
    """A device this machine or torch build lacks, said before any target runs: one tensor
    allocated there answers for every device type (cuda:N, mps, xpu, a plug-in's)."""
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise TargetError(
            "device",
            f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) "
            "are visible",
        )
    if dev.type == "meta":
        raise TargetError("device", "the meta device holds no values: nothing to check there")
    try:
        torch.empty(1, device=dev)
    except Exception as exc:
        first = str(exc).split(". ")[0]  # backends explain at length
        raise TargetError(
            "device", f"device {device!r} is not usable here: {type(exc).__name__}: {first}"
        ) from exc


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        try:
            return f"{dev} ({torch.cuda.get_device_name(dev)})"
        except Exception:
            return str(dev)
    return f"cpu ({platform.machine() or 'unknown'})"


def bf16_supported(dev: torch.device) -> bool:
    if dev.type == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported())
        except Exception:
            return False
    return True


# -- inputs --------------------------------------------------------------------------------------


def normalize_inputs(value: Any) -> tuple[tuple, dict]:
    """args, or (args, kwargs), or a mapping of kwargs (a tokenizer's BatchEncoding), or a tensor."""
    if isinstance(value, Mapping):
        return (), dict(value)
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], (tuple, list))
        and isinstance(value[1], Mapping)
    ):
        return tuple(value[0]), dict(value[1])
    if isinstance(value, (tuple, list)):
        return tuple(value), {}
    return (value,), {}


def describe_inputs(args: tuple, kwargs: dict) -> str:
    parts = []
    for name, t in iter_named_tensors((args, kwargs)):
        label = name
        if label.startswith("0."):
            label = "arg" + label[2:]
        elif label.startswith("1."):
            label = label[2:]
        parts.append(f"{label}: {dtype_name(t.dtype)}{list(t.shape)}")
    return "; ".join(parts) if parts else "(no tensors)"


def guess_inputs(model: torch.nn.Module) -> tuple[tuple, dict, str]:
    """Inputs for a model whose first layer makes the input shape evident."""
    for mod in model.modules():
        if isinstance(mod, torch.nn.Embedding):
            ids = torch.randint(0, mod.num_embeddings, (2, 16))
            return (
                (ids,),
                {},
                f"guessed from first layer Embedding({mod.num_embeddings}, ...): int64[2, 16]",
            )
        if isinstance(mod, torch.nn.Linear):
            x = torch.randn(2, mod.in_features)
            return (
                (x,),
                {},
                f"guessed from first layer Linear({mod.in_features}, ...): float32[2, {mod.in_features}]",
            )
        for cls, spatial in (
            (torch.nn.Conv1d, (64,)),
            (torch.nn.Conv2d, (32, 32)),
            (torch.nn.Conv3d, (8, 16, 16)),
        ):
            if isinstance(mod, cls):
                shape = (2, mod.in_channels, *spatial)
                return (
                    (torch.randn(*shape),),
                    {},
                    f"guessed from first layer {cls.__name__}({mod.in_channels}, ...): float32{list(shape)}",
                )
    raise TargetError(
        "inputs",
        "no inputs given and none can be guessed: the model's first layer is not Linear, "
        "Embedding or Conv1d/2d/3d; name an inputs callable",
    )


def _check_inputs_finite(args: tuple, kwargs: dict) -> None:
    for name, t in iter_named_tensors((args, kwargs)):
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            n_nan = int(torch.isnan(t).sum())
            n_inf = int(torch.isinf(t).sum())
            raise TargetError(
                "inputs",
                f"the inputs already hold non-finite values ({name}: {n_nan} NaN, {n_inf} inf); "
                "a float16 check needs finite inputs",
            )


def _cast_inputs(obj: Any, dev: torch.device, dtype: torch.dtype) -> Any:
    def fn(t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point():
            return t.detach().to(device=dev, dtype=dtype)
        return t.to(device=dev)

    return map_tensors(obj, fn)


def _padding_valid(kwargs: dict, dev: torch.device) -> torch.Tensor | None:
    """(batch, seq) bool, True at real tokens; None when there is no padding to leave out."""
    valid = _mask_valid(kwargs, dev)
    if valid is not None and bool(valid.all()):
        return None
    return valid


def _mask_valid(kwargs: dict, dev: torch.device) -> torch.Tensor | None:
    mask = kwargs.get("attention_mask")
    if isinstance(mask, torch.Tensor) and mask.ndim == 2 and not mask.is_floating_point():
        return (mask != 0).to(dev)
    # a 0/1 float mask (additive masks are 4-D in practice)
    if (
        isinstance(mask, torch.Tensor)
        and mask.ndim == 2
        and mask.is_floating_point()
        and bool(((mask == 0) | (mask == 1)).all())
    ):
        return (mask != 0).to(dev)
    return None


# -- models --------------------------------------------------------------------------------------


def _dtype_mix(model: torch.nn.Module) -> dict[torch.dtype, int]:
    counts: dict[torch.dtype, int] = {}
    for p in model.parameters():
        if p.is_floating_point():
            counts[p.dtype] = counts.get(p.dtype, 0) + p.numel()
    return counts


def main_dtype(model: torch.nn.Module) -> torch.dtype:
    counts = _dtype_mix(model)
    if not counts:
        return torch.float32
    return max(counts, key=counts.get)


def _make_model(factory: Any, report: Report | None = None) -> torch.nn.Module:
    """Build the model; ``report.weights`` says whether it holds trained weights."""
    if isinstance(factory, torch.nn.Module):
        if report is not None and (src := pretrained_source(factory)):
            report.weights, report.weights_source = "trained", src
        return factory
    if not callable(factory):
        raise TargetError("factory", f"the factory is not callable: {type(factory).__name__}")
    try:
        with watch_loads() as loads:
            model = factory()
    except WeightsError as exc:
        raise TargetError("weights", str(exc)) from exc
    except Exception as exc:
        raise TargetError("factory", f"the factory raised {_short_error(exc)}") from exc
    if report is not None and isinstance(model, torch.nn.Module):
        src = pretrained_source(model) or (loads[0] if loads else None)
        if src:
            report.weights, report.weights_source = "trained", src
    if isinstance(model, tuple) and model and isinstance(model[0], torch.nn.Module):
        model = model[0]
    if not isinstance(model, torch.nn.Module):
        raise TargetError(
            "factory", f"the factory returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def _copy_model(model: torch.nn.Module) -> torch.nn.Module:
    try:
        return copy.deepcopy(model)
    except Exception as exc:
        raise TargetError(
            "model", f"the model cannot be copied (copy.deepcopy): {_short_error(exc)}"
        ) from exc


def cast_copy(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.nn.Module:
    """A copy of ``model`` with its floating parameters and buffers in ``dtype`` (what
    ``copy.deepcopy(model).to(dtype)`` gives), built tensor by tensor: a tensor already in
    ``dtype`` is shared, not copied, and no full-precision copy is ever made first. The runs
    then hold the model plus at most one cast copy (issue 19: never two full models).

    The model's own cast method (``half``, ``bfloat16``, ``float``) is then called on the copy:
    a no-op on tensors already in ``dtype``, but a class that refuses the cast (transformers
    refuses ``.half()`` on quantized models) raises as it would in the user's code."""
    memo: dict[int, Any] = {}
    with torch.no_grad():
        for t in (*model.parameters(), *model.buffers()):
            if id(t) in memo:
                continue
            data = t.detach()
            if dtype is not None and data.is_floating_point():
                data = data.to(dtype)
            if isinstance(t, torch.nn.Parameter):
                memo[id(t)] = torch.nn.Parameter(data, requires_grad=t.requires_grad)
            else:  # buffers are small and may be updated in place: never shared
                memo[id(t)] = data.clone() if data.dtype == t.dtype else data
    try:
        copied = copy.deepcopy(model, memo)
    except Exception as exc:
        raise TargetError(
            "model", f"the model cannot be copied (copy.deepcopy): {_short_error(exc)}"
        ) from exc
    if dtype is None:  # as prepared: every dtype kept (T5's fp32 `wo` next to fp16 weights)
        return copied
    cast = {torch.float16: "half", torch.bfloat16: "bfloat16", torch.float32: "float"}
    return getattr(copied, cast[dtype])() if dtype in cast else copied.to(dtype)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


def _free(dev: torch.device) -> None:
    gc.collect()  # a run's model copy can sit in reference cycles (HF modules, hooks)
    if dev.type == "cuda":
        with contextlib.suppress(Exception):
            torch.cuda.empty_cache()


def _factory_file(factory: Any, model: torch.nn.Module | None) -> str | None:
    for obj in (factory, type(model) if model is not None else None):
        if obj is None or isinstance(obj, torch.nn.Module):
            continue
        try:
            path = inspect.getsourcefile(obj)
        except (TypeError, OSError):
            path = None
        if path:
            return path
    if model is not None:
        try:
            return inspect.getsourcefile(type(model))
        except (TypeError, OSError):
            return None
    return None


def _factory_lines(factory: Any) -> tuple[int, int] | None:
    """First and last line of a factory function (a class or module spans no lines here)."""
    if not inspect.isfunction(factory):
        return None
    try:
        lines, start = inspect.getsourcelines(factory)
    except (TypeError, OSError):
        return None
    return start, start + len(lines) - 1


# -- one run -------------------------------------------------------------------------------------


@dataclass
class _RunPlan:
    name: str
    label: str
    dtype: torch.dtype
    autocast: bool
    build: Callable[[], torch.nn.Module]


def _grad_stats(
    model: torch.nn.Module, ref: dict[str, torch.Tensor] | None, thr: Thresholds, pure_fp16: bool
) -> GradStats:
    gs = GradStats()
    n_nz = under = below_sub = below_norm = 0
    min_nz: float | None = None
    max_abs = 0.0
    per_param: list[tuple[str, float]] = []
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        g = p.grad.detach().float()
        gs.n_params += 1
        gs.n_values += g.numel()
        r = ref.get(name) if ref is not None else None
        base = r if r is not None and r.shape == g.shape else g
        nz = base != 0
        a = base.abs()
        parts = [
            nz.sum(),
            (nz & (a < FP16_SUBNORMAL_MIN)).sum(),
            (nz & (a < FP16_NORMAL_MIN)).sum(),
            torch.isinf(g).sum(),
            torch.isnan(g).sum(),
            (nz & (g == 0)).sum()
            if base is not g
            else torch.zeros((), dtype=torch.long, device=g.device),
            torch.where(torch.isfinite(g), g.abs(), 0).amax()
            if g.numel()
            else torch.zeros((), device=g.device),
            torch.where(nz, a, math.inf).amin() if g.numel() else torch.zeros((), device=g.device),
        ]
        vals = torch.stack([v.double() for v in parts]).tolist()
        nzc = int(vals[0])
        n_nz += nzc
        below_sub += int(vals[1])
        below_norm += int(vals[2])
        gs.n_inf += int(vals[3])
        gs.n_nan += int(vals[4])
        under += int(vals[5])
        max_abs = max(max_abs, vals[6])
        if nzc and math.isfinite(vals[7]):
            min_nz = vals[7] if min_nz is None else min(min_nz, vals[7])
        if nzc and base is not g:
            per_param.append((name, int(vals[5]) / nzc))
            if vals[5]:
                gs.param_underflow[name] = int(vals[5]) / nzc
        if vals[3] or vals[4]:
            gs.param_nonfinite[name] = int(vals[3]) + int(vals[4])
    if gs.n_params == 0:
        gs.note = "no parameter received a gradient (do the outputs depend on the parameters?)"
        return gs
    gs.max_abs = max_abs
    gs.min_nonzero_abs = min_nz
    if n_nz:
        gs.below_fp16_subnormal = below_sub / n_nz
        gs.below_fp16_normal = below_norm / n_nz
        if ref is not None:
            gs.underflow = under / n_nz
    if ref is None:
        gs.gradscaler_needed = (gs.below_fp16_subnormal or 0.0) >= thr.grad_underflow
    else:
        gs.gradscaler_needed = (gs.underflow or 0.0) >= thr.grad_underflow
    per_param.sort(key=lambda kv: -kv[1])
    gs.worst_params = [kv for kv in per_param[:5] if kv[1] > 0]
    notes = []
    if gs.n_inf or gs.n_nan:
        notes.append(
            f"{gs.n_inf} inf / {gs.n_nan} NaN gradient values: the loss scale would have to go down"
        )
    if gs.gradscaler_needed:
        notes.append("a GradScaler (loss scaling) is needed to keep small gradients")
        if pure_fp16:
            notes.append(
                "GradScaler refuses fp16 parameters ('Attempting to unscale FP16 gradients'): keep "
                "fp32 master weights and train under autocast"
            )
    gs.note = "; ".join(notes) or None
    return gs


def _execute(
    plan: _RunPlan,
    model: torch.nn.Module,
    args: tuple,
    kwargs: dict,
    dev: torch.device,
    opts: RunOptions,
    store: ReferenceStore,
    valid: torch.Tensor | None,
    ref_out: list[torch.Tensor] | None,
    ref_grads: dict[str, torch.Tensor] | None,
) -> tuple[RunRecord, list[torch.Tensor], dict[str, torch.Tensor] | None]:
    is_ref = plan.name == RUN_FP32
    model.eval()
    rec = RunRecord(
        name=plan.name,
        label=plan.label,
        dtype=dtype_name(plan.dtype),
        autocast=plan.autocast,
        device=str(dev),
    )
    rec.params = {n: dtype_name(p.dtype) for n, p in model.named_parameters()}
    rec.buffers = {n: dtype_name(b.dtype) for n, b in model.named_buffers() if b is not None}
    if not plan.autocast and plan.name != RUN_FP32 and not plan.label.startswith("as prepared"):
        kept = [n for n, p in model.named_parameters() if p.dtype == torch.float32]
        if kept:
            # accelerate's CPU/disk offload keeps weights outside the modules: no cast reaches them
            rec.notes.append(
                f"the cast left {len(kept)} parameter(s) in float32 (e.g. {kept[0]}): offloaded "
                "weights (accelerate device_map with cpu/disk entries) are not cast; load the "
                "model with dtype= instead"
            )
    with torch.no_grad():
        for n, t in (*model.named_parameters(), *model.named_buffers()):
            if t is not None and t.is_floating_point() and t.numel():
                # in slices: a mask of a whole embedding table would cost as much as the table
                bad = sum(
                    int((~torch.isfinite(c)).sum()) for c in t.detach().reshape(-1).split(1 << 20)
                )
                if bad:
                    rec.nonfinite_params[n] = bad
    in_dtype = torch.float32 if plan.autocast else plan.dtype
    a = _cast_inputs(args, dev, in_dtype)
    k = _cast_inputs(kwargs, dev, in_dtype)
    probe = Probe(
        model,
        plan.name,
        store=store if is_ref else None,
        reference=None if is_ref else store,
        options=ProbeOptions(
            valid=valid,
            local_check=opts.local_check,
            autocast_device=dev.type if plan.autocast else None,
            trigger_error=min(0.02, opts.thresholds.rel_error / 2),
            trigger_underflow=min(0.02, opts.thresholds.heavy_underflow / 2),
        ),
    )
    # no weight-cast cache: it would hold an fp16 copy of every weight next to the fp32 model
    # for the whole run (two models at once, issue 19); the casts and the results are the same
    ac = (
        torch.autocast(device_type=dev.type, dtype=torch.float16, cache_enabled=False)
        if plan.autocast
        else contextlib.nullcontext()
    )
    grad_ctx = torch.enable_grad() if opts.backward else torch.no_grad()
    torch.manual_seed(opts.seed)
    out = None
    acts: list[torch.Tensor] = []
    grads: dict[str, torch.Tensor] | None = None
    t0 = time.perf_counter()
    try:
        with grad_ctx:
            with probe, ac:
                out = model(*a, **k)
            rec.duration_s = time.perf_counter() - t0
            summ = summarize(out)
            acts = summ.acts
            if opts.backward and acts:
                loss = sum(t.float().sum() for t in acts if t.requires_grad)
                if isinstance(loss, torch.Tensor):
                    loss.backward()
                    rec.grads = _grad_stats(
                        model, ref_grads, opts.thresholds, pure_fp16=plan.name == RUN_FP16
                    )
                    if is_ref:
                        grads = {
                            n: p.grad.detach().float().clone()
                            for n, p in model.named_parameters()
                            if p.grad is not None
                        }
                else:
                    rec.grads = GradStats(note="no output requires grad")
    except Exception as exc:
        rec.duration_s = time.perf_counter() - t0
        if _is_oom(exc):
            rec.error = f"out of memory on {dev}: {_short_error(exc)}"
        else:
            rec.error = _short_error(exc)
        site = probe.error_site
        if site is None:
            tb_site = SiteFinder().from_traceback(exc.__traceback__)
            if tb_site is not None:
                site = (tb_site[0], tb_site[1], "")
        rec.error_site = site
        if is_ref:
            if _is_oom(exc):
                raise TargetError(
                    "oom", f"out of memory on {dev} in the fp32 run: {_short_error(exc)}"
                ) from exc
            raise TargetError(
                "model",
                f"the model raised on these inputs in the fp32 reference run (inputs that do not "
                f"fit the model?): {_short_error(exc)}",
            ) from exc
    if is_ref and rec.error is None and not summarize(out).acts:
        raise TargetError(
            "outputs",
            f"the model returned {_describe_value(out)} with no floating-point tensor; the check "
            "needs tensor outputs (a tensor, or a tuple/dict/ModelOutput holding them)",
        )
    rec.modules = probe.modules
    rec.ops = probe.ops
    for note in probe.internal_errors:
        rec.notes.append(f"probe: {note}")
    if rec.error is None:
        summ = summarize(out)
        names = [n for n, t in iter_named_tensors(out) if any(t is x for x in summ.acts)]
        os_ = OutputStats(
            names=names,
            dtypes=summ.dtypes,
            max_abs=summ.max_abs,
            n_inf=summ.n_inf,
            n_nan=summ.n_nan,
            clamped=summ.clamped,
        )
        if ref_out is not None and len(ref_out) == len(summ.acts):
            worst = None
            for i, (y, r) in enumerate(zip(summ.acts, ref_out, strict=True)):
                cmp = compare(y, r, valid, cosine=i == 0)
                if cmp is None:
                    continue
                if i == 0:
                    os_.cosine = cmp.cosine
                if cmp.rel_error is not None:
                    worst = cmp.rel_error if worst is None else max(worst, cmp.rel_error)
            os_.rel_error = worst
        rec.output = os_
        acts = [t.detach().clone() for t in summ.acts] if is_ref else []
    return rec, acts, grads


# -- a target ------------------------------------------------------------------------------------


def run_target(
    factory: Any,
    inputs: Any = None,
    *,
    name: str | None = None,
    options: RunOptions | None = None,
    factory_label: str | None = None,
    args_kwargs: tuple[tuple, dict] | None = None,
) -> Report:
    """Build the model, run every mode, and return a :class:`Report` (errors inside it).

    ``factory``: an ``nn.Module`` or a callable returning one. ``inputs``: args, (args, kwargs),
    a kwargs mapping, a tensor, a callable returning one of those, or None to guess them from the
    model's first layer. Raises only :class:`CudaRequiredError`; every other failure is recorded in
    ``report.error`` so that the other targets go on.
    """
    opts = options or RunOptions()
    dev, note = resolve_device(opts.device, opts.require_cuda)
    report = Report(
        name=name or _default_name(factory),
        factory=factory_label,
        device=device_name(dev),
        device_note=note,
        seed=opts.seed,
        thresholds=opts.thresholds,
        versions={"torch": torch.__version__, "cuda": torch.version.cuda},
    )
    model = None
    try:
        torch.manual_seed(opts.seed)
        model = _make_model(factory, report)
        if opts.checkpoint:
            try:
                report.weights_source = load_checkpoint(model, opts.checkpoint)
            except WeightsError as exc:
                raise TargetError("weights", str(exc)) from exc
            report.weights = "trained"
        report.model_class = type(model).__name__
        report.factory_file = _factory_file(factory, model)
        report.factory_lines = _factory_lines(factory)
        if report.name == "model":
            report.name = type(model).__name__
        torch.manual_seed(opts.seed)
        if args_kwargs is not None:
            args, kwargs = args_kwargs
        elif inputs is None:
            args, kwargs, how = guess_inputs(model)
            report.inputs_guessed = True
            report.notes.append(f"inputs {how}")
        else:
            value = inputs
            if callable(value) and not isinstance(value, (torch.Tensor, torch.nn.Module)):
                try:
                    value = value()
                except Exception as exc:
                    raise TargetError(
                        "inputs", f"the inputs callable raised {_short_error(exc)}"
                    ) from exc
            args, kwargs = normalize_inputs(value)
        report.inputs = describe_inputs(args, kwargs)
        _check_inputs_finite(args, kwargs)
        _run_all(report, model, args, kwargs, dev, opts)
    except TargetError as exc:
        report.error = exc.message
        report.error_kind = exc.kind
    except Exception as exc:  # pragma: no cover - last resort, keeps other targets going
        report.error = f"unexpected error: {_short_error(exc)}"
        report.error_kind = "internal"
    finally:
        _free(dev)
    return report


def _default_name(factory: Any) -> str:
    if isinstance(factory, torch.nn.Module):
        return type(factory).__name__
    return getattr(factory, "__qualname__", None) or getattr(factory, "__name__", None) or "model"


def _run_all(
    report: Report,
    model: torch.nn.Module,
    args: tuple,
    kwargs: dict,
    dev: torch.device,
    opts: RunOptions,
) -> None:
    prepared_dtype = main_dtype(model)
    mix = _dtype_mix(model)
    mixed = len(mix) > 1
    fp32_source = model

    def fp32_model() -> torch.nn.Module:
        return cast_copy(fp32_source, torch.float32).to(dev)

    plans: list[_RunPlan] = [_RunPlan(RUN_FP32, "fp32 reference", torch.float32, False, fp32_model)]
    if prepared_dtype == torch.float16:
        label = "as prepared (float16 weights" + (", mixed" if mixed else "") + ")"
        plans.append(
            _RunPlan(
                RUN_FP16,
                label,
                torch.float16,
                False,
                lambda: cast_copy(model, None).to(dev),
            )
        )
        report.prepared = RUN_FP16
    else:
        if opts.cast is not None:
            label = opts.cast_label or f"cast: {getattr(opts.cast, '__name__', 'custom')}"

            def fp16_model() -> torch.nn.Module:
                m = opts.cast(_copy_model(fp32_source))
                return (m if isinstance(m, torch.nn.Module) else fp32_model()).to(dev)
        else:
            label = ".half()"

            def fp16_model() -> torch.nn.Module:
                return cast_copy(fp32_source, torch.float16).to(dev)

        plans.append(_RunPlan(RUN_FP16, label, torch.float16, False, fp16_model))
        report.prepared = RUN_BF16 if prepared_dtype == torch.bfloat16 else RUN_FP16
    plans.append(
        _RunPlan(
            RUN_AUTOCAST, "fp32 weights under autocast(float16)", torch.float16, True, fp32_model
        )
    )
    if bf16_supported(dev):
        if prepared_dtype == torch.bfloat16:
            plans.append(
                _RunPlan(
                    RUN_BF16,
                    "as prepared (bfloat16 weights)",
                    torch.bfloat16,
                    False,
                    lambda: cast_copy(model, None).to(dev),
                )
            )
        else:
            plans.append(
                _RunPlan(
                    RUN_BF16,
                    ".to(torch.bfloat16)",
                    torch.bfloat16,
                    False,
                    lambda: cast_copy(fp32_source, torch.bfloat16).to(dev),
                )
            )
    elif RUN_BF16 in opts.runs:
        report.notes.append(f"bf16 run skipped: {dev} does not support bfloat16")
    wanted = set(opts.runs) | {RUN_FP32}
    plans = [p for p in plans if p.name in wanted]
    if report.prepared not in {p.name for p in plans}:
        others = [p.name for p in plans if p.name != RUN_FP32]
        report.prepared = others[0] if others else RUN_FP32

    valid = _padding_valid(kwargs, dev)
    if valid is not None:
        report.notes.append("padding positions (attention_mask == 0) are left out of error figures")
    store = ReferenceStore(opts.max_reference_bytes)
    ref_out: list[torch.Tensor] | None = None
    ref_grads: dict[str, torch.Tensor] | None = None
    for plan in plans:
        try:
            m = plan.build()
        except TargetError:
            raise
        except Exception as exc:
            if _is_oom(exc):
                raise TargetError(
                    "oom", f"out of memory preparing the {plan.name} model on {dev}"
                ) from exc
            if plan.name in (RUN_FP32, report.prepared):
                # a model that refuses the cast is a set-up problem, not an fp16 failure
                raise TargetError(
                    "model",
                    f"preparing the {plan.name} model ({plan.label}) failed: {_short_error(exc)}",
                ) from exc
            report.runs[plan.name] = RunRecord(
                name=plan.name,
                label=plan.label,
                dtype=dtype_name(plan.dtype),
                autocast=plan.autocast,
                device=str(dev),
                error=f"preparing the model failed: {_short_error(exc)}",
            )
            continue
        try:
            rec, acts, grads = _execute(
                plan, m, args, kwargs, dev, opts, store, valid, ref_out, ref_grads
            )
        finally:
            del m
            _free(dev)
        if plan.name == RUN_FP32:
            ref_out = acts
            ref_grads = grads
        report.runs[plan.name] = rec
    if store.full:
        report.notes.append(
            f"reference store full ({opts.max_reference_bytes >> 20} MiB): some error figures are missing"
        )
    store.clear()


def _describe_value(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        inner = ", ".join(sorted({type(v).__name__ for v in value})) or "nothing"
        return f"a {type(value).__name__} of {inner}"
    if isinstance(value, torch.Tensor):
        return f"a {dtype_name(value.dtype)} tensor"
    return f"a {type(value).__name__}"
