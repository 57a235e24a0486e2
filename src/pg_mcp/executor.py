"""run_readonly: validate, then execute one query so that nothing can change.

The only place in pg-mcp that runs model or user SQL. Every layer below holds on its own,
even when validation is bypassed (``validate=False``):

1. Connections open with ``default_transaction_read_only=on`` and run each statement in an
   explicit ``BEGIN READ ONLY`` transaction that is always rolled back, with
   statement_timeout, lock_timeout and idle_in_transaction_session_timeout (and IntervalStyle
   ``postgres``, which pg_mcp.jsonsafe turns into exact ISO 8601 durations) in force before
   the statement is even parsed: the connection's own settings, or ``set_config(..., true)``
   (``SET LOCAL``) right after BEGIN when a call wants other values.
2. Every statement is sent over the **extended** query protocol (libpq ``PQsendQueryParams``,
   one statement per message), the user's wrapped in a server-side cursor:
   ``DECLARE "pg_mcp_cursor" CURSOR FOR <sql>``. The extended protocol parses exactly one
   statement ("cannot insert multiple commands into a prepared statement"), so ``COMMIT; DROP
   ...`` never runs, and ``DECLARE ... CURSOR FOR`` only accepts a query (SELECT, VALUES, TABLE,
   WITH), so a bare INSERT/UPDATE/DELETE/DDL/utility statement is refused by the server's
   grammar (reported as READ_ONLY_VIOLATION, like writes the read-only transaction stops:
   nextval, writing functions). ``EXPLAIN`` (which cannot be a cursor) is sent the same way.
3. Rows are fetched from the cursor in chunks, at most ``max_rows + 1`` (so ``truncated`` is
   known) and within a byte budget on the serialised rows: memory does not grow with the table.
4. An optional EXPLAIN guard refuses before fetching when the planner's estimate is too big.
5. A client-side watchdog cancels the statement on the server (``cancel_safe``) if the server
   has not stopped it shortly after the statement timeout; such a connection is discarded.
6. Pooled connections are health-checked on checkout and reset with ``ROLLBACK`` + ``DISCARD
   ALL`` before they go back to the pool, so session state (settings, advisory locks, prepared
   statements) never reaches the next use.

Round trips (what a call costs beyond the query itself): the statements above go out in libpq
pipeline mode, usually all in ONE round trip and one write: BEGIN, DECLARE, FETCH, ROLLBACK,
DISCARD ALL, Sync. The server skips everything after a failed statement until the Sync, so the
query never runs without its transaction and timeouts; after a failure the skipped ROLLBACK and
DISCARD ALL go out in a round trip of their own (a Sync between FETCH and ROLLBACK would spare
it, but libpq flushes at every Sync: two writes, two wake-ups of the server, on every call).
The settings (timeouts, IntervalStyle, cursor_tuple_fraction) are the connection's own: it is
opened with them (``-c name=value``) and DISCARD ALL restores them after every use, so only a
call that wants other values (another timeout, say) adds a ``set_config(..., true)`` statement
after BEGIN. The EXPLAIN guard adds a round trip (the plan is needed before the
FETCH runs the query), and so does each further chunk of a fetch above FETCH_CHUNK rows. The
checkout health check (an empty query) is skipped for a connection that answered less than
CHECK_SKIP_SECONDS ago and whose socket is quiet (a terminated backend or a stopped server
leaves a message or EOF there); if such a connection proves dead before the server answered
anything, the statement runs once more on a fresh connection (it never started).

Failures are returned (``RunResult(ok=False, code=...)``), never raised.
"""

from __future__ import annotations

import math
import re
import select
import threading
import time
import weakref
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

from pg_mcp import audit
from pg_mcp.errors import PgMcpError
from pg_mcp.secrets import Redactor
from pg_mcp.settings import Settings

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

CURSOR_NAME = "pg_mcp_cursor"
# what psycopg puts in front of the SQL (used to map error positions back to the user's text)
DECLARE_PREFIX = f'DECLARE "{CURSOR_NAME}" CURSOR FOR '
EXPLAIN_PREFIX = "EXPLAIN (FORMAT JSON) "
FETCH_CHUNK = 1000
WATCHDOG_GRACE = 2.0  # seconds past the statement timeout before the client cancels itself
MAX_TIMEOUT = 2_000_000  # seconds: statement_timeout holds at most 2**31 - 1 ms (~24.8 days)

# Statement keywords that are not queries: when DECLARE's grammar refuses one of them we know the
# statement tried to write, change the session or run a utility command.
# fmt: off
_NON_QUERY = frozenset((
    "INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "COPY", "CREATE", "ALTER", "DROP",
    "GRANT", "REVOKE", "COMMENT", "SECURITY", "VACUUM", "ANALYZE", "ANALYSE", "CLUSTER",
    "REINDEX", "REFRESH", "DO", "CALL", "BEGIN", "START", "COMMIT", "END", "ROLLBACK",
    "ABORT", "SAVEPOINT", "RELEASE", "PREPARE", "EXECUTE", "DEALLOCATE", "DISCARD", "DECLARE",
    "FETCH", "MOVE", "CLOSE", "LOCK", "LOAD", "CHECKPOINT", "SET", "RESET", "SHOW", "LISTEN",
    "UNLISTEN", "NOTIFY", "REASSIGN", "IMPORT", "INTO",
))
# fmt: on


@dataclass
class RunResult:
    """What run_readonly returns; ``to_dict()`` is the wire form (CLI --json, MCP)."""

    ok: bool
    database: str | None = None
    columns: list[dict[str, str]] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    row_count: int = 0
    truncated: bool = False
    truncated_reason: str | None = None  # "max_rows" or "max_bytes"
    elapsed_ms: float = 0.0
    code: str | None = None
    message: str = ""
    hint: str | None = None
    sqlstate: str | None = None
    position: int | None = None  # 1-based character offset in the SQL, as PostgreSQL counts
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failure(cls, exc: PgMcpError, database: str | None = None) -> RunResult:
        details = dict(exc.details)
        sqlstate = details.pop("sqlstate", None)
        return cls(
            ok=False,
            database=database,
            code=exc.code,
            message=exc.message,
            hint=exc.hint,
            position=exc.position,
            sqlstate=sqlstate,
            details=details,
        )

    def to_dict(self) -> dict[str, Any]:
        if self.ok:
            out: dict[str, Any] = {
                "ok": True,
                "columns": self.columns,
                "rows": self.rows,
                "row_count": self.row_count,
                "truncated": self.truncated,
            }
            if self.truncated_reason:
                out["truncated_reason"] = self.truncated_reason
        else:
            out = {"ok": False, "code": self.code, "message": self.message}
            for key in ("hint", "position", "sqlstate"):
                if getattr(self, key) is not None:
                    out[key] = getattr(self, key)
            out.update(self.details)
        out["elapsed_ms"] = round(self.elapsed_ms, 3)
        out["database"] = self.database
        return out


