"""What ``nn.Module.half()``, ``.to(torch.float16)``, ``.to(dtype=...)`` and ``.type()`` convert.

Every cast runs on the ``zoo`` fixture (conftest.py): float parameters, BatchNorm running stats,
a persistent and a non-persistent float buffer, int64 / bool / complex buffers, and a plain tensor
attribute that is not registered.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

HALF = torch.float16

# The zoo's complex buffer makes .to()/.type() warn (once per process); that warning is a fact
# checked on its own below, not noise for every other test.
pytestmark = pytest.mark.filterwarnings("ignore:Casting complex values to real:UserWarning")

CASTS = {
    "half": lambda m: m.half(),
    "to_dtype_positional": lambda m: m.to(torch.float16),
    "to_dtype_keyword": lambda m: m.to(dtype=torch.float16),
    "type_HalfTensor": lambda m: m.type(torch.HalfTensor),
}


@pytest.mark.parametrize("cast", CASTS.values(), ids=CASTS.keys())
def test_every_cast_converts_float_parameters(zoo, cast):
    """All four module casts turn floating-point parameters into float16."""
    cast(zoo)
    assert zoo.lin.weight.dtype == HALF
    assert zoo.lin.bias.dtype == HALF


@pytest.mark.parametrize("cast", CASTS.values(), ids=CASTS.keys())
def test_every_cast_converts_float_buffers(zoo, cast):
    """All four casts also convert floating-point buffers: BatchNorm running stats and non-persistent buffers included."""
    cast(zoo)
    assert zoo.bn.running_mean.dtype == HALF
    assert zoo.bn.running_var.dtype == HALF
    assert zoo.scale.dtype == HALF
    assert zoo.cache.dtype == HALF  # registered with persistent=False


def test_half_converts_batchnorm_running_stats(zoo):
    """``model.half()`` converts BatchNorm's running_mean/running_var: it is not "weights only"."""
    zoo.half()
    buffers = dict(zoo.named_buffers())
    assert buffers["bn.running_mean"].dtype == HALF
    assert buffers["bn.running_var"].dtype == HALF
    assert zoo.bn.weight.dtype == HALF  # BatchNorm's affine parameters too


@pytest.mark.parametrize("cast", ["half", "to_dtype_positional", "to_dtype_keyword"])
def test_half_and_to_leave_integer_and_bool_buffers_alone(zoo, cast):
    """``.half()`` and ``.to(torch.float16)`` leave integer and bool buffers (num_batches_tracked, index tables, masks) unchanged."""
    CASTS[cast](zoo)
    assert zoo.bn.num_batches_tracked.dtype == torch.int64
    assert zoo.index.dtype == torch.int64
    assert zoo.mask.dtype == torch.bool


def test_type_halftensor_converts_integer_and_bool_buffers(zoo):
    """``module.type(torch.HalfTensor)`` converts every tensor, integer and bool buffers included."""
    zoo.type(torch.HalfTensor)
    assert zoo.bn.num_batches_tracked.dtype == HALF
    assert zoo.index.dtype == HALF
    assert zoo.mask.dtype == HALF


def test_fp16_counter_saturates_at_2048():
    """A float16 counter such as a ``.type(torch.HalfTensor)``-converted num_batches_tracked stops counting at 2048."""
    counter = torch.tensor(2048.0, dtype=HALF)
    assert (counter + 1).item() == 2048.0
    assert torch.tensor(2049, dtype=HALF).item() == 2048.0


def test_half_leaves_complex_buffers_alone(zoo):
    """``module.half()`` skips complex buffers because it filters on ``is_floating_point()``."""
    zoo.half()
    assert zoo.phase.dtype == torch.complex64
    assert torch.equal(zoo.phase, torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64))


@pytest.mark.parametrize("cast", ["to_dtype_positional", "to_dtype_keyword", "type_HalfTensor"])
def test_to_and_type_drop_the_imaginary_part_of_complex_buffers(zoo, cast):
    """``.to(torch.float16)`` and ``.type(torch.HalfTensor)`` turn complex buffers into float16 real parts, dropping the imaginary part."""
    CASTS[cast](zoo)
    assert zoo.phase.dtype == HALF
    assert zoo.phase.tolist() == [1.0, 3.0]


