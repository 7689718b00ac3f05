"""Start-up time of ``fp16lint --version`` (target: 150 ms on a quiet machine).

    .venv/bin/python benchmarks/bench_startup.py [--runs 10]

Prints the best and median wall time of ``--runs`` fresh processes (after one run that warms the
file cache), their CPU time (user + system, which a loaded machine inflates less), and the
slowest imports of one run (``-X importtime``). What start-up must not import is checked by
``tests/test_cli_static.py::test_version_starts_without_heavy_imports``; this file keeps the
wall-clock figure, which a shared machine makes too noisy for a test.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

COMMAND = [sys.executable, "-m", "fp16lint", "--version"]
TARGET_MS = 150


def timed() -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``COMMAND``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(COMMAND, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def slowest_imports(count: int) -> list[tuple[int, str]]:
    """``(cumulative microseconds, module)`` of the top-level imports that took longest."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *COMMAND[1:]],
        check=True,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.removeprefix("import time:").split("|")
            if cumulative.strip().isdigit() and not name.startswith("  "):  # top level only
                rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    timed()  # warm the file cache
    runs = [timed() for _ in range(args.runs)]
    walls, cpus = [w * 1000 for w, _ in runs], [c * 1000 for _, c in runs]
    print(f"fp16lint --version, {args.runs} runs (target {TARGET_MS} ms on a quiet machine)")
    print(f"  wall ms: best {min(walls):.0f}  median {statistics.median(walls):.0f}")
    print(f"  cpu ms:  best {min(cpus):.0f}  median {statistics.median(cpus):.0f}")
    print("  slowest top-level imports (cumulative ms):")
    for micros, name in slowest_imports(8):
        print(f"    {micros / 1000:7.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