# --- pools ---------------------------------------------------------------------------------

CHECK_SKIP_SECONDS = 2.0  # a connection that worked this recently (quiet socket) is not pinged


@dataclass(eq=False)
class _ConnState:
    """What pg-mcp knows about one pooled connection (see ``_ping``, ``_reset``, ``_rows``)."""

    ok_at: float = 0.0  # monotonic time of the last round trip that succeeded on it
    clean: bool = False  # run_readonly already sent ROLLBACK + DISCARD ALL after its statement
    unchecked: bool = False  # this checkout's health check was skipped (``_ping``)
    # the settings the connection was opened with (``-c name=value``): every transaction starts
    # with them, DISCARD ALL restores them, so a statement needs to set only the others
    session: frozenset[tuple[str, str]] = frozenset()
    tx: Any = None  # the psycopg Transformer that loads this connection's results (reused)
    tolerant: Any = None  # loaders that keep dates Python cannot hold as text (``_rows``)
    safe_oids: frozenset[int] = frozenset()  # types loaded JSON-safe (jsonsafe.JSON_SAFE_OIDS)
    text_oids: dict[int, Callable[[str], Any]] = field(default_factory=dict)  # TEXT_CONVERTERS
    shapes: dict[tuple[Any, ...], _Shape] = field(default_factory=dict)  # ``_shape``
    encoding: str = ""  # the connection's client encoding (DISCARD ALL restores it)
    poller: Any = None  # a select.poll registered for the connection's socket (``_quiet``)


_STATES: weakref.WeakKeyDictionary[Any, _ConnState] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state(conn: psycopg.Connection[Any]) -> _ConnState:
    state = _STATES.get(conn)
    if state is None:
        with _STATES_LOCK:
            state = _STATES.setdefault(conn, _ConnState())
    return state


def _configure(
    conn: psycopg.Connection[Any], session: frozenset[tuple[str, str]] = frozenset()
) -> None:
    from pg_mcp.jsonsafe import JSON_SAFE_OIDS, TEXT_CONVERTERS, register_loaders

    register_loaders(conn, tolerant=False)  # psycopg's C date loaders; ``_rows`` falls back
    state = _state(conn)
    state.session = session
    state.safe_oids = JSON_SAFE_OIDS
    state.text_oids = TEXT_CONVERTERS
    state.encoding = conn.info.encoding
    state.ok_at = time.monotonic()  # just connected


def _quiet(conn: psycopg.Connection[Any]) -> bool:
    """Nothing to read on an idle connection's socket. A backend that was terminated, or a server
    that shut down or crashed, leaves its last error message or EOF there: the socket is readable."""
    try:
        if not hasattr(select, "poll"):
            return not _wait(conn.fileno(), timeout=0)
        state = _state(conn)
        if state.poller is None:
            state.poller = select.poll()
            state.poller.register(conn.fileno(), select.POLLIN)
        return not state.poller.poll(0)
    except Exception:
        return False


def _ping(conn: psycopg.Connection[Any]) -> None:
    """The health check on checkout: an empty query (raises when the connection is dead).

    Skipped when the connection worked less than CHECK_SKIP_SECONDS ago and its socket is quiet
    (``_quiet``): it is then marked ``unchecked``, and run_readonly retries once, on a fresh
    connection, if it proves dead before answering (a read-only statement can safely run again)."""
    state = _state(conn)
    state.clean = False
    if time.monotonic() - state.ok_at < CHECK_SKIP_SECONDS and _quiet(conn):
        state.unchecked = True
        return
    state.unchecked = False
    conn.execute("")
    state.ok_at = time.monotonic()


def _reset(conn: psycopg.Connection[Any]) -> None:
    """Reset a returned connection: ROLLBACK (if a transaction is open) and DISCARD ALL, in one
    round trip, unless run_readonly already sent both after its statement. A connection that
    cannot be reset is closed (the pool replaces it)."""
    state = _state(conn)
    if state.clean:
        state.clean = False
        return
    if conn.closed:
        return
    from psycopg.pq import TransactionStatus

    status = conn.pgconn.transaction_status
    try:
        if status == TransactionStatus.IDLE:
            results = _pipeline(conn, END_SQL[1:])
        elif status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            results = _pipeline(conn, END_SQL)  # DISCARD ALL after ROLLBACK ended ours
        else:
            results = []  # returned in the middle of an operation
        if not results or any(_error(conn, res) is not None for res in results):
            conn.close()
            return
        state.ok_at = time.monotonic()
    except Exception:
        conn.close()


_POOL_CLASS: list[type[ConnectionPool]] = []


def _pool_class() -> type[ConnectionPool]:
    """A ConnectionPool that resets connections in ``putconn`` itself (``_reset``): psycopg_pool
    would hand a ``reset`` callback to a worker thread, and the next checkout would wait for it."""
    if not _POOL_CLASS:
        from psycopg_pool import ConnectionPool

        class ResettingPool(ConnectionPool):
            def putconn(self, conn: psycopg.Connection[Any]) -> None:
                if not self.closed:
                    _reset(conn)
                super().putconn(conn)

        _POOL_CLASS.append(ResettingPool)
    return _POOL_CLASS[0]


