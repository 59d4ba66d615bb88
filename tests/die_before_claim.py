"""A Celery app for one crash test: the worker dies, whole, the moment it has fetched a
scenario task and before the task claims its scenario, once the file named by
CERTDASH_DIE_BEFORE_CLAIM exists. Start it with ``celery -A tests.die_before_claim worker``."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from celery.signals import task_prerun

from config.celery import app

__all__ = ["app"]

_MARKER = Path(os.environ["CERTDASH_DIE_BEFORE_CLAIM"])


@task_prerun.connect
def _die_before_claim(task: Any = None, args: Any = None, **_: Any) -> None:
    if task is not None and task.name.endswith(".run_scenario") and _MARKER.exists():
        # Say which scenario's message dies with the worker, then go as a lost machine would.
        _MARKER.write_text(str(args[0]))
        os.killpg(os.getpgid(0), signal.SIGKILL)
