"""Connection pools for run_readonly: one psycopg_pool.ConnectionPool per database.

A connection carries no state of pg-mcp's between uses: no startup ``options`` (PgBouncer's
default configuration refuses that parameter) and no session settings. Everything a statement
needs (read only, the timeouts, IntervalStyle, cursor_tuple_fraction, the search_path) is set
inside its own transaction (``BEGIN READ ONLY`` then ``set_config(..., true)``, i.e. ``SET
LOCAL``), and every transaction is rolled back, so nothing reaches the next use, on this
client or (behind a PgBouncer in transaction mode) on any other. Connections get TCP
keepalives and ``tcp_user_timeout`` (a dead peer is noticed by the kernel, not never),
``prepare_threshold=None`` (no protocol-level prepared statements: PgBouncer before 1.21 does
not track them across server connections) and the JSON-safe loaders of pg_mcp.core.values.

A ``Pools`` object owns everything that outlives one call: the pools, the per-database type
names and role checks, the health bookkeeping of its connections and the watchdog thread.
Thread-safe; a context manager.
"""

from __future__ import annotations

import select
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.settings import Settings
from pg_mcp.db.watchdog import Deadlines

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from pg_mcp.db.checker import Checker

CHECK_SKIP_SECONDS = 2.0  # a connection that worked this recently (quiet socket) is not pinged
MAX_TIMEOUT = 2_000_000  # seconds: statement_timeout holds at most 2**31 - 1 ms (~24.8 days)
_MAX_MS = 2**31 - 1  # the largest value a millisecond setting takes

# The planner's estimate of the fraction of a cursor's rows that will be fetched. PostgreSQL's
# default (0.1) favours fast-start plans, and multiplies with the query's own LIMIT: a
# "LIMIT 10" query planned for its first row can walk a whole index instead of using a
# selective one. run_readonly fetches the whole result up to the cap, so its cursors are
# planned like the plain query (as psql and the EXPLAIN guard see it).
CURSOR_TUPLE_FRACTION = "1"


# The search_path the session started with (the server's, database's and role's defaults),
# whatever a session-level SET on this server connection made of it (behind PgBouncer in
# transaction mode, another client's): ``SET ... TO DEFAULT`` is the reset value.
SEARCH_PATH_SQL = "SET LOCAL search_path TO DEFAULT"


def ms(seconds: float) -> int:
    return 0 if seconds <= 0 else max(1, round(seconds * 1000))


def statement_settings(
    seconds: float, lock_timeout: float, idle_timeout: float
) -> tuple[tuple[str, str], ...]:
    """The settings every statement runs with, as (name, value) pairs (timeouts in seconds)."""
    return (
        ("statement_timeout", str(ms(seconds))),
        ("lock_timeout", str(ms(lock_timeout))),
        ("idle_in_transaction_session_timeout", str(ms(idle_timeout))),
        ("IntervalStyle", "postgres"),
        ("cursor_tuple_fraction", CURSOR_TUPLE_FRACTION),
    )


def connect_kwargs(settings: Settings) -> dict[str, Any]:
    """libpq connection parameters of every pg-mcp connection: timeouts, TCP keepalives and
    tcp_user_timeout (ignored by libpq on Unix sockets), the application name. No ``options``:
    PgBouncer refuses that startup parameter unless told to ignore it."""
    kwargs: dict[str, Any] = {
        "connect_timeout": max(2, round(settings.connect_timeout)),
        "application_name": "pg-mcp",
        "keepalives": 1,
        "keepalives_idle": max(1, round(settings.tcp_keepalives_idle)),
        "keepalives_interval": max(1, round(settings.tcp_keepalives_interval)),
        "keepalives_count": max(1, settings.tcp_keepalives_count),
        "tcp_user_timeout": ms(settings.tcp_user_timeout),
    }
    return kwargs