class Pools:
    """One psycopg pool per database, created lazily; thread-safe; a context manager."""

    def __init__(self, settings: Settings | None = None) -> None:
        from pg_mcp.settings import load_settings

        self.settings = settings if settings is not None else load_settings()
        self._lock = threading.Lock()
        self._resolve_lock = threading.Lock()
        self._pools: dict[str, ConnectionPool] = {}
        self._types: dict[str, dict[int, tuple[str, str | None]]] = {}
        self._known: set[str] = set()
        self._role_checked: set[str] = set()  # databases whose query role passed check_role
        self._default: str | None = None
        self._server_dsn: str | None = None
        self._closed = False

    @property
    def server_dsn(self) -> str:
        if self._server_dsn is None:
            from pg_mcp.discovery import server_dsn

            self._server_dsn = server_dsn(self.settings)
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
        from pg_mcp.discovery import resolve_database

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
        from psycopg.conninfo import conninfo_to_dict

        from pg_mcp.discovery import database_dsn

        s = self.settings
        dsn = database_dsn(self.server_dsn, database)
        options = str(conninfo_to_dict(dsn).get("options") or "")
        session = session_settings(s)
        options += " -c default_transaction_read_only=on"
        options += "".join(f" -c {name}={value}" for name, value in session)
        pool: ConnectionPool = _pool_class()(
            dsn,
            kwargs={
                "autocommit": True,
                "prepare_threshold": None,
                "connect_timeout": max(2, round(s.connect_timeout)),
                "application_name": "pg-mcp",
                "options": options.strip(),
            },
            min_size=max(0, s.pool_min_size),
            max_size=max(1, s.pool_max_size),
            open=False,
            configure=partial(_configure, session=frozenset(session)),
            # no ``check=``: _checkout health-checks (the pool's own check backs off 1, 2, 4 s
            # between dead connections, which a server restart leaves in every idle slot);
            # no ``reset=``: ResettingPool.putconn resets (see _pool_class)
            name=f"pg-mcp:{database}",
            timeout=s.connect_timeout + s.statement_timeout,
            reconnect_timeout=max(10.0, 2 * s.connect_timeout),
            num_workers=2,
        )
        pool.open()
        return pool

    def check_role(self, database: str, conn: psycopg.Connection[Any]) -> None:
        """Refuse (PRIVILEGED_ROLE) to run queries on ``database`` as a privileged role, once per
        pool: the role queries run as (``policy.query_role``, else the login role) must not be a
        superuser nor a member of pg_read_server_files, pg_write_server_files or
        pg_execute_server_program, unless ``policy.allow_privileged_role``."""
        with self._lock:
            if database in self._role_checked:
                return
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

    def __enter__(self) -> Pools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


PRIVILEGED_MEMBERSHIPS = (
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
)
_ROLE_SQL = """
SELECT r.rolname::text, r.rolsuper,
       ARRAY(SELECT m FROM unnest(%s::text[]) m WHERE pg_has_role(r.oid, m, 'MEMBER')),
       pg_has_role(current_user, r.oid, 'MEMBER'), current_user::text
FROM pg_roles r WHERE r.rolname = coalesce(%s, current_user)
"""
READER_GRANTS = (
    "CREATE ROLE pgmcp_reader LOGIN PASSWORD '<choose-a-strong-password>' NOSUPERUSER;",
    "GRANT pg_read_all_data TO pgmcp_reader;  -- PostgreSQL 14+; `pg-mcp doctor` prints per-schema GRANTs",
)


