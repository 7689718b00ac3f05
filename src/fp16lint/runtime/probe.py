"""Instrument one model run: forward (pre-)hooks on every module and a TorchFunctionMode for ops.

Per module call and per call of an op of interest the probe records real input/output dtypes,
parameter/buffer dtypes, max |x|, inf/NaN created there, values clamped to ±64512/±65504, all-zero
rows after norm modules, and errors against the fp32 run (matched by module qualified name and call
index, or by op source file, line, name and occurrence index). Ops in reduced precision are also
recomputed in fp32 on their own inputs: the difference is the error (and the inf/NaN) that op
itself creates, not what it inherited.

The probe never changes what the model computes: hooks return None and every statistic runs on
detached tensors; a failure inside the probe is noted and the run goes on.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from .records import ModuleRecord, OpRecord
from .tensors import (
    LOW_PRECISION,
    compare,
    dtype_name,
    iter_named_tensors,
    nbytes,
    summarize,
    upcast,
    zero_rows,
)

#: The functional ops and tensor methods the probe records (``func.__name__`` as torch reports
#: it; ``a + b`` arrives as ``add``, ``x ** 2`` as ``pow``). One place to edit.
OPS_OF_INTEREST: tuple[str, ...] = (
    # reductions and normalisation
    "softmax",
    "log_softmax",
    "logsumexp",
    "sum",
    "mean",
    "var",
    "std",
    "var_mean",
    "norm",
    "cumsum",
    "layer_norm",
    "rms_norm",
    "group_norm",
    # elementwise hazards
    "exp",
    "pow",
    "__pow__",
    "__rpow__",
    "square",
    "rsqrt",
    "sqrt",
    "div",
    "__truediv__",
    "mul",
    "__mul__",
    "add",
    "__add__",
    "masked_fill",
    # matrix products
    "matmul",
    "__matmul__",
    "mm",
    "bmm",
    "baddbmm",
    "addmm",
    "linear",
    "einsum",
    "scaled_dot_product_attention",
)

_NORM_HINTS = ("norm",)
_MAX_ERROR_TEXT = 300


def _short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 3] + "..."


def _skip_prefixes() -> tuple[str, ...]:
    import fp16lint

    dirs = [os.path.dirname(torch.__file__), os.path.dirname(fp16lint.__file__)]
    try:
        import functorch

        dirs.append(os.path.dirname(functorch.__file__))
    except Exception:  # pragma: no cover - functorch ships with torch
        pass
    out = []
    for d in dirs:
        out.append(d + os.sep)
        real = os.path.realpath(d) + os.sep
        if real not in out:
            out.append(real)
    return tuple(out)


class SiteFinder:
    """The first stack frame outside torch and fp16lint: (file, line). Cached per file name."""

    def __init__(self) -> None:
        self._prefixes = _skip_prefixes()
        self._skip: dict[str, bool] = {}

    def find(self, depth: int = 1) -> tuple[str, int]:
        f = sys._getframe(depth + 1)
        skip = self._skip
        while f is not None:
            fn = f.f_code.co_filename
            s = skip.get(fn)
            if s is None:
                s = skip[fn] = fn.startswith(self._prefixes)
            if not s:
                return fn, f.f_lineno
            f = f.f_back
        return "<unknown>", 0

    def from_traceback(self, tb) -> tuple[str, int] | None:
        """The last frame of a traceback outside torch and fp16lint (where the failing call was)."""
        found = None
        while tb is not None:
            fn = tb.tb_frame.f_code.co_filename
            if not fn.startswith(self._prefixes):
                found = (fn, tb.tb_lineno)
            tb = tb.tb_next
        return found


class ReferenceStore:
    """What the fp32 run saw, keyed by module call or op occurrence, for the later runs."""

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.full = False
        self.tensors: dict[tuple, list[torch.Tensor]] = {}
        self.stats: dict[tuple, tuple[int, int, int]] = {}  # inf created, nan created, zero rows

    def put(self, key: tuple, tensors: list[torch.Tensor]) -> None:
        size = sum(nbytes(t) for t in tensors)
        if self.bytes + size > self.max_bytes:
            self.full = True
            return
        self.bytes += size
        self.tensors[key] = [t.detach().clone() for t in tensors]

    def get(self, key: tuple) -> list[torch.Tensor] | None:
        return self.tensors.get(key)

    def clear(self) -> None:
        self.tensors.clear()
        self.stats.clear()
        self.bytes = 0


@dataclass
class _ModuleInfo:
    qualname: str
    class_name: str
    attr: str
    parent_class: str | None
    parent_file: str | None
    is_leaf: bool
    is_norm: bool
    param_dtypes: dict[str, str]
    buffer_dtypes: dict[str, str]


@dataclass
class _Frame:
    module: torch.nn.Module
    record: ModuleRecord
    in_finite: bool = True
    in_has_inf: bool = False
    in_has_nan: bool = False
    mask_context: bool = False
    in_zero_rows: int | None = None
    in_shape: tuple | None = None


_class_file_cache: dict[type, str | None] = {}


def _class_file(cls: type) -> str | None:
    if cls not in _class_file_cache:
        try:
            _class_file_cache[cls] = inspect.getsourcefile(cls)
        except (TypeError, OSError):
            _class_file_cache[cls] = None
    return _class_file_cache[cls]


@dataclass
class ProbeOptions:
    valid: torch.Tensor | None = None  # (batch, seq) bool: True at real tokens
    local_check: bool = True
    autocast_device: str | None = None
    ops: frozenset[str] = field(default_factory=lambda: frozenset(OPS_OF_INTEREST))


class Probe(TorchFunctionMode):
    """Use as a context manager around one forward (and backward) run of ``model``."""

    def __init__(
        self,
        model: torch.nn.Module,
        run: str,
        *,
        store: ReferenceStore | None = None,
        reference: ReferenceStore | None = None,
        options: ProbeOptions | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.run = run
        self.store = store
        self.reference = reference
        self.options = options or ProbeOptions()
        self.modules: list[ModuleRecord] = []
        self.ops: list[OpRecord] = []
        self.internal_errors: list[str] = []
        self.error_site: tuple[str, int, str] | None = None
        self._sites = SiteFinder()
        self._stack: list[_Frame] = []
        self._op_counts: dict[tuple[str, int, str], int] = {}
        self._mod_counts: dict[str, int] = {}
        self._order = 0
        self._busy = False
        self._handles: list[Any] = []
        self._info: dict[int, _ModuleInfo] = {}
        self._ops = self.options.ops

    # -- set-up -------------------------------------------------------------------------------

    def _collect_info(self) -> None:
        named = dict(self.model.named_modules(remove_duplicate=False))
        for qualname, mod in named.items():
            if id(mod) in self._info:
                continue
            parent_name, _, attr = qualname.rpartition(".")
            parent = named.get(parent_name) if qualname else None
            cls = type(mod)
            self._info[id(mod)] = _ModuleInfo(
                qualname=qualname,
                class_name=cls.__name__,
                attr=attr if qualname else "",
                parent_class=type(parent).__name__ if parent is not None else None,
                parent_file=_class_file(type(parent)) if parent is not None else None,
                is_leaf=not any(True for _ in mod.children()),
                is_norm=any(h in cls.__name__.lower() for h in _NORM_HINTS),
                param_dtypes={n: dtype_name(p.dtype) for n, p in mod.named_parameters(recurse=False)},
                buffer_dtypes={
                    n: dtype_name(b.dtype) for n, b in mod.named_buffers(recurse=False) if b is not None
                },
            )

    def attach(self) -> None:
        self._collect_info()
        seen: set[int] = set()
        for mod in self.model.modules():
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            self._handles.append(mod.register_forward_pre_hook(self._pre_hook, with_kwargs=True))
            self._handles.append(
                mod.register_forward_hook(self._post_hook, with_kwargs=True, always_call=True)
            )

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self):
        self.attach()
        try:
            return super().__enter__()
        except BaseException:
            self.detach()
            raise

    def __exit__(self, exc_type, exc, tb):
        try:
            return super().__exit__(exc_type, exc, tb)
        finally:
            self.detach()

    def _internal(self, where: str, exc: BaseException) -> None:
        if len(self.internal_errors) < 20:
            self.internal_errors.append(f"{where}: {_short_error(exc)}")

    # -- modules ------------------------------------------------------------------------------

    def _pre_hook(self, module, args, kwargs):
        if self._busy:
            return None
        self._busy = True
        try:
            info = self._info.get(id(module))
            if info is None:
                return None
            idx = self._mod_counts.get(info.qualname, 0)
            self._mod_counts[info.qualname] = idx + 1
            self._order += 1
            call_file, call_line = self._sites.find(1)
            summ = summarize((args, kwargs))
            rec = ModuleRecord(
                run=self.run,
                qualname=info.qualname,
                class_name=info.class_name,
                attr=info.attr,
                parent_class=info.parent_class,
                parent_file=info.parent_file,
                call_index=idx,
                order=self._order,
                call_file=call_file,
                call_line=call_line,
                is_leaf=info.is_leaf,
                is_norm=info.is_norm,
                in_dtypes=summ.dtypes,
                param_dtypes=dict(info.param_dtypes),
                buffer_dtypes=dict(info.buffer_dtypes),
                max_abs_in=summ.max_abs,
            )
            frame = _Frame(
                module=module,
                record=rec,
                in_finite=summ.finite,
                in_has_inf=summ.n_inf > 0,
                in_has_nan=summ.n_nan > 0,
                mask_context=summ.mask_context,
            )
            if summ.acts:
                first = summ.acts[0]
                frame.in_shape = tuple(first.shape)
                if info.is_norm:
                    frame.in_zero_rows = zero_rows(first)
                key = ("mi", info.qualname, idx)
                if self.store is not None:
                    self.store.put(key, [first])
                elif self.reference is not None:
                    ref = self.reference.get(key)
                    if ref:
                        cmp = compare(first, ref[0], self.options.valid)
                        if cmp is not None:
                            rec.rel_error_in = cmp.rel_error
            self._stack.append(frame)
            self.modules.append(rec)
        except Exception as exc:  # never break the user's model
            self._internal("pre-hook", exc)
        finally:
            self._busy = False
        return None

    def _post_hook(self, module, args, kwargs, output):
        if self._busy:
            return None
        self._busy = True
        try:
            frame = None
            for i in range(len(self._stack) - 1, -1, -1):
                if self._stack[i].module is module:
                    frame = self._stack.pop(i)
                    break
            if frame is None:
                return None
            rec = frame.record
            exc = sys.exc_info()[1]
            if output is None and exc is not None:
                rec.raised = _short_error(exc)
                return None
            summ = summarize(output, mask_context=frame.mask_context)
            rec.out_dtypes = summ.dtypes
            rec.max_abs = summ.max_abs
            rec.numel = summ.numel
            rec.n_inf, rec.n_nan, rec.clamped = summ.n_inf, summ.n_nan, summ.clamped
            inf_created = 0 if frame.in_has_inf else summ.n_inf
            nan_created = 0 if frame.in_has_nan else summ.n_nan
            key = ("m", rec.qualname, rec.call_index)
            zr = 0
            first = summ.acts[0] if summ.acts else None
            if rec.is_norm and first is not None:
                zr = zero_rows(first)
            rec.zero_rows = zr
            if self.store is not None:
                self.store.stats[key] = (inf_created, nan_created, zr)
                self.store.put(key, summ.acts)
                rec.inf_created, rec.nan_created = inf_created, nan_created
                if frame.in_zero_rows is not None and tuple(first.shape) == frame.in_shape:
                    rec.new_zero_rows = max(0, zr - frame.in_zero_rows)
            else:
                ref_stats = self.reference.stats.get(key) if self.reference else None
                if ref_stats is not None:
                    rec.inf_created = max(0, inf_created - ref_stats[0]) if ref_stats[0] else inf_created
                    rec.nan_created = max(0, nan_created - ref_stats[1]) if ref_stats[1] else nan_created
                    rec.new_zero_rows = max(0, zr - ref_stats[2])
                else:
                    rec.inf_created, rec.nan_created = inf_created, nan_created
                    if (
                        frame.in_zero_rows is not None
                        and first is not None
                        and tuple(first.shape) == frame.in_shape
                    ):
                        rec.new_zero_rows = max(0, zr - frame.in_zero_rows)
                ref = self.reference.get(key) if self.reference else None
                if ref and len(ref) == len(summ.acts):
                    worst_err, worst_under = None, None
                    for y, r in zip(summ.acts, ref, strict=True):
                        cmp = compare(y, r, self.options.valid)
                        if cmp is None or cmp.rel_error is None:
                            continue
                        worst_err = cmp.rel_error if worst_err is None else max(worst_err, cmp.rel_error)
                        worst_under = (
                            cmp.underflow if worst_under is None else max(worst_under, cmp.underflow)
                        )
                    rec.rel_error, rec.underflow = worst_err, worst_under
        except Exception as exc:
            self._internal("forward hook", exc)
        finally:
            self._busy = False
        return None

    # -- ops ----------------------------------------------------------------------------------

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if kwargs is None:
            kwargs = {}
        name = getattr(func, "__name__", None)
        if self._busy or name not in self._ops:
            try:
                return func(*args, **kwargs)
            except Exception:
                if self.error_site is None and not self._busy:
                    file, line = self._sites.find(1)
                    self.error_site = (file, line, str(name))
                raise
        file, line = self._sites.find(1)
        site = (file, line, name)
        occ = self._op_counts.get(site, 0)
        self._op_counts[site] = occ + 1
        try:
            out = func(*args, **kwargs)
        except Exception as exc:
            if self.error_site is None:
                self.error_site = site
            self.ops.append(
                OpRecord(
                    run=self.run,
                    op=name,
                    file=file,
                    line=line,
                    occurrence=occ,
                    module=self._stack[-1].record.qualname if self._stack else None,
                    raised=_short_error(exc),
                )
            )
            raise
        self._busy = True
        try:
            self._record_op(func, name, file, line, occ, args, kwargs, out)
        except Exception as exc:
            self._internal(f"op {name}", exc)
        finally:
            self._busy = False
        return out

    def _record_op(self, func, name, file, line, occ, args, kwargs, out) -> None:
        out_summ = None
        in_summ = summarize((args, kwargs))
        out_summ = summarize(out, mask_context=in_summ.mask_context)
        if not out_summ.acts:
            return  # integer results (mask sums, indices) or masks: not activations
        rec = OpRecord(
            run=self.run,
            op=name,
            file=file,
            line=line,
            occurrence=occ,
            module=self._stack[-1].record.qualname if self._stack else None,
            in_dtypes=in_summ.dtypes,
            out_dtypes=out_summ.dtypes,
            max_abs_in=in_summ.max_abs,
            max_abs=out_summ.max_abs,
            numel=out_summ.numel,
            n_inf=out_summ.n_inf,
            n_nan=out_summ.n_nan,
            clamped=out_summ.clamped,
        )
        # inf/NaN that the op created: none of its inputs had them
        raw_inf = 0 if in_summ.n_inf else out_summ.n_inf
        raw_nan = 0 if in_summ.n_nan else out_summ.n_nan
        rec.inf_created, rec.nan_created = raw_inf, raw_nan
        key = ("o", file, line, name, occ)
        valid = self.options.valid
        if self.store is not None:
            self.store.stats[key] = (raw_inf, raw_nan, 0)
            self.store.put(key, out_summ.acts)
        else:
            ref_stats = self.reference.stats.get(key) if self.reference else None
            if ref_stats is not None:
                if ref_stats[0]:
                    rec.inf_created = max(0, raw_inf - ref_stats[0])
                if ref_stats[1]:
                    rec.nan_created = max(0, raw_nan - ref_stats[1])
            low = any(t.dtype in LOW_PRECISION for t in out_summ.acts) or has_low(args, kwargs)
            if self.options.local_check and low:
                self._local_check(rec, func, args, kwargs, out, out_summ.acts, valid)
            ref = self.reference.get(key) if self.reference else None
            if ref and len(ref) == len(out_summ.acts):
                for y, r in zip(out_summ.acts, ref, strict=True):
                    cmp = compare(y, r, valid)
                    if cmp is None or cmp.rel_error is None:
                        continue
                    rec.rel_error = cmp.rel_error if rec.rel_error is None else max(rec.rel_error, cmp.rel_error)
                    rec.underflow = cmp.underflow if rec.underflow is None else max(rec.underflow, cmp.underflow)
        self.ops.append(rec)

    def _local_check(self, rec, func, args, kwargs, out, acts, valid) -> None:
        """Recompute the op in fp32 on the same (upcast) inputs: what this op itself got wrong."""
        ctx = (
            torch.autocast(device_type=self.options.autocast_device, enabled=False)
            if self.options.autocast_device
            else contextlib.nullcontext()
        )
        try:
            with torch.no_grad(), ctx:
                ref_out = func(*upcast(args), **upcast(kwargs))
        except Exception:
            return
        ids = {id(t) for t in acts}
        ref_by_name = dict(iter_named_tensors(ref_out))
        inf_c = nan_c = 0
        compared = False
        for nm, y in iter_named_tensors(out):
            if id(y) not in ids:
                continue
            r = ref_by_name.get(nm)
            if r is None or not r.is_floating_point():
                continue
            cmp = compare(y, r, valid, created=True)
            if cmp is None:
                continue
            compared = True
            inf_c += cmp.inf_created
            nan_c += cmp.nan_created
            if cmp.rel_error is not None:
                rec.local_rel_error = (
                    cmp.rel_error if rec.local_rel_error is None else max(rec.local_rel_error, cmp.rel_error)
                )
                rec.local_underflow = (
                    cmp.underflow if rec.local_underflow is None else max(rec.local_underflow, cmp.underflow)
                )
        if compared:
            # the fp32 recomputation on the same inputs is the judge of what this op created
            rec.inf_created, rec.nan_created = inf_c, nan_c


def has_low(args, kwargs) -> bool:
    for _, t in iter_named_tensors((args, kwargs)):
        if t.dtype in LOW_PRECISION:
            return True
    return False
