"""Every fix proven by running the fixed code in torch (issue 18).

For every rule with a fix, each INVALID example that has one (and code written for the purpose)
is run before and after the fix, on CPU, in float16 and float32 where the rule is about
float16; ``fix_harness.check`` asserts what the fix claims. A case the fix is known to break is
marked with the reason and its test shows the break; a case that cannot run here says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fix_harness import FLOAT, HALF, Case, check, fixed_source, outcome
from lintutil import lint_code
from torch import nn

from fp16lint.rules import all_rules

pytestmark = pytest.mark.fix_execution
REPO = Path(__file__).resolve().parents[2]
RULES = {rule.code: rule for rule in all_rules()}
FIXABLE = sorted(code for code, rule in RULES.items() if rule.fix is not None)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- inputs ---------------------------------------------------------------------------------
# Scores with values below -16 (where finfo(float16).min + score is -inf), and a keep-mask with a
# fully masked row (0), a partly masked one (1), an unmasked one (2) and one masked place (3).
SCORES = [[-20.0, -30.0, -25.0, -18.0], [1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 0.0]]
SCORES += [[-40.0, 3.0, 1.0, 2.0]]
KEEP = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 1, 1]], dtype=torch.bool)
PLACES = ~KEEP & KEEP.any(-1, keepdim=True)  # masked places in rows that keep something


def scores(dtype):
    return torch.tensor(SCORES, dtype=dtype)


def probs(p, places=PLACES):
    return {"probs": p, "masked:probs": (p, places)}


def both_uses(make):
    """A mask of unknown use, made by ``make(base)``: filled into the scores then softmax, and
    made from zeros then added to the scores."""

    def driver(ns, dtype):
        filled = make(ns, scores(dtype).clone())
        added = scores(dtype) + make(ns, torch.zeros(4, 4, dtype=dtype))
        return {
            "filled": filled,
            "masked:fill": (torch.softmax(filled, -1), PLACES),
            "masked:add": (torch.softmax(added, -1), PLACES),
        }

    return driver


def big(dtype, rows=4, width=8):
    """Activations of a few hundred: their squares overflow float16."""
    return (torch.randn(rows, width) * 300).to(dtype)


def norm_driver(build):
    def driver(ns, dtype):
        model, x = build(ns).to(dtype), big(dtype)
        reference = build(ns).float()(x.float())
        chain = nn.Sequential(model, nn.Linear(8, 8)).to(dtype)
        return {"norm": model(x), "close:norm": (model(x), reference), "chain": chain(x)}

    return driver


def scaler_state(s):
    names = ("_device", "_enabled", "_init_scale", "_growth_factor", "_backoff_factor")
    return tuple(getattr(s, n, None) for n in (*names, "_growth_interval"))


def probe_driver(ns, dtype):
    return {"same:autocast": list(ns["_probes"])}


PROBE = (("    pass\n", "    _probe()\n"), ("    return x\n", "    return _probe(x)\n"))
# The demo's RMSNorm (the issue's crash), cast as the demo's encoder is.
DEMO_NORM = (REPO / "fixtures/demo/demo_models/blocks.py").read_text().split("class FeedForward")[0]
DEMO_NORM += "norm = RMSNorm(8).half()\n"
T5 = (("'t5-base'", "{t5}"), ("'google/flan-t5-xl'", "{t5}"), ("'cuda'", "'cpu'"))


def t5_driver(ns, dtype):
    model = ns["model"]
    ids = torch.tensor([[5, 6, 7, 1]])
    out = model(input_ids=ids, decoder_input_ids=ids[:, :2]).logits
    wo = {p.dtype for n, p in model.named_parameters() if n.endswith("wo.weight")}
    return {"logits": out, "kept:wo": wo.pop() if len(wo) == 1 else wo}


# --- the cases: (rule, INVALID index) -> Case arguments; every fixed example must be here ------
def invalid(rule, index, driver, **kwargs) -> Case:
    example = RULES[rule].invalid[index]
    return Case(rule, f"invalid[{index}]", example.code, driver, **kwargs)


CASES = [
    # FP001: removing an unused noqa code changes comments only: the same values.
    invalid("FP001", 0, lambda ns, dt: {"x": ns["x"]}, dtypes=(FLOAT,)),
    invalid("FP001", 1, lambda ns, dt: {"y": torch.tensor(float(ns["y"]))}, dtypes=(FLOAT,)),
    # FP102: the discarded conversion now happens (the fix's claim), values kept.
    invalid("FP102", 0, lambda ns, dt: {"x": ns["x"]}, dtypes=(FLOAT,), converts_to=HALF),
    invalid(
        "FP102", 1, lambda ns, dt: {"x": ns["prepare"](torch.randn(2, 3), "cpu")},
        dtypes=(FLOAT,), converts_to=HALF,
    ),
    invalid(
        "FP102", 2, lambda ns, dt: {"out": ns["run"](nn.Identity(), [(torch.ones(2), 0)])},
        dtypes=(FLOAT,), needs=("cuda",),
    ),
    invalid(
        "FP102", 4, lambda ns, dt: {"y": ns["Net"]()(torch.randn(2, 4))}, dtypes=(FLOAT,),
        unsafe_because="the assigned-back float16 input meets the model's float32 Linear "
        "(`mat1 and mat2 must have the same dtype`): the fix does what the discarded call "
        "asked, which this float32 model cannot take",
    ),
    # FP106: same dtype, shape, device (and values where given).
    invalid(
        "FP106", 0,
        lambda ns, dt: {"same:t": (ns["buf"].dtype, ns["buf"].shape, ns["buf"].device)},
        dtypes=(FLOAT,),
    ),
    invalid("FP106", 1, lambda ns, dt: {"data": ns["data"], "empty": ns["empty"]},
            dtypes=(FLOAT,), needs=("cuda",)),
    Case("FP106", "HalfTensor(data)", "import torch\ndata = torch.HalfTensor([1.0, 2.5])\n",
         lambda ns, dt: {"data": ns["data"]}, dtypes=(FLOAT,)),
    Case("FP106", "HalfTensor(size)", "import torch\nbuf = torch.HalfTensor(3, 2)\n",
         lambda ns, dt: {"same:t": (ns["buf"].dtype, ns["buf"].shape)}, dtypes=(FLOAT,)),
    # FP203: the float16 norm matches the float32 one (no all-zero rows), dtype kept (issue 18:
    # the demo's RMSNorm before a float16 Linear raised after the old fix).
    invalid("FP203", 2, norm_driver(lambda ns: ns["RMSNorm"](8))),
    invalid(
        "FP203", 3,
        lambda ns, dt: (lambda x, w: {
            "h": ns["rms"](x, w),
            "close:h": (ns["rms"](x, w), ns["rms"](x.float(), w.float())),
        })(big(dt), (torch.randn(8, 8) / 3).to(dt)),
    ),
    Case("FP203", "demo RMSNorm + Linear", DEMO_NORM, norm_driver(lambda ns: ns["RMSNorm"](8))),
    Case(
        "FP203", "sqrt in a later statement",
        "import torch\n\ndef norm(x):\n    h = x.half()\n    var = (h * h).mean(-1, keepdim=True)\n"
        "    std = torch.sqrt(var + 1e-6)\n    return h / std\n",
        lambda ns, dt: (lambda x: {
            "n": ns["norm"](x),
            "close:n": (ns["norm"](x), x.float() / x.float().pow(2).mean(-1, True).sqrt()),
        })(big(dt)),
        dtypes=(HALF,),
    ),
    # FP301: masks, each use.
    invalid("FP301", 0, lambda ns, dt: probs(ns["f"](scores(dt), KEEP.int()))),
    invalid(
        "FP301", 1,
        lambda ns, dt: probs(ns["f"](scores(dt), torch.zeros(4, 4, dtype=dt), ~KEEP)),
    ),
    invalid("FP301", 2, both_uses(lambda ns, base: ns["f"](base, KEEP.int()))),
    invalid("FP301", 3, both_uses(lambda ns, base: ns["f"](base, ~KEEP))),
    invalid(
        "FP301", 4,
        lambda ns, dt: (lambda s: {"s": s, **probs(torch.softmax(s, -1))})(
            ns["Attention"]()(scores(dt), torch.eye(4, dtype=dt), KEEP)),
    ),
    invalid(
        "FP301", 6,
        lambda ns, dt: (lambda out: {"out": out, **probs(
            torch.softmax(out, -1), torch.tensor([False, True, False, True]).expand(4, 4))})(
            ns["ban"](scores(dt), [1, 3])),
    ),
    invalid("FP301", 8, lambda ns, dt: {"y": ns["f"](scores(dt), 4)}),
    invalid(
        "FP301", 9,
        lambda ns, dt: (lambda s: {"sum": s, **probs(torch.softmax(s, -1))})(
            ns["f"](KEEP.float(), scores(dt))),
    ),
    invalid("FP301", 10, lambda ns, dt: {"x": ns["f"](scores(dt), ~KEEP)}),
    # FP302: the same uses, float32 limits.
    invalid("FP302", 0, lambda ns, dt: probs(ns["f"](scores(dt), ~KEEP))),
    invalid("FP302", 1, both_uses(lambda ns, base: ns["f"](base, ~KEEP))),
    invalid("FP302", 2, both_uses(lambda ns, base: ns["f"](base, ~KEEP))),
    invalid("FP302", 3, both_uses(lambda ns, base: ns["f"](base, ~KEEP))),
    invalid(
        "FP302", 4,
        lambda ns, dt: (lambda s: ns["f"](s, [1, 3]) or {"logits": s, **probs(
            torch.softmax(s, -1), torch.tensor([False, True, False, True]).expand(4, 4))})(
            scores(dt)),
    ),
    invalid("FP302", 6, both_uses(lambda ns, base: ns["Attn"]()(base, ~KEEP))),
    # FP401: the same autocast state inside the block, the same scaler settings.
    invalid("FP401", 0, probe_driver, dtypes=(FLOAT,), subs=PROBE),
    invalid("FP401", 1, lambda ns, dt: {"same:s": scaler_state(ns["scaler"])}, dtypes=(FLOAT,)),
    invalid("FP401", 2, probe_driver, dtypes=(FLOAT,), subs=PROBE),
    invalid(
        "FP401", 3,
        lambda ns, dt: {"same:s": scaler_state(ns["scaler"]), **probe_driver(ns, dt)},
        dtypes=(FLOAT,), subs=PROBE,
    ),
    invalid("FP401", 4, lambda ns, dt: {"same:s": scaler_state(ns["scaler"])}, dtypes=(FLOAT,)),
    invalid(
        "FP401", 5,
        lambda ns, dt: (lambda x: (lambda y: y.sum().backward() or {"y": y, "g": x.grad})(
            ns["F"].apply(x)))(torch.randn(3, dtype=dt, requires_grad=True)),
    ),
    invalid(
        "FP401", 6,
        lambda ns, dt: {"y": ns["forward"](torch.ones(2, dtype=dt)), **probe_driver(ns, dt)},
        subs=PROBE,
    ),
    invalid(
        "FP401", 8,
        lambda ns, dt: {"same:s": scaler_state(ns["scaler"]), **probe_driver(ns, dt)},
        dtypes=(FLOAT,), subs=PROBE,
    ),
    invalid("FP401", 9, lambda ns, dt: {"same:s": scaler_state(ns["train"]())}, dtypes=(FLOAT,)),
    # FP501: the load keeps T5's `wo` in float32, the model still runs (tiny local T5).
    invalid("FP501", 0, t5_driver, dtypes=(HALF,), subs=T5, same_in_fp32=False,
            needs=("transformers",)),
    invalid("FP501", 1, t5_driver, dtypes=(HALF,), subs=T5, same_in_fp32=False,
            needs=("transformers",)),
    invalid(
        "FP501", 3, None,
        unproven="needs a BLIP-2 checkpoint (no tiny one can be built quickly); the same "
        "rewrite, the dtype moved into the load, is run on T5 in invalid[0] and invalid[1]",
    ),
]  # fmt: skip


def test_every_fixed_example_has_a_case():
    """A rule's new fixable example without a case here fails: it must be proven or explained."""
    covered = {(c.rule, c.name) for c in CASES}
    for code in FIXABLE:
        for index, example in enumerate(RULES[code].invalid):
            if example.fixed is not None:
                assert (code, f"invalid[{index}]") in covered, (code, index)


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory) -> str:
    """A tiny T5 saved offline, as a quoted path for ``Case.subs``."""
    transformers = pytest.importorskip("transformers")
    config = transformers.T5Config(
        vocab_size=32, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1,
        num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("t5")
    torch.manual_seed(0)
    transformers.T5ForConditionalGeneration(config).save_pretrained(path)
    return repr(str(path))


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.driver is not None], ids=lambda c: f"{c.rule}-{c.name}"
)
def test_fix_is_proven_by_execution(case: Case, tmp_path, request):
    if "cuda" in case.needs and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (run on the GPU machine)")
    needs_t5 = "transformers" in case.needs
    context = {"t5": request.getfixturevalue("tiny_t5")} if needs_t5 else {}
    fixed = fixed_source(case.source, case.rule, tmp_path)
    assert fixed != case.source, "the fix was not applied"
    for dtype in case.dtypes:
        before = outcome(case.source, case, dtype, context)
        after = outcome(fixed, case, dtype, context)
        if case.unsafe_because:
            assert before.error is None and after.error is not None, (before, after)
            continue
        check(case, before, after, dtype)


@pytest.mark.parametrize("case", [c for c in CASES if c.driver is None], ids=lambda c: c.name)
def test_unproven_cases_say_why_and_stay_unsafe(case: Case):
    assert case.unproven
    assert RULES[case.rule].fix.value == "unsafe"


def test_fp203_offers_no_fix_it_cannot_cast_back(tmp_path):
    """A float16 mean of squares that meets no ``rsqrt``/``sqrt`` in its function is reported
    without a fix: upcasting it alone would turn what follows float32 (unproven, so none)."""
    source = (
        "import torch\n\ndef energy(x):\n    h = x.half()\n"
        "    power = h.pow(2).mean(-1)\n    return h / power\n"
    )
    assert fixed_source(source, "FP203", tmp_path) == source
    (finding,) = lint_code(source, select=("FP203",)).findings
    assert finding.fix is None