def check_role(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """Raise PRIVILEGED_ROLE when queries would run as a privileged role (see Pools.check_role),
    CONFIG_ERROR when ``policy.query_role`` does not exist or the login role cannot assume it."""
    policy = settings.policy
    wanted = policy.query_role
    row = conn.execute(_ROLE_SQL, [list(PRIVILEGED_MEMBERSHIPS), wanted]).fetchone()
    if row is None:
        raise PgMcpError(
            "CONFIG_ERROR",
            f"policy.query_role {wanted!r} does not exist on the server",
            hint="create it (pg-mcp doctor prints the GRANTs) or unset query_role",
        )
    name, superuser, memberships, can_assume, login = row
    if wanted is not None and not can_assume:
        raise PgMcpError(
            "CONFIG_ERROR",
            f"the login role {login} is not a member of policy.query_role {wanted!r}",
            hint=f'GRANT "{wanted}" TO "{login}";',
        )
    if policy.allow_privileged_role or not (superuser or memberships):
        return
    what = "is a superuser" if superuser else "is a member of " + ", ".join(memberships)
    raise PgMcpError(
        "PRIVILEGED_ROLE",
        f"role {name} {what}: it could read or write server files or run programs, so pg-mcp "
        "runs no query with it",
        hint="connect as a least-privilege role (or set policy.query_role to one); "
        "`pg-mcp doctor` prints the GRANTs. To accept the risk: policy.allow_privileged_role = true",
        details={"role": name, "grant_sql": list(READER_GRANTS)},
    )


# --- run_readonly ----------------------------------------------------------------------------


def run_readonly(
    sql: str,
    database: str | None = None,
    *,
    settings: Settings | None = None,
    pools: Pools | None = None,
    max_rows: int | None = None,
    timeout: float | None = None,
    validate: bool = True,
) -> RunResult:
    """Validate (unless ``validate=False``) and run one read-only query; never raises PgMcpError."""
    started = time.perf_counter()
    if settings is None:
        settings = pools.settings if pools is not None else _default_settings()
    own_pools = pools is None
    db: str | None = database
    try:
        if own_pools:
            pools = Pools(settings)
        assert pools is not None
        try:
            db = pools.resolve(database)
            result = _run(sql, db, settings, pools, max_rows, timeout, validate)
        except PgMcpError as exc:
            result = RunResult.failure(exc, db)
        except Exception as exc:  # the contract: failures are returned, never raised
            result = RunResult.failure(_unexpected(exc), db)
    finally:
        if own_pools and pools is not None:
            pools.close()
    result.database = db
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    if result.message or result.hint or result.details:
        redact = Redactor(settings.secrets())
        result.message = redact(result.message)
        result.hint = redact(result.hint) if result.hint else result.hint
        result.details = {
            k: redact(v) if isinstance(v, str) else v for k, v in result.details.items()
        }
    if settings.audit_log is not None:
        audit.record(
            settings,
            database=db,
            sql=sql if isinstance(sql, str) else repr(sql),
            outcome="ok" if result.ok else str(result.code),
            rows=result.row_count,
            truncated=result.truncated,
            elapsed_ms=result.elapsed_ms,
            sqlstate=result.sqlstate,
        )
    return result


def _unexpected(exc: Exception) -> PgMcpError:
    import logging

    import psycopg

    logging.getLogger("pg_mcp.executor").debug("run_readonly failed", exc_info=exc)
    text = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    if isinstance(exc, psycopg.OperationalError):
        return PgMcpError("CONNECTION_ERROR", f"database connection failed: {detail}")
    return PgMcpError("DB_ERROR", f"unexpected error: {detail}")


def _default_settings() -> Settings:
    from pg_mcp.settings import load_settings

    return load_settings()


def _run(
    sql: str,
    db: str,
    settings: Settings,
    pools: Pools,
    max_rows: int | None,
    timeout: float | None,
    validate: bool,
) -> RunResult:
    if not isinstance(sql, str):
        raise PgMcpError("PARSE_ERROR", "the SQL must be a string")
    try:
        rows_cap = settings.max_rows if max_rows is None else max(0, int(max_rows))
        seconds = settings.statement_timeout if timeout is None else float(timeout)
    except (TypeError, ValueError):
        raise PgMcpError(
            "CONFIG_ERROR",
            f"max_rows must be an integer and timeout a number of seconds, not {max_rows!r} / {timeout!r}",
        ) from None
    if not 0 < seconds <= MAX_TIMEOUT:
        raise PgMcpError(
            "CONFIG_ERROR",
            f"the timeout must be a positive number of seconds, at most {MAX_TIMEOUT:,}, "
            f"not {timeout!r}",
        )
    if validate:
        from pg_mcp.validator import validate_sql

        verdict = validate_sql(sql, db, settings=settings)
        if not verdict.ok:
            return RunResult(
                ok=False,
                database=db,
                code=verdict.code,
                message=verdict.message,
                hint=verdict.hint,
                position=verdict.position,
            )
    pool = pools.get(db)
    wait = settings.connect_timeout + seconds
    types = pools.type_names(db)

    def reachable() -> bool:
        return _server_answers(pools, db, settings)

    try:
        try:
            conn = _checkout(pool, wait, reachable)
            try:
                pools.check_role(db, conn)
                return _execute(conn, sql, settings, types, rows_cap, seconds, may_retry=True)
            finally:
                pool.putconn(conn)
        except _StaleConnection:
            # It had died unnoticed, before answering: like a dead connection on checkout.
            pool.drain()
            if not reachable():
                raise _ServerDown from None
            conn = _checkout(pool, wait, reachable)
            try:
                return _execute(conn, sql, settings, types, rows_cap, seconds)
            finally:
                pool.putconn(conn)
    except (_pool_timeout(), _ServerDown) as exc:
        if not isinstance(exc, _ServerDown) and _server_answers(pools, db, settings):
            raise PgMcpError(
                "CONNECTION_ERROR",
                f"all {settings.pool_max_size} connections to {db!r} stayed busy for {wait:g} s",
                hint="retry later, or raise pool_max_size",
            ) from None
        pools.forget(db)  # the server does not answer: re-resolve next time
        raise PgMcpError(
            "CONNECTION_ERROR",
            f"could not connect to database {db!r}"
            + ("" if isinstance(exc, _ServerDown) else f" within {wait:g} s"),
            hint="is the server up? check PG_MCP_DSN",
        ) from None


def _pool_timeout() -> type[Exception]:
    from psycopg_pool import PoolTimeout  # (evaluated only when an exception is raised)

    return PoolTimeout


class _ServerDown(Exception):
    """A pooled connection was dead and a new one cannot be made."""


def _checkout(
    pool: ConnectionPool, wait: float, reachable: Callable[[], bool]
) -> psycopg.Connection[Any]:
    """A pooled connection, health-checked (an empty query) on checkout; the caller gives it
    back with ``pool.putconn`` (which resets it: ResettingPool).

    At the first dead connection (the server restarted or went away) every idle one is
    presumed dead too: the pool is drained, and the next checkout gets a fresh connection at
    once, or ``_ServerDown`` when the server does not answer (instead of waiting ``wait``).
    """
    import psycopg

    conn = pool.getconn(timeout=wait)
    try:
        _ping(conn)
    except psycopg.OperationalError:
        conn.close()  # the pool discards it
        pool.putconn(conn)
    except BaseException:
        pool.putconn(conn)
        raise
    else:
        return conn
    pool.drain()
    if not reachable():
        raise _ServerDown
    return pool.getconn(timeout=wait)


def _server_answers(pools: Pools, db: str, settings: Settings) -> bool:
    """Can a new connection to ``db`` be made now? (Tells "server down" from "pool busy".)"""
    import psycopg

    from pg_mcp.discovery import database_dsn

    try:
        with psycopg.connect(
            database_dsn(pools.server_dsn, db),
            connect_timeout=max(2, round(settings.connect_timeout)),
            application_name="pg-mcp-probe",
        ):
            return True
    except psycopg.Error:
        return False


class _Deadlines:
    """One daemon thread runs every watchdog (starting a thread per statement costs ~1 ms).

    It holds the pending watchdogs only (a cancelled one is dropped at once: there are about as
    many as statements running) and sleeps until the earliest deadline it knows of; a new
    watchdog wakes it only when its deadline is earlier than that (the first after a quiet
    spell), so a steady stream of statements costs two short lock holds each and no wake-ups.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._pending: dict[_Watchdog, None] = {}
        self._armed = math.inf  # when the thread wakes up next (at the latest)
        self._thread: threading.Thread | None = None

    def add(self, dog: _Watchdog) -> None:
        with self._cond:
            self._pending[dog] = None
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="pg-mcp-watchdog", daemon=True
                )
                self._thread.start()
            if dog.deadline < self._armed:  # wake the thread to re-arm
                self._armed = dog.deadline
                self._cond.notify_all()

    def cancel(self, dog: _Watchdog) -> None:
        """After this returns the watchdog has either fired completely or will never fire."""
        with self._cond:
            while dog.state == "firing":
                self._cond.wait()
            if dog.state == "pending":
                dog.state = "cancelled"
                dog.conn = None
                self._pending.pop(dog, None)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    due = [dog for dog in self._pending if dog.deadline <= now]
                    if due:
                        break
                    self._armed = min((dog.deadline for dog in self._pending), default=math.inf)
                    delay = self._armed - now
                    self._cond.wait(None if delay == math.inf else min(delay, 3600.0))
                for dog in due:
                    del self._pending[dog]
                    dog.state = "firing"
            for dog in due:
                try:
                    dog.fire()
                finally:
                    with self._cond:
                        dog.state = "fired"
                        self._cond.notify_all()


_DEADLINES = _Deadlines()


class _Watchdog:
    """Cancel the running statement on the server if it outlives its deadline."""

    def __init__(self, conn: psycopg.Connection[Any], seconds: float) -> None:
        self.conn: psycopg.Connection[Any] | None = conn
        self.seconds = seconds
        self.deadline = 0.0
        self.state = "new"  # new -> pending -> (cancelled | firing -> fired)

    @property
    def fired(self) -> bool:
        return self.state == "fired"

    def fire(self) -> None:
        try:
            if self.conn is not None:
                self.conn.cancel_safe(timeout=5.0)
        except Exception:
            pass  # the connection is discarded anyway

    def __enter__(self) -> _Watchdog:
        self.deadline = time.monotonic() + self.seconds
        self.state = "pending"
        _DEADLINES.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _DEADLINES.cancel(self)


def _ms(seconds: float) -> int:
    return 0 if seconds <= 0 else max(1, round(seconds * 1000))


BEGIN_SQL = "BEGIN TRANSACTION READ ONLY"
# DISCARD ALL cannot run in a transaction block: after ROLLBACK it runs in a transaction of its
# own (the first statement of it, so even a pipeline's implicit transaction allows it).
END_SQL = ("ROLLBACK", "DISCARD ALL")


# The planner's estimate of the fraction of a cursor's rows that will be fetched. PostgreSQL's
# default (0.1) favours fast-start plans, and multiplies with the query's own LIMIT: a
# "LIMIT 10" query planned for its first row can walk a whole index instead of using a
# selective one. run_readonly fetches the whole result up to the cap at once, so its cursors
# are planned like the plain query (as psql and the EXPLAIN guard see it).
CURSOR_TUPLE_FRACTION = "1"
_MAX_MS = 2**31 - 1  # the largest value a millisecond setting takes


def statement_settings(
    seconds: float, lock_timeout: float, idle_timeout: float
) -> tuple[tuple[str, str], ...]:
    """The settings every statement runs with, as (name, value) pairs (timeouts in seconds)."""
    return (
        ("statement_timeout", str(_ms(seconds))),
        ("lock_timeout", str(_ms(lock_timeout))),
        ("idle_in_transaction_session_timeout", str(_ms(idle_timeout))),
        ("IntervalStyle", "postgres"),
        ("cursor_tuple_fraction", CURSOR_TUPLE_FRACTION),
    )


def session_settings(settings: Settings) -> tuple[tuple[str, str], ...]:
    """The statement settings a pool's connections are opened with (``-c name=value``), for
    the default timeout: those in range (any other value is set by each statement and refused
    there, as a DB_ERROR, rather than breaking every connection)."""
    pairs = statement_settings(
        settings.statement_timeout, settings.lock_timeout, settings.idle_in_transaction_timeout
    )
    if not 0 < settings.statement_timeout <= MAX_TIMEOUT:
        pairs = pairs[1:]
    return tuple(
        (name, value) for name, value in pairs if not value.isdigit() or int(value) <= _MAX_MS
    )


def settings_sql(
    seconds: float, settings: Settings, session: frozenset[tuple[str, str]] = frozenset()
) -> str | None:
    """The transaction's local settings that differ from the connection's ``session`` ones, in
    one statement (``set_config(..., true)`` is ``SET LOCAL``; in pipeline mode each statement
    is sent on its own); None when the session already has them all (the usual case)."""
    return _settings_sql(
        seconds, settings.lock_timeout, settings.idle_in_transaction_timeout, session
    )


@lru_cache(maxsize=256)
def _settings_sql(
    seconds: float, lock: float, idle: float, session: frozenset[tuple[str, str]]
) -> str | None:
    pairs = statement_settings(seconds, lock, idle)
    values = [(name, value) for name, value in pairs if (name, value) not in session]
    if not values:
        return None
    return "SELECT " + ", ".join(f"set_config('{name}', '{value}', true)" for name, value in values)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def fetch_sql(n: int) -> str:
    return f'FETCH FORWARD {n} FROM "{CURSOR_NAME}"'


# --- the wire: libpq pipeline mode ----------------------------------------------------------


def _wait(fd: int, write: bool = False, timeout: float | None = None) -> bool:
    """Block until the socket is readable (or writable, when asked) or ``timeout`` seconds
    pass; True when readable (or closed, or in error)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | (select.POLLOUT if write else 0))
        events = poller.poll(None if timeout is None else timeout * 1000)
        return any(event & ~select.POLLOUT for _, event in events)
    readable, _, broken = select.select([fd], [fd] if write else [], [fd], timeout)
    return bool(readable or broken)


