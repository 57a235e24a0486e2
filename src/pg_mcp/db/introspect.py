"""Catalog introspection: one database -> ``DatabaseSchema`` (the only I/O of the reference part).

Two SQL statements per database read every catalog the model needs, each returning
one JSON document (the server does the aggregation; one round trip each): database,
schemas, relations, columns, constraints, indexes, enums, domains, sequences,
functions, extensions and the ``pg_stats`` of analysed tables, one after the other on
one psycopg connection (read-only, with a statement timeout). Tables never analysed get
a second, bounded pass (exact count when small, and a DISTINCT over their first rows for
sample values), one statement per table; then the data pass (``pg_mcp.db.inference``)
infers undeclared relationships within a time budget.

Objects that belong to extensions (``pg_depend.deptype = 'e'``) and system schemas
are skipped; the access policy removes denied schemas, tables and columns entirely
(and what would reveal them: foreign keys to them, indexes and checks on denied
columns, sequences they own, view definitions naming them). Denied or
sensitive-looking columns are never sampled: the policy's globs become regular
expressions in the statement, so their values do not even leave the server.

``start()`` runs all of it on a worker thread (psycopg releases the GIL while it waits
for the server), so a caller can render one database while the next is introspected.

This module holds that entry point, the thread and the connection; the statements are in
``pg_mcp.db.catalog_sql``, the catalog document becomes the model in ``pg_mcp.db.build``,
and the second pass and the data pass's inputs are planned in ``pg_mcp.db.second_pass``.
The names callers import from here (``catalog_sql``, ``glob_regex``, ``WITHHELD_DEFINITION``,
...) are re-exported from where they live.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from typing import Any

import psycopg

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.model import DatabaseSchema
from pg_mcp.core.settings import Settings
from pg_mcp.db.build import WITHHELD_DEFINITION, Builder, build
from pg_mcp.db.catalog_sql import (
    LOW_CARDINALITY,
    SCAN_ROWS,
    SENSITIVE,
    catalog_sql,
    glob_regex,
)
from pg_mcp.db.pools import utility_transaction
from pg_mcp.db.second_pass import SAMPLE_MAX_CHARS, apply_second_pass, profile_inputs

__all__ = [
    "LOW_CARDINALITY",
    "SAMPLE_MAX_CHARS",
    "SCAN_ROWS",
    "SENSITIVE",
    "WITHHELD_DEFINITION",
    "Introspection",
    "apply_second_pass",
    "build",
    "catalog_sql",
    "glob_regex",
    "introspect",
    "profile_inputs",
    "start",
]

# --- public API ------------------------------------------------------------------------------


def introspect(dsn: str, name: str, settings: Settings) -> DatabaseSchema:
    """Introspect one database (``dsn`` points at it) into a ``DatabaseSchema``."""
    return start(dsn, name, settings).result()


def start(dsn: str, name: str, settings: Settings) -> Introspection:
    """Send the catalog query now; ``.result()`` waits for it and builds the model."""
    return Introspection(dsn, name, settings)


class Introspection:
    """One database's introspection in flight, on its own thread (``result()`` waits)."""

    def __init__(self, dsn: str, name: str, settings: Settings) -> None:
        self.dsn, self.name, self.settings = dsn, name, settings
        self._cancelled = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._outcome: DatabaseSchema | BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=f"introspect {name}", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            self._outcome = self._introspect()
        except BaseException as exc:  # re-raised by result() on the caller's thread
            self._outcome = exc
        finally:
            self._conn = None

    def _introspect(self) -> DatabaseSchema:
        conn = _connect(self.dsn, self.name, self.settings)
        self._conn = conn
        with conn:
            data: dict[str, Any] = {}
            for text in _run_all(conn, catalog_sql(self.settings), self, strict=True):
                if not text:
                    raise PgMcpError("DB_ERROR", f"introspection of {self.name!r} returned nothing")
                data.update(json.loads(text))
            b = Builder(self.name, data, self.settings)
            db, plan = build(self.name, data, self.settings, builder=b)
            if plan:
                outputs = _run_all(conn, [s for s, _ in plan], self, strict=False)
                apply_second_pass(plan, outputs, self.settings)
            if not self._cancelled.is_set() and self.settings.data_budget > 0:
                from pg_mcp.db.inference import data_pass

                inputs = profile_inputs(b.rels, data.get("profile_stats") or [])
                data_pass(
                    conn,
                    db,
                    self.settings,
                    profiles=inputs,
                    connect=lambda: _connect(self.dsn, self.name, self.settings),
                )
        return db

    def cancel(self) -> None:
        """Stop what is still running (the result is no longer wanted)."""
        self._cancelled.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                conn.cancel_safe(timeout=2.0)
        self._thread.join(timeout=5.0)

    def result(self) -> DatabaseSchema:
        self._thread.join()
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome


# --- the connection ------------------------------------------------------------------------


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            return re.sub(r"^(\S+:\d+: )?(error: |ERROR:  )?", "", line)
    return ""


def _fail(name: str, message: str, settings: Settings, *, connect: bool) -> PgMcpError:
    from pg_mcp.core.secrets import Redactor

    redact = Redactor(settings.secrets())
    if connect and "does not exist" in message and "database" in message:
        return PgMcpError("UNKNOWN_DATABASE", redact(f"no database named {name!r}: {message}"))
    if connect:
        return PgMcpError(
            "CONNECTION_ERROR", redact(f"cannot connect to database {name!r}: {message}")
        )
    return PgMcpError("DB_ERROR", redact(f"introspection of {name!r} failed: {message}"))


def _connect(dsn: str, name: str, settings: Settings) -> psycopg.Connection[Any]:
    """A connection that carries no session state of ours (PgBouncer in transaction mode may
    hand every transaction to another server connection): each statement runs in a read-only,
    rolled-back transaction of its own with its limits set locally (``utility_transaction``)."""
    try:
        conn = psycopg.connect(
            dsn,
            autocommit=True,
            prepare_threshold=None,  # no server-side prepared statements (PgBouncer)
            connect_timeout=max(1, int(settings.connect_timeout)),
            application_name="pg-mcp introspect",
            client_encoding="UTF8",
        )
    except psycopg.OperationalError as exc:
        raise _fail(name, _first_line(str(exc)), settings, connect=True) from None
    return conn


def _run_all(
    conn: psycopg.Connection[Any], statements: list[str], job: Introspection, *, strict: bool
) -> list[str | None]:
    """The single-row, single-column result of each statement (None when it failed)."""
    results: list[str | None] = []
    for stmt in statements:
        if job._cancelled.is_set():
            raise PgMcpError("DB_ERROR", f"introspection of {job.name!r} was cancelled")
        try:
            with utility_transaction(conn, job.settings):
                rows = conn.execute(stmt).fetchall()  # type: ignore[arg-type]
        except psycopg.Error as exc:
            if strict:
                raise _fail(job.name, _first_line(str(exc)), job.settings, connect=False) from None
            results.append(None)
            continue
        results.append(rows[0][0] if rows else None)
    return results