def test_complex_to_real_warning_is_emitted_once_per_process():
    """Dropping the imaginary part warns only the first time in a process: later casts are silent."""
    code = (
        "import warnings, torch\n"
        "counts = []\n"
        "for _ in range(3):\n"
        "    with warnings.catch_warnings(record=True) as w:\n"
        "        warnings.simplefilter('always')\n"
        "        torch.nn.Module().to(torch.float16)\n"
        "        torch.tensor([1j]).to(torch.float16)\n"
        "    counts.append(sum('imaginary part' in str(x.message) for x in w))\n"
        "print(counts)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[1, 0, 0]"


@pytest.mark.parametrize("cast", CASTS.values(), ids=CASTS.keys())
def test_no_cast_touches_plain_tensor_attributes(zoo, cast):
    """A tensor stored as a plain attribute (not ``register_buffer``) is invisible to every module cast."""
    cast(zoo)
    assert zoo.plain.dtype == torch.float32


@pytest.mark.parametrize("cast", CASTS.values(), ids=CASTS.keys())
def test_module_casts_are_in_place_and_return_self(zoo, cast):
    """Every module cast modifies the module in place and returns the same module object."""
    assert cast(zoo) is zoo


@pytest.mark.parametrize("cast", CASTS.values(), ids=CASTS.keys())
def test_module_casts_keep_parameter_objects_and_replace_buffers(zoo, cast):
    """Module casts keep the same Parameter objects (swapping their data) but replace buffers with new tensors."""
    weight, running_mean = zoo.lin.weight, zoo.bn.running_mean
    cast(zoo)
    assert zoo.lin.weight is weight
    assert isinstance(zoo.lin.weight, nn.Parameter)
    assert zoo.bn.running_mean is not running_mean


def test_optimizer_built_before_half_sees_fp16_parameters():
    """Because Parameter objects are kept, an optimizer built before ``model.half()`` now holds float16 parameters."""
    model = nn.Linear(4, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.half()
    held = optimizer.param_groups[0]["params"][0]
    assert held is model.weight
    assert held.dtype == HALF


def test_half_converts_existing_gradients():
    """``module.half()`` converts a parameter's existing ``.grad`` as well."""
    model = nn.Linear(4, 4)
    model(torch.randn(2, 4)).sum().backward()
    model.half()
    assert model.weight.grad is not None
    assert model.weight.grad.dtype == HALF


def test_module_half_is_implemented_as_a_floating_point_filter():
    """``nn.Module.half()`` casts exactly the tensors for which ``is_floating_point()`` is true."""
    model = nn.Module()
    model.register_buffer("f64", torch.ones(1, dtype=torch.float64))
    model.register_buffer("bf16", torch.ones(1, dtype=torch.bfloat16))
    model.register_buffer("i8", torch.ones(1, dtype=torch.int8))
    model.half()
    assert model.f64.dtype == HALF
    assert model.bf16.dtype == HALF  # bfloat16 is floating point too: bf16 -> fp16 loses range
    assert model.i8.dtype == torch.int8


def test_module_to_refuses_non_float_dtypes():
    """``module.to(dtype)`` raises TypeError for integer dtypes (only floating point or complex are accepted)."""
    with pytest.raises(TypeError, match="only accepts floating point or complex"):
        nn.Linear(2, 2).to(torch.int64)


def test_module_to_changes_device_and_dtype_in_one_call():
    """``module.to(device, torch.float16)`` moves and casts in one call; ``.half()`` never changes the device."""
    moved = nn.Linear(2, 2).to("meta", torch.float16)
    assert moved.weight.device.type == "meta"
    assert moved.weight.dtype == HALF
    halved = nn.Linear(2, 2).half()
    assert halved.weight.device.type == "cpu"
