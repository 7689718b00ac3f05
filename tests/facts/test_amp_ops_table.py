"""Every entry of ``fp16lint.data.amp_ops`` (FP201, FP202, FP204) checked against this torch.

Each op in ``UNSAFE_OPS`` and each layer in ``UNSAFE_LAYERS`` has a check here of the risk its
messages state, and a check of the ``cpu_fp32`` column (what ``torch.autocast("cpu",
dtype=torch.float16)`` really runs in float32). Each ``NO_FP16_SUPPORT`` entry is run on
float16 input on the device it records (``checked_on``: the CPU of this build; the CUDA
power-of-two FFT rule is cited from CuFFTPlanCache.h and checked in test_cpu_op_support.py
where a GPU is present). Adding a table entry without a check here fails
``test_every_entry_has_a_check``.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fp16lint.data.amp_ops import (
    AUTOCAST_FP16_MODULES,
    AUTOCAST_FP16_OPS,
    AUTOCAST_FP32_MODULES,
    AUTOCAST_FP32_OPS,
    NO_FP16_METHODS,
    NO_FP16_SUPPORT,
    RISKS,
    UNSAFE_LAYERS,
    UNSAFE_OPS,
)

HALF = torch.float16
CPU = "cpu"


def half(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=HALF, device=CPU)


def _rows(scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(4, 8) * scale).to(HALF)


_T = torch.randint(0, 8, (4,))
# op name -> a call on a float16 (4, 8) input, for the dtype and autocast checks
CALLS = {
    "softmax": lambda a: torch.softmax(a, -1),
    "log_softmax": lambda a: torch.log_softmax(a, -1),
    "softmin": lambda a: F.softmin(a, -1),
    "exp": torch.exp,
    "expm1": torch.expm1,
    "cosh": torch.cosh,
    "sinh": torch.sinh,
    "pow": lambda a: torch.pow(a, 2),
    "square": torch.square,
    "reciprocal": torch.reciprocal,
    "rsqrt": torch.rsqrt,
    "log": torch.log,
    "log2": torch.log2,
    "log10": torch.log10,
    "erfinv": torch.erfinv,
    "sum": torch.sum,
    "nansum": torch.nansum,
    "cumsum": lambda a: torch.cumsum(a, 0),
    "prod": torch.prod,
    "cumprod": lambda a: torch.cumprod(a, 0),
    "var": torch.var,
    "logsumexp": lambda a: torch.logsumexp(a, -1),
    "norm": torch.norm,
    "dist": lambda a: torch.dist(a, -a),
    "renorm": lambda a: torch.renorm(a, 2, 0, 1.0),
    "layer_norm": lambda a: F.layer_norm(a, (8,)),
    "group_norm": lambda a: F.group_norm(a.view(1, 4, 8), 2),
    "rms_norm": lambda a: F.rms_norm(a, (8,)),
    "batch_norm": lambda a: F.batch_norm(a, None, None, training=True),
    "instance_norm": lambda a: F.instance_norm(a.view(1, 4, 8)),
    "normalize": F.normalize,
    "cosine_similarity": lambda a: F.cosine_similarity(a, a + 1),
    "cross_entropy": lambda a: F.cross_entropy(a, _T),
    "nll_loss": lambda a: F.nll_loss(a, _T),
    "binary_cross_entropy_with_logits": lambda a: F.binary_cross_entropy_with_logits(
        a, a.sigmoid()
    ),
    "binary_cross_entropy": lambda a: F.binary_cross_entropy(a.sigmoid(), a.sigmoid()),
    "kl_div": lambda a: F.kl_div(a, a.softmax(-1), reduction="batchmean"),
    "l1_loss": lambda a: F.l1_loss(a, a + 1),
    "smooth_l1_loss": lambda a: F.smooth_l1_loss(a, a + 1),
    "huber_loss": lambda a: F.huber_loss(a, a + 1),
    "soft_margin_loss": lambda a: F.soft_margin_loss(a, a.sign()),
    "margin_ranking_loss": lambda a: F.margin_ranking_loss(a, a + 1, a.sign()),
    "hinge_embedding_loss": lambda a: F.hinge_embedding_loss(a, a.sign()),
    "triplet_margin_loss": lambda a: F.triplet_margin_loss(a, a + 1, a - 1),
    "mse_loss": lambda a: F.mse_loss(a, a + 1),
    "cosine_embedding_loss": lambda a: F.cosine_embedding_loss(a, a + 1, torch.ones(4)),
    "poisson_nll_loss": lambda a: F.poisson_nll_loss(a, a.abs()),
}


# risk key -> a check that the stated risk happens on this build, given the op name
def _overflow_at(op: str, below: float, above: float) -> None:
    out = CALLS[op](half(below, above))
    assert torch.isfinite(out[0]) and torch.isinf(out[1]), out


def _kernel_edges(op: str) -> None:
    """In-range inputs in the thousands are fine; an input that overflowed (inf, or -inf for
    softmin) gives NaN or inf."""
    assert torch.isfinite(CALLS[op](_rows(1000))).all()
    bad = _rows()
    bad[0, 0] = float("-inf") if op == "softmin" else float("inf")
    assert not torch.isfinite(CALLS[op](bad)).all()


def _reduction_writes_fp16(op: str) -> None:
    big = torch.ones(100000, dtype=HALF) if op != "var" else (torch.randn(1000) * 1000).to(HALF)
    out = CALLS[op](big.view(-1, 1) if op in ("cumsum",) else big)
    assert out.dtype == HALF and torch.isinf(out.flatten()[-1]), out


def _norm_writes_fp16(op: str) -> None:
    """In-range rows are fine, but the norm is written in float16: 10**6 entries of 70 give
    inf where float32 gives 70002.6."""
    _kernel_edges(op)
    big = torch.full((10**6,), 70.0, dtype=HALF)
    out = CALLS[op](big)
    assert out.dtype == HALF and torch.isinf(out), out
    assert abs(torch.norm(big.float()).item() - 70002.6) < 0.1


def test_norm_with_a_float32_dtype_is_float32():
    """``dtype=torch.float32`` (the FP202 fix for a norm) computes and writes float32."""
    big = torch.full((10**6,), 70.0, dtype=HALF)
    for norm in (torch.norm, torch.linalg.norm, torch.linalg.vector_norm):
        out = norm(big, dtype=torch.float32)
        assert out.dtype == torch.float32 and abs(out.item() - 70002.6) < 0.1
    assert big.norm(dtype=torch.float32).dtype == torch.float32


def _gradient_norm(op: str) -> None:
    """A ``.half()`` model's gradients are float16, and loss scaling puts them high in
    float16's range: a million finite gradients of about 100 (inputs of 0.1, a loss scaled
    by 2**10) have an inf full norm."""
    layer = torch.nn.Linear(1000, 1000).half()
    (layer(torch.full((1, 1000), 0.1, dtype=HALF)).float().sum() * 2.0**10).backward()
    grad = layer.weight.grad
    assert grad.dtype == HALF and torch.isfinite(grad).all()
    assert torch.isinf(CALLS[op](grad)), CALLS[op](grad)
    assert torch.isfinite(CALLS[op](grad.float()))


def _loss_in_fp16(op: str) -> None:
    """The loss comes back float16, which keeps about 3 significant digits."""
    assert CALLS[op](_rows(10)).dtype == HALF
    assert torch.tensor(1.0004, dtype=HALF).item() == 1.0
    assert torch.tensor(1.001, dtype=HALF).item() != 1.0


def _products(op: str) -> None:
    """A float16 product of sixteen 2s is inf; of fifteen it is not."""
    assert torch.isinf(CALLS[op](torch.full((16,), 2.0, dtype=HALF)).flatten()[-1])
    assert torch.isfinite(CALLS[op](torch.full((15,), 2.0, dtype=HALF)).flatten()[-1])


def _poisson() -> None:
    """``poisson_nll_loss`` (``log_input=True``) computes ``exp(input)``: 11.1 gives inf."""
    assert torch.isinf(F.poisson_nll_loss(half(11.1), half(0.0)))
    assert torch.isfinite(F.poisson_nll_loss(half(11.08), half(0.0)))


def _squares(op: str) -> None:
    """The loss squares in float16: a difference of 256 overflows, 255.9 does not."""
    zeros = torch.zeros(4, 8, dtype=HALF)
    if op == "mse_loss":
        assert torch.isinf(F.mse_loss(torch.full((4, 8), 256.0, dtype=HALF), zeros))
        assert torch.isfinite(F.mse_loss(torch.full((4, 8), 255.9, dtype=HALF), zeros))
    else:
        big = torch.full((4, 8), 300.0, dtype=HALF)
        assert not torch.isfinite(F.cosine_embedding_loss(big, big, torch.ones(4))).all()


RISK_CHECKS = {
    "exp": lambda op: _overflow_at(op, 11.08, 11.1),
    "cosh": lambda op: _overflow_at(op, 11.78, 11.79),
    "pow": lambda op: _overflow_at(op, 255.9, 256.0),
    "pow_any": lambda op: _overflow_at("pow", 255.9, 256.0),
    "reciprocal": lambda op: _overflow_at(op, 1.6e-5, 1.4e-5),
    "rsqrt": lambda op: _overflow_at(op, 6e-8, 1e-12),
    "log": lambda op: _overflow_at(op, 6e-8, 2.9e-8),
    "erfinv": lambda op: _overflow_at(op, 1 - 2.5e-4, 1 - 2.4e-4),
    "prod": lambda op: _products(op),
    "sum": _reduction_writes_fp16,
    "var": _reduction_writes_fp16,
    "squares": lambda op: _squares(op),
    "poisson": lambda op: _poisson(),
    "softmax": _kernel_edges,
    "kernel": _kernel_edges,
    "norm": _norm_writes_fp16,
    "grad_norm": lambda op: _gradient_norm("norm"),
    "loss": _loss_in_fp16,
}


def test_every_entry_has_a_check():
    """Each op of the FP202 table has a call, and each risk a check, in this file."""
    assert {op.name for op in UNSAFE_OPS} <= set(CALLS)
    assert set(RISKS) <= set(RISK_CHECKS)
    assert set(NO_FP16_SUPPORT) <= set(NO_FP16_CALLS)
    assert set(UNSAFE_LAYERS) <= set(LAYER_CHECKS)
    assert {f"torch.{m}" for m in NO_FP16_METHODS} == set(NO_FP16_METHODS.values())


@pytest.mark.parametrize("op", UNSAFE_OPS, ids=lambda op: op.name)
def test_op_risk_holds_in_pure_fp16(op):
    """The risk each FP202 message states for an op happens to float16 input on CPU."""
    RISK_CHECKS[op.risk](op.name)


@pytest.mark.parametrize("op", UNSAFE_OPS, ids=lambda op: op.name)
def test_cpu_fp16_autocast_column(op):
    """``cpu_fp32`` says whether ``torch.autocast("cpu", dtype=torch.float16)`` runs the op in float32."""
    x = torch.randn(4, 8)
    with torch.autocast(CPU, dtype=HALF):
        activation = F.linear(x, torch.eye(8))
        assert activation.dtype == HALF
        out = CALLS[op.name](activation)
    assert (out.dtype == torch.float32) == op.cpu_fp32, out.dtype


def test_cuda_list_names_are_the_amp_reference():
    """The CUDA float32 list holds every FP202 op that CUDA autocast protects, nothing invented."""
    protected = {op.name for op in UNSAFE_OPS if op.cuda_fp32}
    assert protected <= AUTOCAST_FP32_OPS
    assert {
        "square",
        "nansum",
        "var",
        "batch_norm",
        "instance_norm",
        "binary_cross_entropy",
    }.isdisjoint(protected)


@pytest.mark.parametrize("op", sorted(AUTOCAST_FP16_OPS & {"matmul", "mm", "bmm", "linear"}))
def test_fp16_list_ops_output_fp16_under_autocast_even_from_fp32(op):
    """Under (CPU) fp16 autocast, matmul/mm/bmm/linear give float16 even for float32 inputs."""
    a = torch.randn(2, 4, 4)
    calls = {
        "matmul": lambda: torch.matmul(a, a),
        "mm": lambda: torch.mm(a[0], a[0]),
        "bmm": lambda: torch.bmm(a, a),
        "linear": lambda: F.linear(a, a[0]),
    }
    with torch.autocast(CPU, dtype=HALF):
        assert calls[op]().dtype == HALF


# --- FP204 ----------------------------------------------------------------------------------
def _square(n: int = 4) -> torch.Tensor:
    a = torch.randn(n, n)
    return (a @ a.T + n * torch.eye(n)).to(HALF)


_LINALG_TWO = {"solve", "lstsq", "solve_triangular", "cholesky_solve", "triangular_solve"}
NO_FP16_CALLS = {
    "torch.quantile": lambda: torch.quantile(half(1, 2, 3), 0.5),
    "torch.nanquantile": lambda: torch.nanquantile(half(1, 2, 3), 0.5),
    "torch.stft": lambda: torch.stft(
        torch.randn(64).to(HALF), 16, window=torch.hann_window(16).to(HALF), return_complex=True
    ),
    "torch.istft": lambda: torch.istft(
        torch.randn(9, 5, dtype=torch.complex64).to(torch.complex32),
        16,
        window=torch.hann_window(16).to(HALF),
    ),
    "torch.cdist": lambda: torch.cdist(_square(), _square()),
    "torch.nn.functional.pdist": lambda: F.pdist(_square()),
}
for _name in NO_FP16_SUPPORT:
    _module, _, _fn = _name.rpartition(".")
    if _module in ("torch.fft", "torch.linalg") or (
        _module == "torch" and _name not in NO_FP16_CALLS
    ):
        _func = getattr(
            torch.fft
            if _module == "torch.fft"
            else torch.linalg
            if _module == "torch.linalg"
            else torch,
            _fn,
        )
        if _module == "torch.fft":
            NO_FP16_CALLS[_name] = lambda f=_func: f(torch.randn(4, 4).to(HALF))
        elif _fn == "solve_triangular":
            NO_FP16_CALLS[_name] = lambda f=_func: f(_square(), _square(), upper=True)
        elif _fn in _LINALG_TWO:
            NO_FP16_CALLS[_name] = lambda f=_func: f(_square(), _square())
        else:
            NO_FP16_CALLS[_name] = lambda f=_func: f(_square())


@pytest.mark.parametrize("name", sorted(NO_FP16_SUPPORT))
def test_no_fp16_support_entry_raises_on_its_device(name, caught_warnings):
    """Each FP204 entry raises for float16 input on the device it records (this build's CPU)."""
    entry = NO_FP16_SUPPORT[name]
    assert entry.checked_on == CPU
    with pytest.raises((RuntimeError, NotImplementedError)) as raised:
        NO_FP16_CALLS[name]()
    quoted = entry.behaviour.split("`")[1::2]  # the error text the message quotes, if any
    for text in quoted:
        assert text.strip("'") in str(raised.value), (text, str(raised.value))


# --- FP201 ----------------------------------------------------------------------------------
def _norm_layer_edges(cls: type[nn.Module]) -> None:
    """The built-in norm kernels: finite on large in-range inputs, NaN from an inf input."""
    layer = {
        nn.LayerNorm: lambda: nn.LayerNorm(8),
        nn.GroupNorm: lambda: nn.GroupNorm(2, 4),
        nn.RMSNorm: lambda: nn.RMSNorm(8),
    }.get(cls, lambda: cls(4, affine=True))().half()
    dims = int(cls.__name__[-2]) if cls.__name__.endswith("d") else 1
    x = (torch.randn(2, 4, *(8,) * dims) * 1000).to(HALF)
    assert torch.isfinite(layer(x)).all()
    assert layer.weight.dtype == HALF
    x[0, 0, 0] = float("inf")
    assert not torch.isfinite(layer(x)).all()


def _batch_norm_running_var_overflows(cls: type[nn.Module]) -> None:
    layer = nn.BatchNorm1d(8).half().train()
    assert layer.running_var.dtype == HALF
    for _ in range(30):
        layer((torch.randn(64, 8) * 500).to(HALF))
    assert torch.isinf(layer.running_var).all()


def _lrn_squares_and_has_no_cpu_kernel(cls: type[nn.Module]) -> None:
    assert "input.mul(input)" in inspect.getsource(F.local_response_norm)
    with pytest.raises(NotImplementedError, match="Half"):
        nn.LocalResponseNorm(2).half()(torch.randn(1, 4, 8, 1).to(HALF))


def _no_cpu_kernel(cls: type[nn.Module]) -> None:
    calls = {
        nn.CTCLoss: lambda: nn.CTCLoss()(
            torch.randn(10, 2, 5).log_softmax(-1).to(HALF),
            torch.randint(1, 5, (2, 3)),
            torch.tensor([10, 10]),
            torch.tensor([3, 3]),
        ),
        nn.MultiLabelMarginLoss: lambda: nn.MultiLabelMarginLoss()(
            _rows(), torch.zeros(4, 8, dtype=torch.long)
        ),
        nn.MultiMarginLoss: lambda: nn.MultiMarginLoss()(_rows(), torch.zeros(4, dtype=torch.long)),
    }
    with pytest.raises(NotImplementedError, match="'Half'"):
        calls[cls]()


def _as_op(name: str):
    return lambda cls: RISK_CHECKS[
        next(op.risk for op in UNSAFE_OPS if f"torch.nn.{name}" in op.modules)
    ](next(op.name for op in UNSAFE_OPS if f"torch.nn.{name}" in op.modules))


LAYER_CHECKS = {}
for _name in UNSAFE_LAYERS:
    _short = _name.rsplit(".", 1)[1]
    if "BatchNorm" in _short:
        LAYER_CHECKS[_name] = _batch_norm_running_var_overflows
    elif _short in ("LayerNorm", "GroupNorm", "RMSNorm") or "InstanceNorm" in _short:
        LAYER_CHECKS[_name] = _norm_layer_edges
    elif _short == "LocalResponseNorm":
        LAYER_CHECKS[_name] = _lrn_squares_and_has_no_cpu_kernel
    elif _short in ("CTCLoss", "MultiLabelMarginLoss", "MultiMarginLoss"):
        LAYER_CHECKS[_name] = _no_cpu_kernel
    else:
        LAYER_CHECKS[_name] = _as_op(_short)


@pytest.mark.parametrize("name", sorted(UNSAFE_LAYERS))
def test_layer_risk_holds_in_pure_fp16(name):
    """The risk each FP201 message states for a layer happens to a ``.half()`` layer on CPU."""
    cls = getattr(nn, name.rsplit(".", 1)[1])
    if name.rsplit(".", 1)[1].startswith("Lazy"):
        pytest.skip("a lazy layer is its eager twin once initialised")
    LAYER_CHECKS[name](cls)


# --- layers kept on ``self`` (analysis/flow.py: ``self.proj(x)`` under autocast) -------------
@pytest.mark.parametrize("name", sorted(AUTOCAST_FP16_MODULES))
def test_fp16_list_layers_output_fp16_under_autocast_from_fp32(name):
    """nn.Linear/Conv*/PReLU call one op of the float16 list: under (CPU) fp16 autocast their
    output is float16 for a float32 input and float32 weights."""
    cls = getattr(nn, name.rsplit(".", 1)[1])
    if "Conv" in name:
        dims = int(name[-2])
        layer, x = cls(2, 2, 1) if "Lazy" not in name else cls(2, 1), torch.randn(1, 2, *[3] * dims)
    elif name.endswith("PReLU"):
        layer, x = cls(), torch.randn(2, 3)
    else:
        layer, x = (cls(3, 3) if "Lazy" not in name else cls(3)), torch.randn(2, 3)
    with torch.autocast(CPU, dtype=HALF):
        out = layer(x)
    assert out.dtype == HALF and x.dtype == torch.float32


# Each float32-list layer and the functional op its forward calls (torch/nn/modules, 2.13).
_FP32_LAYER_OPS = {
    "LayerNorm": "layer_norm", "GroupNorm": "group_norm", "RMSNorm": "rms_norm",
    "Softmax": "softmax", "LogSoftmax": "log_softmax", "Softmin": "softmin",
    "Softplus": "softplus", "CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll_loss",
    "MSELoss": "mse_loss", "L1Loss": "l1_loss", "SmoothL1Loss": "smooth_l1_loss",
    "HuberLoss": "huber_loss", "BCEWithLogitsLoss": "binary_cross_entropy_with_logits",
    "KLDivLoss": "kl_div", "CosineSimilarity": "cosine_similarity",
    "PoissonNLLLoss": "poisson_nll_loss", "CosineEmbeddingLoss": "cosine_embedding_loss",
    "HingeEmbeddingLoss": "hinge_embedding_loss", "MarginRankingLoss": "margin_ranking_loss",
    "MultiLabelMarginLoss": "multilabel_margin_loss", "MultiMarginLoss": "multi_margin_loss",
    "SoftMarginLoss": "soft_margin_loss", "TripletMarginLoss": "triplet_margin_loss",
}  # fmt: skip


def test_fp32_list_layers_call_an_op_of_the_cuda_float32_list():
    """Every layer the flow treats as float32 under CUDA fp16 autocast is a torch.nn class
    whose forward calls its functional op, and that op is on CUDA autocast's float32 list."""
    assert {f"torch.nn.{n}" for n in _FP32_LAYER_OPS} == AUTOCAST_FP32_MODULES
    for name, op in _FP32_LAYER_OPS.items():
        source = inspect.getsource(getattr(nn, name).forward)
        assert f"F.{op}(" in source or f"torch.{op}(" in source, name
        assert op in AUTOCAST_FP32_OPS, op