def _pipeline(
    conn: psycopg.Connection[Any], statements: Sequence[str | None], encoding: str = ""
) -> list[Any]:
    """Send ``statements`` in libpq pipeline mode, then a Sync, and collect their results: one
    network round trip for all of them.

    Each statement goes over the extended query protocol in a message of its own (the server
    refuses a string holding several: "cannot insert multiple commands into a prepared
    statement"). ``None`` in ``statements`` is a Sync: after an error the server skips what
    follows until the next Sync. Returns one PGresult per statement, error results included
    (PIPELINE_ABORTED for the skipped ones). A connection failure raises ``_Lost``; the
    connection is then closed, as it is when anything interrupts the exchange (its protocol
    state is unknown)."""
    import psycopg
    from psycopg import pq

    pg = conn.pgconn
    encoding = encoding or conn.info.encoding
    results: list[Any] = []
    with conn.lock:
        try:
            pg.enter_pipeline_mode()
            syncs = 1
            for statement in statements:
                if statement is None:
                    pg.pipeline_sync()
                    syncs += 1
                else:
                    pg.send_query_params(statement.encode(encoding), None)
            pg.pipeline_sync()
            while pg.flush():  # 1: not all sent yet
                if _wait(pg.socket, write=True):
                    pg.consume_input()
            ended = False  # the last result was the end of a statement's results (None)
            while syncs:
                while pg.is_busy():
                    _wait(pg.socket)
                    pg.consume_input()
                res = pg.get_result()
                if res is None:
                    if ended or pg.status == pq.ConnStatus.BAD:
                        raise psycopg.OperationalError("the connection to the server was lost")
                    ended = True
                    continue
                ended = False
                if res.status == pq.ExecStatus.PIPELINE_SYNC:
                    syncs -= 1
                else:
                    results.append(res)
            pg.exit_pipeline_mode()
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.OperationalError):
                ok = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
                raise _Lost(exc, sum(res.status in ok for res in results)) from None
            raise
    if len(results) != sum(s is not None for s in statements):
        conn.close()
        lost = psycopg.OperationalError("the server's answers did not match the statements sent")
        raise _Lost(lost, len(results))
    return results


