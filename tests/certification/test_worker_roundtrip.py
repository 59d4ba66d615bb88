from __future__ import annotations

import uuid

import pytest

from certification.models import WorkerHeartbeat
from certification.selectors import workers_alive
from certification.tasks import heartbeat
from tests.workers import worker_process


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_takes_a_task_from_the_broker_and_records_it() -> None:
    nonce = uuid.uuid4().hex
    with worker_process() as worker:
        heartbeat.apply_async(kwargs={"nonce": nonce}, queue=worker.queue)
        worker.wait_for(lambda: WorkerHeartbeat.objects.filter(nonce=nonce).exists())
    beat = WorkerHeartbeat.objects.get(nonce=nonce)
    assert beat.hostname.startswith(worker.queue)  # type: ignore[attr-defined]
    assert beat in workers_alive()


@pytest.mark.django_db
def test_heartbeat_run_twice_keeps_one_row_per_worker() -> None:
    heartbeat.apply(kwargs={"nonce": "a"})
    heartbeat.apply(kwargs={"nonce": "b"})
    assert list(WorkerHeartbeat.objects.values_list("nonce", flat=True)) == ["b"]
