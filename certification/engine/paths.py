"""Reading values out of a step's result by path (``response.body.items[0].sku``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from certification.engine.model import MISSING


def resolve(root: Mapping[str, Any], segments: Sequence[str | int]) -> Any:
    """Follow ``segments`` from ``root``; ``MISSING`` when any segment does not exist.

    Header names match case-insensitively (``response.headers.Content-Type``); everything else
    is exact. An integer segment indexes a list (negative counts from the end).
    """
    current: Any = root
    previous: str | int | None = None
    for segment in segments:
        if isinstance(segment, int):
            if not isinstance(current, list) or not -len(current) <= segment < len(current):
                return MISSING
            current = current[segment]
        elif isinstance(current, Mapping):
            if segment in current:
                current = current[segment]
            elif previous == "headers":
                lowered = segment.lower()
                match = [v for k, v in current.items() if str(k).lower() == lowered]
                if not match:
                    return MISSING
                current = match[0]
            else:
                return MISSING
        else:
            return MISSING
        previous = segment
    return current
