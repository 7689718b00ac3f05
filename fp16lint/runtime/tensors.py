"""Tensor helpers for the probe: walking nested outputs, cheap statistics, comparisons.

Every statistic is computed on detached tensors and costs one host synchronisation in the common
case (a single ``aminmax``), so the probe stays within a few times the plain forward pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

FLOAT16_MAX = 65504.0
CLAMP_VALUES = (64512.0, 65504.0)
#: fp32 values beyond this are mask sentinels (finfo(float32).min and friends), not activations
SENTINEL_ABS = 1e30
LOW_PRECISION = (torch.float16, torch.bfloat16)

_MAX_DEPTH = 6


_Parameter = torch.nn.Parameter
_DTYPE_NAMES: dict[torch.dtype, str] = {}
_SENTINELS: dict[torch.dtype, float] = {}


def dtype_name(dtype: torch.dtype) -> str:
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
    return name


def _sentinel(dtype: torch.dtype) -> float:
    """Half the dtype's most negative value: at or below it a value is a mask sentinel."""
    v = _SENTINELS.get(dtype)
    if v is None:
        v = _SENTINELS[dtype] = -torch.finfo(dtype).max * 0.5
    return v


def flat_tensors(
    obj: object, masked: bool = False, out: list | None = None, depth: int = 0
) -> list[tuple[bool, torch.Tensor]]:
    """Every tensor in ``obj`` with whether a mapping key above it names a mask (fast walk)."""
    if out is None:
        out = []
    if isinstance(obj, torch.Tensor):
        out.append((masked, obj))
        return out
    if depth >= _MAX_DEPTH:
        return out
    if type(obj) in (tuple, list):
        for v in obj:
            if isinstance(v, torch.Tensor):
                out.append((masked, v))
            elif type(v) in (tuple, list, dict) or isinstance(v, Mapping):
                flat_tensors(v, masked, out, depth + 1)
    elif type(obj) is dict or isinstance(obj, Mapping):
        for k, v in obj.items():
            m = masked or (isinstance(k, str) and "mask" in k.lower())
            if isinstance(v, torch.Tensor):
                out.append((m, v))
            elif type(v) in (tuple, list, dict) or isinstance(v, Mapping):
                flat_tensors(v, m, out, depth + 1)
    elif isinstance(obj, (tuple, list)):  # namedtuples and other subclasses
        for v in obj:
            flat_tensors(v, masked, out, depth + 1)
    elif is_dataclass_instance(obj):
        flat_tensors(dataclass_items(obj), masked, out, depth + 1)
    return out


def is_dataclass_instance(obj: object) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def dataclass_items(obj: object) -> dict[str, object]:
    """A plain ``@dataclass`` output's fields (``ModelOutput`` is a Mapping, read as one)."""
    return {f.name: getattr(obj, f.name, None) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]


def iter_named_tensors(
    obj: object, prefix: str = "", depth: int = 0
) -> Iterator[tuple[str, torch.Tensor]]:
    """Tensors inside tuples, lists, dicts and ``ModelOutput``s (a Mapping), with dotted names."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
        return
    if depth >= _MAX_DEPTH:
        return
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            yield from iter_named_tensors(value, name, depth + 1)
    elif isinstance(obj, (tuple, list)):
        for i, value in enumerate(obj):
            name = f"{prefix}.{i}" if prefix else str(i)
            yield from iter_named_tensors(value, name, depth + 1)
    elif is_dataclass_instance(obj):
        yield from iter_named_tensors(dataclass_items(obj), prefix, depth)


def map_tensors(obj: object, fn, depth: int = 0) -> object:
    """Rebuild tuples/lists/dicts with ``fn`` applied to every tensor (other leaves kept)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if depth >= _MAX_DEPTH:
        return obj
    if isinstance(obj, dict) and type(obj) is dict:
        return {k: map_tensors(v, fn, depth + 1) for k, v in obj.items()}
    if isinstance(obj, Mapping):
        try:
            return type(obj)({k: map_tensors(v, fn, depth + 1) for k, v in obj.items()})
        except Exception:
            return {k: map_tensors(v, fn, depth + 1) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(map_tensors(v, fn, depth + 1) for v in obj))
    if isinstance(obj, tuple):
        return tuple(map_tensors(v, fn, depth + 1) for v in obj)
    if isinstance(obj, list):
        return [map_tensors(v, fn, depth + 1) for v in obj]
    return obj


