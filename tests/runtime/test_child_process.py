"""Targets run in a child process (issue 21, items 6 and 10; issue 19, item 6): a target that
exits, interrupts, closes stdout, prints or hangs costs that target an error and nothing else;
every setup problem is exit 2 with one line before any target runs; the static pass never runs a
project module."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fp16lint.runtime.cli import runtime_command
from fp16lint.runtime.targets import TargetSpecError, targets_from_table, timeout_from_table

FP16LINT = Path(sys.executable).parent / "fp16lint"

MODELS = """
import os, sys, time
from pathlib import Path
import torch
from torch import nn

def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), nn.Tanh())

def example_inputs():
    return (torch.randn(2, 8),), {}

def marked():
    Path("TARGET-RAN").touch()
    return make_model()

def exit0():
    sys.exit(0)

def exit3():
    sys.exit(3)

def os_exit0():
    os._exit(0)

def interrupt():
    raise KeyboardInterrupt

def crash():  # what a native crash looks like from outside
    import signal
    os.kill(os.getpid(), signal.SIGSEGV)

def closes_stdout():
    sys.stdout.close()
    return make_model()

def spawns_thread():  # in-process, a non-daemon thread kept the run from ever exiting
    import threading
    threading.Thread(target=time.sleep, args=(10**6,)).start()
    return make_model()

def chatty():
    print("hello from the target")
    print("and to stderr", file=sys.stderr)
    return make_model()

class Hang(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        while True:
            time.sleep(0.05)

def hang():
    return Hang()
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "models.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(runtime_command, [str(a) for a in args], catch_exceptions=False)


def config(project: Path, targets: list[str], extra: str = "") -> None:
    items = ",\n".join(
        f'  {{factory = "models:{t}", inputs = "models:example_inputs", name = "{t}"}}'
        for t in targets
    )
    (project / "pyproject.toml").write_text(
        f"[tool.fp16lint.runtime]\n{extra}\ntargets = [\n{items}\n]\n"
    )


def test_a_target_that_exits_hangs_or_prints_costs_only_itself(project):
    # the timeout from the config key; hang and os._exit each cost a fresh child
    names = ["make_model", "exit0", "exit3", "os_exit0", "interrupt", "closes_stdout", "chatty"]
    names.append("spawns_thread")
    if os.name == "posix":
        names.append("crash")
    config(project, [*names, "hang", "marked"], extra="timeout = 3")
    t0 = time.monotonic()
    res = invoke("--output-format", "json")
    assert time.monotonic() - t0 < 120
    assert res.exit_code == 2  # errors, not "confirmed" (1), not the target's own 0 or 3
    data = json.loads(res.stdout)  # nothing a target printed is in it
    by_name = {t["name"]: t for t in data["targets"]}
    assert list(by_name) == [*names, "hang", "marked"]
    for ok in ("make_model", "closes_stdout", "chatty", "spawns_thread", "marked"):
        assert by_name[ok]["error"] is None, by_name[ok]
    kinds = {n: (t["error_kind"], t["error"]) for n, t in by_name.items() if t["error"]}
    assert kinds["exit0"] == ("exit", "it raised SystemExit(0) (sys.exit): a target must return")
    assert kinds["exit3"][0] == "exit" and "SystemExit(3)" in kinds["exit3"][1]
    assert kinds["os_exit0"][0] == "exit" and "exit code 0" in kinds["os_exit0"][1]
    assert kinds["interrupt"] == ("interrupt", "it raised KeyboardInterrupt")
    assert kinds["hang"][0] == "timeout" and "no result after 3 s" in kinds["hang"][1]
    if os.name == "posix":
        assert kinds["crash"][0] == "crash" and "(SIGSEGV)" in kinds["crash"][1]
    # the target's output is on stderr, under its name
    assert "output of chatty:\n  | hello from the target\n  | and to stderr" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", str(2**64)], "'--seed': 18446744073709551616 is not in the range"),
        (["--timeout", "-1"], "'--timeout': -1.0 is not in the range x>=0"),
        (["--timeout", "nan"], "--timeout: not a number of seconds"),
    ],
)
def test_bad_option_values_are_usage_errors(project, args, message):
    res = CliRunner().invoke(runtime_command, ["--target", "models:marked", *args])
    assert res.exit_code == 2
    assert message in res.output
    assert not (project / "TARGET-RAN").exists()


