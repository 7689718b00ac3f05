"""Constant sites judged on what the project's calls give a function (analysis/exposure.py,
``Exposure.callers``): library mode drops a site float16 reaches only through parameters that
every seen caller fills with float32, and a constructor's site (hyperparameters, computed
before any cast); both modes drop a constant taken from a parameter default that every call
overrides."""

from __future__ import annotations

from lintutil import lint_code, lint_project

HELPER = (
    "import torch\n\n\n"
    "def normalize(t):\n"
    "    return t / t.sum(-1, keepdim=True).clamp_min(1e-10)\n"  # line 5
)


def _lines(result, code: str = "FP304") -> list[int]:
    return [f.span.start.line for f in result.findings if f.code == code]


def _library(text: str) -> list[int]:
    # library-info: every site the callers' judgement lets stand, whether or not its value
    # shows it can be 0 (that judgement: tests/test_zero_evidence.py)
    return _lines(lint_code(text, select=("FP304",), assume_fp16=True, library_info=True))


def test_a_helper_every_caller_feeds_float32_is_quiet_in_library_mode():
    assert _library(HELPER) == [5]  # no caller seen: a library's callers are unseen
    fed = HELPER + "\n\ndef scores(logits):\n    return normalize(logits.float().softmax(-1))\n"
    assert _library(fed) == []


def test_float32_is_followed_through_the_callers_parameters():
    through = (
        HELPER + "\n\ndef loss(p):\n    return normalize(p)\n"
        "\n\ndef run(logits):\n    return loss(logits.float())\n"
    )
    assert _library(through) == []
    # the caller's own parameter may be float16 (its callers are unseen): kept
    assert _library(HELPER + "\n\ndef loss(p):\n    return normalize(p)\n") == [5]


def test_a_caller_that_may_pass_float16_or_cannot_be_seen_keeps_the_site():
    mixed = HELPER + (
        "\n\ndef a(x):\n    return normalize(x.float())\n"
        "\n\ndef b(model, x):\n    return normalize(model(x))\n"
    )
    assert _library(mixed) == [5]
    passed = HELPER + (
        "\n\ndef a(x):\n    return normalize(x.float())\n"
        "\n\ndef b(fns, x):\n    return map(normalize, x)\n"
    )
    assert _library(passed) == [5]  # a function passed as a value: its callers are unseen
    starred = HELPER + "\n\ndef a(args):\n    return normalize(*args)\n"
    assert _library(starred) == [5]


def test_a_method_called_on_an_unresolved_receiver_keeps_its_site():
    method = (
        "import torch\n\n\nclass Scheduler:\n"
        "    def variance(self, t):\n"
        "        return torch.log(t.clamp(min=1e-20))\n"  # line 6
        "\n    def step(self, n):\n        return self.variance(torch.linspace(0, 1, n))\n"
    )
    assert _library(method) == []
    elsewhere = method + "\n\ndef sample(scheduler, x):\n    return scheduler.variance(x)\n"
    assert _library(elsewhere) == [6]


def test_callers_in_other_files_count(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/helpers.py": HELPER,
        "pkg/use.py": (
            "from pkg.helpers import normalize\n\n\n"
            "def scores(logits):\n    return normalize(logits.float())\n"
        ),
    }
    result = lint_project(tmp_path, files, select=("FP304",), assume_fp16=True, library_info=True)
    assert _lines(result) == []
    files["pkg/other.py"] = (
        "from pkg import helpers\n\n\ndef raw(logits):\n    return helpers.normalize(logits)\n"
    )
    result = lint_project(tmp_path, files, select=("FP304",), assume_fp16=True, library_info=True)
    assert _lines(result) == [5]


SCHEDULE = (
    "import torch\nfrom torch import nn\n\n\n"
    "class Diffusion(nn.Module):\n"
    "    def __init__(self, betas):\n"
    "        super().__init__()\n"
    "        variance = betas * (1.0 - betas)\n"
    "        self.register_buffer('log_var', torch.log(variance.clamp(min=1e-20)))\n"  # line 9
)


