"""Static linter speed against its anchors (issue 9), side by side on the same folders.

    .venv/bin/python benchmarks/bench_static.py [--corpora torch,transformers,diffusers]
        [--runs 3] [--anchor-runs 3] [--sample N] [--anchors torchfix,fixit,ruff,parse]
        [--benchvenv /tmp/benchvenv] [--jobs 2] [--json out.json]

For each corpus (an installed package's sources, or with ``--sample N`` a deterministic sample
of N of its files, copied to a temporary folder) it times, as medians of ``--runs`` runs:

* ``fp16lint cold``: no cache; ``fp16lint cold --assume-fp16`` (library mode);
* ``fp16lint warm``: cache filled, nothing changed; ``fp16lint 1 changed``: one file edited;
* ``ruff check --select ALL`` warm (its cache filled), the speed users are used to;
* ``torchfix`` and ``fixit lint`` (libcst linters, from ``--benchvenv``, never this venv);
* ``parse``: ``libcst.parse_module`` of every file in one process (the parse limit the issue
  measured), and ``parse -j2`` with a process per core for reference.

Each run is a fresh process; the table gives wall seconds, files/s, peak memory (the largest
process and the sum over the process tree, sampled every 20 ms) and ratios fp16lint / anchor.
fp16lint runs from a frozen copy of its sources (its cache key covers its code, which other
work may be editing) with bytecode caching on, as an installed package would.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from importlib.util import find_spec
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
PARSE = """
import sys, pathlib, libcst
files = sorted(pathlib.Path(sys.argv[1]).rglob("*.py"))
jobs = int(sys.argv[2])
def parse(path):
    try:
        libcst.parse_module(path.read_text(encoding="utf-8", errors="replace"))
    except Exception:
        pass
if jobs == 1:
    for f in files:
        parse(f)
else:
    import multiprocessing
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        pool.map(parse, files, chunksize=4)
"""


@dataclass
class Timing:
    label: str
    seconds: list[float] = field(default_factory=list)
    peak_rss: int = 0  # largest single process, bytes
    peak_tree: int = 0  # sum over the process tree, bytes
    returncodes: set[int] = field(default_factory=set)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


def measure(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, int, int]:
    """Wall time, peak single-process RSS, peak tree RSS and exit code of ``command``."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    root = psutil.Process(process.pid)
    peak, tree = 0, 0
    while process.poll() is None:
        try:
            members = [root, *root.children(recursive=True)]
            sizes = []
            for member in members:
                with contextlib.suppress(psutil.Error):
                    sizes.append(member.memory_info().rss)
            if sizes:
                peak, tree = max(peak, max(sizes)), max(tree, sum(sizes))
        except psutil.Error:
            pass
        time.sleep(0.02)
    return time.perf_counter() - start, peak, tree, process.returncode


def _timed(
    timings: dict[str, Timing],
    label: str,
    command: list[str],
    runs: int,
    before=None,
    *,
    cwd: Path,
    env: dict[str, str],
) -> None:
    timing = timings.setdefault(label, Timing(label))
    for _ in range(runs):
        if before is not None:
            before()
        seconds, peak, tree, code = measure(command, env, cwd)
        timing.seconds.append(seconds)
        timing.peak_rss = max(timing.peak_rss, peak)
        timing.peak_tree = max(timing.peak_tree, tree)
        timing.returncodes.add(code)


def _append_comment(path: Path) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"\n# edited {time.time_ns()}\n")


def corpus(name: str, sample: int | None, work: Path) -> Path:
    """The package's sources copied to ``work`` (a sample of N files if asked)."""
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"{name} is not installed")
    source = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(p for p in source.rglob("*.py") if "__pycache__" not in p.parts)
    if sample is not None:
        files = sorted(random.Random(0).sample(files, min(sample, len(files))))
    dest = work / name
    for file in files:
        target = dest / file.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    return dest


def frozen_fp16lint(work: Path) -> Path:
    """A copy of fp16lint's sources, so that edits elsewhere do not change its cache key, with
    its bytecode compiled as an install does (else the first timed run, all of ``--runs 1``,
    also compiles every module it imports: about 0.3 s of CPU)."""
    dest = work / "fp16lint-src"
    shutil.copytree(
        REPO / "fp16lint", dest / "fp16lint", ignore=shutil.ignore_patterns("__pycache__")
    )
    compileall.compile_dir(dest, quiet=1)
    return dest


