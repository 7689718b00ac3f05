"""Ops and layers that autocast keeps out of float16, and what goes wrong when they run in it.

Sources:

- CUDA autocast's lists: PyTorch ``docs/source/amp.md``, "Autocast Op Reference" (CUDA Ops that
  can autocast to float16 / to float32), as summarised in ../shared/FACTS.md §4. The 2.13 binary
  registers a few more (``rms_norm``, ``logsumexp``, the linalg norms, ``upsample_*``).
- CPU autocast with ``dtype=torch.float16`` uses bfloat16's lists; ``cpu_fp32`` below records
  which of these ops it really runs in float32, checked on torch 2.13 CPU by
  ``tests/facts/test_amp_ops_table.py``.
- What goes wrong in pure float16 (the ``RISKS`` texts): ../shared/FACTS.md §2-§3, each one
  re-checked on CPU by ``tests/facts/test_amp_ops_table.py``. The built-in softmax and norm
  kernels accumulate in float32 (``acc_type<Half>`` is float, ATen/AccumulateType.h), so their
  risk is only at the edges; those findings are ``info``, overflow-prone maths ``warning``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fp16lint.findings import Severity

F = "torch.nn.functional"

# CUDA autocast's float16 list (outputs of these are float16 under fp16 autocast even when their
# inputs were float32): amp.md "CUDA Ops that can autocast to float16".
AUTOCAST_FP16_OPS = frozenset(
    {
        "matmul", "mm", "mv", "bmm", "addmm", "addmv", "addr", "addbmm", "baddbmm", "linear",
        "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
        "conv_transpose3d", "prelu", "einsum", "chain_matmul", "multi_dot",
        "scaled_dot_product_attention",
    }
)  # fmt: skip
# CUDA autocast's float32 list (amp.md "CUDA Ops that can autocast to float32"), exactly.
AUTOCAST_FP32_OPS = frozenset(
    {
        "__pow__", "__rdiv__", "__rpow__", "__rtruediv__", "acos", "asin",
        "binary_cross_entropy_with_logits", "cosh", "cosine_embedding_loss", "cdist",
        "cosine_similarity", "cross_entropy", "cumprod", "cumsum", "dist", "erfinv", "exp",
        "expm1", "group_norm", "hinge_embedding_loss", "kl_div", "l1_loss", "layer_norm", "log",
        "log_softmax", "log10", "log1p", "log2", "margin_ranking_loss", "mse_loss",
        "multilabel_margin_loss", "multi_margin_loss", "nll_loss", "norm", "normalize", "pdist",
        "poisson_nll_loss", "pow", "prod", "reciprocal", "rsqrt", "sinh", "smooth_l1_loss",
        "soft_margin_loss", "softmax", "softmin", "softplus", "sum", "renorm", "tan",
        "triplet_margin_loss",
        # registered by the 2.13 binary too (FACTS.md §4)
        "rms_norm", "logsumexp", "huber_loss", "linalg_vector_norm", "linalg_matrix_norm",
    }
)  # fmt: skip
# torch.nn layers whose forward is one op of those lists (torch/nn/modules/linear.py, conv.py,
# activation.py, normalization.py, loss.py; 2.13): under CUDA fp16 autocast ``self.proj(x)``
# with ``self.proj = nn.Linear(...)`` outputs float16, ``self.norm(x)`` (LayerNorm) float32.
AUTOCAST_FP16_MODULES = frozenset(
    f"torch.nn.{n}"
    for n in ("Linear", "LazyLinear", "Conv1d", "Conv2d", "Conv3d", "LazyConv1d", "LazyConv2d",
              "LazyConv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "PReLU")
)  # fmt: skip
AUTOCAST_FP32_MODULES = frozenset(
    f"torch.nn.{n}"
    for n in ("LayerNorm", "GroupNorm", "RMSNorm", "Softmax", "LogSoftmax", "Softmin",
              "Softplus", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss",
              "HuberLoss", "BCEWithLogitsLoss", "KLDivLoss", "CosineSimilarity", "PoissonNLLLoss",
              "CosineEmbeddingLoss", "HingeEmbeddingLoss", "MarginRankingLoss",
              "MultiLabelMarginLoss", "MultiMarginLoss", "SoftMarginLoss", "TripletMarginLoss")
)  # fmt: skip


@dataclass(frozen=True)
class Risk:
    severity: Severity
    what: str  # completes "`x.exp()` on float16 ..." / "... runs in float16: <what>"


RISKS: dict[str, Risk] = {
    "exp": Risk(Severity.WARNING, "it overflows to inf for inputs above 11.09"),
    "cosh": Risk(Severity.WARNING, "it overflows to inf for |x| above 11.78"),
    "pow": Risk(
        Severity.WARNING, "it overflows to inf once |x|**p exceeds 65504 (x**2 once |x| > 255.9)"
    ),
    "pow_any": Risk(
        Severity.INFO,
        "it overflows to inf once |x|**p exceeds 65504 (x**2 once |x| reaches 255.97), which "
        "depends on an exponent not known here",
    ),
    "reciprocal": Risk(
        Severity.WARNING,
        "it gives inf for |x| below 1.5e-5, and float16 holds nothing below 2.98e-8 but 0",
    ),
    "rsqrt": Risk(
        Severity.WARNING,
        "it gives inf for inputs below 2.98e-8, which float16 rounds to 0 (an eps such as 1e-12 included)",
    ),
    "log": Risk(
        Severity.WARNING,
        "it gives -inf for values below 2.98e-8, which float16 rounds to 0 (small probabilities included)",
    ),
    "erfinv": Risk(
        Severity.WARNING, "it gives inf for inputs within 2.44e-4 of ±1, which float16 rounds to ±1"
    ),
    "prod": Risk(
        Severity.WARNING,
        "it writes a float16 result, and a product overflows (2**16 is already inf) or underflows to 0 quickly",
    ),
    "sum": Risk(
        Severity.INFO,
        "it accumulates in float32 but writes float16, so a total above 65504 is inf (100000 ones are), "
        "which small sums of bounded values never reach",
    ),
    "var": Risk(
        Severity.INFO,
        "it accumulates in float32 but writes float16, so a variance above 65504 (values spread beyond "
        "±256) is inf",
    ),
    "squares": Risk(
        Severity.WARNING,
        "it squares its inputs in float16, so a difference above 255.9 overflows to inf",
    ),
    "poisson": Risk(
        Severity.WARNING,
        "it computes `exp(input)` in float16 (`log_input=True`), so inputs above 11.09 give inf",
    ),
    "softmax": Risk(
        Severity.INFO,
        "its kernel accumulates in float32, so in-range logits are safe; logits that already "
        "overflowed to inf give NaN, and probabilities below 6e-8 round to 0",
    ),
    "kernel": Risk(
        Severity.INFO,
        "its kernel accumulates in float32, so in-range inputs are safe; inputs that already "
        "overflowed to inf come out NaN, and the result is rounded to float16",
    ),
    "norm": Risk(
        Severity.INFO,
        "it accumulates in float32 but writes float16, so a norm above 65504 is inf (10**6 "
        "entries of 70 give inf; float32: 70002.6), which norms of rows of bounded values "
        "never reach",
    ),
    "grad_norm": Risk(
        Severity.WARNING,
        "a full norm of float16 gradients accumulates in float32 but writes float16, and "
        "loss-scaled gradients sit near the top of float16's range: the norm of many of them "
        "passes 65504 and is inf (10**6 entries of 70 give inf; float32: 70002.6)",
    ),
    "loss": Risk(
        Severity.INFO,
        "the loss is computed on float16 inputs and returned in float16, which keeps about 3 "
        "significant digits",
    ),
}


@dataclass(frozen=True)
class UnsafeOp:
    """One op: its spellings, the risk it carries in pure float16, and how autocast treats it."""

    name: str  # autocast's name for it
    risk: str  # key into RISKS
    functions: tuple[str, ...] = ()  # qualified names: torch.exp, torch.nn.functional.softmax
    methods: tuple[str, ...] = ()  # Tensor methods: exp, exp_
    modules: tuple[str, ...] = ()  # nn classes computing it: torch.nn.Softmax
    cpu_fp32: bool = False  # CPU float16 autocast runs it in float32 (tests/facts)
    dtype_kwarg: bool = False  # takes ``dtype=`` to compute in another dtype
    loss: bool = False  # a loss function (``F.cross_entropy``) or module (``nn.MSELoss``)

    @property
    def cuda_fp32(self) -> bool:
        return self.name in AUTOCAST_FP32_OPS


def _op(name: str, risk: str, *, torch: bool = True, functional: bool = False, method: bool = True,
        inplace: bool = False, modules: tuple[str, ...] = (), cpu_fp32: bool = False,
        dtype_kwarg: bool = False, aliases: tuple[str, ...] = ()) -> UnsafeOp:  # fmt: skip
    names = (name, *aliases)
    functions = tuple(
        [f"torch.{n}" for n in names if torch] + [f"{F}.{n}" for n in names if functional]
    )
    methods = tuple([*names, *(f"{n}_" for n in names if inplace)] if method else ())
    return UnsafeOp(name, risk, functions, methods, modules, cpu_fp32, dtype_kwarg)


def _loss(name: str, risk: str, *classes: str) -> UnsafeOp:
    op = _op(name, risk, torch=False, functional=True, method=False,
             modules=tuple(f"torch.nn.{c}" for c in classes), cpu_fp32=True)  # fmt: skip
    return replace(op, loss=True)


# FP202's ops: autocast's float32 list minus the ops with no float16 hazard worth a finding
# (acos, asin, tan, softplus and upsampling only round; cdist/pdist are FP204's: no CPU kernel).
UNSAFE_OPS: tuple[UnsafeOp, ...] = (
    _op("softmax", "softmax", functional=True, modules=("torch.nn.Softmax", "torch.nn.Softmax2d"),
        dtype_kwarg=True),
    _op("log_softmax", "softmax", functional=True, modules=("torch.nn.LogSoftmax",),
        dtype_kwarg=True),
    _op("softmin", "softmax", torch=False, functional=True, method=False,
        modules=("torch.nn.Softmin",), dtype_kwarg=True),
    _op("exp", "exp", inplace=True),
    _op("expm1", "exp", inplace=True),
    _op("cosh", "cosh", inplace=True),
    _op("sinh", "cosh", inplace=True),
    _op("pow", "pow", inplace=True),
    _op("square", "pow", inplace=True),  # not on autocast's list: float16 under autocast too
    _op("reciprocal", "reciprocal", inplace=True),
    _op("rsqrt", "rsqrt", inplace=True),
    _op("log", "log", inplace=True),
    _op("log2", "log", inplace=True),
    _op("log10", "log", inplace=True),
    _op("erfinv", "erfinv", inplace=True),
    _op("sum", "sum", dtype_kwarg=True),
    _op("nansum", "sum", dtype_kwarg=True),
    _op("cumsum", "sum", inplace=True, dtype_kwarg=True),
    _op("prod", "prod", dtype_kwarg=True, cpu_fp32=True),
    _op("cumprod", "prod", inplace=True, dtype_kwarg=True),
    _op("var", "var"),
    _op("logsumexp", "kernel"),
    _op("norm", "norm", aliases=("linalg.norm", "linalg.vector_norm", "linalg.matrix_norm"),
        dtype_kwarg=True),
    _op("dist", "norm"),
    _op("renorm", "kernel", inplace=True),
    _op("layer_norm", "kernel", functional=True, method=False),
    _op("group_norm", "kernel", functional=True, method=False),
    _op("rms_norm", "kernel", functional=True, method=False),
    _op("batch_norm", "kernel", functional=True, method=False),
    _op("instance_norm", "kernel", functional=True, method=False),
    _op("normalize", "kernel", torch=False, functional=True, method=False),
    _op("cosine_similarity", "kernel", functional=True, method=False),
    _loss("cross_entropy", "loss", "CrossEntropyLoss"),
    _loss("nll_loss", "loss", "NLLLoss"),
    _loss("binary_cross_entropy_with_logits", "loss", "BCEWithLogitsLoss"),
    _loss("binary_cross_entropy", "loss", "BCELoss"),
    _loss("kl_div", "loss", "KLDivLoss"),
    _loss("l1_loss", "loss", "L1Loss"),
    _loss("smooth_l1_loss", "loss", "SmoothL1Loss"),
    _loss("huber_loss", "loss", "HuberLoss"),
    _loss("soft_margin_loss", "loss", "SoftMarginLoss"),
    _loss("margin_ranking_loss", "loss", "MarginRankingLoss"),
    _loss("hinge_embedding_loss", "loss", "HingeEmbeddingLoss"),
    _loss("triplet_margin_loss", "loss", "TripletMarginLoss"),
    _loss("mse_loss", "squares", "MSELoss"),
    _loss("cosine_embedding_loss", "squares", "CosineEmbeddingLoss"),
    _loss("poisson_nll_loss", "poisson", "PoissonNLLLoss"),
)  # fmt: skip

OPS_BY_NAME = {op.name: op for op in UNSAFE_OPS}
OPS_BY_FUNCTION = {q: op for op in UNSAFE_OPS for q in op.functions}
OPS_BY_METHOD = {m: op for op in UNSAFE_OPS for m in op.methods}
OPS_BY_MODULE = {m: op for op in UNSAFE_OPS for m in op.modules}
POW = next(op for op in UNSAFE_OPS if op.name == "pow")
RTRUEDIV = UnsafeOp("__rtruediv__", "reciprocal")  # ``1 / x`` on a float16 tensor


# Library mode (``assume-fp16``) assumes float16 where no cast shows it, so it reports what
# fails by itself (``warning`` risks: exp, powers, log, rsqrt, products) and leaves out, unless
# ``library-info`` is set, the ``info`` ones: ops whose built-in kernels compute in float32
# (softmax, log_softmax, the norms, ``F.normalize``, ``cosine_similarity``, ``logsumexp``:
# finite where the same maths written in float16 overflows, tests/facts/test_fp32_kernels.py),
# powers of an unknown exponent, and reductions along given dimensions, whose extent it cannot
# see. A reduction of every element (``loss.sum()``: batch times tokens or pixels) is kept. The
# losses are left out too: autocast runs them in float32, and the elementwise ones reduce in
# float32 (tests/facts/test_fp32_kernels.py). On CPU, cross_entropy/nll_loss of float16 logits
# give inf once the summed per-token loss passes 65504 (same test; CUDA's LossNLL.cu accumulates
# in float, cited only): a CPU-only hazard that FP104 (float16 on CPU) covers.
# An exp or a power overflows only on a large argument: where float16 is assumed, library mode
# reports them where the argument shows it can be large (``large``: a dot product of
# activations, or a projection layer's output for a power; for a negative power, which fails
# only near 0, a base shown to come near 0; ``analysis.hazards``), not on
# learned log-scales, noise levels, decays and other values nothing shows to be large.
_NEEDS_LARGE = frozenset({"exp", "pow"})
# Likewise a log, rsqrt or reciprocal fails only on a value near 0: reported where the value
# shows it can get there (``small``: a probability or a clamp floor whose bound reaches below
# float16's smallest, or a guard such as ``+ 1e-8`` that float16 rounds to 0), not on noise
# levels, scales, counts and other values nothing shows to come near 0.
_NEEDS_SMALL = frozenset({"log", "rsqrt", "reciprocal"})


def quiet_in_library(
    op: UnsafeOp, risk: str, full: bool, large: bool = False, small: bool = False
) -> bool:
    """An op site library mode does not report by default (see above)."""
    if op.loss or (risk in _NEEDS_LARGE and not large) or (risk in _NEEDS_SMALL and not small):
        return True
    return RISKS[risk].severity is Severity.INFO and not (full and risk in ("sum", "var"))


# --- FP201: layers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnsafeLayer:
    risk: Risk


_NORM = Risk(
    Severity.INFO,
    "its kernel accumulates in float32, but its weight, bias and output are float16, and inputs "
    "that already overflowed come out NaN",
)
_BATCH_NORM = Risk(
    Severity.WARNING,
    "`.half()` converts its running mean and variance to float16 too: a running variance above "
    "65504 becomes inf and the momentum updates keep about 3 significant digits",
)
_LRN = Risk(
    Severity.WARNING,
    "it squares its input in float16 (inputs above 255.9 overflow), and it has no float16 kernel "
    "on CPU",
)
_NO_CPU_KERNEL = Risk(
    Severity.WARNING, "it has no float16 kernel on CPU (`not implemented for 'Half'`)"
)

_LAYERS: dict[str, Risk] = {
    **dict.fromkeys(("LayerNorm", "GroupNorm", "RMSNorm"), _NORM),
    **{f"{p}InstanceNorm{d}d": _NORM for p in ("", "Lazy") for d in (1, 2, 3)},
    **{f"{p}BatchNorm{d}d": _BATCH_NORM for p in ("", "Lazy") for d in (1, 2, 3)},
    "SyncBatchNorm": _BATCH_NORM,
    "LocalResponseNorm": _LRN,
    "CTCLoss": _NO_CPU_KERNEL,
    "MultiLabelMarginLoss": _NO_CPU_KERNEL,
    "MultiMarginLoss": _NO_CPU_KERNEL,
    **{c.rsplit(".", 1)[1]: RISKS[op.risk] for op in UNSAFE_OPS if op.cpu_fp32 for c in op.modules},
}
UNSAFE_LAYERS: dict[str, UnsafeLayer] = {
    f"torch.nn.{n}": UnsafeLayer(r) for n, r in _LAYERS.items()
}
# Norm layers whose kernels accumulate in float32: float16 inputs whose squares overflow come
# out finite (tests/facts/test_norm_kernels.py, CPU; CUDA (cited): layer_norm_kernel.cu,
# group_norm_kernel.cu, Normalization.cuh use acc_type). Library mode does not report them, and
# no mode does where a wrapper runs them on ``x.float()``.
FP32_ACCUMULATING_NORMS = frozenset(
    f"torch.nn.{n}"
    for n in _LAYERS
    if n in ("LayerNorm", "GroupNorm", "RMSNorm", "SyncBatchNorm")
    or "BatchNorm" in n
    or "InstanceNorm" in n
)


# Loss layers (``nn.CrossEntropyLoss``...), left out in library mode like the loss functions.
LOSS_LAYERS = frozenset(c for op in UNSAFE_OPS if op.loss for c in op.modules)


# --- FP204: ops with no (or partial) float16 support ------------------------------------------
@dataclass(frozen=True)
class NoFp16:
    """What an op does with float16 input, and where that was checked."""

    behaviour: str
    checked_on: str  # "cpu": tests/facts/test_amp_ops_table.py runs it on this build's CPU
    # Its only failure checked here is CPU's (cdist/pdist: no CPU float16 kernel; CUDA autocast
    # runs them in float32, and their CUDA float16 behaviour is not checked here). Library
    # mode, whose callers' device is unknown, leaves these out unless ``library-info`` is set;
    # a float16 model on CPU is FP104's finding.
    cpu_only: bool = False
    # Only one of its kernels fails: reported where the call shows it takes that one
    # (``analysis.hazards``: cdist's ``p``/``compute_mode``); ``behaviour`` has a ``{why}``.
    direct_kernel: bool = False


_LINALG = NoFp16("raises for float16 input on CPU (no float16 kernel)", "cpu")
_FFT = NoFp16("raises for float16 input on CPU (`Unsupported dtype Half`), and on CUDA accepts "
              "it only for power-of-two sizes", "cpu")  # fmt: skip
NO_FP16_SUPPORT: dict[str, NoFp16] = {
    "torch.quantile": NoFp16("rejects float16 input (`input tensor must be either float or double dtype`)", "cpu"),
    "torch.nanquantile": NoFp16("rejects float16 input (`input tensor must be either float or double dtype`)", "cpu"),
    "torch.stft": NoFp16("raises for float16 input on CPU (`MKL FFT doesn't support tensors of type: Half`)", "cpu"),
    "torch.istft": NoFp16("raises for float16 input on CPU (`MKL FFT doesn't support tensors of type: Half`)", "cpu"),
    # cdist's direct kernel has no float16 version; with p=2 it computes through a matrix
    # multiply instead (which runs in float16) when either input has over 25 rows, or always
    # with compute_mode="use_mm_for_euclid_dist" (tests/facts/test_cdist_paths.py; the modes:
    # torch/functional.py ``cdist``, torch 2.13).
    "torch.cdist": NoFp16("takes its direct kernel ({why}), which has no float16 version (`not implemented for 'Half'`)", "cpu", cpu_only=True, direct_kernel=True),
    "torch.nn.functional.pdist": NoFp16("has no float16 kernel on CPU (`not implemented for 'Half'`)", "cpu", cpu_only=True),
    **{f"torch.fft.{n}": _FFT for n in (
        "fft", "ifft", "rfft", "irfft", "hfft", "ihfft", "fft2", "ifft2", "rfft2", "irfft2",
        "fftn", "ifftn", "rfftn", "irfftn")},
    **{f"torch.linalg.{n}": _LINALG for n in (
        "solve", "inv", "inv_ex", "det", "slogdet", "qr", "svd", "svdvals", "eig", "eigvals",
        "eigh", "eigvalsh", "cholesky", "cholesky_ex", "lstsq", "pinv", "lu", "lu_factor",
        "cond", "matrix_rank", "solve_triangular")},
    **{f"torch.{n}": _LINALG for n in (
        "inverse", "det", "logdet", "slogdet", "svd", "cholesky", "pinverse", "cholesky_solve",
        "cholesky_inverse", "triangular_solve")},
}  # fmt: skip
# Tensor methods with the same behaviour (``x.inverse()``, ``x.quantile(0.5)``).
NO_FP16_METHODS: dict[str, str] = {
    n: f"torch.{n}"
    for n in ("quantile", "nanquantile", "stft", "istft", "inverse", "det", "logdet", "slogdet",
              "svd", "cholesky", "pinverse", "cholesky_solve", "cholesky_inverse",
              "triangular_solve")
}  # fmt: skip
