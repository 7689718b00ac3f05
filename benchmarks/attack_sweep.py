"""Bad-input sweep (issue 21): hostile or unlucky inputs through the real ``fp16lint`` command.

    .venv/bin/python benchmarks/attack_sweep.py [--only NAME,...]

Each attack builds a fresh project in a temporary folder, runs the command as a user would
(a subprocess, ``python -m fp16lint``), and holds when: no traceback, the exit code is the
documented one (0 clean, 1 findings, 2 errors; never 1 without a finding), it ends within its
time bound, and no file changed but the ones a ``--fix`` should change (nor anything outside
the project). Prints one line per attack and the totals; exits 1 when one does not hold. The
cases behind each defect are regression tests in ``tests/reliability/``; this is the sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BAD = "import torch\n\nwith torch.cuda.amp.autocast():\n    y = 1\n"
FIXED = 'import torch\n\nwith torch.amp.autocast("cuda"):\n    y = 1\n'
PYTHON = [sys.executable, "-m", "fp16lint"]


@dataclass
class Attack:
    name: str
    setup: Callable[[Path], None]
    args: list[str]
    exits: tuple[int, ...]
    may_change: tuple[str, ...] = ()  # files a --fix may rewrite
    stdin: bytes | None = None
    expect_out: str = ""  # text that must appear in stdout or stderr
    seconds: float = 120
    command: list[str] = field(default_factory=lambda: PYTHON)


def files(**contents: str | bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        for name, data in contents.items():
            path = root / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data.encode() if isinstance(data, str) else data)

    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        for step in setups:
            step(root)

    return setup


def fifo(name: str) -> Callable[[Path], None]:
    return lambda root: os.mkfifo(root / name)


def link(name: str, target: str) -> Callable[[Path], None]:
    return lambda root: (root / name).symlink_to(target)


def non_utf8_name(root: Path) -> None:
    with open(os.fsencode(root) + b"/bad\xff.py", "w") as handle:
        handle.write(BAD)


def cache_links(root: Path) -> None:
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "tag").write_text("precious\n")
    (root / ".fp16lint_cache").mkdir()
    (root / ".fp16lint_cache" / "CACHEDIR.TAG").symlink_to(outside / "tag")
    (root / ".fp16lint_cache" / "v2").symlink_to(outside, target_is_directory=True)


def deep_tree(levels: int) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        fd = os.open(root, os.O_RDONLY)
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
            with open(os.open("m.py", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
                f.write("x = 1\n")
        os.close(fd)

    return setup


def notebook(source, extra: str = "") -> str:
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "source": source}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4}) + extra


STYLED_NOTEBOOK = (
    '{\r\n\t"cells": [{"cell_type": "code", "metadata": {"n": 1e5, "k": 1, "k": 2},'
    ' "outputs": [], "source": ["import torch\\n", "with torch.cuda.amp.autocast():\\n",'
    ' "    y = \\u00E9"]}],\r\n\t"metadata": {}\r\n}'
)
CODECS = ["rot13", "base64", "hex", "zlib", "bz2", "uu", "quopri", "punycode", "undefined"]
SHADOW = "open('ran', 'w').close()\nraise SystemExit(99)\n"
CHECK = ["check", "--no-cache", "."]
FIX = ["check", "--no-cache", "--fix", "."]
LSP_EXIT = b"".join(
    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    for body in (
        b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":null,'
        b'"rootUri":null,"capabilities":{}}}',
        b'{"jsonrpc":"2.0","method":"exit"}',
    )
)

ATTACKS = [
    Attack("binary file", files(**{"b.py": bytes(range(256))}), CHECK, (1,)),
    Attack("NUL byte", files(**{"n.py": b"x = 1\x00\n"}), CHECK, (1,)),
    Attack("empty file", files(**{"e.py": ""}), CHECK, (0,)),
    Attack("undeclared latin-1", files(**{"l.py": b"s = '\xe9'\n"}), CHECK, (1,)),
    *(
        Attack(f"cookie {c}", files(**{"c.py": f"# coding: {c}\n" + BAD}), CHECK, (1,))
        for c in CODECS
    ),
    *(
        Attack(
            f"--fix with cookie {c}",
            files(**{"c.py": f"# coding: {c}\n" + BAD + body, "ok.py": BAD}),
            FIX,
            (2,),
            may_change=("ok.py",),
            expect_out="fixes are not written",
        )
        for c, body in (
            ("utf-8-sig", ""),
            ("unicode_escape", ""),
            ("raw_unicode_escape", "s = '\\u00e9'\n"),
            ("idna", "# " + "x" * 70 + "\n"),
        )
    ),
    Attack("10 MB line", files(**{"big.py": "x = '" + "a" * 10_000_000 + "'\n"}), CHECK, (0,)),
    Attack(
        "10k nested brackets",
        files(**{"deep.py": "x = " + "(" * 10_000 + ")" * 10_000}),
        CHECK,
        (1,),
    ),
    Attack(
        "10k-term `and` chain, -j 1",
        files(**{"chain.py": "x = (" + " and ".join(["a"] * 10_000) + ")\n", "ok.py": BAD}),
        [*CHECK, "-j", "1"],
        (1,),
        expect_out="worker process died",
    ),
    Attack(
        "84 KB `+` chain",
        files(
            **{"plus.py": "x = (\n" + " +\n".join(["    a_rather_long_name_xx"] * 2400) + "\n)\n"}
        ),
        CHECK,
        (0, 1),
        seconds=300,
    ),
    Attack("notebook source [1]", files(**{"n.ipynb": notebook([1])}), CHECK, (1,)),
    Attack(
        "notebook metadata [1]", files(**{"n.ipynb": '{"cells": [], "metadata": [1]}'}), CHECK, (0,)
    ),
    Attack(
        "notebook 200k nested brackets",
        files(**{"n.ipynb": '{"cells": [], "m": ' + "[" * 200_000 + "]" * 200_000 + "}"}),
        CHECK,
        (1,),
    ),
    Attack("notebook lone surrogate", files(**{"n.ipynb": notebook("s = '\ud800'")}), CHECK, (1,)),
    Attack(
        "notebook 120 KB line of spaces",
        files(**{"n.ipynb": notebook(" " * 120_000 + "x")}),
        CHECK,
        (0, 1),
        seconds=30,
    ),
    Attack(
        "notebook --fix keeps CRLF, tabs, 1e5, duplicate keys, escapes",
        files(**{"n.ipynb": STYLED_NOTEBOOK}),
        FIX,
        (0,),
        may_change=("n.ipynb",),
    ),
    Attack(
        ".gitignore `!` and `\\`",
        files(**{".gitignore": "!\n\\\nfoo/\\\n", "a.py": BAD}),
        CHECK,
        (1,),
    ),
    Attack(
        "exclude and per-file-ignores `!`, `\\`",
        files(
            **{
                "pyproject.toml": '[tool.fp16lint]\nexclude = ["!", "\\\\"]\n'
                '[tool.fp16lint.per-file-ignores]\n"!" = ["FP4"]\n"\\\\" = ["FP4"]\n',
                "a.py": BAD,
            }
        ),
        CHECK,
        (1,),
    ),
    Attack(
        'pyproject tool = "x"',
        files(**{"pyproject.toml": 'tool = "x"\n', "a.py": BAD}),
        ["check", "--no-cache", "--config", "pyproject.toml", "."],
        (1,),
    ),
    Attack(
        "pyproject with a BOM",
        files(
            **{"pyproject.toml": b"\xef\xbb\xbf[tool.fp16lint]\nignore = ['FP4']\n", "a.py": BAD}
        ),
        CHECK,
        (0,),
    ),
    Attack(
        "stdin not UTF-8",
        files(),
        ["check", "--stdin-filename", "s.py"],
        (1,),
        stdin=b"x = '\xff'\n",
    ),
    Attack(
        "stdin with a latin-1 cookie",
        files(),
        ["check", "--stdin-filename", "s.py"],
        (0,),
        stdin=b"# coding: latin-1\nx = '\xff'\n",
    ),
    *(
        Attack(f"non-UTF-8 file name, {fmt}", non_utf8_name, [*CHECK, "--output-format", fmt], (1,))
        for fmt in ("gitlab", "sarif", "full", "json")
    ),
    Attack(
        "newline in a file name",
        files(**{"new\nline.py": BAD}),
        CHECK,
        (1,),
        expect_out="new\\nline.py",
    ),
    Attack(
        "FIFO given explicitly", fifo("p.py"), ["check", "--no-cache", "p.py"], (0,), seconds=30
    ),
    Attack("FIFO in the tree", both(fifo("p.py"), files(**{"a.py": BAD})), CHECK, (1,), seconds=30),
    Attack(
        "link to /dev/zero given explicitly",
        link("z.py", "/dev/zero"),
        ["check", "--no-cache", "z.py"],
        (0,),
        seconds=30,
    ),
    Attack(
        "link to /dev/zero in the tree",
        both(link("z.py", "/dev/zero"), files(**{"a.py": BAD})),
        CHECK,
        (1,),
        seconds=30,
    ),
    Attack(
        "cache CACHEDIR.TAG and v2 are links out",
        both(cache_links, files(**{"a.py": BAD})),
        ["check", "."],
        (1,),
    ),
    Attack(
        "symlink loop",
        both(link("a.py", "b.py"), link("b.py", "a.py"), files(**{"c.py": BAD})),
        CHECK,
        (1,),
    ),
    Attack(
        "symlinked file with --fix",
        both(files(**{"real.txt": BAD}), link("l.py", "real.txt")),
        FIX,
        (2,),
    ),
    *(
        Attack(
            f"project ships {m}.py (python -m)",
            files(**{f"{m}.py": SHADOW, "a.py": BAD}),
            CHECK,
            (1,),
        )
        for m in ("click", "libcst", "pathspec")
    ),
    Attack(
        "project ships click.py (console script)",
        files(**{"click.py": SHADOW, "a.py": BAD}),
        CHECK,
        (1,),
        command=[str(Path(sys.executable).with_name("fp16lint"))],
    ),
    Attack("1,200-level directory tree", deep_tree(1200), CHECK, (0,), seconds=300),
    Attack("LSP exit without shutdown", files(), ["lsp"], (1,), stdin=LSP_EXIT, seconds=60),
]


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes (None: not a regular file), walked without recursion (os.walk
    recurses once per level) and by relative names (deep paths are over PATH_MAX)."""
    out: dict[str, bytes | None] = {}
    pending = [(os.open(root, os.O_RDONLY), "")]
    while pending:
        fd, prefix = pending.pop()
        for entry in os.scandir(fd):
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                pending.append((os.open(entry.name, os.O_RDONLY, dir_fd=fd), rel + "/"))
            elif entry.is_file(follow_symlinks=False):
                with open(os.open(entry.name, os.O_RDONLY, dir_fd=fd), "rb") as handle:
                    out[rel] = handle.read()
            else:
                out[rel] = None
        os.close(fd)
    return out