def run_all(args: argparse.Namespace) -> list[dict]:
    results = []
    work = Path(tempfile.mkdtemp(prefix="fp16lint-bench-"))
    try:
        src = frozen_fp16lint(work)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPATH"] = str(src)
        env["NO_COLOR"] = "1"
        python = sys.executable
        fp16lint = [
            python,
            "-m",
            "fp16lint",
            "check",
            "--output-format",
            "concise",
            f"-j{args.jobs}",
        ]
        subprocess.run(
            [python, "-m", "fp16lint", "--version"], env=env, check=True, capture_output=True
        )
        for name in args.corpora.split(","):
            folder = corpus(name, args.sample, work / "corpora")
            files = sum(1 for _ in folder.rglob("*.py"))
            cache = work / f"cache-{name}"
            fp_env = {**env, "FP16LINT_CACHE_DIR": str(cache)}
            timings: dict[str, Timing] = {}
            target = sorted(folder.rglob("*.py"), key=lambda p: -p.stat().st_size)[files // 2]
            clear_cache = partial(shutil.rmtree, cache, ignore_errors=True)
            touch_one = partial(_append_comment, target)
            timed = partial(_timed, timings, cwd=folder.parent, env=fp_env)

            timed("fp16lint cold", [*fp16lint, folder.name], args.runs, clear_cache)
            library = [*fp16lint, "--assume-fp16", folder.name]
            timed("fp16lint cold --assume-fp16", library, args.runs, clear_cache)
            clear_cache()
            subprocess.run(
                [*fp16lint, folder.name], env=fp_env, cwd=folder.parent, capture_output=True
            )
            timed("fp16lint warm", [*fp16lint, folder.name], args.runs)
            timed("fp16lint 1 changed", [*fp16lint, folder.name], args.runs, touch_one)
            anchors = args.anchors.split(",")
            if "ruff" in anchors:
                ruff = [str(Path(python).parent / "ruff"), "check", "--isolated", "--select", "ALL"]
                ruff += ["--output-format", "concise", "--cache-dir", str(work / f"ruff-{name}")]
                subprocess.run([*ruff, folder.name], cwd=folder.parent, capture_output=True)
                timed("ruff check --select ALL (warm)", [*ruff, folder.name], args.runs)
            if "parse" in anchors:
                timed(
                    "libcst parse (1 process)", [python, "-c", PARSE, folder.name, "1"], args.runs
                )
                parallel = [python, "-c", PARSE, folder.name, str(args.jobs)]
                timed(f"libcst parse (-j{args.jobs})", parallel, args.runs)
            bench_bin = Path(args.benchvenv) / "bin"
            if "torchfix" in anchors and (bench_bin / "torchfix").exists():
                timed("torchfix", [str(bench_bin / "torchfix"), folder.name], args.anchor_runs)
            if "fixit" in anchors and (bench_bin / "fixit").exists():
                timed(
                    "fixit lint", [str(bench_bin / "fixit"), "lint", folder.name], args.anchor_runs
                )
            results.append(report(name, files, timings))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def report(name: str, files: int, timings: dict[str, Timing]) -> dict:
    cold = timings["fp16lint cold"].median
    library = timings["fp16lint cold --assume-fp16"].median
    warm = timings["fp16lint warm"].median
    print(f"\n{name}: {files} files")
    print(
        f"{'':<34}{'median s':>9}{'runs':>6}{'files/s':>9}{'max RSS':>9}{'tree RSS':>10}  all runs"
    )
    for t in timings.values():
        runs = " ".join(f"{s:.2f}" for s in t.seconds)
        print(
            f"{t.label:<34}{t.median:>9.2f}{len(t.seconds):>6}{files / t.median:>9.0f}"
            f"{t.peak_rss / 2**20:>8.0f}M{t.peak_tree / 2**20:>9.0f}M  {runs}"
        )
    ratios = {}
    for label, t in timings.items():
        if not label.startswith("fp16lint"):
            ratios[f"cold / {label}"] = cold / t.median
            ratios[f"library / {label}"] = library / t.median
            ratios[f"warm / {label}"] = warm / t.median
    ratios["1 changed / warm"] = timings["fp16lint 1 changed"].median / warm
    for label, value in ratios.items():
        print(f"  {label:<52}{value:>7.2f}")
    return {
        "corpus": name,
        "files": files,
        "timings": {
            t.label: {
                "median": t.median,
                "runs": t.seconds,
                "peak_rss_mib": t.peak_rss / 2**20,
                "peak_tree_rss_mib": t.peak_tree / 2**20,
                "exit_codes": sorted(t.returncodes),
            }
            for t in timings.values()
        },
        "ratios": ratios,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", default="torch,transformers,diffusers")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--anchor-runs", type=int, default=3, help="runs of torchfix and fixit")
    parser.add_argument("--sample", type=int, help="a deterministic sample of N files per corpus")
    parser.add_argument("--anchors", default="ruff,parse,torchfix,fixit")
    parser.add_argument("--benchvenv", default="/tmp/benchvenv")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = run_all(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
