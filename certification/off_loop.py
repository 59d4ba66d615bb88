"""Database calls for the engine: it is asyncio and must not block its event loop on a query,
so what it awaits runs on a worker thread with a connection of its own, closed after each call
(the thread may not be reused, and a connection left open would outlive it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.db import connection

T = TypeVar("T")


def off_the_loop(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """``function`` as an async function that runs it on a worker thread."""

    def call(*args: Any) -> T:
        try:
            return function(*args)
        finally:
            connection.close()  # this thread's own connection

    async def awaited(*args: Any) -> T:
        return await asyncio.to_thread(call, *args)

    return awaited
