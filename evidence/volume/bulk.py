"""Fast inserts for generated rows: ``COPY … FROM STDIN`` on PostgreSQL (psycopg 3), batched
``executemany`` elsewhere (SQLite, the development default).

Rows are dicts keyed by column name and written as given: no ``auto_now_add`` stamping, no
model ``save()``. Callers pass ids they reserved with ``ids_reserve`` when they need them back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models

BATCH = 2_000


def _json_columns(model: type[models.Model]) -> set[str]:
    return {f.column for f in model._meta.concrete_fields if isinstance(f, models.JSONField)}


def _encode(value: Any) -> str | None:
    # None stays SQL NULL, as the ORM stores it, so ``isnull`` lookups keep working.
    return None if value is None else json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)


def ids_reserve(model: type[models.Model], count: int) -> list[int]:
    """``count`` fresh primary keys for ``model`` (an auto-increment id). Inside a transaction;
    on SQLite the write lock held by that transaction keeps them free until it commits."""
    if count <= 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, count],
            )
            return [row[0] for row in cursor.fetchall()]
        # SQLite: past both the highest id and AUTOINCREMENT's counter, and the counter moved
        # past the reserved ids, so that a row the ORM inserts meanwhile cannot take one.
        cursor.execute(
            f"SELECT MAX(COALESCE((SELECT MAX(id) FROM {table}), 0),"
            " COALESCE((SELECT seq FROM sqlite_sequence WHERE name = %s), 0))",
            [table],
        )
        start = cursor.fetchone()[0] + 1
        last = start + count - 1
        cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = %s", [last, table])
        if cursor.rowcount == 0:
            cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, last])
        return list(range(start, last + 1))


def rows_insert(
    model: type[models.Model], columns: Sequence[str], rows: Iterable[dict[str, Any]]
) -> int:
    """Insert ``rows`` (dicts with every name in ``columns``) into ``model``'s table; returns
    how many. JSON columns take Python values."""
    table = model._meta.db_table
    json_cols = _json_columns(model)
    encoders = [(c, c in json_cols) for c in columns]
    n = 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            raw = cursor.cursor  # the psycopg cursor under Django's wrapper
            with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(
                        [_encode(row[c]) if is_json else row[c] for c, is_json in encoders]
                    )
                    n += 1
        return n
    ops = connection.ops
    fields = {f.column: f for f in model._meta.concrete_fields}

    def adapt(column: str, value: Any, is_json: bool) -> Any:
        if is_json:
            return _encode(value)
        field = fields[column]
        if isinstance(field, models.DateTimeField):
            return ops.adapt_datetimefield_value(value)
        if isinstance(field, models.UUIDField) and value is not None:
            return value.hex
        return value

    names = ", ".join(ops.quote_name(c) for c in columns)  # ScenarioRun has an "index"
    sql = (
        f"INSERT INTO {ops.quote_name(table)} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
    )
    batch: list[list[Any]] = []
    with connection.cursor() as cursor:
        for row in rows:
            batch.append([adapt(c, row[c], is_json) for c, is_json in encoders])
            n += 1
            if len(batch) >= BATCH:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
    return n
