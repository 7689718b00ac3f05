"""Median message length per rule, over the findings of every rule's INVALID examples
(issue 20: messages are one short sentence, the advice goes to a separate ``help`` line).

Run: ``.venv/bin/python benchmarks/message_lengths.py [--json]``; prints
``code  findings  median message  median help  longest message``.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from fp16lint.rules import all_rules
from fp16lint.runner import Options, lint_paths, lint_text
from fp16lint.settings import Settings


def _findings(rule, example):
    if isinstance(example, str):
        settings = Settings(root=Path.cwd(), select=(rule.code,))
        return lint_text(example, "example.py", settings).findings
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for rel, text in example.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        settings = Settings(root=root, select=(rule.code,))
        return lint_paths([root], settings, Options(jobs=1, use_cache=False)).findings


def measure() -> list[dict]:
    rows = []
    for rule in all_rules():
        found = [f for ex in rule.invalid for f in _findings(rule, ex.code) if f.code == rule.code]
        if not found:
            continue
        messages = [len(f.message) for f in found]
        helps = [len(getattr(f, "help", None) or "") for f in found]
        rows.append(
            {
                "code": rule.code,
                "findings": len(found),
                "median_message": statistics.median(messages),
                "median_help": statistics.median(helps),
                "max_message": max(messages),
            }
        )
    return rows


def main() -> None:
    rows = measure()
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'code':<6} {'findings':>8} {'median msg':>10} {'median help':>11} {'max msg':>8}")
    for r in rows:
        print(
            f"{r['code']:<6} {r['findings']:>8} {r['median_message']:>10g} "
            f"{r['median_help']:>11g} {r['max_message']:>8}"
        )
    overall = statistics.median(r["median_message"] for r in rows)
    print(f"median of the per-rule medians: {overall:g}")


if __name__ == "__main__":
    main()
