"""The data pass: relationships no foreign key declares, inferred from names and confirmed by data."""

from __future__ import annotations

from typing import Any

from pg_mcp.model import DatabaseSchema
from pg_mcp.settings import Settings


def data_pass(conn: Any, db: DatabaseSchema, settings: Settings) -> None:
    return None