def run_attack(attack: Attack, base: Path) -> tuple[bool, str]:
    scratch = Path(tempfile.mkdtemp(dir=base))
    root = scratch / "project"
    root.mkdir()
    attack.setup(root)
    before, outside = _snapshot(root), _snapshot(scratch)
    env = {**os.environ, "PYTHONPATH": ".", "LC_ALL": "C.UTF-8"}
    env.pop("FP16LINT_CACHE_DIR", None)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [*attack.command, *attack.args],
            cwd=root,
            input=attack.stdin if attack.stdin is not None else b"",
            capture_output=True,
            timeout=attack.seconds,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return False, f"no answer in {attack.seconds:g} s"
    seconds = time.monotonic() - started
    out = done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")
    problems = []
    if "Traceback" in out:
        problems.append("traceback")
    if done.returncode not in attack.exits:
        problems.append(f"exit {done.returncode}, expected {attack.exits}")
    if attack.expect_out and attack.expect_out not in out:
        problems.append(f"no {attack.expect_out!r} in the output")
    after = _snapshot(root)
    changed = {k for k in before if before[k] != after.get(k)} - set(attack.may_change)
    if changed:
        problems.append(f"changed {sorted(changed)}")
    if (root / "ran").exists():
        problems.append("ran the project's code")
    outside_after = {k: v for k, v in _snapshot(scratch).items() if not k.startswith("project")}
    if outside_after != {k: v for k, v in outside.items() if not k.startswith("project")}:
        problems.append("wrote outside the project")
    if attack.may_change and attack.name.startswith("notebook --fix"):
        expected = STYLED_NOTEBOOK.replace(
            "torch.cuda.amp.autocast()", 'torch.amp.autocast(\\"cuda\\")'
        )
        if (root / "n.ipynb").read_bytes() != expected.encode():
            problems.append("notebook bytes beyond the fixed source changed")
    return not problems, f"exit {done.returncode}, {seconds:.1f} s" + (
        f": {'; '.join(problems)}" if problems else ""
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated attack names (substrings)")
    args = parser.parse_args(argv)
    chosen = [a for a in ATTACKS if not args.only or any(s in a.name for s in args.only.split(","))]
    held = 0
    base = tempfile.mkdtemp()
    try:
        for attack in chosen:
            ok, detail = run_attack(attack, Path(base))
            held += ok
            print(f"{'held' if ok else 'FAIL'}  {attack.name}: {detail}", flush=True)
    finally:  # shutil.rmtree recurses once per level: the deep tree is over its limit
        subprocess.run(["rm", "-rf", base], check=False)
    print(f"\n{held}/{len(chosen)} attacks held")
    return 0 if held == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
