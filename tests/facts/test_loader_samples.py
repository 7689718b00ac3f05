"""The dtype of a ``DataLoader``'s samples, behind FP103's loader case.

A loader's samples have a dtype the code can know only when its dataset shows it: the default
collation stacks tensors without converting them, but turns Python floats and numpy float64
arrays into float64 tensors. ``analysis.loops`` reads only ``TensorDataset(...)`` and plain
tensors, whose sample dtypes are the tensors' own.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, default_collate


def test_default_collate_keeps_tensor_dtypes_but_widens_python_floats():
    """``default_collate`` stacks float32 tensors (and numpy float32 arrays) as float32, but makes float64 from Python floats and numpy float64 arrays."""
    assert default_collate([torch.zeros(3), torch.ones(3)]).dtype == torch.float32
    assert default_collate([np.zeros(3, dtype=np.float32)] * 2).dtype == torch.float32
    assert default_collate([0.5, 1.5]).dtype == torch.float64
    assert default_collate([np.zeros(3), np.ones(3)]).dtype == torch.float64


@pytest.mark.parametrize("batch_size", [4, None], ids=["batched", "unbatched"])
def test_tensor_dataset_samples_keep_each_tensors_dtype(batch_size):
    """Iterating a ``DataLoader`` over ``TensorDataset(a, b)`` gives ``(a rows, b rows)`` in ``a``'s and ``b``'s dtypes (float32 and int64 here; float16 stays float16), batched or not, through ``enumerate`` too."""
    fp32 = TensorDataset(torch.randn(8, 4), torch.randint(0, 2, (8,)))
    for x, y in DataLoader(fp32, batch_size=batch_size, shuffle=True):
        assert (x.dtype, y.dtype) == (torch.float32, torch.int64)
    for _, (x, y) in enumerate(DataLoader(fp32, batch_size=batch_size)):
        assert (x.dtype, y.dtype) == (torch.float32, torch.int64)
    fp16 = TensorDataset(torch.randn(8, 4).half(), torch.zeros(8))
    for x, y in DataLoader(fp16, batch_size=batch_size):
        assert (x.dtype, y.dtype) == (torch.float16, torch.float32)


def test_a_tensor_as_dataset_gives_batches_of_its_dtype():
    """``DataLoader(t)`` over a tensor yields batches of ``t``'s rows in ``t``'s dtype."""
    for x in DataLoader(torch.randn(8, 4), batch_size=4):
        assert x.dtype == torch.float32 and x.shape == (4, 4)


def test_a_collate_fn_decides_the_sample_dtype():
    """A ``collate_fn`` may change the dtype: the dataset alone no longer tells it."""
    loader = DataLoader(
        TensorDataset(torch.randn(8, 4)),
        batch_size=4,
        collate_fn=lambda rows: torch.stack([r[0] for r in rows]).half(),
    )
    assert next(iter(loader)).dtype == torch.float16


def test_fp16_model_refuses_a_float32_loader_sample():
    """A float32 sample from such a loader, moved only by device, makes a ``.half()`` model raise a dtype mismatch; under ``torch.autocast`` the same call runs."""
    linear, conv = nn.Linear(4, 2).half(), nn.Conv2d(3, 4, 3).half()
    (x, _), *_ = DataLoader(TensorDataset(torch.randn(8, 4), torch.zeros(8)), batch_size=4)
    with pytest.raises(RuntimeError, match="mat1 and mat2 must have the same dtype"):
        linear(x.to("cpu"))
    images = next(iter(DataLoader(torch.randn(2, 3, 8, 8), batch_size=2)))
    with pytest.raises(RuntimeError, match=r"Input type \(float\) and bias type \(c10::Half\)"):
        conv(images)
    with torch.autocast("cpu", dtype=torch.float16):
        assert linear(x).dtype == torch.float16
