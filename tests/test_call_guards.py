"""Casts guarded by parameters, judged against each caller's arguments (analysis/call_guards.py):
``if training: model.half() if half else model.float()`` with ``training = model is not None``
casts only for a caller that passes a model and a true ``half``."""

from __future__ import annotations

import libcst as cst
import pytest
from lintutil import lint_project

from fp16lint.analysis.call_guards import SET, TRUE, _falsified, fed_callee, given_slots, signature

VAL = (
    "import argparse\nimport torch\n\n\n"
    "def run(data, half=False, model=None, loader=None):\n"
    "    training = model is not None\n"
    "    if training:\n"
    "        device = next(model.parameters()).device\n"
    "        half &= device.type != 'cpu'\n"
    "        model.half() if half else model.float()\n"  # line 10
    "    return model\n\n\n"
    "def parse_opt():\n"
    "    parser = argparse.ArgumentParser()\n"
    "    parser.add_argument('data')\n"
    "    parser.add_argument('--half', action='store_true')\n"
    "    return parser.parse_args()\n\n\n"
    "if __name__ == '__main__':\n"
    "    opt = parse_opt()\n"
    "    {main}\n"
)
TRAIN = (
    "import torch\nimport val as validate\n\n\n"
    "def train(model, loader, amp):\n"
    "    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    "    {call}\n"
)


def _lines(tmp_path, call: str, main: str = "run(**vars(opt))") -> list[int]:
    files = {"val.py": VAL.format(main=main), "train.py": TRAIN.format(call=call)}
    result = lint_project(tmp_path, files, select=("FP101",))
    return [f.span.start.line for f in result.findings if f.path.endswith("val.py")]


@pytest.mark.parametrize(
    ("call", "main", "expected"),
    [
        # the training caller leaves ``half`` at False; ``vars(opt)`` holds no ``model``
        ("validate.run('d', model=model, loader=loader)", "run(**vars(opt))", []),
        ("validate.run('d', False, model)", "run(**vars(opt), data='x')", []),
        ("validate.run('d', model=model, half=False)", "run(**vars(opt))", []),
        # a caller that may pass a true ``half`` with a model reaches the cast
        ("validate.run('d', model=model, half=amp)", "run(**vars(opt))", [10]),
        ("validate.run('d', amp, model)", "run(**vars(opt))", [10]),
        # unknown keys (``**cfg``) may hold both
        ("validate.run('d', model=model)", "run(**opt.cfg)", [10]),
    ],
)
def test_a_cast_is_judged_against_each_callers_arguments(tmp_path, call, main, expected):
    assert _lines(tmp_path, call, main) == expected


def test_a_function_no_project_code_calls_keeps_its_judgement(tmp_path):
    files = {"val.py": VAL.format(main="pass")}
    result = lint_project(tmp_path, files, select=("FP101",))
    assert [f.span.start.line for f in result.findings] == [10]


def test_signatures_decide_each_guard():
    half = ["half", 1, TRUE, 1]
    model = ["model", 2, SET, 1]
    required = ["flag", 0, TRUE, 0]
    assert _falsified("1,model", half) and not _falsified("1,model", model)
    assert _falsified("2,#1=F", half) and not _falsified("3", half)
    assert _falsified("0,model=N", model) and not _falsified("0,model=F", model)
    assert not _falsified("*", half) and not _falsified("0", required)
    assert _falsified("1,#0=N", required)


def test_scripts_of_the_same_name_in_folders_keep_their_own_callers(tmp_path):
    """``classify/val.py`` and ``val.py`` are both module ``val`` (no ``__init__.py``):
    ``import val`` in ``train.py`` runs the one beside it, ``from classify import val`` the
    other."""
    main = "run(**vars(opt))"
    files = {
        "val.py": VAL.format(main=main),
        "train.py": TRAIN.format(call="validate.run('d', model=model, half=amp)"),
        "classify/val.py": VAL.format(main=main),
        "classify/train.py": TRAIN.replace("import val as validate", "from classify import val")
        .replace("validate.", "val.")
        .format(call="val.run('d', model=model)"),
    }
    result = lint_project(tmp_path, files, select=("FP101",))
    found = [(f.path.rsplit("/", 2)[-2:], f.span.start.line) for f in result.findings]
    assert [(parts[-1], line) for parts, line in found] == [("val.py", 10)]
    assert found[0][0][0] != "classify"


@pytest.mark.parametrize(
    ("call", "sig", "given"),
    [
        ("f()", "0", set()),
        ("f(a, None, half=False, model=m)", "2,#1=N,half=F,model", {0, 1, "half", "model"}),
        # a number float16 cannot hold is marked, and not given (the constant rules' judgement)
        ("f(x, 1e-30, eps=-1e9, tau=0.1)", "2,#1=S,eps=S,tau", {0, "tau"}),
        ("f(x, 0, eps=0.0)", "2,#1=F,eps", {0, 1, "eps"}),
        ("f(x, *rest)", "*", set()),
    ],
)
def test_a_signature_says_which_slots_a_call_gives(call, sig, given):
    node = cst.parse_expression(call)
    assert signature(node, None) == sig
    assert given_slots(sig) == given


def test_a_signature_expands_vars_of_known_argparse_options():
    node = cst.parse_expression("run(**vars(opt), data='x')")
    assert signature(node, ["data", "half"]) == "0,data,half,data"
    assert signature(node, None) == "*"


def test_fed_names_this_files_functions_relative_to_its_module():
    assert fed_callee("f .run", "pkg.val") == ("f", "pkg.val.run")
    assert fed_callee("s .Net.forward", "pkg.model") == ("s", "pkg.model.Net.forward")
    assert fed_callee("f torch_utils.run", "pkg.val") == ("f", "torch_utils.run")


def test_one_compact_fact_holds_what_each_call_passes():
    """``fed`` serves both the cast guards and the constant rules' callers: per callee, the
    slots that may be float16, then each distinct signature; no separate ``arguments``."""
    from fp16lint.engine import lint_source
    from fp16lint.rules import all_rules

    text = (
        "import torch\nfrom pkg.util import helper\n\n\n"
        "def run(x, half=False):\n    return x.half() if half else x\n\n\n"
        "def main(x):\n"
        "    run(x.half(), half=True)\n    run(x, False)\n    run(x, False)\n"
        "    helper(x, eps=1e-30)\n"
    )
    facts = lint_source("val.py", text, list(all_rules()), module_name="pkg.val").facts
    assert "arguments" not in facts and facts["module"] == "pkg.val"
    assert facts["fed"] == {
        "f .run": [[0, 1, "half"], "1,half", "2,#1=F"],
        "f pkg.util.helper": [[], "1,eps=S"],
    }
