"""Issue 21, crashes and hangs: every file is parsed and linted in a worker process, in every
mode, so a crash in libcst's native parser or a runaway parse costs that file one FP999 and
nothing else (with ``-j 1``, one file, standard input and the language server alike)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fp16lint import isolation, runner
from fp16lint.runner import Options, lint_paths, lint_text
from fp16lint.settings import Settings

BAD = "import torch\n\nwith torch.cuda.amp.autocast():\n    y = 1\n"
# Valid Python that crashes libcst's native parser (SIGSEGV), past the nesting pre-check.
AND_CHAIN = "x = (" + " and ".join(["a"] * 10_000) + ")\n"


def _codes(result) -> list[tuple[str, str]]:
    return sorted((Path(f.path).name, f.code) for f in result.findings)


@pytest.mark.parametrize("jobs", [1, 2])
def test_native_parser_crash_costs_one_file(in_tmp, jobs):
    (in_tmp / "chain.py").write_text(AND_CHAIN)
    (in_tmp / "good.py").write_text(BAD)
    result = lint_paths([in_tmp], Settings(root=in_tmp), Options(jobs=jobs, use_cache=False))
    assert _codes(result) == [("chain.py", "FP999"), ("good.py", "FP401")]
    crash = next(f for f in result.findings if f.code == "FP999")
    assert "worker process died on this file" in crash.message


def test_native_parser_crash_alone_and_through_the_cli(in_tmp):
    (in_tmp / "chain.py").write_text(AND_CHAIN)
    done = subprocess.run(
        [sys.executable, "-m", "fp16lint", "check", "chain.py", "--no-cache", "-j", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "FP999" in done.stdout and "Traceback" not in done.stderr


def test_standard_input_crash_is_one_fp999():
    result = lint_text(AND_CHAIN, "chain.py", Settings(root=Path.cwd()), Options())
    assert [f.code for f in result.findings] == ["FP999"]


def test_runaway_parse_is_stopped_at_the_wall_clock_limit(in_tmp):
    # An 84 KB `+` chain that CPython accepts and the nesting pre-check lets through: libcst's
    # time grows quadratically with it, inside native code the CPU-time limit cannot reach.
    chain = " +\n".join(["    a_rather_long_name_number_xx"] * 2400)
    (in_tmp / "plus.py").write_text(f"x = (\n{chain}\n)\n")
    (in_tmp / "good.py").write_text(BAD)
    options = Options(jobs=1, use_cache=False, wall_limit=1.0)
    started = time.monotonic()
    result = lint_paths([in_tmp], Settings(root=in_tmp), options)
    assert time.monotonic() - started < 60
    assert _codes(result) == [("good.py", "FP401"), ("plus.py", "FP999")]
    assert "wall-clock limit" in next(f for f in result.findings if f.code == "FP999").message


def test_a_worker_that_hangs_is_replaced_and_the_rest_of_its_chunk_linted(in_tmp, monkeypatch):
    real = runner.lint_source

    def hangs_on_slow(path, *args, **kwargs):
        if path.endswith("slow.py"):
            time.sleep(600)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(runner, "lint_source", hangs_on_slow)  # workers fork with it
    for index in range(5):
        (in_tmp / f"m{index}.py").write_text(BAD)
    (in_tmp / "slow.py").write_text(BAD + "# the biggest file: first in its chunk\n" * 3)
    options = Options(jobs=1, use_cache=False, wall_limit=1.0)
    result = lint_paths([in_tmp], Settings(root=in_tmp), options)
    assert _codes(result) == [*((f"m{i}.py", "FP401") for i in range(5)), ("slow.py", "FP999")]


def test_workers_are_reused_across_runs_and_close_cleanly():
    with isolation.Workers(1, len) as pool:
        assert pool.run(["ab", "c"], [[0, 1]], 5.0, lambda job, why: -1) == [2, 1]
        first = pool._idle[0].process.pid
        assert pool.run(["xyz"], [[0]], 5.0, lambda job, why: -1) == [3]
        assert pool._idle[0].process.pid == first
        process = pool._idle[0].process
    assert not process.is_alive()


# --- the language server ------------------------------------------------------------------
def _message(body: dict) -> bytes:
    data = json.dumps(body).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(data), data)


def _server(messages: list[dict], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fp16lint", "lsp"],
        input=b"".join(_message(m) for m in messages),
        capture_output=True,
        timeout=timeout,
    )


def _initialize(root: Path) -> list[dict]:
    return [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"processId": None, "rootUri": root.as_uri(), "capabilities": {}},
        },
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
    ]


def test_language_server_exit_without_shutdown_is_exit_code_1(in_tmp):
    done = _server([*_initialize(in_tmp), {"jsonrpc": "2.0", "method": "exit"}])
    assert done.returncode == 1
    shutdown = {"jsonrpc": "2.0", "id": 2, "method": "shutdown"}
    done = _server([*_initialize(in_tmp), shutdown, {"jsonrpc": "2.0", "method": "exit"}])
    assert done.returncode == 0


def test_language_server_survives_a_crashing_document(tmp_path):
    from fp16lint.lsp.session import Session

    session = Session([tmp_path], isolate=True)
    try:
        crash, good = str(tmp_path / "chain.py"), str(tmp_path / "good.py")
        session.open(crash, AND_CHAIN, 1)
        session.lint(crash)
        assert [f.code for f in session.linted[crash].findings] == ["FP999"]
        session.open(good, BAD, 1)
        session.lint(good)
        assert [f.code for f in session.linted[good].findings] == ["FP401"]
        session.open(good, BAD + "x = 1\n", 2)  # the fresh worker keeps the buffer's tree
        session.lint(good)
        assert [f.code for f in session.linted[good].findings] == ["FP401"]
    finally:
        session.shutdown()


def test_language_server_caps_document_size(tmp_path, monkeypatch):
    from fp16lint.lsp import session as session_module

    monkeypatch.setattr(session_module, "MAX_FILE_CHARS", 1000)
    session = session_module.Session([tmp_path])
    path = str(tmp_path / "huge.py")
    session.open(path, BAD + "x = 1\n" * 500, 1)
    session.lint(path)
    assert session.linted[path].findings == []
    assert session.errors and "over the 0.001 million limit" in session.errors[-1]
