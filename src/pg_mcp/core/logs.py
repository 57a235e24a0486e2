"""Structured logs: one JSON object per line on stderr, secrets scrubbed.

Every line carries ``ts`` (UTC, ISO 8601), ``level``, ``event`` and ``logger``, then the
fields bound to the current context (``request_id``, ``tool``, ``database`` while a tool
call runs) and the ones passed to :func:`log_event` (``outcome``, ``elapsed_ms``, ``code``,
...). Every string value goes through a :class:`~pg_mcp.core.secrets.Redactor` built from the
settings' secrets, so a DSN password or an API key never reaches the log.

Logs never go to stdout: under the stdio transport stdout is the protocol channel.
The level of pg-mcp's own loggers comes from ``PG_MCP_LOG_LEVEL`` (default ``INFO``);
third-party loggers (the MCP SDK, uvicorn, psycopg) log warnings and above.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from pg_mcp.core.secrets import Redactor

_BOUND: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "pg_mcp_log_fields", default=None
)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Attach fields (request_id, tool, database, ...) to every log line in this context."""
    token = _BOUND.set(
        {**(_BOUND.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    )
    try:
        yield
    finally:
        _BOUND.reset(token)


def bound(name: str) -> Any:
    """A field bound by :func:`bind` in the current context (None when unbound)."""
    return (_BOUND.get() or {}).get(name)


def log_event(
    logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any
) -> None:
    """Log one structured event; ``fields`` become top-level JSON keys (None values dropped)."""
    if logger.isEnabledFor(level):
        merged = {**(_BOUND.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
        logger.log(level, event, extra={"pg_mcp_fields": merged})


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line, every string scrubbed by the redactor."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redactor or Redactor()

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {str(k): self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return [self._scrub(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.redact(str(value))

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        out: dict[str, Any] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
        }
        out.update(_BOUND.get() or {})
        out.update(getattr(record, "pg_mcp_fields", None) or {})
        for key, value in vars(record).items():  # plain `extra=` keys
            if key not in _STANDARD and key != "pg_mcp_fields" and key not in out:
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(self._scrub(out), ensure_ascii=False, default=str)


def setup_logging(
    secrets: list[str] | None = None, *, level: str | None = None, stream: TextIO | None = None
) -> Redactor:
    """Route every log record to ``stream`` (stderr) as JSON lines; return the redactor used."""
    redactor = Redactor(secrets or [])
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    name = (level or os.environ.get("PG_MCP_LOG_LEVEL") or "INFO").upper()
    logging.getLogger("pg_mcp").setLevel(getattr(logging, name, logging.INFO))
    logging.captureWarnings(True)
    return redactor