def is_mask_name(name: str) -> bool:
    last = name.rsplit(".", 1)[-1].lower()
    return "mask" in last


@dataclass
class TStat:
    numel: int = 0
    max_abs: float | None = None
    n_inf: int = 0
    n_nan: int = 0
    clamped: int = 0
    mask_like: bool = False

    @property
    def finite(self) -> bool:
        return self.n_inf == 0 and self.n_nan == 0


def tensor_stat(t: torch.Tensor, mask_context: bool = False) -> TStat:
    """max |x| over finite values, inf/NaN counts, clamped (±64512/±65504 in fp16) count.

    A tensor whose values are only 0 and its dtype's most negative value (or -inf) is an additive
    attention mask, not an activation: ``mask_like`` is set and nothing else is counted. With
    ``mask_context`` (the op or module received a mask), values at or below half the dtype's
    most negative value are mask sentinels and left out of max |x| and the clamped count.
    """
    t = t.detach()
    n = t.numel()
    if n == 0:
        return TStat()
    sentinel = _sentinel(t.dtype)
    lo, hi = torch.aminmax(t)
    if t.device.type == "cpu":
        mn, mx = lo.item(), hi.item()
    else:  # one synchronisation instead of two
        mn, mx = torch.stack((lo, hi)).tolist()
    if mn <= sentinel and bool(((t == 0) | (t == mn)).all()):
        return TStat(numel=n, mask_like=True)
    fp16 = t.dtype == torch.float16
    if math.isfinite(mn) and math.isfinite(mx) and not (mask_context and mn <= sentinel):
        max_abs = max(-mn, mx)
        clamped = 0
        if fp16 and max_abs >= CLAMP_VALUES[0]:
            a = t.abs()
            clamped = int(((a == CLAMP_VALUES[0]) | (a == CLAMP_VALUES[1])).sum())
        return TStat(numel=n, max_abs=float(max_abs), clamped=clamped)
    # slow path: something is not finite, or mask sentinels must be left out
    nan = torch.isnan(t)
    inf = torch.isinf(t)
    valid = ~(nan | inf)
    if mask_context:
        valid &= t > sentinel
    a = t.abs()
    max_abs = torch.where(valid, a, torch.zeros((), dtype=a.dtype, device=a.device)).amax()
    if fp16:
        clamped = (((a == CLAMP_VALUES[0]) | (a == CLAMP_VALUES[1])) & valid).sum()
    else:
        clamped = torch.zeros((), device=t.device)
    vals = torch.stack(
        [
            max_abs.double(),
            nan.sum().double(),
            inf.sum().double(),
            clamped.double(),
            valid.sum().double(),
        ]
    ).tolist()
    return TStat(
        numel=n,
        # no finite value at all (an all-NaN output): no magnitude, never "max |x| 0"
        max_abs=float(vals[0]) if vals[4] else None,
        n_nan=int(vals[1]),
        n_inf=int(vals[2]),
        clamped=int(vals[3]),
    )


