"""X12 control numbers per partner: consecutive, separate per partner and kind, wrapping
after 999999999, and never the same number twice when many connections take them at once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from partners import control_numbers
from partners.models import ControlNumber, Partner

pytestmark = pytest.mark.django_db(transaction=True)


def test_numbers_start_at_one_and_follow_each_other(partner_a: Partner) -> None:
    taken = [control_numbers.take(partner_a.pk, "interchange") for _ in range(3)]
    assert taken == [1, 2, 3]


def test_a_block_of_set_numbers_is_consecutive(partner_a: Partner) -> None:
    assert control_numbers.take(partner_a.pk, "set", 5) == 1
    assert control_numbers.take(partner_a.pk, "set") == 6


def test_each_partner_and_kind_counts_on_its_own(partner_a: Partner, partner_b: Partner) -> None:
    control_numbers.take(partner_a.pk, "interchange")
    control_numbers.take(partner_a.pk, "interchange")
    assert control_numbers.take(partner_b.pk, "interchange") == 1
    assert control_numbers.take(partner_a.pk, "group") == 1


def test_numbers_wrap_to_one_after_the_largest_isa13(partner_a: Partner) -> None:
    ControlNumber.objects.create(partner=partner_a, kind="interchange", value=999_999_998)
    assert control_numbers.take(partner_a.pk, "interchange") == 999_999_999
    assert control_numbers.take(partner_a.pk, "interchange") == 1


def test_an_unknown_kind_is_refused(partner_a: Partner) -> None:
    with pytest.raises(ValueError, match="unknown control number kind"):
        control_numbers.take(partner_a.pk, "segment")


def test_concurrent_connections_never_get_the_same_number(partner_a: Partner) -> None:
    taken: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            mine = [control_numbers.for_interchange(partner_a.pk, 2) for _ in range(40)]
            with lock:
                taken.extend(c.interchange for c in mine)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(taken) == 320
    assert sorted(taken) == list(range(1, 321))


def test_the_counters_are_taken_on_separate_postgresql_connections(partner_a: Partner) -> None:
    # The concurrency test above is only meaningful if each thread has its own session.
    seen: list[int] = []

    def worker() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            seen.append(cursor.fetchone()[0])
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(set(seen)) == 3


def test_each_file_flow_has_its_own_sequence(partner_a: Partner) -> None:
    assert [control_numbers.next_file_sequence(partner_a.pk, "inventory") for _ in range(2)] == [
        1,
        2,
    ]
    assert control_numbers.next_file_sequence(partner_a.pk, "orders") == 1
    assert control_numbers.take(partner_a.pk, "interchange") == 1


@pytest.mark.parametrize("flow", ["", "Inventory", "inv/entory", "x" * 41])
def test_a_flow_that_is_not_lower_case_letters_and_digits_is_refused(
    partner_a: Partner, flow: str
) -> None:
    with pytest.raises(ValueError, match="unknown control number kind"):
        control_numbers.next_file_sequence(partner_a.pk, flow)
