"""FP205 (issue 17): which q·kᵀ products are reported, and at which severity."""

from __future__ import annotations

from lintutil import lint_code

from fp16lint.findings import Severity

HEAD = "import torch\n\ndef attend(q, k, scale):\n    q = q.half()\n    k = k.half()\n"


def _found(body: str, **settings) -> list[tuple[int, Severity]]:
    result = lint_code(HEAD + body, select=("FP205",), **settings)
    return [(f.span.start.line, f.severity) for f in result.findings]


def test_scaling_after_the_product_is_a_warning():
    assert _found("    return torch.softmax(q @ k.transpose(-1, -2) * scale, -1)\n") == [
        (6, Severity.WARNING)
    ]


def test_scaling_q_or_k_first_is_info():
    body = "    return ((q * 0.35) @ (k * 0.35).transpose(-1, -2)).softmax(-1)\n"
    assert _found(body) == [(6, Severity.INFO)]
    body = "    q = q * scale\n    attn = q @ k.transpose(-1, -2)\n    return attn.softmax(-1)\n"
    assert _found(body) == [(7, Severity.INFO)]


def test_library_mode_lists_scaled_sites_only_with_library_info():
    free = "import torch\n\ndef attend(q, k, scale):\n    return torch.softmax((q * scale) @ k.mT, -1)\n"
    assert lint_code(free, select=("FP205",), assume_fp16=True).findings == []
    shown = lint_code(free, select=("FP205",), assume_fp16=True, library_info=True).findings
    assert [(f.span.start.line, f.severity) for f in shown] == [(4, Severity.INFO)]
    # A real cast still reports the scaled site.
    assert _found("    return torch.softmax((q * scale) @ k.mT, -1)\n") == [(6, Severity.INFO)]


def test_a_one_operand_einsum_is_no_product():
    body = "    m = torch.einsum('ijbn->bnij', q)\n    return torch.softmax(m, -1)\n"
    assert _found(body) == []


def test_upcast_or_unknown_inputs_are_quiet():
    upcast = "    return torch.softmax(q.float() @ k.float().transpose(-1, -2), -1)\n"
    assert _found(upcast) == []
    free = "import torch\n\ndef attend(q, k):\n    return torch.softmax(q @ k.mT, -1)\n"
    assert lint_code(free, select=("FP205",)).findings == []


def test_library_mode_reports_attention_functions():
    free = "import torch\n\ndef attend(q, k):\n    return torch.softmax(q @ k.mT, -1)\n"
    found = lint_code(free, select=("FP205",), assume_fp16=True).findings
    assert [(f.span.start.line, f.severity) for f in found] == [(4, Severity.WARNING)]
    assert "in `attend`" in found[0].message


LINEAR = "import torch\nimport torch.nn.functional as F\n\ndef linear_attention(q, k, v):\n{body}"


def _linear(body: str) -> list[str]:
    found = lint_code(LINEAR.format(body=body), select=("FP205",), assume_fp16=True).findings
    return [f"{f.span.start.line}: {f.message.split(':')[0]}" for f in found]


def test_key_value_products_of_linear_attention():
    # Every spelling of kᵀv sums over the tokens: reported without any softmax.
    for product in (
        "k.transpose(-1, -2) @ v",
        "torch.einsum('b h d n, b h e n -> b h d e', k, v)",
        "torch.matmul(value, key)",
        "key_states.mT @ value_states",
    ):
        names = "    key, value, key_states, value_states = k, v, k, v\n"
        found = _linear(f"{names}    kv = {product}\n    return q @ kv\n")
        assert len(found) == 1 and found[0].startswith("6: ") and "key·value" in found[0], product


def test_keys_averaged_over_the_summed_tokens_are_quiet():
    # softmax over the axis the product sums: a weighted average of v, as large as v.
    einsum = "    k = k.softmax(dim=-1)\n    return torch.einsum('bhdn,bhen->bhde', k, v)\n"
    assert _linear(einsum) == []
    matmul = "    k = k.softmax(dim=-2)\n    return k.transpose(-1, -2) @ v\n"
    assert _linear(matmul) == []
    # over the other axis, each term is at most |v| but there are as many as tokens.
    features = "    k = k.softmax(dim=-1)\n    return k.transpose(-1, -2) @ v\n"
    assert [line.split(":")[0] for line in _linear(features)] == ["6"]


def test_query_value_products_are_not_key_value_products():
    assert _linear("    return q @ v\n") == []


