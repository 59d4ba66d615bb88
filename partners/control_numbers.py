"""Per-partner X12 control numbers and file sequences that never repeat.

Each call takes a block of numbers with one ``INSERT … ON CONFLICT DO UPDATE … RETURNING``:
PostgreSQL locks the counter row for the statement (SQLite, in the demo, the database), so
two runs taking numbers at the same moment get different blocks, whatever their transactions
do afterwards (the statement commits on its own; a run that fails later leaves a gap, never a
repeat). Numbers wrap to 1 after
999999999, the most ISA13 and GS06 hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from partners.models import ControlNumber

MAX_CONTROL = 999_999_999
# A file flow's name, as it appears in the file names: ``inventory`` in globex_inventory_….
FLOW = re.compile(r"[a-z0-9]{1,40}")

_TAKE = f"""
INSERT INTO {ControlNumber._meta.db_table} (partner_id, kind, value, updated_at)
VALUES (%s, %s, %s, %s)
ON CONFLICT (partner_id, kind) DO UPDATE SET
    value = CASE
        WHEN {ControlNumber._meta.db_table}.value + EXCLUDED.value > {MAX_CONTROL}
        THEN EXCLUDED.value
        ELSE {ControlNumber._meta.db_table}.value + EXCLUDED.value
    END,
    updated_at = EXCLUDED.updated_at
RETURNING value
"""


@dataclass(frozen=True)
class Controls:
    """The control numbers of one interchange: ISA13, GS06 and the first ST02."""

    interchange: int
    group: int
    first_set: int


def take(partner_id: int, kind: str, count: int = 1) -> int:
    """The first of ``count`` consecutive, never used control numbers of ``kind``."""
    flow = kind.removeprefix("file:") if kind.startswith("file:") else None
    if kind not in ControlNumber.Kind.values and (flow is None or not FLOW.fullmatch(flow)):
        raise ValueError(f"unknown control number kind {kind!r}")
    if not 1 <= count <= 10_000:
        raise ValueError("take between 1 and 10000 control numbers at a time")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_TAKE, [partner_id, kind, count, timezone.now()])
        last = cursor.fetchone()[0]
    return last - count + 1


def for_interchange(partner_id: int, sets: int = 1) -> Controls:
    """Numbers for an interchange of one group holding ``sets`` transaction sets."""
    return Controls(
        interchange=take(partner_id, "interchange"),
        group=take(partner_id, "group"),
        first_set=take(partner_id, "set", sets),
    )


def next_file_sequence(partner_id: int, flow: str) -> int:
    """The next sequence number of the partner's batch-file flow ``flow``."""
    return take(partner_id, f"file:{flow}")
