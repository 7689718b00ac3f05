"""``python -m fp16lint`` and the ``fp16lint`` console script.

Before anything else is imported, the working directory and the folders named on the command
line leave ``sys.path`` (as Pylint does): ``python -m`` puts the working directory first, so a
project's ``click.py`` or ``libcst.py`` would otherwise be imported, and run, in its place.
The linter never imports the analysed code, whatever its module names.
"""

import os
import sys


def strip_project_from_path(argv: list[str]) -> None:
    """Remove the working directory (``""``, ``"."`` or its full path) and every folder in
    ``argv`` from ``sys.path``."""
    projects = {os.path.realpath(os.getcwd())}
    projects.update(os.path.realpath(a) for a in argv if not a.startswith("-") and os.path.isdir(a))
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) not in projects]


def run() -> None:
    strip_project_from_path(sys.argv[1:])
    from fp16lint.cli import main

    main()


if __name__ == "__main__":
    run()
