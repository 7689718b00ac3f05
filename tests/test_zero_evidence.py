"""FP304 in library mode: an epsilon float16 rounds to 0 matters only where the value it guards
can be 0 (analysis/zeros.py). Sites float16 reaches only by ``assume-fp16`` stand where it can:
probabilities, one-hot averages, spectra, raw inputs, or a helper's parameter a call fills with
one; ``library-info`` reports the rest too."""

from __future__ import annotations

import pytest
from lintutil import lint_code


def _lines(code: str, **settings) -> list[int]:
    found = lint_code(code, select=("FP304",), assume_fp16=True, **settings).findings
    return [f.span.start.line for f in found]


VANISHING = [
    # DETR's focal matching cost: sigmoid rounds to 0 and to 1
    "import torch\n\n\ndef cost(logits):\n    p = logits.sigmoid()\n"
    "    return -(1 - p + 1e-8).log() - (p + 1e-8).log()\n",
    # a KL term on softmax probabilities scaled by a count
    "import torch\nimport torch.nn.functional as F\n\n\ndef kl(logits, n):\n"
    "    qy = F.softmax(logits, dim=1)\n    return qy * torch.log(qy * n + 1e-10)\n",
    # codebook usage: the mean of one-hot encodings is 0 for an unused code
    "import torch\nimport torch.nn.functional as F\n\n\ndef usage(z, idx, n):\n"
    "    enc = F.one_hot(idx, n).type(z.dtype)\n    avg = torch.mean(enc, dim=0)\n"
    "    return torch.exp(-torch.sum(avg * torch.log(avg + 1e-10)))\n",
    # a log-mel spectrogram of silent audio
    "import torch\n\n\ndef log_mel(audio, filters, window):\n"
    "    stft = torch.stft(audio, 400, 160, window=window, return_complex=True)\n"
    "    mel = filters @ stft.abs() ** 2\n    return torch.clamp(mel, min=1e-10).log10()\n",
    # a probability re-bound to a selection of itself, on either branch
    "import torch\nimport torch.nn.functional as F\n\n\ndef cost(logits, ids, focal):\n"
    "    if focal:\n        p = F.sigmoid(logits.flatten(0, 1))\n        p = p[:, ids]\n"
    "    else:\n        p = logits.softmax(-1)\n    return -(1 - p + 1e-8).log()\n",
    # a raw audio input normalised by its RMS
    "import torch\n\n\ndef norm(input_values):\n"
    "    scale = input_values.pow(2).mean(dim=-1, keepdim=True).sqrt() + 1e-8\n"
    "    return input_values / scale\n",
]


@pytest.mark.parametrize("code", VANISHING)
def test_a_value_that_can_be_zero_keeps_the_site(code):
    assert _lines(code)


NEVER_ZERO = [
    # an activation's RMS, a feature norm
    "import torch\n\n\ndef rms(x):\n    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-8)\n",
    "import torch\n\n\ndef unit(feats):\n"
    "    return feats / feats.norm(dim=1, keepdim=True).clamp_min(1e-12)\n",
    # the sum of the top-k router scores
    "import torch\n\n\ndef route(logits, k):\n    scores = logits.softmax(-1)\n"
    "    w, idx = torch.topk(scores, k)\n    return w / (w.sum(dim=-1, keepdim=True) + 1e-20)\n",
    # a softmax-weighted variance: a sum over a probability's entries (they sum to 1)
    "import torch\n\n\ndef std(x, logits):\n    w = logits.softmax(-1)\n"
    "    mean = (w * x).sum(-1, keepdim=True)\n"
    "    return torch.sqrt((w * (x - mean) ** 2).sum(-1).clamp(1e-12))\n",
    # a count kept at least 1, a sum with a positive shift
    "import torch\n\n\ndef mean(x: torch.Tensor, mask: torch.Tensor):\n"
    "    return (x * mask).sum(1) / (mask.sum(1).clamp(min=1) + 1e-9)\n",
    "import torch\n\n\ndef bins(x):\n    w = torch.relu(x) + 0.1\n"
    "    return w / w.sum(1, keepdim=True).clamp_min(1e-12)\n",
]


@pytest.mark.parametrize("code", NEVER_ZERO)
def test_a_value_that_is_never_zero_is_library_info(code):
    assert _lines(code) == []
    assert _lines(code, library_info=True)


LOG = "import torch\n\n\ndef log(t, eps=1e-20):\n    return t.clamp(min=eps).log()\n"


def test_a_helper_is_judged_on_what_its_callers_pass():
    assert _lines(LOG) == []  # no caller: nothing shows a zero
    noise = LOG + (
        "\n\ndef gumbel(t):\n    u = torch.zeros_like(t).uniform_(0, 1)\n    return -log(-log(u))\n"
    )
    # float16 uniform draws are exactly 0 about once in 4,000 (tests/facts/test_uniform_zeros.py),
    # but Gumbel noise ends in an argmax or top-k: -inf noise only excludes a token (read sites:
    # x-transformers, diffusers amused, vector-quantize), so it is no evidence here
    assert _lines(noise) == []
    entropy = noise + (
        "\n\ndef entropy(t, is_prob=False):\n    prob = t.softmax(dim=-1) if not is_prob else t\n"
        "    return -(prob * log(prob)).sum(dim=-1)\n"
    )
    assert _lines(entropy) == [5]
    # a sum over the probabilities a call passes is no evidence (they sum to 1)
    total = (
        "import torch\n\n\ndef norm(t):\n    return t / (t.sum(-1, keepdim=True) + 1e-20)\n\n\n"
        "def route(logits):\n    return norm(logits.softmax(-1))\n"
    )
    assert _lines(total) == []


def test_a_real_float16_origin_keeps_the_site_in_library_mode():
    code = (
        "import torch\n\n\ndef rms(x):\n"
        "    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-8)\n\n\n"
        "def run(model, batch):\n    return rms(model(batch).half())\n"
    )
    assert _lines(code) == [5]
    assert [f.span.start.line for f in lint_code(code, select=("FP304",)).findings] == [5]
