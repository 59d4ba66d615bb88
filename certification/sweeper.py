"""The stalled sweep inside every worker: a thread of the worker's main process that runs
``execution.scenarios_requeue_stalled`` every ``STALLED_SWEEP_SECONDS``.

It runs in the worker rather than as a Celery beat task so that finding a dead worker's
scenarios never waits behind the scenario tasks queued before the sweep's own message. Each
change the sweep makes is a conditional update, so the sweeps of many workers do not collide.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from celery import bootsteps

logger = logging.getLogger("certification.sweeper")


def broker_backlog() -> int | None:
    """How many scenario task messages wait in the broker's queue, or None when the broker
    cannot say (it is unreachable, or its transport does not count messages)."""
    from kombu.transport import virtual

    from config.celery import app

    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.default_channel
            # Redis and the file-system transport count an empty queue that has no key yet as
            # 0 only when declared; a passive declare on AMQP leaves the queue's arguments
            # (set by the workers that declared it) alone.
            declared = channel.queue_declare(
                queue=app.conf.task_default_queue,
                passive=not isinstance(channel, virtual.Channel),
            )
            return int(declared.message_count)
    except Exception:  # any broker error: the sweep falls back to the rule that needs no count
        return None


class Sweeper(bootsteps.StartStopStep):
    """Worker bootstep: starts the sweep thread once the pool is up, stops it at shutdown."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        self._thread = threading.Thread(target=self._loop, name="stalled-sweep", daemon=True)
        self._thread.start()

    def stop(self, parent: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        from django.conf import settings
        from django.db import connection

        from certification.execution import scenarios_requeue_stalled

        interval = float(settings.STALLED_SWEEP_SECONDS)
        # Workers started together do not sweep in step.
        if self._stop.wait(random.uniform(0, interval)):
            return
        try:
            while True:
                try:
                    counts = scenarios_requeue_stalled()
                    if any(counts.values()):
                        logger.info("stalled sweep: %s", counts)
                except Exception as exc:  # a database blip: try again next time
                    logger.warning("stalled sweep failed: %s", type(exc).__name__)
                    connection.close()
                if self._stop.wait(interval):
                    return
        finally:
            connection.close()