class _Lost(Exception):
    """The connection failed during a pipeline, after ``answered`` statements had succeeded."""

    def __init__(self, error: Exception, answered: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.answered = answered


_TEXT_OID = 25
_SUCCEEDED = (1, 2)  # psycopg.pq.ExecStatus.COMMAND_OK, TUPLES_OK (the libpq values)


def _error(conn: psycopg.Connection[Any], res: Any) -> Exception | None:
    """The psycopg exception for an error result (None when the statement succeeded)."""
    if res.status in _SUCCEEDED:
        return None
    import psycopg
    from psycopg import pq

    if res.status == pq.ExecStatus.PIPELINE_ABORTED:
        return psycopg.errors.PipelineAborted("skipped after an earlier error")
    return psycopg.errors.error_from_result(res, encoding=conn.info.encoding)


class _TolerantContext:
    """An adapters context: the connection's loaders, with dates, timestamps and times that
    Python cannot hold (infinity, BC, after 9999) loaded as PostgreSQL's text."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        from psycopg.adapt import AdaptersMap

        from pg_mcp.jsonsafe import register_loaders

        self.connection = conn
        self.adapters = AdaptersMap(conn.adapters)
        register_loaders(self)


def _rows(
    conn: psycopg.Connection[Any],
    res: Any,
    state: _ConnState | None = None,
    types: Sequence[int] | None = None,
) -> list[tuple[Any, ...]]:
    """A result's rows, loaded by the connection's loaders (pg_mcp.jsonsafe.register_loaders),
    or with ``types`` by the loaders of those type OIDs, column by column (text format).

    psycopg's own (C) date/time loaders raise on what Python cannot hold; such a result is
    loaded again with loaders that keep those values as text (``_TolerantContext``)."""
    import psycopg
    from psycopg.adapt import Transformer

    state = state or _state(conn)
    tx = state.tx
    if tx is None:
        tx = state.tx = Transformer(conn)  # reused: it keeps its loaders, per type
    try:
        return _load(tx, res, types)
    except (psycopg.DataError, ValueError, OverflowError):
        if state.tolerant is None:
            state.tolerant = Transformer(_TolerantContext(conn))
        try:
            return _load(state.tolerant, res, types)
        finally:
            state.tolerant.set_pgresult(None)
    finally:
        tx.set_pgresult(None)  # do not keep the result alive


def _load(tx: Any, res: Any, types: Sequence[int] | None) -> list[tuple[Any, ...]]:
    from psycopg.pq import Format

    if types is None:
        tx.set_pgresult(res)
    else:
        tx.set_pgresult(res, set_loaders=False)
        tx.set_loader_types(types, Format.TEXT)
    return tx.load_rows(0, res.ntuples, tuple)


@dataclass(frozen=True, eq=False)
class _Shape:
    """How to present and load a result's columns, worked out once per connection for each
    list of (column name, type OID) (``_shape``)."""

    columns: tuple[tuple[str, str], ...]  # (name, type name)
    arrays: dict[int, str]  # array columns without a loader: index -> element delimiter
    safe: tuple[int, ...]  # columns JSON-safe as loaded (jsonsafe.JSON_SAFE_OIDS)
    converters: dict[int, Callable[[str], Any]]  # columns loaded as text (TEXT_CONVERTERS)
    types: tuple[int, ...] | None  # the loader type of every column, when some load as text


SHAPES_MAX = 256  # remembered per connection (then forgotten all at once)


def _shape(
    conn: psycopg.Connection[Any],
    res: Any,
    type_names: dict[int, tuple[str, str | None]],
    state: _ConnState,
) -> _Shape:
    key = tuple((res.fname(i), res.ftype(i)) for i in range(res.nfields))
    shape = state.shapes.get(key)
    if shape is not None:
        return shape
    encoding = state.encoding or conn.info.encoding
    description = [(name.decode(encoding), oid) for name, oid in key]
    columns, arrays = _columns(conn, description, type_names, state)
    oids = [oid for _, oid in description]
    texts = {i: state.text_oids[oid] for i, oid in enumerate(oids) if oid in state.text_oids}
    shape = _Shape(
        columns=tuple((c["name"], c["type"]) for c in columns),
        arrays=arrays,
        safe=tuple(i for i, oid in enumerate(oids) if oid in state.safe_oids),
        converters=texts,
        types=tuple(_TEXT_OID if i in texts else oid for i, oid in enumerate(oids))
        if texts
        else None,
    )
    if len(state.shapes) >= SHAPES_MAX:
        state.shapes.clear()
    state.shapes[key] = shape
    return shape


class _Failed(Exception):
    """A statement we sent failed: the error, and the prefix put in front of the user's SQL in
    the statement that failed ("" when it was not the user's statement); ``answered`` is None,
    or after a lost connection how many statements of the trip had succeeded."""

    def __init__(self, error: Exception, prefix: str, answered: int | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.prefix = prefix
        self.answered = answered


class _StaleConnection(Exception):
    """The connection, handed out without a health check, was dead: it failed before the server
    acknowledged anything of the trip (not even BEGIN), so the statement never ran."""


def _trip(
    conn: psycopg.Connection[Any],
    state: _ConnState,
    steps: list[tuple[str, str]],
    *,
    end: bool = False,
) -> Any:
    """One round trip: the ``(prefix, statement)`` steps, and with ``end`` the transaction's end
    (ROLLBACK, DISCARD ALL: the connection is then clean for its next use; when a step failed
    the server skipped them, and the caller resets the connection: ``_reset``). Returns the
    last step's result; raises ``_Failed`` with the first error."""
    statements: list[str | None] = [statement for _, statement in steps]
    if end:
        statements.extend(END_SQL)
    try:
        results = _pipeline(conn, statements, state.encoding)
    except _Lost as lost:
        raise _Failed(lost.error, "", lost.answered) from None
    state.ok_at = time.monotonic()
    failed = next((i for i, res in enumerate(results) if res.status not in _SUCCEEDED), None)
    if end:
        if failed is None:
            state.clean = True
        elif failed >= len(steps):
            conn.close()  # the reset itself failed: the pool discards the connection
    if failed is not None and failed < len(steps):
        error = _error(conn, results[failed])
        if error is not None:
            raise _Failed(error, steps[failed][0])
    return results[len(steps) - 1]


def _execute(
    conn: psycopg.Connection[Any],
    sql: str,
    settings: Settings,
    type_names: dict[int, tuple[str, str | None]],
    max_rows: int,
    seconds: float,
    *,
    may_retry: bool = False,
) -> RunResult:
    """Run one statement in a read-only transaction, in as few round trips as possible.

    Usually one: BEGIN READ ONLY, the local settings (only those the connection was not opened
    with), DECLARE, FETCH (max_rows + 1 rows), then ROLLBACK and DISCARD ALL go out together in
    pipeline mode. The EXPLAIN guard needs the plan before the FETCH runs the query (two trips),
    and a fetch of more than FETCH_CHUNK rows goes on chunk by chunk. Every path ends rolled
    back and reset, or with the connection closed."""
    import psycopg

    explain = first_keyword(sql) == "EXPLAIN"
    guard = not explain and (settings.explain_max_cost > 0 or settings.explain_max_rows > 0)
    wanted = max_rows + 1
    first = min(wanted, FETCH_CHUNK)
    state = _state(conn)
    state.clean = False
    steps = [("", BEGIN_SQL)]
    if settings.policy.query_role:
        steps.append(("", "SET LOCAL ROLE " + _quote_ident(settings.policy.query_role)))
    local = settings_sql(seconds, settings, state.session)
    if local is not None:
        steps.append(("", local))
    if explain:
        steps.append(("", sql))  # EXPLAIN cannot be a cursor; the extended protocol still holds
    else:
        steps.append((DECLARE_PREFIX, DECLARE_PREFIX + sql))
        if guard:
            steps.append((EXPLAIN_PREFIX, EXPLAIN_PREFIX + sql))
        else:
            steps.append((DECLARE_PREFIX, fetch_sql(first)))
    done = explain or (not guard and wanted <= FETCH_CHUNK)  # nothing to fetch after this trip
    watchdog = _Watchdog(conn, seconds + WATCHDOG_GRACE)
    try:
        with watchdog:
            out = _trip(conn, state, steps, end=done)
            if guard:
                _explain_guard([row[0] for row in _rows(conn, out, state)], settings)
                done = wanted <= FETCH_CHUNK
                out = _trip(conn, state, [(DECLARE_PREFIX, fetch_sql(first))], end=done)
            shape = _shape(conn, out, type_names, state)
            batch = _rows(conn, out, state, shape.types)
            if explain:
                rows, truncated, reason = _explain_rows(batch, max_rows, settings.max_bytes)
            else:

                def more(n: int) -> list[tuple[Any, ...]]:
                    out = _trip(conn, state, [(DECLARE_PREFIX, fetch_sql(n))])
                    return _rows(conn, out, state, shape.types)

                rows, truncated, reason = _fetch(
                    batch,
                    first,
                    wanted,
                    None if done else more,
                    settings.max_bytes,
                    shape.arrays,
                    shape.safe,
                    shape.converters,
                )
    except _Failed as failed:
        exc = failed.error
        if may_retry and state.unchecked and failed.answered == 0 and not watchdog.fired:
            raise _StaleConnection from None  # dead before BEGIN: safe to run on a fresh one
        raise _map_error(exc, sql, failed.prefix, seconds, watchdog.fired) from None
    except psycopg.Error as exc:  # the type lookup (_columns)
        raise _map_error(exc, sql, "", seconds, watchdog.fired) from None
    finally:
        if watchdog.fired and not conn.closed:
            conn.close()  # the pool discards it: no stray cancel can reach its next user
        elif not state.clean:
            _reset(conn)  # ROLLBACK + DISCARD ALL now, in one round trip
            state.clean = not conn.closed
    return RunResult(
        ok=True,
        columns=[{"name": name, "type": type_name} for name, type_name in shape.columns],
        rows=rows,
        row_count=len(rows),
        truncated=truncated,
        truncated_reason=reason,
    )


def _fetch(
    batch: list[Any],
    asked: int,
    wanted: int,
    more: Callable[[int], list[Any]] | None,
    max_bytes: int,
    arrays: dict[int, str] | None = None,
    safe: Collection[int] = (),
    converters: dict[int, Callable[[str], Any]] | None = None,
) -> tuple[list[list[Any]], bool, str | None]:
    """At most ``wanted - 1`` rows (``wanted`` are fetched to know), within the byte budget:
    ``batch`` answered a FETCH of ``asked`` rows; ``more(n)`` fetches the next n (None: no more).

    The budget counts the bytes of the compact JSON array of the rows. A batch is measured in
    one go (the JSON of a list is its items' JSON, commas and brackets); only a batch that
    crosses the budget is walked row by row, to cut it at the last row that fits."""
    from pg_mcp.jsonsafe import json_size, rows_jsonable

    max_rows = wanted - 1
    rows: list[list[Any]] = []
    size = 2  # "[]"
    fetched = 0
    while True:
        fetched += len(batch)
        keep = max_rows - len(rows)
        part = batch if len(batch) <= keep else batch[:keep]
        converted = rows_jsonable(part, arrays, safe, converters)
        grown = size + json_size(converted) - 2 + (1 if rows and converted else 0)
        if max_bytes > 0 and grown > max_bytes:
            for row in converted:
                size += json_size(row) + (1 if rows else 0)
                if size > max_bytes:
                    if not rows:
                        raise PgMcpError(
                            "RESULT_TOO_LARGE",
                            f"the first row alone serialises to more than max_bytes ({max_bytes:,} bytes)",
                            hint="select fewer or narrower columns (e.g. left(col, 200)), or raise max_bytes",
                        )
                    return rows, True, "max_bytes"
                rows.append(row)
        else:
            rows.extend(converted)
            size = grown
        if len(converted) < len(batch):
            return rows, True, "max_rows"
        if more is None or len(batch) < asked or fetched >= wanted:
            return rows, False, None
        asked = min(FETCH_CHUNK, wanted - fetched)
        batch = more(asked)


def _explain_rows(
    batch: list[Any], max_rows: int, max_bytes: int
) -> tuple[list[list[Any]], bool, str | None]:
    """An EXPLAIN's output (small, already fetched), cut at max_rows and the byte budget."""
    from pg_mcp.jsonsafe import json_size, row_jsonable

    rows: list[list[Any]] = []
    size = 2
    for raw in batch:
        if len(rows) >= max_rows:
            return rows, True, "max_rows"
        row = row_jsonable(raw)
        size += json_size(row) + 1
        if max_bytes > 0 and size > max_bytes and rows:
            return rows, True, "max_bytes"
        rows.append(row)
    return rows, False, None


def _explain_guard(plans: list[Any], settings: Settings) -> None:
    max_cost, max_rows = settings.explain_max_cost, settings.explain_max_rows
    top = plans[0][0]["Plan"]
    cost, rows = float(top["Total Cost"]), float(top["Plan Rows"])
    hint = "add selective filters, aggregate, or add a LIMIT; the limits are explain_max_cost / explain_max_rows"
    if max_cost > 0 and cost > max_cost:
        raise PgMcpError(
            "COST_LIMIT",
            f"the planner estimates a cost of {cost:,.0f}, above the limit of {max_cost:,.0f}",
            hint=hint,
            details={"estimated_cost": cost, "estimated_rows": rows, "limit": max_cost},
        )
    if max_rows > 0 and rows > max_rows:
        raise PgMcpError(
            "COST_LIMIT",
            f"the planner estimates {rows:,.0f} rows, above the limit of {max_rows:,.0f}",
            hint=hint,
            details={"estimated_cost": cost, "estimated_rows": rows, "limit": max_rows},
        )


def _columns(
    conn: psycopg.Connection[Any],
    description: list[tuple[str, int]],
    cache: dict[int, tuple[str, str | None]],
    state: _ConnState | None = None,
) -> tuple[list[dict[str, str]], dict[int, str]]:
    """Column names and type names (``format_type``), and array columns (index -> delimiter).

    Type OIDs are looked up once per database and cached.
    """
    missing = sorted({oid for _, oid in description if oid not in cache})
    if missing:
        if state is not None:
            state.clean = False  # one more statement on this connection: reset it again
        found = conn.execute(
            "SELECT t.oid::int8, format_type(t.oid, NULL), e.typdelim::text"
            " FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'"
            " WHERE t.oid = ANY(%s::oid[])",
            ["{" + ",".join(map(str, missing)) + "}"],
        ).fetchall()
        cache.update({int(o): (str(name), delim) for o, name, delim in found})
    columns, arrays = [], {}
    for i, (name, oid) in enumerate(description):
        type_name, delim = cache.get(oid, (str(oid), None))
        columns.append({"name": name, "type": type_name})
        if delim:
            arrays[i] = delim
    return columns, arrays


# --- errors --------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z_]+")


_LEADING_WORD = re.compile(r"\s*([A-Za-z_]+)")


def first_keyword(sql: str) -> str:
    """The statement's first word, upper-cased, skipping whitespace, comments and parentheses."""
    m = _LEADING_WORD.match(sql)  # the usual case: no comment or parenthesis first
    if m:
        return m.group(1).upper()
    i, n = 0, len(sql)
    while i < n:
        if sql[i].isspace() or sql[i] == "(":
            i += 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        else:
            m = _WORD.match(sql, i)
            return m.group(0).upper() if m else ""
    return ""


def _word_at(sql: str, position: int | None) -> str:
    if position is None or not 1 <= position <= len(sql):
        return ""
    m = _WORD.match(sql, position - 1)
    return m.group(0).upper() if m else ""


def _map_error(
    exc: Exception, sql: str, prefix: str, seconds: float, cancelled: bool
) -> PgMcpError:
    import psycopg

    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None)
    lines = str(exc).strip().splitlines()
    message = (diag.message_primary if diag else None) or (
        lines[0] if lines else type(exc).__name__
    )
    hint = diag.message_hint if diag else None
    detail = diag.message_detail if diag else None
    position: int | None = None
    if diag and diag.statement_position and prefix:
        pos = int(diag.statement_position) - len(prefix)
        position = pos if pos >= 1 else None
    elif diag and diag.statement_position:
        position = int(diag.statement_position)
    details: dict[str, Any] = {"sqlstate": sqlstate} if sqlstate else {}
    if detail:
        details["detail"] = detail

    if sqlstate == "57014" or cancelled:
        return PgMcpError(
            "TIMEOUT",
            f"the statement was cancelled after the {seconds:g} s timeout ({message})",
            hint="narrow the query (filters, LIMIT, aggregates) or raise the timeout",
            details=details,
        )
    if sqlstate in ("55P03", "25P03"):
        return PgMcpError(
            "TIMEOUT", message, hint="a lock or idle-in-transaction timeout fired", details=details
        )
    if sqlstate == "25006":
        return PgMcpError(
            "READ_ONLY_VIOLATION",
            f"the database refused a write in the read-only transaction: {message}",
            hint="only read-only queries can run",
            details=details,
        )
    if sqlstate == "42601" and "multiple commands" in message:
        return PgMcpError(
            "MULTIPLE_STATEMENTS",
            f"the server refused several statements in one ({message})",
            hint="send exactly one query",
            details=details,
        )
    if prefix == DECLARE_PREFIX and sqlstate == "0A000" and "data-modifying" in message:
        return PgMcpError(
            "READ_ONLY_VIOLATION",
            f"the database refused a data-modifying statement: {message}",
            hint="only read-only queries can run",
            details=details,
        )
    if prefix == DECLARE_PREFIX and sqlstate == "42601":
        word = _word_at(sql, position)
        if word in _NON_QUERY:
            return PgMcpError(
                "READ_ONLY_VIOLATION",
                f"the database refused to run {word}: only a query (SELECT, VALUES, TABLE, WITH ... SELECT) "
                "can run, inside a read-only transaction",
                hint="only read-only queries can run",
                position=position,
                details=details,
            )
    if (sqlstate is None and isinstance(exc, psycopg.OperationalError)) or (
        sqlstate or ""
    ).startswith(("08", "57P")):
        return PgMcpError(
            "CONNECTION_ERROR",
            f"lost the connection to the database: {message}",
            details=details,
        )
    return PgMcpError("DB_ERROR", message, hint=hint, position=position, details=details)
