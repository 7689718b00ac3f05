"""The probe: kwargs, masks, integer tensors, attribution, clamping, no change to results."""

from __future__ import annotations

import copy
import weakref
from pathlib import Path

import torch
from torch import nn

from fp16lint.runtime.probe import OPS_OF_INTEREST, Probe, ProbeOptions, ReferenceStore
from fp16lint.runtime.tensors import compare, summarize, tensor_stat

HERE = str(Path(__file__).resolve())


class KwModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(8, 8)

    def forward(self, x, *, scale=None, attention_mask=None):
        h = self.inner(x)
        if scale is not None:
            h = h * scale
        return {"hidden": h, "ids": h.argmax(-1), "mask": attention_mask, "pair": (h, h.sum(-1))}


def test_ops_of_interest_is_one_tuple():
    assert isinstance(OPS_OF_INTEREST, tuple)
    for op in ("softmax", "pow", "rsqrt", "matmul", "masked_fill", "layer_norm", "sum", "mean"):
        assert op in OPS_OF_INTEREST


def test_hooks_see_kwargs_and_walk_dict_outputs():
    m = KwModel().eval()
    x = torch.randn(2, 3, 8)
    scale = torch.full((1,), 3.0)
    mask = torch.ones(2, 3, dtype=torch.long)
    with torch.no_grad(), Probe(m, "fp32") as probe:
        m(x, scale=scale, attention_mask=mask)
    root = next(r for r in probe.modules if r.qualname == "")
    assert "int64" in root.in_dtypes  # the attention_mask kwarg was seen
    assert "int64" in root.out_dtypes  # argmax ids inside the dict output
    # max |x| counts the floating outputs only, never the integer ids (up to 7) or the mask
    hidden_max = float(m.inner(x).detach().mul(3.0).abs().max())
    assert root.max_abs is not None and abs(root.max_abs - max(hidden_max, root.max_abs)) < 1e-3
    mul = [o for o in probe.ops if o.op == "mul"]
    assert mul and mul[0].file == HERE  # attributed to this file, not to torch


def test_integer_and_mask_tensors_are_not_activations():
    ids = torch.randint(0, 1000, (2, 5))
    s = summarize((ids,))
    assert s.acts == [] and s.max_abs is None and s.dtypes == ["int64"]
    additive = torch.zeros(2, 1, 1, 5)
    additive[..., -2:] = torch.finfo(torch.float16).min
    additive = additive.half()
    st = tensor_stat(additive)
    assert st.mask_like
    s = summarize({"attention_mask": torch.ones(2, 5), "x": torch.randn(2, 5)})
    assert len(s.acts) == 1 and s.mask_context
    inf_mask = torch.zeros(3, 3).masked_fill(torch.eye(3, dtype=torch.bool), float("-inf"))
    assert tensor_stat(inf_mask).mask_like


def test_clamped_values_counted_in_fp16_only():
    t = torch.tensor([1.0, 64512.0, -65504.0, 3.0]).half()
    st = tensor_stat(t)
    assert st.clamped == 2 and st.max_abs == 65504.0
    assert tensor_stat(t.float()).clamped == 0


def test_probe_does_not_change_outputs():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 4)).eval().half()
    x = torch.randn(3, 8).half()
    with torch.no_grad():
        plain = m(x)
    store = ReferenceStore()
    m32 = copy.deepcopy(m).float()

    def forward(model, inp):  # one call line for both runs: ops inside torch modules land here
        return model(inp)

    with torch.no_grad(), Probe(m32, "fp32", store=store):
        forward(m32, x.float())
    with (
        torch.no_grad(),
        Probe(m, "fp16", reference=store, options=ProbeOptions(local_check="always")) as probe,
    ):
        probed = forward(m, x)
    assert torch.equal(plain, probed)
    assert probe.internal_errors == []
    linear = [o for o in probe.ops if o.op == "linear"]
    assert len(linear) == 2
    assert all(o.rel_error is not None and o.rel_error < 0.01 for o in linear)
    assert all(o.local_rel_error is not None and o.local_rel_error < 0.01 for o in linear)
    # modules matched by qualified name and call index
    assert {r.qualname for r in probe.modules} == {"", "0", "1", "2", "3"}
    assert all(r.rel_error is not None for r in probe.modules if r.qualname)


