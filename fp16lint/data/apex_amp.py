"""NVIDIA apex's mixed-precision APIs and what replaces them in ``torch.amp``.

Sources: the apex.amp docs (https://nvidia.github.io/apex/amp.html, "opt_levels and
Properties": O0 FP32 training, O1 mixed precision, O2 "almost FP16" with FP32 master weights
and FP32 batchnorm, O3 pure FP16; ``amp.initialize``'s default ``opt_level`` is "O1");
NVIDIA/apex issue #818 ("torch.cuda.amp > apex.amp") and the PyTorch forums (apex.amp "is
deprecated in favor of the native torch.cuda.amp implementation"; native AMP corresponds to O1
and has no O2 mode).
"""

from __future__ import annotations

APEX_MODULES = ("apex.amp", "apex.fp16_utils")  # importing these is using apex's mixed precision
INITIALIZE = frozenset({"apex.amp.initialize", "apex.amp.frontend.initialize"})
SCALE_LOSS = frozenset({"apex.amp.scale_loss", "apex.amp.handle.scale_loss"})
DEFAULT_OPT_LEVEL = "O1"

NATIVE_AMP = (
    '`torch.autocast("cuda", dtype=torch.float16)` around the forward pass and loss plus '
    '`torch.amp.GradScaler("cuda")`'
)
# opt_level -> what it does and its torch.amp equivalent (completes "opt_level "Ox" is ...").
OPT_LEVELS = {
    "O0": "plain float32 training: drop `amp.initialize` and keep the model in float32",
    "O1": f"mixed precision with dynamic loss scaling: use {NATIVE_AMP}",
    "O2": (
        'apex\'s "almost fp16" mode (fp16 model, fp32 master weights and batchnorm), which '
        f"torch.amp has no equivalent for: keep the model in float32 and use {NATIVE_AMP}"
    ),
    "O3": (
        "pure float16 training (no master weights, no loss scaling): keep the model in float32 "
        f"and use {NATIVE_AMP}, or bfloat16 autocast where the hardware has it"
    ),
}