def test_timeout_option_overrides_the_config(project):
    config(project, ["hang"], extra="timeout = 600")
    res = invoke("--timeout", "1", "--output-format", "json")
    assert res.exit_code == 2
    [target] = json.loads(res.stdout)["targets"]
    assert target["error_kind"] == "timeout" and "after 1 s (--timeout)" in target["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "bogus"], "unknown device 'bogus'"),
        pytest.param(
            ["--device", "cuda"],
            "device 'cuda' requested but CUDA is not available",
            marks=pytest.mark.skipif(
                __import__("torch").cuda.is_available(), reason="CUDA present"
            ),
        ),
        (["--html", "no/such/folder/r.html"], "the folder no/such/folder does not exist"),
    ],
    ids=["bogus", "cuda", "html"],
)
def test_setup_errors_exit_2_with_one_line_before_any_target_runs(project, args, message):
    res = invoke("--target", "models:marked", *args)
    assert res.exit_code == 2
    assert message in res.stderr.strip().splitlines()[-1]
    assert "Traceback" not in res.stderr
    assert not (project / "TARGET-RAN").exists()


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("tpu", "unknown device 'tpu'"),
        ("meta", "the meta device holds no values"),
        (5, "device must be a string such as 'cpu' or 'cuda', not 5"),
        ("cuda:99", "cuda"),
    ],
)
def test_unknown_or_unavailable_devices_are_named(device, message):
    from fp16lint.runtime.runner import TargetError, resolve_device

    with pytest.raises(TargetError, match=re.escape(message)) as info:
        resolve_device(device)
    assert info.value.kind == "device"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ('seed = "abc"', "seed must be an integer (seed = 0), not 'abc'"),
        ("seed = true", "seed must be an integer (seed = 0), not True"),
        ("inputs = 5", 'inputs must be a string (inputs = "pkg.mod:example_inputs"), not 5'),
        ("device = 5", 'device must be a string (device = "cpu"), not 5'),
        ('device = "bogus"', "unknown device 'bogus'"),
        ("seed = 18446744073709551616", "seed must be within [-9223372036854775808, 1844"),
    ],
)
def test_config_values_of_the_wrong_type_exit_2(project, item, message):
    (project / "pyproject.toml").write_text(
        f'[tool.fp16lint.runtime]\ntargets = [{{factory = "models:marked", {item}}}]\n'
    )
    res = invoke()
    assert res.exit_code == 2
    assert message in res.stderr.strip().splitlines()[-1]
    assert "Traceback" not in res.stderr
    assert not (project / "TARGET-RAN").exists()


def test_config_tables_are_checked_without_running_anything():
    with pytest.raises(TargetSpecError, match="factory must be a string"):
        targets_from_table({"targets": [{"factory": 5}]})
    with pytest.raises(TargetSpecError, match="name must be a string"):
        targets_from_table({"targets": [{"factory": "a:b", "name": ["x"]}]})
    assert timeout_from_table({}) is None
    assert timeout_from_table({"timeout": 30}) == 30.0
    for bad in ("x", -1, True, float("nan")):
        with pytest.raises(TargetSpecError, match="timeout must be a number"):
            timeout_from_table({"timeout": bad})


# the console script's start, plus a word at exit on whether this process imported torch
CONSOLE = (
    "import atexit, sys; sys.path[:] = [p for p in sys.path if p]; "  # no '': as the script
    "atexit.register(lambda: print('torch in parent:', 'torch' in sys.modules, file=sys.stderr)); "
    "from fp16lint.cli import main; sys.argv[0] = 'fp16lint'; main()"
)


def test_the_static_pass_never_runs_a_project_module(tmp_path):
    """`fp16lint runtime PATHS` lints without the project on sys.path and without torch; only
    the child that runs the targets adds the project, after torch and the runtime are imported."""
    (tmp_path / "models.py").write_text(MODELS)
    plant = 'from pathlib import Path\nPath(__file__).with_name("IMPORTED-" + __name__).touch()\n'
    for shadow in ("libcst", "pathspec", "click", "torch", "fp16lint"):
        (tmp_path / f"{shadow}.py").write_text(plant)
    args = ["runtime", ".", "--target", "models:make_model", "--output-format", "json"]
    out = subprocess.run(
        [sys.executable, "-c", CONSOLE, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.glob("IMPORTED-*")) == []
    data = json.loads(out.stdout)
    assert data["targets"][0]["error"] is None
    assert data["join"] is not None  # the static pass ran
    assert out.stderr.strip().splitlines()[-1] == "torch in parent: False"


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_ctrl_c_stops_the_run_and_its_child(project):
    """Ctrl-C while a target runs: exit 130 with one line, and its child is gone."""
    config(project, ["hang", "make_model"])
    proc = subprocess.Popen(
        [str(FP16LINT), "runtime", "--timeout", "0"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen = b""
    try:
        deadline = time.monotonic() + 120
        while b"0/2 hang: running" not in seen and time.monotonic() < deadline:
            if select.select([proc.stderr], [], [], 1)[0]:
                seen += os.read(proc.stderr.fileno(), 4096)
        assert b"0/2 hang: running" in seen, seen
        children = _children(proc.pid)
        assert children, "no child process"
        time.sleep(0.5)  # inside the forward pass
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
    err = (seen + rest).decode()
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "fp16lint runtime: interrupted"
    assert "Traceback" not in err
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        pytest.skip("no /proc children list")
    return [int(p) for p in text.split()]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_a_result_the_parent_cannot_read_is_an_error_not_a_hang():
    import io
    import pickle
    import queue

    from fp16lint.runtime.isolate import _HEADER, ChildRunner

    good = pickle.dumps(("ok", None))
    bad = b"not a pickle"
    stream = io.BytesIO(b"".join(_HEADER.pack(len(d)) + d for d in (good, bad, good)))
    replies: queue.Queue = queue.Queue()
    ChildRunner._read_replies(stream, replies)
    got = [replies.get_nowait() for _ in range(4)]
    assert got[0] == got[2] == ("ok", None)
    assert got[1][0] == "error" and got[1][1].startswith("its result could not be read: ")
    assert got[3] is None  # end of the stream


def test_runs_from_a_checkout_of_fp16lint_itself():
    """`python -m fp16lint runtime` in fp16lint's own folder (an editable install, or a GPU
    machine where the checkout is not installed, as benchmarks/cuda_check.sh runs): the parent
    strips the working directory from sys.path, and the child still finds fp16lint."""
    root = Path(__file__).resolve().parents[2]
    planted = "fixtures/runtime/planted.py"
    out = subprocess.run(
        [sys.executable, "-m", "fp16lint", "runtime", "--device", "cpu", "--output-format",
         "json", "--target", f"{planted}:make_upcast", "--inputs", f"{planted}:example_inputs"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["targets"][0]["error"] is None