def utility_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection parameters for pg-mcp's own short catalog queries (discovery, doctor,
    introspection): autocommit, keepalives, no prepared statements. Each use runs in a
    ``utility_transaction`` (read only, with a statement timeout)."""
    return {"autocommit": True, "prepare_threshold": None} | connect_kwargs(settings)


def utility_timeouts(settings: Settings) -> tuple[tuple[str, str], ...]:
    """The settings of pg-mcp's own catalog queries: a statement timeout of at least 30 s and
    the lock timeout."""
    return (
        ("statement_timeout", str(min(_MAX_MS, ms(max(settings.statement_timeout, 30.0))))),
        ("lock_timeout", str(min(_MAX_MS, ms(settings.lock_timeout)))),
    )


@contextmanager
def utility_transaction(
    conn: psycopg.Connection[Any], settings: Settings
) -> Iterator[psycopg.Connection[Any]]:
    """A read-only transaction, always rolled back, with the utility timeouts set locally and
    the session's default search_path: what every catalog query of pg-mcp runs in (``conn``
    from ``utility_kwargs``)."""
    conn.read_only = True  # psycopg's public API: transaction() blocks start BEGIN READ ONLY
    with conn.transaction(force_rollback=True):
        with conn.pipeline():
            conn.execute(local_settings_sql(utility_timeouts(settings)))
            conn.execute(SEARCH_PATH_SQL)
        yield conn


def local_settings_sql(pairs: Sequence[tuple[str, str]]) -> str:
    """One statement setting ``pairs`` for the current transaction only (``set_config(name,
    value, true)`` is ``SET LOCAL``); names and values are pg-mcp's own (digits, words)."""
    return "SELECT " + ", ".join(f"set_config('{name}', '{value}', true)" for name, value in pairs)


