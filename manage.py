#!/usr/bin/env python
from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    if sys.argv[1:2] != ["run_suite"]:
        execute_from_command_line(sys.argv)
        return
    try:
        execute_from_command_line(sys.argv)
    except SystemExit as exc:
        _exit_without_teardown(exc.code)
    _exit_without_teardown(0)


def _exit_without_teardown(code: object) -> None:
    """End ``run_suite``, which partners' CI runs on every build, without tearing the
    interpreter down: freeing every object of a finished run one by one took 150 ms of a 1 s
    run. What the command wrote is flushed and the database connections are closed first; the
    exit code is the command's (0 passed, 1 failed, 2 invalid input or error)."""
    import logging

    from django.db import connections

    if isinstance(code, str):  # what sys.exit("message") would print
        print(code, file=sys.stderr)
        code = 1
    connections.close_all()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