class Summary:
    """Statistics of several tensors taken together."""

    __slots__ = (
        "acts",
        "clamped",
        "dtypes",
        "low",
        "mask_context",
        "max_abs",
        "n_inf",
        "n_nan",
        "numel",
        "stats",
    )

    def __init__(self) -> None:
        self.dtypes: list[str] = []
        self.acts: list[torch.Tensor] = []  # floating, not mask-like, not named as a mask
        self.stats: list[TStat] = []
        self.numel = 0
        self.max_abs: float | None = None
        self.n_inf = 0
        self.n_nan = 0
        self.clamped = 0
        self.mask_context = False
        self.low = False  # some floating tensor (parameters too) is fp16/bf16

    @property
    def finite(self) -> bool:
        return self.n_inf == 0 and self.n_nan == 0


def summarize(
    obj: object,
    mask_context: bool = False,
    stat=None,
    skip_params: bool = False,
) -> Summary:
    """Walk ``obj`` and gather the statistics of its floating, non-mask tensors.

    Integer and bool tensors only contribute their dtype. Tensors named ``*mask*`` and tensors that
    look like additive masks set ``mask_context`` instead of counting as activations. ``stat`` is
    the per-tensor statistic (the probe passes a cached one); ``skip_params`` leaves parameters
    (weights) out of the figures.
    """
    stat = stat or tensor_stat
    s = Summary()
    items = flat_tensors(obj)
    for masked, _ in items:
        if masked:
            mask_context = True
            break
    dtypes = s.dtypes
    names = _DTYPE_NAMES
    for masked, t in items:
        dt = t.dtype
        dn = names.get(dt) or dtype_name(dt)
        if dn not in dtypes:
            dtypes.append(dn)
        if masked or not dt.is_floating_point:
            continue
        if dt in LOW_PRECISION:
            s.low = True
        if skip_params and t.__class__ is _Parameter:  # (isinstance on Parameter is slow)
            continue
        st = stat(t, mask_context)
        if st.mask_like:
            mask_context = True
            continue
        s.acts.append(t)
        s.stats.append(st)
        s.numel += st.numel
        s.n_inf += st.n_inf
        s.n_nan += st.n_nan
        s.clamped += st.clamped
        m = st.max_abs
        if m is not None and (s.max_abs is None or m > s.max_abs):
            s.max_abs = m
    s.mask_context = mask_context
    return s


def is_clean(st: TStat | None, mask_context: bool = False) -> bool:
    """Finite, no mask sentinels: a comparison can take the fast path."""
    return (
        st is not None
        and st.finite
        and not mask_context
        and (st.max_abs is None or st.max_abs < SENTINEL_ABS)
    )


def padding_view(valid: torch.Tensor | None, shape: torch.Size) -> torch.Tensor | None:
    """A view of the (batch, seq) ``valid`` mask that broadcasts against ``shape``, if shapes allow.

    (batch, seq, ...) tensors use it directly; (batch, heads, seq, ...) tensors along dim 2.
    """
    if valid is None or len(shape) < 2:
        return None
    b, s = valid.shape
    if shape[0] != b:
        return None
    if shape[1] == s:
        return valid.reshape(b, s, *([1] * (len(shape) - 2)))
    if len(shape) >= 3 and shape[2] == s:
        return valid.reshape(b, 1, s, *([1] * (len(shape) - 3)))
    return None


@dataclass
class Comparison:
    rel_error: float | None = None
    underflow: float | None = None
    inf_created: int = 0
    nan_created: int = 0
    cosine: float | None = None


