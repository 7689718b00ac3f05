"""Optimizers: which calls build one, and the ``eps`` their update divides by.

Source: the signatures in torch 2.13's torch/optim/{adam,adamw,adamax,nadam,radam,rmsprop,
adagrad}.py (``eps`` default and position, ``params`` first), checked against the installed
torch by tests/test_fp1_facts.py. With float16 parameters the state is float16 too, so an
``eps`` that rounds to 0 in float16 (1e-8, 1e-10) leaves ``sqrt(v) + eps`` at 0 wherever a
gradient is 0 or underflows, and the update is 0/0 (NaN) or x/0 (inf).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EpsParameter:
    default: float
    position: int  # index among the positional parameters, ``params`` being 0


EPS_OPTIMIZERS: dict[str, EpsParameter] = {
    **{
        f"torch.optim.{name}": EpsParameter(1e-8, 3)
        for name in ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop")
    },
    "torch.optim.Adagrad": EpsParameter(1e-10, 5),
}
# The same classes under their defining modules (``torch.optim.adam.Adam``).
EPS_OPTIMIZERS.update(
    {
        f"torch.optim.{name.lower()}.{name}": spec
        for qualname, spec in list(EPS_OPTIMIZERS.items())
        for name in [qualname.rsplit(".", 1)[-1]]
    }
)
# Calls that build an optimizer from a model instead of its parameters (first argument).
MODEL_OPTIMIZER_FACTORIES = frozenset(
    {"timm.optim.create_optimizer_v2", "timm.optim.create_optimizer"}
)
_NOT_OPTIMIZERS = frozenset({"Optimizer"})


def is_optimizer_class(qualname: str | None) -> bool:
    """``torch.optim.AdamW``, ``torch.optim.sgd.SGD``, ``bitsandbytes.optim.AdamW8bit``..."""
    if not qualname:
        return False
    head, _, last = qualname.rpartition(".")
    if not last[:1].isupper() or last in _NOT_OPTIMIZERS:
        return False
    if head.startswith("torch.optim"):
        return "lr_scheduler" not in head and "swa_utils" not in head
    return head.startswith("bitsandbytes.optim")
