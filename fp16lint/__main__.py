"""``python -m fp16lint``."""

from fp16lint.cli import main

main()