def test_a_constructor_site_is_quiet_in_library_mode_unless_float16_is_passed_in():
    assert _library(SCHEDULE) == []
    passed = SCHEDULE + "\n\ndef build(b):\n    return Diffusion(b.half())\n"
    assert _library(passed) == [9]
    assert _lines(lint_code(passed, select=("FP304",))) == [9]


LOG = "import torch\n\n\ndef log(t, eps=1e-20):\n    return torch.log(t.clamp(min=eps))\n"


def test_a_default_every_call_overrides_is_quiet_in_both_modes():
    overridden = LOG + "\n\ndef f(x):\n    return log(x.half(), eps=1e-4) + log(x, 1e-3)\n"
    assert _library(overridden) == []
    assert _lines(lint_code(overridden, select=("FP304",))) == []
    # one call leaves it out, or gives a value float16 cannot hold either: reported
    one = LOG + "\n\ndef f(x):\n    return log(x.half(), eps=1e-4) + log(x.half())\n"
    assert _lines(lint_code(one, select=("FP304",))) == [5]
    tiny = LOG + "\n\ndef f(x):\n    return log(x.half(), eps=1e-30)\n"
    assert _lines(lint_code(tiny, select=("FP304",))) == [5]
    tiny = LOG + "\n\ndef f(x):\n    return log(x.half(), -1e-30) + log(x, eps=0.1)\n"
    assert _lines(lint_code(tiny, select=("FP304",))) == [5]
    assert _library(LOG) == [5]  # no caller seen


SNAKE = (
    "import torch\n"
    "from torch import nn\n"
    "\n"
    "\n"
    "class Snake(nn.Module):\n"
    "    def __init__(self, c):\n"
    "        super().__init__()\n"
    "        self.alpha = nn.Parameter(torch.ones(1, c, 1))\n"
    "        self.beta = nn.Parameter(torch.zeros(c))\n"
    "        self.gamma = nn.Parameter(torch.zeros(c))\n"
    "        self.log = True\n"
    "\n"
    "    def forward(self, x):\n"
    "        a = x + (self.alpha + 1e-9).reciprocal()\n"
    "        b = torch.exp(self.beta)[None, :, None]\n"
    "        c = x / (b + 1e-9)\n"
    "        beta = self.beta.unsqueeze(0)\n"
    "        beta = torch.exp(beta)\n"
    "        d = x / (beta + 1e-9)\n"
    "        g = self.gamma[None]\n"
    "        if self.log:\n"
    "            g = torch.exp(g)\n"
    "        e = x / (g + 1e-9)\n"
    "        f = x / (self.gamma + 1e-9)\n"
    "        h = x / (x.abs().exp() + 1e-9)\n"
    "        return a + c + d + e + f + h\n"
)


def test_an_epsilon_on_a_learned_positive_scale_is_quiet():
    """Snake activations: ``1 / (alpha + 1e-9)`` with ``alpha`` a parameter initialised to ones
    or the ``exp`` of a log-scale parameter stays away from zero; an activation, a parameter
    initialised to zeros and a scale exponentiated only on one branch do not."""
    assert _library(SNAKE) == [23, 24, 25]


def test_a_factory_given_the_dtype_of_a_value_takes_its_dtype():
    """``torch.ones(n, dtype=x.dtype)`` is float16 where ``x`` is (the flow took it for a
    float32 factory); the exposure follows ``x`` into it."""
    made = (
        "import torch\n\n\ndef f(x):\n    h = x.half()\n"
        "    d = torch.ones(3, dtype=h.dtype)\n    return 1 / (d + 1e-8)\n"
    )
    assert _lines(lint_code(made, select=("FP304",))) == [7]
    scaling = (
        "import torch\n\n\ndef scale(cost):\n"
        "    d = torch.ones(cost.size(0), dtype=cost.dtype)\n"
        "    return 1 / (torch.sum(d * cost, 1) + 1e-8)\n"  # line 6
    )
    assert _library(scaling) == [6]
    fed = scaling + "\n\ndef route(logits):\n    return scale(logits.to(torch.float32))\n"
    assert _library(fed) == []