class Pools:
    """One psycopg pool per database, created lazily; thread-safe; a context manager."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        checker: Checker | None = None,
    ) -> None:
        from pg_mcp.core.settings import load_settings

        self.settings = settings if settings is not None else load_settings()
        self.clock = clock  # for the health bookkeeping (tests pass a fake one)
        self._checker = checker  # validates what run_readonly runs (verdict and schema caches)
        self.deadlines = Deadlines()  # the watchdogs of every statement run through these pools
        self._lock = threading.Lock()
        self._resolve_lock = threading.Lock()
        self._pools: dict[str, ConnectionPool] = {}
        self._types: dict[str, dict[int, tuple[str, str | None]]] = {}
        self._known: set[str] = set()
        self._role_checked: set[str] = set()  # databases whose query role passed check_role
        self._default: str | None = None
        self._server_dsn: str | None = None
        self._closed = False
        # connection -> monotonic time of its last successful round trip (health bookkeeping)
        self._ok_at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    @property
    def checker(self) -> Checker:
        """The Checker that validates queries run through these pools (made on first use)."""
        if self._checker is None:
            from pg_mcp.db.checker import Checker

            self._checker = Checker(self.settings)
        return self._checker

    @property
    def server_dsn(self) -> str:
        if self._server_dsn is None:
            from pg_mcp.db.discovery import query_dsn

            self._server_dsn = query_dsn(self.settings)
        return self._server_dsn

    def _resolved(self, database: str | None) -> str | None:
        with self._lock:
            if database is None and self._default is not None:
                return self._default
            if database is not None and database in self._known:
                return database
        return None

    def resolve(self, database: str | None) -> str:
        """A reachable database name (the only one when ``None``), else PgMcpError."""
        known = self._resolved(database)
        if known is not None:
            return known
        from pg_mcp.db.discovery import resolve_database

        # One discovery at a time: a burst of first calls makes one connection, not one each.
        with self._resolve_lock:
            known = self._resolved(database)
            if known is not None:
                return known
            name = resolve_database(self.settings, database, dsn=self.server_dsn)
            with self._lock:
                self._known.add(name)
                if database is None:
                    self._default = name
        return name

    def get(self, database: str) -> ConnectionPool:
        """The pool for a database (resolved and opened on first use)."""
        with self._lock:
            pool = self._pools.get(database)
        if pool is not None:
            return pool
        name = self.resolve(database)
        with self._lock:
            if self._closed:
                raise PgMcpError("CONNECTION_ERROR", "the connection pools are closed")
            pool = self._pools.get(name)
            if pool is None:
                pool = self._new_pool(name)
                self._pools[name] = pool
        return pool

    def _new_pool(self, database: str) -> ConnectionPool:
        from psycopg_pool import ConnectionPool

        from pg_mcp.db.discovery import database_dsn

        s = self.settings
        dsn = database_dsn(self.server_dsn, database)
        pool: ConnectionPool = ConnectionPool(
            dsn,
            # prepare_threshold=None: psycopg never prepares a statement on the server (it
            # would after 5 executions), so a PgBouncer in transaction mode, which moves a
            # client between server connections, never meets "prepared statement does not exist"
            kwargs={"autocommit": True, "prepare_threshold": None} | connect_kwargs(s),
            min_size=max(0, s.pool_min_size),
            max_size=max(1, s.pool_max_size),
            open=False,
            configure=partial(_configure, ok_at=self._ok_at, clock=self.clock),
            # no ``check=``: checkout() health-checks (and skips the check for a connection that
            # answered moments ago); the executor rolls back every transaction before returning it
            name=f"pg-mcp:{database}",
            timeout=s.connect_timeout + s.statement_timeout,
            reconnect_timeout=max(10.0, 2 * s.connect_timeout),
            num_workers=2,
        )
        pool.open()
        return pool

    # --- health -----------------------------------------------------------------------------
    def answered(self, conn: psycopg.Connection[Any]) -> None:
        """Record a successful round trip on ``conn``."""
        self._ok_at[conn] = self.clock()

    def checkout(self, database: str, wait: float) -> tuple[psycopg.Connection[Any], bool]:
        """A pooled connection of ``database`` and whether it was health-checked now.

        The check (an empty query) is skipped when the connection answered less than
        CHECK_SKIP_SECONDS ago and nothing waits on its socket (a terminated backend or a
        stopped server leaves its last message or EOF there). At the first dead connection
        every idle one is presumed dead too (a server restart): the pool is drained, and a
        fresh connection is made at once, or CONNECTION_ERROR when the server does not answer.
        The caller gives the connection back with ``pool.putconn``.
        """
        import psycopg

        pool = self.get(database)
        conn = pool.getconn(timeout=wait)
        at = self._ok_at.get(conn, 0.0)
        if self.clock() - at < CHECK_SKIP_SECONDS and quiet_socket(conn):
            return conn, False
        try:
            conn.execute("")
        except psycopg.OperationalError:
            conn.close()  # the pool discards it
            pool.putconn(conn)
        except BaseException:
            pool.putconn(conn)
            raise
        else:
            self.answered(conn)
            return conn, True
        pool.drain()
        if not self.server_answers(database):
            raise ServerDown
        conn = pool.getconn(timeout=wait)
        self.answered(conn)
        return conn, True

    def server_answers(self, database: str) -> bool:
        """Can a new connection to ``database`` be made now? (Tells "server down" from "pool
        busy".)"""
        import psycopg

        from pg_mcp.db.discovery import database_dsn

        kwargs = connect_kwargs(self.settings) | {"application_name": "pg-mcp-probe"}
        try:
            with psycopg.connect(database_dsn(self.server_dsn, database), **kwargs):
                return True
        except psycopg.Error:
            return False

    def check_role(self, database: str, conn: psycopg.Connection[Any]) -> None:
        """Refuse (PRIVILEGED_ROLE) to run queries on ``database`` as a privileged role, once per
        pool: see pg_mcp.db.executor.check_role."""
        with self._lock:
            if database in self._role_checked:
                return
        from pg_mcp.db.executor import check_role

        check_role(conn, self.settings)
        with self._lock:
            self._role_checked.add(database)

    def forget(self, database: str) -> None:
        """Close and drop a database's pool (after it stopped answering)."""
        with self._lock:
            pool = self._pools.pop(database, None)
            self._known.discard(database)
            self._role_checked.discard(database)
            self._types.pop(database, None)
            if self._default == database:
                self._default = None
        if pool is not None:
            pool.close(timeout=1.0)

    def type_names(self, database: str) -> dict[int, tuple[str, str | None]]:
        """Per-database cache: type OID -> (``format_type`` name, array element delimiter)."""
        with self._lock:
            return self._types.setdefault(database, {})

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
            self._closed = True
        for pool in pools:
            pool.close(timeout=5.0)
        self.deadlines.close()

    def __enter__(self) -> Pools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ServerDown(Exception):
    """A pooled connection was dead and a new one cannot be made."""


def _configure(conn: psycopg.Connection[Any], *, ok_at: Any, clock: Callable[[], float]) -> None:
    from pg_mcp.db.loaders import register_loaders

    register_loaders(conn)
    ok_at[conn] = clock()  # just connected


def quiet_socket(conn: psycopg.Connection[Any]) -> bool:
    """Nothing to read on an idle connection's socket (public ``conn.fileno()``)."""
    try:
        fd = conn.fileno()
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return not poller.poll(0)
        readable, _, broken = select.select([fd], [], [fd], 0)
        return not (readable or broken)
    except Exception:
        return False
