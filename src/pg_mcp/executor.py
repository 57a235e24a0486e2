"""run_readonly: validate, then execute one query so that nothing can change.

The only place in pg-mcp that runs model or user SQL. Every layer below holds on its own,
even when validation is bypassed (``validate=False``):

1. Connections open with ``default_transaction_read_only=on`` and run each statement in an
   explicit ``BEGIN READ ONLY`` transaction that is always rolled back, with ``SET LOCAL``
   statement_timeout, lock_timeout and idle_in_transaction_session_timeout (and IntervalStyle
   ``postgres``, which pg_mcp.jsonsafe turns into exact ISO 8601 durations).
2. The statement is sent over the **extended** query protocol, wrapped in a server-side cursor
   (psycopg ``ServerCursor`` sends ``DECLARE "pg_mcp_cursor" CURSOR FOR <sql>`` with
   ``PQsendQueryParams``). The extended protocol parses exactly one statement
   ("cannot insert multiple commands into a prepared statement"), so ``COMMIT; DROP ...`` never
   runs, and ``DECLARE ... CURSOR FOR`` only accepts a query (SELECT, VALUES, TABLE, WITH), so a
   bare INSERT/UPDATE/DELETE/DDL/utility statement is refused by the server's grammar (reported
   as READ_ONLY_VIOLATION, like writes the read-only transaction stops: nextval, writing functions).
   ``EXPLAIN`` (which cannot be a cursor) goes through the extended protocol as well.
3. Rows are fetched from the cursor in chunks, at most ``max_rows + 1`` (so ``truncated`` is
   known) and within a byte budget on the serialised rows: memory does not grow with the table.
4. An optional EXPLAIN guard refuses before fetching when the planner's estimate is too big.
5. A client-side watchdog cancels the statement on the server (``cancel_safe``) if the server
   has not stopped it shortly after the statement timeout; such a connection is discarded.
6. Pooled connections are health-checked on checkout and reset with ``DISCARD ALL`` on return,
   so session state (settings, advisory locks, prepared statements) never reaches the next use.

Failures are returned (``RunResult(ok=False, code=...)``), never raised.
"""

from __future__ import annotations

import heapq
import re
import threading
import time
from dataclasses import dataclass, field
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


def _configure(conn: psycopg.Connection[Any]) -> None:
    from pg_mcp.jsonsafe import register_loaders

    register_loaders(conn)


def _reset(conn: psycopg.Connection[Any]) -> None:
    # The connection is autocommit and idle here (the pool rolled back anything left open).
    conn.execute("DISCARD ALL")


