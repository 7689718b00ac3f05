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
import math
import os
import sys
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from fp16lint.data.mask_fills import is_limit_fill

from .records import ModuleRecord, OpRecord
from .tensors import (
    Summary,
    TStat,
    compare,
    dtype_name,
    flat_tensors,
    is_clean,
    iter_named_tensors,
    nbytes,
    padding_view,
    summarize,
    tensor_stat,
    upcast,
    version,
    zero_rows,
)

#: The functional ops and tensor methods the probe records (``func.__name__`` as torch reports
#: it; ``a + b`` arrives as ``add``, ``a - b`` as ``sub``, ``1 - a`` as ``__rsub__``, ``x ** 2``
#: as ``pow``). One place to edit.
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
    "sub",
    "__rsub__",
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
#: values per stacked comparison chunk: the chunk, its difference and their float64 norms cost
#: about 20 bytes a value, so 1 Mi values keep a flush near 20 MiB
_STACK_ELEMS = 1 << 20
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


def _absolute(filename: str) -> str:
    return filename if filename.startswith("<") else os.path.abspath(filename)


def is_installed(path: str) -> bool:
    """Inside an installed package (site-packages / dist-packages): not code the user edits."""
    return any(
        m in path for m in (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
    )


_forward_sites: dict[type, tuple[str, int] | None] = {}


def forward_site(cls: type) -> tuple[str, int] | None:
    """(file, line) of ``cls.forward``'s definition: where a module-level failure is placed."""
    if cls not in _forward_sites:
        site = None
        fwd = getattr(cls, "forward", None)
        try:
            fn = inspect.getsourcefile(fwd)  # type: ignore[arg-type]
            line = inspect.getsourcelines(fwd)[1]  # type: ignore[arg-type]
            if fn:
                site = (_absolute(fn), line)
        except (TypeError, OSError):
            site = None
        _forward_sites[cls] = site
    return _forward_sites[cls]


class SiteFinder:
    """The first stack frame outside torch and fp16lint, below ``boundary`` (the frame that runs
    the model): (file, line), or None when there is none. Frames above the boundary (the CLI,
    the user's ``check()`` call) are never a place in the model. Cached per file name."""

    def __init__(self) -> None:
        self._prefixes = _skip_prefixes()
        # file name -> its absolute path, or None for torch's and fp16lint's own files.
        # Absolute at first sight: a relative co_filename means nothing after a chdir.
        self._files: dict[str, str | None] = {}
        self.boundary: Any = None

    def find(self, depth: int = 1) -> tuple[str, int] | None:
        f = sys._getframe(depth + 1)
        files = self._files
        boundary = self.boundary
        while f is not None and f is not boundary:
            fn = f.f_code.co_filename
            if fn not in files:
                files[fn] = None if fn.startswith(self._prefixes) else _absolute(fn)
            if files[fn] is not None:
                return files[fn], f.f_lineno
            f = f.f_back
        return None

    def from_traceback(self, tb) -> tuple[str, int] | None:
        """Where the failing call was: the last frame of a traceback outside torch and fp16lint,
        preferring code the user edits over installed packages."""
        found = installed = None
        while tb is not None:
            fn = tb.tb_frame.f_code.co_filename
            if not fn.startswith(self._prefixes):
                if is_installed(fn):
                    installed = (_absolute(fn), tb.tb_lineno)
                else:
                    found = (_absolute(fn), tb.tb_lineno)
            tb = tb.tb_next
        return found or installed


_sample_indices: dict[tuple[int, str], torch.Tensor] = {}


def sample_index(numel: int, device: torch.device) -> torch.Tensor:
    """``ReferenceStore.SAMPLE`` fixed pseudo-random positions (sorted) of a flattened tensor of
    ``numel`` values: random, not strided, so that no channel or head is over-represented."""
    key = (numel, str(device))
    idx = _sample_indices.get(key)
    if idx is None:
        g = torch.Generator().manual_seed(numel)
        idx = torch.randint(0, numel, (ReferenceStore.SAMPLE,), generator=g).sort().values
        idx = _sample_indices[key] = idx.to(device)
    return idx


class ReferenceStore:
    """What the fp32 run saw, keyed by module call or op occurrence, for the later runs.

    Tensors of up to ``SAMPLE`` values are kept by reference (no copy) with their in-place
    version: a reference modified in place later in the fp32 run is dropped at lookup instead of
    giving a wrong figure. Larger tensors are kept as a fixed random sample of ``SAMPLE``
    positions (the same positions for every tensor of that size, in every run): the error
    figures against them are estimates, and the store holds a bounded slice of the activations
    instead of all of them (issue 19: the runs never hold a model copy plus every activation).
    """

    SAMPLE = 1 << 16

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.full = False
        # key -> [(tensor or sample, version, clean, shape, sampled)]
        self._tensors: dict[tuple, list[tuple[torch.Tensor, int, bool, torch.Size, bool]]] = {}
        # every tensor held once (the same object under several keys compares once, see Probe);
        # comparisons run under no_grad, so tensors of a backward run are held as they are
        self._held: dict[int, torch.Tensor] = {}
        self._samples: dict[int, tuple[Any, torch.Tensor]] = {}
        self.stats: dict[tuple, tuple[int, int, int]] = {}  # inf created, nan created, zero rows

    def put(self, key: tuple, tensors: list[torch.Tensor], clean: list[bool]) -> None:
        if self.full:
            return
        entries = []
        for t, c in zip(tensors, clean, strict=True):
            if t.numel() > self.SAMPLE:
                hit = self._samples.get(id(t))
                if hit is None or hit[0]() is not t:
                    sample = t.detach().reshape(-1)[sample_index(t.numel(), t.device)]
                    if self.bytes + nbytes(sample) > self.max_bytes:
                        self.full = True
                        return
                    self.bytes += nbytes(sample)
                    hit = (weakref.ref(t), sample)
                    self._samples[id(t)] = hit
                entries.append((hit[1], -2, c, t.shape, True))
                continue
            # one detached object per tensor, so that equal pairs compare once (see Probe)
            if id(t) not in self._held:
                size = nbytes(t)
                if self.bytes + size > self.max_bytes:
                    self.full = True
                    return
                self.bytes += size
                self._held[id(t)] = t
            entries.append((t, version(t), c, t.shape, False))
        self._tensors[key] = entries

    def get(self, key: tuple) -> list[tuple[torch.Tensor, bool, torch.Size, bool]] | None:
        """[(tensor or sample, clean, shape, sampled)] or None; None also when a tensor kept by
        reference was modified in place since."""
        entry = self._tensors.get(key)
        if entry is None:
            return None
        out = []
        for t, ver, clean, shape, sampled in entry:
            if not sampled and version(t) != ver:
                return None
            out.append((t, clean, shape, sampled))
        return out

    def __contains__(self, key: tuple) -> bool:
        return key in self._tensors

    def clear(self) -> None:
        self._tensors.clear()
        self._held.clear()
        self._samples.clear()
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
    in_has_inf: bool = False
    in_has_nan: bool = False
    mask_context: bool = False
    first_in: torch.Tensor | None = None
    first_in_clean: bool = False
    in_zero_rows: int | None = None


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
    #: recompute reduced-precision ops in fp32 on their own inputs: "auto" where the fp32 run
    #: disagrees (error, underflow, inf/NaN, clamped values, no reference), "always", "never"
    local_check: str | bool = "auto"
    autocast_device: str | None = None
    #: in "auto", an op is recomputed when its error against the fp32 run exceeds this, or its
    #: underflow exceeds ``trigger_underflow``; a module's input error is measured likewise
    trigger_error: float = 0.02
    trigger_underflow: float = 0.02
    ops: frozenset[str] = field(default_factory=lambda: frozenset(OPS_OF_INTEREST))

    @property
    def local_mode(self) -> str:
        if self.local_check is True:
            return "auto"
        if self.local_check is False:
            return "never"
        return str(self.local_check)


class _Pending:
    """One (run tensor, reference tensor) pair waiting for the batched comparison: ``y`` and
    ``r`` are the float32 values to compare, ``source`` a weak reference to the run tensor they
    came from (the queue is keyed by its id: a dead one's id may be reused)."""

    __slots__ = ("numel", "r", "source", "targets", "y")

    def __init__(self, y: torch.Tensor, r: torch.Tensor, source: torch.Tensor) -> None:
        self.y = y
        self.r = r
        self.source = weakref.ref(source)
        self.numel = y.numel()
        self.targets: list[tuple[Any, str]] = []


def _limit_fill(name: str, args: tuple, kwargs: dict, out: Any) -> bool:
    """``masked_fill(m, torch.finfo(dtype).min)``: the dtype's own limit written as a mask value
    (data/mask_fills.py), never an overflowed activation."""
    if name not in ("masked_fill", "masked_fill_") or not isinstance(out, torch.Tensor):
        return False
    value = args[2] if len(args) > 2 else kwargs.get("value")
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    return isinstance(value, (int, float)) and is_limit_fill(float(value), dtype_name(out.dtype))


class Probe(TorchFunctionMode):
    """Use as a context manager around one forward (and backward) run of ``model``.

    With ``store`` the run is the fp32 reference and fills it; with ``reference`` the run is
    compared against it. Comparisons of finite tensors are queued and computed in one batch when
    the probe exits (or when the queue reaches ``max_queue_bytes``): a few kernels for the whole
    run instead of a dozen per op.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        run: str,
        *,
        store: ReferenceStore | None = None,
        reference: ReferenceStore | None = None,
        options: ProbeOptions | None = None,
        max_queue_bytes: int = 16 << 20,
    ) -> None:
        super().__init__()
        self.model = model
        self.run = run
        self.store = store
        self.reference = reference
        self.options = options or ProbeOptions()
        self.max_queue_bytes = max_queue_bytes
        self.modules: list[ModuleRecord] = []
        self.ops: list[OpRecord] = []
        self.internal_errors: list[str] = []
        self.error_site: tuple[str, int, str] | None = None
        self._sites = SiteFinder()
        self._stack: list[_Frame] = []
        self._op_counts: dict[tuple[str, int, str], int] = {}
        self._mod_counts: dict[str, int] = {}
        self._order = 0
        self._handles: list[Any] = []
        self._info: dict[int, _ModuleInfo] = {}
        self._ops = self.options.ops
        self._local = self.options.local_mode
        self._cache: dict[int, tuple[Any, int, bool, TStat]] = {}
        self._queue: list[_Pending] = []
        self._queue_index: dict[tuple[int, int, int], _Pending] = {}
        self._queue_bytes = 0  # queued copies plus what the deferred recomputations hold
        self._deferred_local: list[tuple] = []
        self._names: dict[Any, str | None] = {}

    # -- set-up -------------------------------------------------------------------------------

    def _collect_info(self) -> None:
        # one walk over the module tree (this runs once per run: keep it cheap)
        stack: list[tuple[str, torch.nn.Module, torch.nn.Module | None]] = [("", self.model, None)]
        while stack:
            qualname, mod, parent = stack.pop()
            if id(mod) in self._info:
                continue
            children = [(k, c) for k, c in mod._modules.items() if c is not None]
            cls = type(mod)
            self._info[id(mod)] = _ModuleInfo(
                qualname=qualname,
                class_name=cls.__name__,
                attr=qualname.rpartition(".")[2],
                parent_class=type(parent).__name__ if parent is not None else None,
                parent_file=_class_file(type(parent)) if parent is not None else None,
                is_leaf=not children,
                is_norm=any(h in cls.__name__.lower() for h in _NORM_HINTS),
                param_dtypes={
                    n: dtype_name(p.dtype) for n, p in mod._parameters.items() if p is not None
                },
                buffer_dtypes={
                    n: dtype_name(b.dtype) for n, b in mod._buffers.items() if b is not None
                },
            )
            for k, c in reversed(children):
                stack.append((f"{qualname}.{k}" if qualname else k, c, mod))

    def attach(self) -> None:
        self._collect_info()
        for mod in self.model.modules():
            self._handles.append(mod.register_forward_pre_hook(self._pre_hook, with_kwargs=True))
            self._handles.append(
                mod.register_forward_hook(self._post_hook, with_kwargs=True, always_call=True)
            )

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._cache.clear()

    def _module_site(self, module: torch.nn.Module | None = None) -> tuple[str, int]:
        """The ``forward`` of the innermost running module (user code first): where a failure
        with no frame of the model's own code is placed."""
        mods = [f.module for f in reversed(self._stack)]
        if module is not None:
            mods.insert(0, module)
        sites = [s for s in (forward_site(type(m)) for m in mods) if s is not None]
        for site in sites:
            if not site[0].startswith(self._sites._prefixes) and not is_installed(site[0]):
                return site
        for site in sites:
            if not site[0].startswith(self._sites._prefixes):
                return site
        return sites[0] if sites else ("<unknown>", 0)

    def _site(self, depth: int) -> tuple[str, int]:
        return self._sites.find(depth + 1) or self._module_site()

    def __enter__(self):
        # the frame that enters the probe runs the model: frames above it are not the model's
        self._sites.boundary = sys._getframe(1)
        self.attach()
        try:
            return super().__enter__()
        except BaseException:
            self.detach()
            raise

    def __exit__(self, exc_type, exc, tb):
        try:
            with torch._C.DisableTorchFunction(), torch.no_grad():
                try:
                    self.flush()
                except Exception as err:
                    self._internal("comparison", err)
            return super().__exit__(exc_type, exc, tb)
        finally:
            self._sites.boundary = None
            self.detach()

    def _internal(self, where: str, exc: BaseException) -> None:
        if len(self.internal_errors) < 20:
            self.internal_errors.append(f"{where}: {_short_error(exc)}")

    # -- statistics (each tensor once, while it is unchanged) ---------------------------------

    def _stat(self, t: torch.Tensor, mask_context: bool) -> TStat:
        key = id(t)
        ver = version(t)
        hit = self._cache.get(key)
        if hit is not None and hit[0]() is t and hit[1] == ver and hit[2] == mask_context:
            return hit[3]
        st = tensor_stat(t, mask_context)
        with contextlib.suppress(TypeError):  # not weak-referenceable
            self._cache[key] = (weakref.ref(t), ver, mask_context, st)
        return st

    def _summarize(
        self, obj: object, mask_context: bool = False, skip_params: bool = False
    ) -> Summary:
        return summarize(obj, mask_context, stat=self._stat, skip_params=skip_params)

    # -- comparisons against the fp32 run ------------------------------------------------------

    @staticmethod
    def _assign(target: Any, kind: str, rel: float | None, under: float | None) -> None:
        if rel is None:
            return
        if kind == "in":
            target.rel_error_in = (
                rel if target.rel_error_in is None else max(target.rel_error_in, rel)
            )
            return
        target.rel_error = rel if target.rel_error is None else max(target.rel_error, rel)
        if under is not None:
            target.underflow = under if target.underflow is None else max(target.underflow, under)

    def _compare_to_reference(
        self,
        acts: list[torch.Tensor],
        stats: list[TStat],
        ref: list[tuple[torch.Tensor, bool, torch.Size, bool]] | None,
        mask_context: bool,
        target: Any,
        kind: str,
    ) -> None:
        """Queue (or, for tensors with inf/NaN or mask sentinels, compute now) each pair."""
        if not ref or len(ref) != len(acts):
            return
        valid = self.options.valid
        for y, st, (r, r_clean, shape, sampled) in zip(acts, stats, ref, strict=True):
            if y.shape != shape or y.numel() == 0:
                continue
            key = (id(y), version(y), id(r))
            pending = self._queue_index.get(key)
            if pending is not None and pending.source() is y:
                pending.targets.append((target, kind))
                continue
            clean = r_clean and is_clean(st, mask_context)
            if sampled:
                self._compare_sample(y, r, clean, key, target, kind)
                continue
            if not clean:
                cmp = compare(y, r, valid)
                if cmp is not None:
                    self._assign(target, kind, cmp.rel_error, cmp.underflow)
                continue
            yd = y.detach()
            pv = padding_view(valid, y.shape)
            if pv is None:
                # a copy: the run may change y in place before the batch is computed
                y32 = yd.to(torch.float32, copy=True)
                r32 = r
            else:
                y32 = yd.float() * pv
                r32 = r * pv
            self._enqueue(_Pending(y32, r32, y), key, target, kind)

    def _compare_sample(
        self, y: torch.Tensor, r: torch.Tensor, clean: bool, key: tuple, target: Any, kind: str
    ) -> None:
        """Compare ``y`` at the store's sampled positions (padding positions zeroed in both)."""
        idx = sample_index(y.numel(), y.device)
        ys = y.detach().reshape(-1)[idx].float()
        rs = r.float()
        pv = padding_view(self.options.valid, y.shape)
        if pv is not None:
            keep = pv.expand(y.shape).reshape(-1)[idx]
            zero = torch.zeros((), dtype=torch.float32, device=ys.device)
            ys, rs = torch.where(keep, ys, zero), torch.where(keep, rs, zero)
        if not clean:
            cmp = compare(ys, rs)
            if cmp is not None:
                self._assign(target, kind, cmp.rel_error, cmp.underflow)
            return
        self._enqueue(_Pending(ys, rs, y), key, target, kind)

    def _enqueue(self, pending: _Pending, key: tuple, target: Any, kind: str) -> None:
        pending.targets.append((target, kind))
        self._queue.append(pending)
        self._queue_index[key] = pending
        self._hold(pending.numel * 4)

    def _hold(self, size: int) -> None:
        """Count ``size`` more bytes kept for the batch; compute the batch when over budget."""
        self._queue_bytes += size
        if self._queue_bytes > self.max_queue_bytes:
            # mid-run: the comparisons are the probe's own arithmetic, never the run's autocast
            ac = self.options.autocast_device
            with (
                torch.no_grad(),
                torch.autocast(ac, enabled=False) if ac else contextlib.nullcontext(),
            ):
                self.flush()

    def flush(self) -> None:
        """Compute the queued comparisons in one batch, then the deferred fp32 recomputations."""
        queue, self._queue = self._queue, []
        self._queue_index.clear()
        self._queue_bytes = 0
        if queue:
            self._compute(queue)
        deferred, self._deferred_local = self._deferred_local, []
        for rec, func, args, kwargs, out, acts, versions in deferred:
            needed = (rec.rel_error is not None and rec.rel_error > self.options.trigger_error) or (
                (rec.underflow or 0.0) > self.options.trigger_underflow
            )
            if not needed:
                continue
            if [version(t) for _, t in flat_tensors((args, kwargs, out))] != versions:
                continue  # inputs changed in place since: the recomputation would be wrong
            self._local_check(rec, func, args, kwargs, out, acts)

    def _compute(self, queue: list[_Pending]) -> None:
        # pairs of one shape are stacked and reduced together: a few kernels per shape and one
        # synchronisation for the whole queue
        f64 = torch.float64
        norm = torch.linalg.vector_norm
        # chunks of at most _STACK_ELEMS values: stacking copies its inputs, and the difference
        # and masks cost as much again, so an unbounded stack would hold the run's activations
        # several times over
        groups: dict[tuple, list[_Pending]] = {}
        for p in queue:
            key = (tuple(p.y.shape), p.y.device)
            chunk = groups.setdefault(key, [])
            if chunk and (len(chunk) + 1) * p.numel > _STACK_ELEMS:
                groups[(*key, len(groups))] = chunk[:]
                chunk.clear()
            chunk.append(p)
        order: list[_Pending] = []
        parts = []
        for members in groups.values():
            n = len(members)
            if n == 1:
                y = members[0].y.reshape(1, -1)
                r = members[0].r.reshape(1, -1).float()
            else:
                y = torch.stack([p.y for p in members]).reshape(n, -1)
                r = torch.stack([p.r.float() for p in members]).reshape(n, -1)
            nz = r != 0
            parts.append(
                torch.stack(
                    (
                        norm(y - r, dim=1, dtype=f64),
                        norm(r, dim=1, dtype=f64),
                        nz.sum(1, dtype=f64),
                        (nz & (y == 0)).sum(1, dtype=f64),
                    ),
                    dim=1,
                )
            )
            order.extend(members)
        values = torch.cat(parts).tolist()
        for p, (num, den, nzc, under) in zip(order, values, strict=True):
            if den == 0:
                rel = 0.0 if num == 0 else math.inf
            elif not math.isfinite(num):
                rel = math.inf
            else:
                rel = num / den
            und = under / nzc if nzc else 0.0
            for target, kind in p.targets:
                self._assign(target, kind, rel, und)

    # -- modules ------------------------------------------------------------------------------

    def _pre_hook(self, module, args, kwargs):
        with torch._C.DisableTorchFunction():
            try:
                self._pre(module, args, kwargs)
            except Exception as exc:  # never break the user's model
                self._internal("pre-hook", exc)
        return None

    def _pre(self, module, args, kwargs) -> None:
        info = self._info.get(id(module))
        if info is None:
            return
        idx = self._mod_counts.get(info.qualname, 0)
        self._mod_counts[info.qualname] = idx + 1
        self._order += 1
        call_file, call_line = self._sites.find(2) or self._module_site(module)
        summ = self._summarize((args, kwargs))
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
            param_dtypes=info.param_dtypes,
            buffer_dtypes=info.buffer_dtypes,
            max_abs_in=summ.max_abs,
        )
        frame = _Frame(
            module=module,
            record=rec,
            in_has_inf=summ.n_inf > 0,
            in_has_nan=summ.n_nan > 0,
            mask_context=summ.mask_context,
        )
        if summ.acts:
            first = summ.acts[0]
            frame.first_in = first
            if info.is_norm and self.reference is None:
                frame.in_zero_rows = zero_rows(first)
            key = ("mi", info.qualname, idx)
            if self.store is not None:
                self.store.put(key, [first], [is_clean(summ.stats[0], summ.mask_context)])
            elif self.reference is not None:
                self._compare_to_reference(
                    [first], summ.stats[:1], self.reference.get(key), summ.mask_context, rec, "in"
                )
        self._stack.append(frame)
        self.modules.append(rec)

    def _post_hook(self, module, args, kwargs, output):
        exc = sys.exc_info()[1]
        with torch._C.DisableTorchFunction():
            try:
                self._post(module, output, exc)
            except Exception as err:
                self._internal("forward hook", err)
        return None

    def _post(self, module, output, exc) -> None:
        frame = None
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i].module is module:
                frame = self._stack.pop(i)
                break
        if frame is None:
            return
        rec = frame.record
        if output is None and exc is not None:
            rec.raised = _short_error(exc)
            return
        summ = self._summarize(output, mask_context=frame.mask_context)
        rec.out_dtypes = summ.dtypes
        rec.max_abs = summ.max_abs
        rec.numel = summ.numel
        rec.n_inf, rec.n_nan, rec.clamped = summ.n_inf, summ.n_nan, summ.clamped
        inf_created = 0 if frame.in_has_inf else summ.n_inf
        nan_created = 0 if frame.in_has_nan else summ.n_nan
        key = ("m", rec.qualname, rec.call_index)
        first = summ.acts[0] if summ.acts else None
        zr = zero_rows(first) if rec.is_norm and first is not None else 0
        rec.zero_rows = zr
        same_shape = (
            first is not None and frame.first_in is not None and first.shape == frame.first_in.shape
        )
        if self.store is not None:
            self.store.stats[key] = (inf_created, nan_created, zr)
            self.store.put(key, summ.acts, [is_clean(st, summ.mask_context) for st in summ.stats])
            rec.inf_created, rec.nan_created = inf_created, nan_created
            if frame.in_zero_rows is not None and same_shape:
                rec.new_zero_rows = max(0, zr - frame.in_zero_rows)
            return
        ref_stats = self.reference.stats.get(key) if self.reference else None
        if ref_stats is not None:
            rec.inf_created = max(0, inf_created - ref_stats[0])
            rec.nan_created = max(0, nan_created - ref_stats[1])
            rec.new_zero_rows = max(0, zr - ref_stats[2])
        else:
            rec.inf_created, rec.nan_created = inf_created, nan_created
            if frame.in_zero_rows is not None and same_shape:
                rec.new_zero_rows = max(0, zr - frame.in_zero_rows)
        if self.reference is not None:
            self._compare_to_reference(
                summ.acts, summ.stats, self.reference.get(key), summ.mask_context, rec, "out"
            )

    # -- ops ----------------------------------------------------------------------------------

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if kwargs is None:
            kwargs = {}
        try:
            name = self._names[func]
        except (KeyError, TypeError):
            name = getattr(func, "__name__", None)
            with contextlib.suppress(TypeError):  # unhashable callables
                self._names[func] = name
        if name not in self._ops:
            try:
                return func(*args, **kwargs)
            except Exception:
                if self.error_site is None:
                    file, line = self._site(1)
                    self.error_site = (file, line, str(name))
                raise
        file, line = self._site(1)
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
        try:
            self._record_op(func, name, file, line, occ, args, kwargs, out)
        except Exception as exc:
            self._internal(f"op {name}", exc)
        return out

    def _record_op(self, func, name, file, line, occ, args, kwargs, out) -> None:
        in_summ = self._summarize((args, kwargs), skip_params=True)
        out_summ = self._summarize(
            out, mask_context=in_summ.mask_context or _limit_fill(name, args, kwargs, out)
        )
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
        # inf/NaN the op created: none of its inputs had them
        raw_inf = 0 if in_summ.n_inf else out_summ.n_inf
        raw_nan = 0 if in_summ.n_nan else out_summ.n_nan
        rec.inf_created, rec.nan_created = raw_inf, raw_nan
        key = ("o", file, line, name, occ)
        self.ops.append(rec)
        if self.store is not None:
            self.store.stats[key] = (raw_inf, raw_nan, 0)
            self.store.put(
                key, out_summ.acts, [is_clean(st, out_summ.mask_context) for st in out_summ.stats]
            )
            return
        ref_stats = self.reference.stats.get(key) if self.reference else None
        if ref_stats is not None:
            rec.inf_created = max(0, raw_inf - ref_stats[0])
            rec.nan_created = max(0, raw_nan - ref_stats[1])
        ref = self.reference.get(key) if self.reference else None
        if ref is not None:
            self._compare_to_reference(
                out_summ.acts, out_summ.stats, ref, out_summ.mask_context, rec, "out"
            )
        if self._local == "never":
            return
        if not (out_summ.low or in_summ.low):
            return
        now = self._local == "always" or ref is None or not out_summ.finite or out_summ.clamped
        if now:
            self._local_check(rec, func, args, kwargs, out, out_summ.acts)
        else:
            # decided after the batched comparison: only where the fp32 run disagrees
            held = flat_tensors((args, kwargs, out))
            versions = [version(t) for _, t in held]
            self._deferred_local.append((rec, func, args, kwargs, out, out_summ.acts, versions))
            # weights stay alive anyway; activations would be freed but for this entry
            self._hold(sum(nbytes(t) for _, t in held if t.__class__ is not torch.nn.Parameter))

    def _local_check(self, rec, func, args, kwargs, out, acts) -> None:
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
            cmp = compare(y, r, self.options.valid, created=True)
            if cmp is None:
                continue
            compared = True
            inf_c += cmp.inf_created
            nan_c += cmp.nan_created
            if cmp.rel_error is not None:
                rec.local_rel_error = (
                    cmp.rel_error
                    if rec.local_rel_error is None
                    else max(rec.local_rel_error, cmp.rel_error)
                )
                rec.local_underflow = (
                    cmp.underflow
                    if rec.local_underflow is None
                    else max(rec.local_underflow, cmp.underflow or 0.0)
                )
        if compared:
            # inf/NaN where fp32 arithmetic on the very same inputs stays finite: this op made
            # them even if its inputs already held some elsewhere
            rec.inf_created = max(rec.inf_created, inf_c)
            rec.nan_created = max(rec.nan_created, nan_c)
