"""The demo project: `fp16lint fixtures/demo` reports exactly the planted hazards.

Each planted hazard is marked in the source with a trailing `# expect: FPnnn[, FPnnn]`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from lintutil import REPO

DEMO = REPO / "fixtures" / "demo"
_EXPECT = re.compile(r"#\s*expect:\s*(FP\d{3}(?:\s*,\s*FP\d{3})*)")


def _expected() -> Counter:
    wanted: Counter = Counter()
    for path in sorted(DEMO.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = _EXPECT.search(line)
            if match:
                for code in re.split(r"\s*,\s*", match.group(1)):
                    wanted[(code, path.relative_to(DEMO).as_posix(), number)] += 1
    return wanted


def test_demo_reports_exactly_the_planted_hazards():
    import json

    run = subprocess.run(
        [sys.executable, "-m", "fp16lint", "check", ".", "--output-format", "json", "--no-cache"],
        cwd=DEMO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    found = Counter(
        (f["code"], Path(f["filename"]).as_posix(), f["location"]["row"])
        for f in json.loads(run.stdout)
    )
    assert found == _expected()


def test_cast_messages_list_what_is_fp16_unsafe_inside_the_model(monkeypatch):
    """FP101 names the unsafe layers and ops the cast model contains (up to five, then a count)."""
    from lintutil import lint_project_folder

    monkeypatch.chdir(DEMO)
    findings = lint_project_folder(DEMO)
    cast = next(
        f
        for f in findings
        if f.code == "FP101" and f.path.endswith("train.py") and f.span.start.line == 13
    )
    assert "fp16-unsafe inside it:" in cast.message
    assert "`x.pow(2).mean(-1, keepdim=True)`" in cast.message
    assert cast.message.rstrip(".").split(" and ")[-1].endswith("more")
    # A bare nn.Linear holds nothing unsafe, and the probe is not trained: a deliberate fp16
    # cast, not a defect (issue 17). Its fp32 input is FP103's.
    assert not [f for f in findings if f.code == "FP101" and f.span.start.line == 33]


def test_sums_along_a_dimension_are_listed_with_library_info(monkeypatch):
    """The demo's row sums (a hand-written softmax's total, a mixture of experts' weighted
    sum) accumulate in float32 and overflow only past 65504 per row
    (tests/facts/test_sum_along_dim.py): `library-info` lists them, as `info`."""
    from lintutil import lint_project_folder

    monkeypatch.chdir(DEMO)
    listed = {
        (f.span.start.line, f.severity.value)
        for f in lint_project_folder(DEMO, library_info=True, select=("FP202",))
        if f.path.endswith("blocks.py")
    }
    assert {(51, "info"), (57, "info")} <= listed