def test_occurrences_count_repeated_calls():
    lin = nn.Linear(4, 4)

    class Loop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = lin

        def forward(self, x):
            for _ in range(3):
                x = self.lin(x)
            return x

    m = Loop().eval()
    with torch.no_grad(), Probe(m, "fp32") as probe:
        m(torch.randn(2, 4))
    calls = [r.call_index for r in probe.modules if r.qualname == "lin"]
    assert calls == [0, 1, 2]
    occ = [o.occurrence for o in probe.ops if o.op == "linear"]
    assert occ == [0, 1, 2]


def test_padding_positions_left_out_of_errors():
    y = torch.zeros(2, 4, 3)
    r = torch.zeros(2, 4, 3)
    r[1, 3] = 5.0  # only at a padding position
    y[1, 3] = 100.0
    y[0, 0] = r[0, 0] = 1.0
    valid = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    assert compare(y, r, valid).rel_error == 0.0
    assert compare(y, r).rel_error > 1.0
    assert compare(y, r, valid, fast=True).rel_error == 0.0


def test_module_raising_is_recorded_and_reraised():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.boom = Boom()

        def forward(self, x):
            return self.boom(x)

    m = Outer()
    probe = Probe(m, "fp32")
    try:
        with probe:
            m(torch.randn(2))
    except RuntimeError:
        pass
    rec = next(r for r in probe.modules if r.qualname == "boom")
    assert rec.raised and "boom" in rec.raised
    assert not m._forward_hooks and not m.boom._forward_pre_hooks  # hooks removed


class _Chain(nn.Module):
    """Three ops on one large activation (its fp32 reference is kept as a sample): fp16 flushes
    much of ``x * 1e-6`` to zero, so the fp16 run disagrees with fp32 there and the op is
    recomputed in fp32 after the batched comparison. ``alive`` counts the earlier outputs still
    held by someone at the end of forward."""

    def __init__(self) -> None:
        super().__init__()
        self.alive = -1

    def forward(self, x):
        refs = []
        for scale in (1e-6, 1e6, 0.5):
            x = x.mul(scale)
            refs.append(weakref.ref(x))
        self.alive = sum(r() is not None for r in refs[:-1])
        return x


def test_a_bounded_batch_frees_activations_and_gives_the_same_figures():
    """What waits for the batched comparison (queued copies, and the inputs and outputs of the ops
    that may be recomputed) counts against ``max_queue_bytes``: past it the batch is computed
    early, so the probe never keeps the run's activations alive (issue 19: 3 x 1 MiB outputs
    against a 1 MiB budget), and every figure is the one an unbounded batch gives."""
    torch.manual_seed(0)
    m32 = _Chain().eval()
    x = torch.randn(1024, 512)  # 2**19 values: sampled in the reference store
    store = ReferenceStore()
    with torch.no_grad(), Probe(m32, "fp32", store=store):
        m32(x)
    figures = []
    for budget in (1 << 30, 1 << 20):
        m16 = _Chain().eval().half()
        with torch.no_grad(), Probe(m16, "fp16", reference=store, max_queue_bytes=budget) as p:
            m16(x.half())
        assert p.internal_errors == []
        figures.append([(o.op, o.line, o.rel_error, o.underflow, o.local_rel_error) for o in p.ops])
        if budget == 1 << 20:
            assert m16.alive == 0
    assert figures[0] == figures[1]
    # the deferred fp32 recomputation ran where fp16 disagreed (the underflowing mul)
    assert any(local is not None and under > 0.02 for *_, under, local in figures[1])
