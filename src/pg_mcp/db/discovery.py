"""Which server, which databases: the DSN the settings point at, and what it holds."""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.secrets import Redactor
from pg_mcp.core.settings import Settings


def server_dsn(settings: Settings) -> str:
    """DSN of the configured server: PG_MCP_DSN, else the embedded one (started on demand),
    as its least-privilege ``pgmcp_reader`` role."""
    if settings.dsn:
        return settings.dsn
    from pg_mcp.db import embedded

    return embedded.reader_dsn(settings.home)


def query_dsn(settings: Settings) -> str:
    """DSN of the server run_readonly's queries run on: ``query_dsn`` (PG_MCP_QUERY_DSN, e.g. a
    hot standby), else the main one."""
    return settings.query_dsn or server_dsn(settings)


def introspection_dsn(settings: Settings) -> str:
    """DSN of the server schema introspection reads (the schema cache, references):
    ``introspection_dsn`` (PG_MCP_INTROSPECTION_DSN), else the main one."""
    return settings.introspection_dsn or server_dsn(settings)


def admin_dsn(settings: Settings) -> str:
    """DSN for loading fixtures and sample databases (they create databases): PG_MCP_DSN, else
    the embedded server's superuser. Never used to run a query pg-mcp was asked to run."""
    if settings.dsn:
        return settings.dsn
    from pg_mcp.db import embedded

    return embedded.ensure_running(settings.home)


def database_dsn(dsn: str, dbname: str) -> str:
    """The same server DSN pointed at another database."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        from urllib.parse import parse_qsl, quote

        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "dbname"]
        return urlunsplit(
            (
                parts.scheme,
                parts.netloc,
                "/" + quote(dbname, safe=""),
                urlencode(query),
                parts.fragment,
            )
        )
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, dbname=dbname)


@dataclass(frozen=True)
class DatabaseInfo:
    name: str
    size_bytes: int
    comment: str | None


def _selected(name: str, settings: Settings) -> bool:
    if settings.include and not any(fnmatch.fnmatchcase(name, p) for p in settings.include):
        return False
    return not any(fnmatch.fnmatchcase(name, p) for p in settings.exclude)


_LIST_SQL = """
SELECT d.datname, pg_database_size(d.oid), shobj_description(d.oid, 'pg_database')
FROM pg_database d
WHERE d.datallowconn AND NOT d.datistemplate
  AND has_database_privilege(d.datname, 'CONNECT')
ORDER BY d.datname
"""


def list_databases(settings: Settings, dsn: str | None = None) -> list[DatabaseInfo]:
    """Databases the configured role can connect to (no templates), filtered by config."""
    import psycopg

    from pg_mcp.db.pools import utility_kwargs, utility_transaction

    dsn = dsn or server_dsn(settings)
    redact = Redactor(settings.secrets())
    try:
        with psycopg.connect(dsn, **utility_kwargs(settings)) as conn:
            refuse_admin_console(conn)
            for attempt in range(3):
                try:
                    with utility_transaction(conn, settings):
                        rows = conn.execute(_LIST_SQL).fetchall()
                    break
                except psycopg.errors.UndefinedObject:  # a database dropped mid-query: list again
                    if attempt == 2:
                        raise
    except psycopg.OperationalError as exc:
        raise PgMcpError(
            "CONNECTION_ERROR",
            redact(f"cannot connect to the server: {str(exc).strip().splitlines()[0]}"),
            hint="check PG_MCP_DSN (or unset it to use the embedded server)",
        ) from None
    return [DatabaseInfo(n, int(s or 0), c) for n, s, c in rows if _selected(n, settings)]


def refuse_admin_console(conn: Any) -> None:
    """CONFIG_ERROR when ``conn`` reached PgBouncer's admin console (its virtual database
    ``pgbouncer``, which answers SHOW commands and no SQL) instead of a database."""
    version = conn.info.parameter_status("server_version") or ""
    if version.endswith("/bouncer"):
        raise PgMcpError(
            "CONFIG_ERROR",
            "the DSN points at PgBouncer's admin console (database pgbouncer), not at a database",
            hint="point PG_MCP_DSN at a database PgBouncer pools (e.g. dbname=postgres)",
        )


def resolve_database(settings: Settings, name: str | None, dsn: str | None = None) -> str:
    """Validate a database name against the reachable ones; pick the only one when omitted."""
    return pick_database([d.name for d in list_databases(settings, dsn)], name)


def pick_database(names: list[str], name: str | None, *, how: str = "name one") -> str:
    """``name`` if it is among ``names``, the only one when omitted, else a PgMcpError
    (``how`` says how to name a database, in the caller's terms)."""
    if name is None:
        if len(names) == 1:
            return names[0]
        raise PgMcpError(
            "DATABASE_REQUIRED",
            f"{len(names)} databases are reachable; {how}",
            hint=("reachable: " + ", ".join(names[:20])) if names else "no database is reachable",
        )
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, names, n=3)
        raise PgMcpError(
            "UNKNOWN_DATABASE",
            f"no reachable database named {name!r}",
            hint=("did you mean " + ", ".join(close) + "?")
            if close
            else "reachable: " + ", ".join(names[:20]),
        )
    return name


class Discovery:
    """The one database resolution: which databases are reachable, discovered once and kept,
    listed again on ``refresh`` or when a name is not known yet. The MCP server's state owns
    one and hands it to ``ask`` (``Asker(discovery=...)``); a standalone Asker makes its own.
    Thread-safe: concurrent first calls share one discovery (one connection)."""

    def __init__(
        self,
        settings: Settings,
        *,
        dsn: str | None = None,
        before: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.dsn = dsn
        self._before = before  # e.g. the server's "make sure the embedded PostgreSQL is up"
        self._databases: list[DatabaseInfo] | None = None
        self._lock = threading.Lock()

    def databases(self, refresh: bool = False) -> list[DatabaseInfo]:
        """The reachable databases (name, size, comment), from the last discovery unless
        ``refresh`` (or none was made yet)."""
        known = self._databases
        if known is not None and not refresh:
            return known
        with self._lock:
            if self._databases is None or refresh:
                if self._before is not None:
                    self._before()
                self._databases = list_databases(self.settings, self.dsn)
            return self._databases

    def names(self, refresh: bool = False) -> list[str]:
        return [d.name for d in self.databases(refresh)]

    def resolve(self, name: str | None, *, how: str = "name one") -> str:
        """``name`` if reachable (listed again once when it is not known yet: created since?),
        the only database when ``None``; else DATABASE_REQUIRED / UNKNOWN_DATABASE."""
        names = self.names()
        if name is not None and name not in names:
            names = self.names(refresh=True)
        return pick_database(names, name, how=how)
