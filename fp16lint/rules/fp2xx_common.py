"""What the FP2xx rules share: the example projects their docs and tests run, and the op
findings' wording.

The example projects are real multi-file layouts (``{path: source}``): a model split over a
library folder and packages with ``__init__`` re-exports and relative imports, cast in a script
elsewhere; inheritance with a model built by a function and cast with ``.to(torch.float16)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fp16lint.analysis.exposure import Chain, exposure_of
from fp16lint.analysis.index import Reason, index_of, short
from fp16lint.analysis.recasts import recast_only
from fp16lint.data.amp_ops import AUTOCAST_FP32_OPS, OPS_BY_NAME, RISKS, UnsafeOp, quiet_in_library

# A library folder (lib/mylib, two packages deep) and a script that casts its model.
LIBRARY_PROJECT = {
    "lib/mylib/__init__.py": "from .models import Encoder\n",
    "lib/mylib/models/__init__.py": "from .encoder import Encoder\n",
    "lib/mylib/models/blocks.py": (
        "import torch\n"
        "from torch import nn\n"
        "\n"
        "\n"
        "class Block(nn.Module):\n"
        "    def __init__(self, d):\n"
        "        super().__init__()\n"
        "        self.norm = nn.LocalResponseNorm(2)\n"
        "        self.proj = nn.Linear(d, d)\n"
        "\n"
        "    def forward(self, x):\n"
        "        h = self.proj(self.norm(x))\n"
        "        var = h.pow(2).mean(-1, keepdim=True)\n"
        "        h = h * torch.rsqrt(var + 1e-6)\n"
        "        spectrum = torch.fft.rfft(h, dim=-1)\n"
        "        return torch.softmax(h, dim=-1) + spectrum.abs()\n"
    ),
    "lib/mylib/models/encoder.py": (
        "from torch import nn\n"
        "\n"
        "from .blocks import Block\n"
        "\n"
        "\n"
        "class Encoder(nn.Module):\n"
        "    def __init__(self, d, n):\n"
        "        super().__init__()\n"
        "        self.layers = nn.ModuleList([Block(d) for _ in range(n)])\n"
        "\n"
        "    def forward(self, x):\n"
        "        for layer in self.layers:\n"
        "            x = layer(x)\n"
        "        return x\n"
    ),
    "scripts/train.py": "from mylib import Encoder\n\nmodel = Encoder(64, 4).half()\n",
}

# Inheritance, a generator-built ModuleList, a builder function, ``.to(torch.float16)``.
INHERITANCE_PROJECT = {
    "models.py": (
        "import torch\n"
        "import torch.nn as nn\n"
        "\n"
        "\n"
        "class Base(nn.Module):\n"
        "    def __init__(self, d):\n"
        "        super().__init__()\n"
        "        self.lrn = nn.LocalResponseNorm(2)\n"
        "\n"
        "    def forward(self, x):\n"
        "        return self.head(self.lrn(x))\n"
        "\n"
        "    def head(self, x):\n"
        "        scale = torch.rsqrt((x * x).mean(-1, keepdim=True))\n"
        "        return torch.quantile(x.exp() * scale, 0.5, dim=-1)\n"
        "\n"
        "\n"
        "class Net(Base):\n"
        "    def __init__(self, d):\n"
        "        super().__init__(d)\n"
        "        self.losses = nn.ModuleList(nn.MSELoss() for _ in range(2))\n"
        "\n"
        "\n"
        "def build_model(d):\n"
        "    return Net(d)\n"
    ),
    "train.py": (
        "import torch\n"
        "from models import build_model\n"
        "\n"
        "model = build_model(16)\n"
        "model = model.to(torch.float16)\n"
    ),
}

MODEL_HEADER = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n\n"


def hint(op_name: str) -> str:
    """What to do instead, for an op (a finding's help)."""
    op = OPS_BY_NAME.get(op_name)
    if op is not None and op.dtype_kwarg:
        return "Pass `dtype=torch.float32` (or upcast its input with `.float()`)."
    if op is not None and op.risk in ("loss", "squares", "poisson"):
        return "Compute the loss on `.float()` inputs."
    return "Upcast its input with `.float()` first and cast the result back."


def place(record: dict[str, Any]) -> str:
    """ "`Block.forward`": the method an op site is in."""
    return f"`{short(record['owner'])}.{record['method']}`"


def where(record: dict[str, Any], reason: Reason | None) -> str:
    """The clause saying why an op site runs on float16."""
    if reason is None:
        maybe = " (when mixed precision is fp16)" if record.get("maybe") else ""
        return f"runs on a float16 tensor{maybe}"
    return f"in {place(record)} runs on float16 because {reason.because()}"


def assumed(reason: Reason | None, chain: Chain | None) -> bool:
    """Float16 only by library mode's assumption: the class is resident through
    ``assume-fp16`` (no cast), or the chain starts there (an origin with no place)."""
    if reason is not None:
        return reason.cast is None
    return chain is not None and not chain.steps[0][0]


def library_quiet(project: Any, reason: Reason | None, chain: Chain | None) -> bool:
    """Library mode, without ``library-info``, at a site float16 reaches only by its
    assumption: where it leaves out what is not established to fail by itself."""
    settings = project.settings
    return (
        getattr(settings, "assume_fp16", False)
        and not getattr(settings, "library_info", False)
        and assumed(reason, chain)
    )


def fed_float32(
    project: Any, record: dict[str, Any], reason: Reason | None, chain: Chain | None = None
) -> bool:
    """Only library mode's assumption makes this method's op site float16 (or, given its
    ``chain``, the chain that reaches a function's site starts at it), its input comes from
    the function's parameters alone, and the function's project callers, all seen, pass no
    float16 in them (``self.stft(x)`` called only with an upcast ``x``)."""
    if reason is not None:
        assumed_only = reason.cast is None
    else:
        assumed_only = chain is not None and chain.assumed
    return (
        assumed_only
        and "params" in record
        and exposure_of(project).callers_avoid(record.get("fn"), record["params"])
    )


def front_end(
    project: Any, record: dict[str, Any], reason: Reason | None, chain: Chain | None
) -> bool:
    """Only library mode's assumption makes this op site float16, its input comes from its
    function's parameters alone, and every project caller casts what the function returns to
    a dtype (``analysis.recasts``): a front end written for the data the model is given
    (``stft`` of the waveform), not for activations."""
    return assumed(reason, chain) and "params" in record and recast_only(project, record.get("fn"))


def quiet(
    project: Any, op: UnsafeOp | None, reason: Reason | None, chain: Chain | None,
    risk: str | None = None, full: bool = False, large: bool = False, small: bool = False,
) -> bool:  # fmt: skip
    """Library mode leaves out an ``info`` op site (``amp_ops.quiet_in_library``) where only
    its assumption makes it float16, unless ``library-info`` asks for them."""
    return (
        op is not None
        and quiet_in_library(op, risk or op.risk, full, large, small)
        and library_quiet(project, reason, chain)
    )


def op_sites(
    project: Any, rule: str
) -> Iterator[tuple[str, dict[str, Any], Reason | None, Chain | None]]:
    """The FP2xx op sites of ``rule`` that run in float16, each once: in a method a float16
    class runs (with the reason), or on a value float16 reaches (with its exposure chain:
    made float16 in the same function, or passed in by calls from elsewhere). Library mode's
    float32-kernel ops are left out (``quiet``)."""
    for path, record, reason, chain in _op_sites(project, rule):
        if not _quiet_record(project, record, reason, chain):
            yield path, record, reason, chain


def _quiet_record(
    project: Any, record: dict[str, Any], reason: Reason | None, chain: Chain | None
) -> bool:
    if record.get("residual"):
        # FP203 on a squared difference is the hand-written ``mse_loss`` (or a distance):
        # library mode leaves it out as it leaves the loss out.
        return quiet(project, OPS_BY_NAME["mse_loss"], reason, chain)
    op = OPS_BY_NAME.get(record.get("op", ""))
    small = record.get("small", False) and not _guard_fed_nonzero(project, record)
    return quiet(
        project, op, reason, chain, record.get("risk"), record.get("full", False),
        record.get("large", False), small,
    )  # fmt: skip


def _guard_fed_nonzero(project: Any, record: dict[str, Any]) -> bool:
    """A log's (rsqrt's) only small-value evidence is a guard written at the op
    (``log(t.clamp(min=1e-20))``: ``hazards._guarded_value``) on a value that can be 0 only
    through the function's parameters, and its project callers, all seen, pass none that can
    (``sigma`` to a ``log`` helper, not a softmax probability): the guard defends a value that
    never comes near 0. Where callers are unseen (a model's own inputs), the guard stays
    evidence."""
    zero = record.get("zero")
    if not zero or zero == 1:
        return False
    exposure = exposure_of(project)
    return exposure.callers.get(record.get("fn") or "") is not None and not exposure.may_vanish(
        record
    )


def _op_sites(
    project: Any, rule: str
) -> Iterator[tuple[str, dict[str, Any], Reason | None, Chain | None]]:
    index, exposure = index_of(project), exposure_of(project)
    library = getattr(project.settings, "assume_fp16", False)
    seen: set[tuple[str, tuple]] = set()
    for path, record, reason in index.resident_ops():
        key = (path, tuple(record["span"]))
        if record["rule"] == rule and key not in seen and not record.get("inferred"):
            seen.add(key)
            if reason is not None and reason.cast is None and "fn" in record:
                # Library mode's assumption: a real origin reaching the site judges it as in
                # default mode (library mode never loses what default mode finds).
                chain = exposure.record_chain(path, record)
                if chain is not None and not assumed(None, chain):
                    if not _autocast_protects(record, chain):
                        yield path, record, None, chain
                    continue
            yield path, record, reason, None if reason else exposure.record_chain(path, record)
    for path, record in index.ops:
        key = (path, tuple(record["span"]))
        if library and record.get("inferred") and record.get("owner"):
            continue  # library mode makes every forward's inputs float16: integer ones too
        if record["rule"] == rule and "fn" in record and key not in seen:
            chain = exposure.record_chain(path, record)
            if chain is not None and not _autocast_protects(record, chain):
                seen.add(key)
                yield path, record, None, chain


def _autocast_protects(record: dict[str, Any], chain: Chain) -> bool:
    """The site's function is called inside an autocast region that runs its op in float32."""
    name = record.get("op", "")
    op = OPS_BY_NAME.get(name)
    if chain.autocast is None:
        return False
    if op is None:  # an FP204 op (``torch.cdist``): CUDA autocast's list by its name
        return chain.autocast != "cpu" and name.rsplit(".", 1)[-1] in AUTOCAST_FP32_OPS
    return op.cpu_fp32 if chain.autocast == "cpu" else op.cuda_fp32


def risk_of(record: dict[str, Any]):
    """The ``Risk`` of an op site, with the exponent-specific text of a power."""
    risk = RISKS[record["risk"]]
    return risk.severity, record.get("what", risk.what)


def product_sites(
    project: Any, rule: str
) -> Iterator[tuple[str, dict[str, Any], Reason | None, Chain | None]]:
    """The attention and rotary product sites of ``rule`` (FP205, FP206) that run in float16:
    local float16 or fp16 autocast, methods of classes that run in float16 (the project
    index), and in library mode free functions' inputs.

    The FP2xx op sites (the project index and the shared exposure analysis, with its chain),
    plus library mode's free functions."""
    yield from op_sites(project, rule)
    if getattr(project.settings, "assume_fp16", False):
        for path, summary in project.summaries.items():
            for record in summary.facts.get("ops", ()):
                if record["rule"] == rule and record.get("function"):
                    yield path, record, None, None


def where_product(record: dict[str, Any], reason: Reason | None, chain: Chain | None) -> str:
    """The clause saying why a product site (``product_sites``) runs in float16."""
    status = record.get("status")
    if status == "autocast" or (reason is None and chain is not None and status != "fp16"):
        return "in float16 under fp16 autocast (autocast runs matmuls in float16)"
    if status == "fp16":
        return "on float16 tensors"
    if status == "function":
        return (
            f"in `{record['function']}` on float16 inputs (`assume-fp16` treats model code as "
            "running in float16)"
        )
    if status == "upcast":
        return (
            f"in `{record['function']}` in float16 under fp16 autocast, float32 inputs or not "
            "(`assume-fp16` treats model code as running in float16)"
        )
    assert reason is not None
    return f"in {place(record)} in float16 because {reason.because()}"
