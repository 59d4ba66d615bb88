"""``dbQuery`` against a partner's PostgreSQL endpoint.

The endpoint's host goes through the same address policy as HTTP and the connection is made to
the checked address. Queries run in a read-only transaction with a statement timeout unless the
endpoint is marked writable; rows come back as JSON-friendly dicts.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from certification.engine.model import EndpointConfig
from certification.engine.netpolicy import AddressPolicy, UrlRefused

MAX_ROWS = 1000


class DbQueryError(Exception):
    pass


def _jsonable(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


# Query parameters of a postgres:// URL passed on to the connection. Others are refused rather
# than ignored: `host`/`hostaddr` would bypass the address policy's pinned address, `options`
# could lift read-only, and file paths name files on the worker, not the partner's.
CONNECTION_PARAMETERS = ("sslmode", "application_name", "target_session_attrs")


def _connection_parameters(name: str, query: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in CONNECTION_PARAMETERS:
            raise DbQueryError(
                f"endpoint '{name}': the URL's connection parameter '{key}' is not supported "
                f"(supported: {', '.join(CONNECTION_PARAMETERS)})"
            )
        values[key] = value
    return values


async def run_query(
    endpoint: EndpointConfig,
    sql: str,
    params: list[Any],
    *,
    policy: AddressPolicy,
    timeout_ms: int,
) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    parts = urlsplit(endpoint.base_url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise DbQueryError(f"endpoint '{endpoint.name}' is not a postgres:// URL")
    port = parts.port or 5432
    extra = _connection_parameters(endpoint.name, parts.query)
    try:
        target = await policy.check_url_async(f"http://{parts.hostname}:{port}/")
    except UrlRefused as exc:
        raise DbQueryError(str(exc)) from None
    try:
        conn = await psycopg.AsyncConnection.connect(
            host=parts.hostname,
            hostaddr=str(target.addresses[0]),
            port=port,
            dbname=parts.path.lstrip("/") or None,
            user=unquote(parts.username or "") or None,
            password=endpoint.secrets.get("password") or unquote(parts.password or "") or None,
            connect_timeout=max(1, timeout_ms // 1000),
            autocommit=False,
            **extra,
        )
    except psycopg.Error as exc:
        raise DbQueryError(f"cannot connect to '{endpoint.name}': {exc}".strip()) from None
    try:
        async with conn:
            if not endpoint.writable:
                await conn.set_read_only(True)
            async with conn.cursor(row_factory=dict_row) as cursor:
                await cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
                await cursor.execute(sql, params or None)
                rows = await cursor.fetchmany(MAX_ROWS) if cursor.description else []
            if endpoint.writable:
                await conn.commit()
            else:
                await conn.rollback()
    except psycopg.Error as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DbQueryError(f"query failed on '{endpoint.name}': {message}") from None
    return [_jsonable(dict(row)) for row in rows]