class Pools:
    """One psycopg pool per database, created lazily; thread-safe; a context manager."""

    def __init__(self, settings: Settings | None = None) -> None:
        from pg_mcp.settings import load_settings

        self.settings = settings if settings is not None else load_settings()
        self._lock = threading.Lock()
        self._pools: dict[str, ConnectionPool] = {}
        self._types: dict[str, dict[int, tuple[str, str | None]]] = {}
        self._known: set[str] = set()
        self._default: str | None = None
        self._server_dsn: str | None = None
        self._closed = False

    @property
    def server_dsn(self) -> str:
        if self._server_dsn is None:
            from pg_mcp.discovery import server_dsn

            self._server_dsn = server_dsn(self.settings)
        return self._server_dsn

    def resolve(self, database: str | None) -> str:
        """A reachable database name (the only one when ``None``), else PgMcpError."""
        with self._lock:
            if database is None and self._default is not None:
                return self._default
            if database is not None and database in self._known:
                return database
        from pg_mcp.discovery import resolve_database

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
        from psycopg_pool import ConnectionPool

        from pg_mcp.discovery import database_dsn

        s = self.settings
        dsn = database_dsn(self.server_dsn, database)
        options = str(conninfo_to_dict(dsn).get("options") or "")
        pool: ConnectionPool = ConnectionPool(
            dsn,
            kwargs={
                "autocommit": True,
                "prepare_threshold": None,
                "connect_timeout": max(2, round(s.connect_timeout)),
                "application_name": "pg-mcp",
                "options": f"{options} -c default_transaction_read_only=on".strip(),
            },
            min_size=max(0, s.pool_min_size),
            max_size=max(1, s.pool_max_size),
            open=False,
            configure=_configure,
            check=ConnectionPool.check_connection,
            reset=_reset,
            name=f"pg-mcp:{database}",
            timeout=s.connect_timeout + s.statement_timeout,
            reconnect_timeout=max(10.0, 2 * s.connect_timeout),
            num_workers=2,
        )
        pool.open()
        return pool

    def forget(self, database: str) -> None:
        """Close and drop a database's pool (after it stopped answering)."""
        with self._lock:
            pool = self._pools.pop(database, None)
            self._known.discard(database)
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
    redact = Redactor(settings.secrets())
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
    result.message = redact(result.message)
    result.hint = redact(result.hint) if result.hint else result.hint
    result.details = {k: redact(v) if isinstance(v, str) else v for k, v in result.details.items()}
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
    if not seconds > 0:
        raise PgMcpError(
            "CONFIG_ERROR", f"the timeout must be a positive number of seconds, not {timeout!r}"
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
    import psycopg_pool

    pool = pools.get(db)
    try:
        with pool.connection(timeout=settings.connect_timeout + seconds) as conn:
            return _execute(conn, sql, settings, pools.type_names(db), rows_cap, seconds)
    except psycopg_pool.PoolTimeout:
        wait = settings.connect_timeout + seconds
        if pool.get_stats().get("pool_size", 0) > 0:
            raise PgMcpError(
                "CONNECTION_ERROR",
                f"all {settings.pool_max_size} connections to {db!r} stayed busy for {wait:g} s",
                hint="retry later, or raise pool_max_size",
            ) from None
        pools.forget(db)  # no connection could be made at all: re-resolve next time
        raise PgMcpError(
            "CONNECTION_ERROR",
            f"could not connect to database {db!r} within {wait:g} s",
            hint="is the server up? check PG_MCP_DSN",
        ) from None


class _Deadlines:
    """One daemon thread runs every watchdog (starting a thread per statement costs ~1 ms)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watchdog]] = []
        self._seq = 0
        self._thread: threading.Thread | None = None

    def add(self, dog: _Watchdog) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, (dog.deadline, self._seq, dog))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="pg-mcp-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def cancel(self, dog: _Watchdog) -> None:
        """After this returns the watchdog has either fired completely or will never fire."""
        with self._cond:
            while dog.state == "firing":
                self._cond.wait()
            if dog.state == "pending":
                dog.state = "cancelled"
                dog.conn = None  # the heap keeps the entry until its deadline; not the connection

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    delay = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(delay)
                dog = heapq.heappop(self._heap)[2]
                if dog.state != "pending":
                    continue
                dog.state = "firing"
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


def begin_sql(seconds: float, settings: Settings) -> str:
    """Our own transaction prologue (constant text, sent in one round trip)."""
    return (
        "BEGIN TRANSACTION READ ONLY; "
        f"SET LOCAL statement_timeout = {_ms(seconds)}; "
        f"SET LOCAL lock_timeout = {_ms(settings.lock_timeout)}; "
        f"SET LOCAL idle_in_transaction_session_timeout = {_ms(settings.idle_in_transaction_timeout)}; "
        "SET LOCAL IntervalStyle = 'postgres'"
    )


def _execute(
    conn: psycopg.Connection[Any],
    sql: str,
    settings: Settings,
    type_names: dict[int, tuple[str, str | None]],
    max_rows: int,
    seconds: float,
) -> RunResult:
    import psycopg

    explain = first_keyword(sql) == "EXPLAIN"
    stage = {"prefix": "" if explain else DECLARE_PREFIX}  # for mapping error positions
    watchdog = _Watchdog(conn, seconds + WATCHDOG_GRACE)
    try:
        with watchdog:
            conn.execute(begin_sql(seconds, settings))
            try:
                if explain:
                    description, rows, truncated, reason = _run_explain(
                        conn, sql, max_rows, settings.max_bytes
                    )
                    columns, _ = _columns(conn, description, type_names)
                else:
                    with conn.cursor(name=CURSOR_NAME) as cur:
                        cur.execute(sql)  # DECLARE ... CURSOR FOR <sql>, over the extended protocol
                        stage["prefix"] = EXPLAIN_PREFIX
                        _explain_guard(conn, sql, settings)
                        stage["prefix"] = DECLARE_PREFIX
                        columns, arrays = _columns(conn, cur.description or [], type_names)
                        rows, truncated, reason = _fetch(cur, max_rows, settings.max_bytes, arrays)
                        _rollback(conn)  # before the cursor closes: CLOSE is then not needed
            finally:
                _rollback(conn)
    except psycopg.Error as exc:
        raise _map_error(exc, sql, stage["prefix"], seconds, watchdog.fired) from None
    finally:
        if watchdog.fired and not conn.closed:
            conn.close()  # the pool discards it: no stray cancel can reach its next user
    return RunResult(
        ok=True,
        columns=columns,
        rows=rows,
        row_count=len(rows),
        truncated=truncated,
        truncated_reason=reason,
    )


def _rollback(conn: psycopg.Connection[Any]) -> None:
    from psycopg.pq import TransactionStatus

    if conn.pgconn.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        conn.rollback()


def _fetch(
    cur: Any, max_rows: int, max_bytes: int, arrays: dict[int, str] | None = None
) -> tuple[list[list[Any]], bool, str | None]:
    """At most max_rows rows (fetching max_rows + 1 to know), within the byte budget."""
    from pg_mcp.jsonsafe import json_size, row_jsonable

    rows: list[list[Any]] = []
    size = 2  # "[]"
    wanted = max_rows + 1
    fetched = 0
    while fetched < wanted:
        n = min(FETCH_CHUNK, wanted - fetched)
        batch = cur.fetchmany(n)
        fetched += len(batch)
        for raw in batch:
            if len(rows) >= max_rows:
                return rows, True, "max_rows"
            row = row_jsonable(raw, arrays)
            size += json_size(row) + (1 if rows else 0)
            if max_bytes > 0 and size > max_bytes:
                if not rows:
                    raise PgMcpError(
                        "RESULT_TOO_LARGE",
                        f"the first row alone serialises to more than max_bytes ({max_bytes:,} bytes)",
                        hint="select fewer or narrower columns (e.g. left(col, 200)), or raise max_bytes",
                    )
                return rows, True, "max_bytes"
            rows.append(row)
        if len(batch) < n:
            break
    return rows, False, None


def _run_explain(
    conn: psycopg.Connection[Any], sql: str, max_rows: int, max_bytes: int
) -> tuple[Any, list[list[Any]], bool, str | None]:
    """EXPLAIN cannot be a cursor: stream it (extended protocol); its output is small."""
    from pg_mcp.jsonsafe import json_size, row_jsonable

    rows: list[list[Any]] = []
    truncated, reason, size = False, None, 2
    with conn.cursor() as cur:
        for raw in cur.stream(sql):
            if truncated:
                continue  # drain
            if len(rows) >= max_rows:
                truncated, reason = True, "max_rows"
                continue
            row = row_jsonable(raw)
            size += json_size(row) + 1
            if max_bytes > 0 and size > max_bytes and rows:
                truncated, reason = True, "max_bytes"
                continue
            rows.append(row)
        return cur.description or [], rows, truncated, reason


def _explain_guard(conn: psycopg.Connection[Any], sql: str, settings: Settings) -> None:
    max_cost, max_rows = settings.explain_max_cost, settings.explain_max_rows
    if max_cost <= 0 and max_rows <= 0:
        return
    with conn.cursor() as cur:
        plans = [row[0] for row in cur.stream(EXPLAIN_PREFIX + sql)]  # extended protocol
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
    conn: psycopg.Connection[Any], description: Any, cache: dict[int, tuple[str, str | None]]
) -> tuple[list[dict[str, str]], dict[int, str]]:
    """Column names and type names (``format_type``), and array columns (index -> delimiter).

    Type OIDs are looked up once per database and cached.
    """
    oids = [int(c.type_code) for c in description]
    missing = sorted({o for o in oids if o not in cache})
    if missing:
        found = conn.execute(
            "SELECT t.oid::int8, format_type(t.oid, NULL), e.typdelim::text"
            " FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'"
            " WHERE t.oid = ANY(%s::oid[])",
            ["{" + ",".join(map(str, missing)) + "}"],
        ).fetchall()
        cache.update({int(o): (str(name), delim) for o, name, delim in found})
    columns, arrays = [], {}
    for i, (col, oid) in enumerate(zip(description, oids, strict=True)):
        name, delim = cache.get(oid, (str(oid), None))
        columns.append({"name": col.name, "type": name})
        if delim:
            arrays[i] = delim
    return columns, arrays


# --- errors --------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z_]+")


def first_keyword(sql: str) -> str:
    """The statement's first word, upper-cased, skipping whitespace, comments and parentheses."""
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
