"""Every bad input gives a clear per-target error; only a missing required CUDA raises."""

from __future__ import annotations

import hazards as hz
import pytest
import torch

import fp16lint.runtime as rt
from fp16lint.runtime.runner import CudaRequiredError
from fp16lint.runtime.text import format_report


def test_factory_raises():
    r = rt.check_target(hz.broken_factory, hz.good_inputs)
    assert r.error_kind == "factory"
    assert "ValueError: checkpoint not found" in r.error
    assert not r.ok
    with pytest.raises(AssertionError, match="checkpoint not found"):
        r.assert_ok()
    assert "ERROR (factory)" in format_report(r)


def test_factory_returns_no_module():
    r = rt.check_target(lambda: 42, hz.good_inputs)
    assert r.error_kind == "factory" and "not a torch.nn.Module" in r.error


def test_inputs_do_not_fit():
    r = rt.check_target(hz.linear_model, hz.wrong_inputs)
    assert r.error_kind == "model"
    assert "do not fit" in r.error and "fp32 reference run" in r.error


def test_inputs_callable_raises():
    def bad():
        raise KeyError("tokenizer")

    r = rt.check_target(hz.linear_model, bad)
    assert r.error_kind == "inputs" and "KeyError" in r.error


def test_non_tensor_outputs():
    r = rt.check_target(hz.NoTensorModel, hz.good_inputs)
    assert r.error_kind == "outputs" and "returned a str" in r.error
    r = rt.check_target(hz.IdsOnlyModel, hz.good_inputs)
    assert r.error_kind == "outputs" and "int64" in r.error


def test_nan_in_inputs():
    r = rt.check_target(hz.linear_model, hz.nan_in_inputs)
    assert r.error_kind == "inputs" and "NaN" in r.error


def test_no_guessable_inputs():
    class Odd(torch.nn.Module):
        def forward(self, x):
            return x * 2

    r = rt.check_target(Odd, None)
    assert r.error_kind == "inputs" and "can be guessed" in r.error


@pytest.mark.parametrize(
    ("cls", "dtype", "shape"),
    [
        (hz.AutoLinear, torch.float32, [2, 16]),
        (hz.AutoEmbedding, torch.int64, [2, 16]),
        (hz.AutoConv, torch.float32, [2, 3, 32, 32]),
    ],
)
def test_guessed_inputs(cls, dtype, shape):
    r = rt.check_target(cls, None, runs=("fp16",))
    assert r.error is None
    assert r.inputs_guessed
    assert str(shape) in r.inputs
    assert "GUESSED" in format_report(r)
    assert any("guessed" in n for n in r.notes)


def test_require_cuda_raises_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(CudaRequiredError, match="CUDA was required"):
        rt.check_target(hz.linear_model, hz.good_inputs, require_cuda=True)


def test_cpu_device_note_and_forced_device():
    r = rt.check(hz.linear_model(), torch.randn(2, 16), device="cpu", runs=("fp16",))
    assert r.device.startswith("cpu")
    assert r.device_note and "CUDA" in r.device_note
    assert r.ok


def test_check_does_not_change_the_model():
    m = hz.linear_model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.train()
    rt.check(m, torch.randn(2, 16))
    assert m.training
    assert all(v.dtype == torch.float32 for v in m.state_dict().values())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_check_passes_model_kwargs():
    class Kw(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x, *, gain):
            return self.fc(x) * gain

    r = rt.check(Kw(), torch.randn(2, 4), gain=2.0, runs=("fp16",))
    assert r.error is None and r.ok