def test_softmax_keys_through_functions_and_front_counted_dims():
    functional = "    k = F.softmax(k, dim=-1)\n    return k @ v\n"
    assert _linear(functional) == []
    front = "    k = k.softmax(dim=2)\n    return k.transpose(-1, -2) @ v\n"
    assert _linear(front) == []


def test_a_value_computed_from_the_key_is_no_key_value_product():
    # Nystromformer's pseudo-inverse iteration names its matrices key and value.
    body = (
        "    key = k.softmax(-1) if q is None else k\n"
        "    value = 1 / torch.max(torch.sum(key, dim=-2)) * key.transpose(-1, -2)\n"
        "    for _ in range(6):\n"
        "        key_value = torch.matmul(key, value)\n"
        "        value = torch.matmul(0.25 * value, 13 - key_value)\n"
        "    return value\n"
    )
    assert _linear(body) == []


COSINE = "import torch\nimport torch.nn.functional as F\n\ndef similarity(x, y, temp):\n{body}"


def _cosine(body: str) -> list[int]:
    found = lint_code(COSINE.format(body=body), select=("FP205",), assume_fp16=True).findings
    return [f.span.start.line for f in found]


def test_products_of_unit_vectors_are_quiet_in_every_spelling():
    # Contrastive similarities of normalised features are cosines (at most 1) whatever the
    # dtype: transposed with .t()/.T, normalised by hand, concatenated, copied.
    for a, b, product in (
        ("F.normalize(x, dim=-1)", "F.normalize(y, dim=-1)", "a @ b.t()"),
        ("F.normalize(x, dim=-1)", "F.normalize(y, dim=-1)", "a @ b.T"),
        (
            "x / x.norm(dim=-1, keepdim=True)",
            "y / (y.norm(dim=-1, keepdim=True) + 1e-6)",
            "a @ b.t()",
        ),
        (
            "x / torch.linalg.norm(x, dim=-1, keepdim=True).clamp(min=1e-6)",
            "F.normalize(y, dim=-1)",
            "a @ b.T",
        ),
        (
            "F.normalize(x, dim=-1)",
            "torch.cat([F.normalize(y, dim=-1), F.normalize(x, dim=-1).detach()])",
            "a @ b.t()",
        ),
    ):
        body = (
            f"    a = {a}\n    b = {b}\n    sim = {product} / temp\n    return sim.softmax(dim=1)\n"
        )
        assert _cosine(body) == [], (a, b, product)


def test_one_unnormalised_operand_is_still_a_site():
    # |a·y| <= |y| only: an unnormalised operand (or a norm of another tensor) is unbounded.
    for a, b in (
        ("F.normalize(x, dim=-1)", "y"),
        ("x / y.norm(dim=-1, keepdim=True)", "F.normalize(y, dim=-1)"),
        ("F.normalize(x, dim=-1)", "torch.cat([F.normalize(y, dim=-1), y])"),
    ):
        body = (
            f"    a = {a}\n    b = {b}\n    sim = a @ b.t() / temp\n    return sim.softmax(dim=1)\n"
        )
        assert _cosine(body) == [7], (a, b)


QUEUE = """\
import torch
import torch.nn as nn
import torch.nn.functional as F


class Contrastive(nn.Module):
    def __init__(self, dim, size):
        super().__init__()
        self.register_buffer("queue", torch.randn(dim, size))
        self.queue = {init}

    def enqueue(self, keys, ptr):
        self.queue[:, ptr : ptr + keys.shape[0]] = keys.T

    def forward(self, x, temp):
        feat = F.normalize(self.proj(x), dim=-1)
        bank = torch.cat([feat.t(), self.queue.clone().detach()], dim=1)
        sim = feat @ bank / temp
        return F.softmax(sim, dim=1)
"""


def _queue(init: str) -> list[int]:
    code = QUEUE.format(init=init)
    found = lint_code(code, select=("FP205",), assume_fp16=True).findings
    return [f.span.start.line for f in found]


def test_a_queue_the_class_keeps_normalised_holds_unit_vectors():
    # MoCo/ALBEF-style momentum queues: similarities against them are cosines.
    assert _queue("F.normalize(self.queue, dim=0)") == []
    assert _queue("self.queue / self.queue.norm(dim=0, keepdim=True)") == []


def test_a_queue_assigned_anything_else_is_not():
    assert _queue("self.queue * 2") == [18]
