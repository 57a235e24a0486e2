"""psycopg loaders for pg-mcp's connections: values arrive in the JSON shapes of
``pg_mcp.core.values`` (which stays free of any driver)."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from pg_mcp.core.values import iso_duration, json_number, numeric_from_text


def register_loaders(context: Any, *, tolerant: bool = True) -> None:
    """Install infinity-safe date/time loaders (unless ``tolerant=False``: then psycopg's own
    loaders, faster, raise ``DataError`` on values Python cannot hold), and exact interval,
    numeric and JSON-number loaders.

    ``context`` is a psycopg connection (or cursor / AdaptersMap owner). Text format only:
    the executor always fetches text.
    """
    from psycopg import errors
    from psycopg.adapt import Loader
    from psycopg.types import datetime as pgdt
    from psycopg.types.json import set_json_loads

    def keep_text(base: type[Loader]) -> type[Loader]:
        class Tolerant(base):  # type: ignore[valid-type,misc]
            def load(self, data: Any) -> Any:
                try:
                    return super().load(data)
                except (errors.DataError, ValueError, OverflowError):
                    return bytes(data).decode("utf-8", "replace")

        Tolerant.__name__ = f"Tolerant{base.__name__}"
        return Tolerant

    class IsoIntervalLoader(Loader):
        def load(self, data: Any) -> str:
            return iso_duration(bytes(data).decode("utf-8", "replace"))

    class JsonNumericLoader(Loader):
        def load(self, data: Any) -> int | float | str:
            return numeric_from_text(str(data, "ascii"))

    adapters = context.adapters
    adapters.register_loader("interval", IsoIntervalLoader)
    adapters.register_loader("numeric", JsonNumericLoader)
    set_json_loads(partial(json.loads, parse_float=json_number), context)
    if not tolerant:
        return
    adapters.register_loader("date", keep_text(pgdt.DateLoader))
    adapters.register_loader("timestamp", keep_text(pgdt.TimestampLoader))
    adapters.register_loader("timestamptz", keep_text(pgdt.TimestamptzLoader))
    adapters.register_loader("time", keep_text(pgdt.TimeLoader))
    adapters.register_loader("timetz", keep_text(pgdt.TimetzLoader))