def compare(
    y: torch.Tensor,
    ref: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    created: bool = False,
    cosine: bool = False,
    fast: bool = False,
) -> Comparison | None:
    """Relative error (L2) and underflow of ``y`` against ``ref`` (both any floating dtype).

    Positions where the reference is not finite or is a mask sentinel are left out, and so are
    padding positions (``valid`` False) where shapes allow. ``created`` also counts inf/NaN in
    ``y`` where ``ref`` has none (used against an op's own fp32 recomputation). ``fast``: the
    caller knows both tensors are finite and free of sentinels (fewer kernels).
    """
    if y.shape != ref.shape or y.numel() == 0:
        return None
    y = y.detach().float()
    r = ref.detach().float()
    pv = padding_view(valid, y.shape)
    if fast and not created and not cosine:
        if pv is None:
            d, rr, yy = y - r, r, y
            kept_t = None
        else:
            d, rr, yy = (y - r) * pv, r * pv, y * pv
            kept_t = pv.expand(y.shape).sum()
        nz = rr != 0
        parts = [
            torch.linalg.vector_norm(d),
            torch.linalg.vector_norm(rr),
            (nz & (yy == 0)).sum(),
            nz.sum(),
        ]
        if kept_t is not None:
            parts.append(kept_t)
        vals = torch.stack([p.double() for p in parts]).tolist()
        num, den, under, nzc = vals[:4]
        kept = vals[4] if kept_t is not None else y.numel()
        out = Comparison()
        if kept > 0:
            if not math.isfinite(num):
                out.rel_error = math.inf
            elif den == 0:
                out.rel_error = 0.0 if num == 0 else math.inf
            else:
                out.rel_error = num / den
            out.underflow = under / nzc if nzc else 0.0
        return out
    keep = torch.isfinite(r) & (r.abs() < SENTINEL_ABS)
    if pv is not None:
        keep = keep & pv
    zero = torch.zeros((), dtype=torch.float32, device=y.device)
    d = torch.where(keep, y - r, zero)
    rr = torch.where(keep, r, zero)
    nz = keep & (r != 0)
    parts = [
        torch.linalg.vector_norm(d).double(),
        torch.linalg.vector_norm(rr).double(),
        (nz & (y == 0)).sum().double(),
        nz.sum().double(),
        keep.sum().double(),
    ]
    if created:
        parts.append((torch.isinf(y) & torch.isfinite(r)).sum().double())
        parts.append((torch.isnan(y) & ~torch.isnan(r)).sum().double())
    if cosine:
        # in float64: float32 sums over many values drift by more than cos's distance to 1
        yy = torch.where(keep, y, zero).double()
        r64 = rr.double()
        parts.append((yy * r64).sum())
        parts.append(torch.linalg.vector_norm(yy))
        parts.append(torch.linalg.vector_norm(r64))
    vals = torch.stack(parts).tolist()
    num, den, under, nzc, kept = vals[:5]
    out = Comparison()
    if kept > 0:
        if math.isnan(num) or math.isinf(num):
            out.rel_error = math.inf
        elif den == 0:
            out.rel_error = 0.0 if num == 0 else math.inf
        else:
            out.rel_error = num / den
        out.underflow = under / nzc if nzc else 0.0
    i = 5
    if created:
        out.inf_created = int(vals[i])
        out.nan_created = int(vals[i + 1])
        i += 2
    if cosine:
        dot, ny, nr = vals[i], vals[i + 1], vals[i + 2]
        if math.isfinite(dot) and math.isfinite(ny) and ny > 0 and nr > 0:
            # float32 sums can put |cos| a hair above 1: a cosine is never shown above 1
            out.cosine = max(-1.0, min(1.0, dot / (ny * nr)))
        elif kept > 0:
            out.cosine = math.nan
    return out


def zero_rows(t: torch.Tensor) -> int:
    """Rows (along the last dimension) that are entirely zero."""
    if t.ndim < 2 or t.shape[-1] < 2 or t.numel() == 0:
        return 0
    return int((t.detach() == 0).all(dim=-1).sum())


def upcast(obj: object) -> object:
    """fp16/bf16 tensors inside ``obj`` as fp32 (for an op's fp32 recomputation)."""
    return map_tensors(obj, lambda t: t.float() if t.dtype in LOW_PRECISION else t)


def has_low_precision(obj: object) -> bool:
    return any(t.dtype in LOW_PRECISION for _, t in iter_named_tensors(obj))


def version(t: torch.Tensor) -> int:
    """The tensor's in-place version counter (-1 where it has none, e.g. inference tensors)."""
    try:
        return t._version
    except Exception:
        return -1


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()
