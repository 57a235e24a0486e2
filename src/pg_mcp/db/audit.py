"""Audit log: one JSON line per statement run_readonly was asked to run (``settings.audit_log``).

Each line: ``time`` (UTC, ISO 8601), ``database``, ``sql``, ``outcome`` (``"ok"`` or the
error code), ``rows``, ``truncated``, ``elapsed_ms`` and, for database errors, ``sqlstate``.
Known secrets are scrubbed from the SQL before it is written. Writes are appended under a
process-wide lock with a single ``write`` call, so concurrent lines never interleave.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from pg_mcp.core.secrets import Redactor
from pg_mcp.core.settings import Settings

_LOCK = threading.Lock()


def entry(
    *,
    database: str | None,
    sql: str,
    outcome: str,
    rows: int = 0,
    truncated: bool = False,
    elapsed_ms: float = 0.0,
    sqlstate: str | None = None,
    redact: Redactor | None = None,
) -> dict[str, Any]:
    """The audit record (pure)."""
    line: dict[str, Any] = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "database": database,
        "sql": redact(sql) if redact else sql,
        "outcome": outcome,
        "rows": rows,
        "truncated": truncated,
        "elapsed_ms": round(elapsed_ms, 3),
    }
    if sqlstate:
        line["sqlstate"] = sqlstate
    return line


def append(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``path`` (created with mode 0600, parents made)."""
    data = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def record(settings: Settings, **fields: Any) -> None:
    """Append an audit line when ``settings.audit_log`` is set; never raises."""
    if settings.audit_log is None:
        return
    try:
        append(Path(settings.audit_log), entry(redact=Redactor(settings.secrets()), **fields))
    except OSError as exc:  # auditing must not turn a query's answer into a crash
        logging.getLogger("pg_mcp.db.audit").warning(
            "cannot write the audit log %s: %s", settings.audit_log, exc
        )
