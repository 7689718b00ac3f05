"""``fp16lint lsp`` with the test-only project rule ``FP990`` registered (see probe_rule.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fp16lint.rules as registry  # noqa: E402
import fp16lint.runner as runner  # noqa: E402
from probe_rule import CrossFileProbe  # noqa: E402

_rules = (*registry.all_rules(), CrossFileProbe)
registry.all_rules = runner.all_rules = lambda: _rules

from fp16lint.lsp.server import serve  # noqa: E402

serve()
