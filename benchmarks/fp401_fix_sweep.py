"""FP401's fix on real code: copy every file of the installed packages that uses the deprecated
``torch.cuda.amp`` / ``torch.cpu.amp`` API to a temporary folder, run ``fp16lint check --select
FP401 --fix`` there, and check that every fixed file still compiles and that a second ``--fix``
changes nothing.

    .venv/bin/python benchmarks/fp401_fix_sweep.py [--packages torch,transformers,accelerate,timm]

Prints the files copied, FP401 findings before and after the fix, the files the fix changed,
any fixed file that no longer compiles (with the error), and any file the second run changed.
Exits 1 when a fixed file does not compile or the second run changes something.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from importlib.util import find_spec
from pathlib import Path

_USES_OLD_AMP = re.compile(
    r"torch\.(cuda|cpu)\.amp\b|from\s+torch\.(cuda|cpu)\s+import\s+[^\n]*\bamp\b"
)


def package_dir(name: str) -> Path:
    spec = find_spec(name)
    if spec is None or spec.origin is None:
        sys.exit(f"{name} is not installed")
    return Path(spec.origin).parent


def copy_users(packages: list[str], dest: Path) -> list[Path]:
    copied = []
    for name in packages:
        root = package_dir(name)
        for path in sorted(root.rglob("*.py")):
            text = path.read_text(encoding="utf-8", errors="replace")
            if _USES_OLD_AMP.search(text):
                target = dest / name / path.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                copied.append(target)
    return copied


def lint(folder: Path, *extra: str, select: str | None = "FP401") -> list[dict]:
    """The findings of ``fp16lint check`` in ``folder`` (``select=None``: the default rules)."""
    command = [
        sys.executable, "-m", "fp16lint", "check", ".", *(("--select", select) if select else ()),
        "--output-format", "json", "--no-cache", "-j", "2", *extra,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        sys.exit(f"fp16lint failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout or "[]")


def digests(files: list[Path]) -> dict[Path, str]:
    return {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", default="torch,transformers,accelerate,timm")
    args = parser.parse_args(argv)
    packages = [p for p in args.packages.split(",") if p]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = copy_users(packages, folder)
        print(f"files using torch.cuda.amp / torch.cpu.amp: {len(files)}")
        for name in packages:
            print(f"  {name}: {sum(1 for f in files if f.relative_to(folder).parts[0] == name)}")
        original = digests(files)
        before = lint(folder)
        fixable = sum(1 for f in before if f.get("fix"))
        print(f"FP401 findings before: {len(before)} ({fixable} with a fix)")
        lint(folder, "--fix")
        fixed = digests(files)
        changed = [f for f in files if fixed[f] != original[f]]
        print(f"files changed by --fix: {len(changed)}")
        broken = []
        for path in changed:
            try:
                compile(path.read_bytes(), str(path), "exec")
            except SyntaxError as exc:
                broken.append((path, exc))
        print(f"fixed files that do not compile: {len(broken)}")
        for path, exc in broken:
            print(f"  {path.relative_to(folder)}: {exc}")
        after = lint(folder)
        left = Counter(Path(f["filename"]).parts[0] for f in after)
        print(f"FP401 findings after: {len(after)} (left unfixed, by package: {dict(left)})")
        lint(folder, "--fix")
        again = [f for f in files if digests([f])[f] != fixed[f]]
        print(f"files changed by a second --fix: {len(again)}")
        for path in again:
            print(f"  {path.relative_to(folder)}")
        return 1 if broken or again else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
