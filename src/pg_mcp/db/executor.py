"""run_readonly: validate, then execute one query so that nothing can change.

The only place in pg-mcp that runs model or user SQL. Every layer below holds on its own,
even when validation is bypassed (``validate=False``):

1. Each statement runs in an explicit ``BEGIN READ ONLY`` transaction that is always rolled
   back, with every setting it needs set for that transaction only, right after BEGIN:
   statement_timeout, lock_timeout, idle_in_transaction_session_timeout, IntervalStyle
   ``postgres`` and cursor_tuple_fraction with ``set_config(..., true)`` (``SET LOCAL``), the
   search_path back to the session's default (``SET LOCAL search_path TO DEFAULT``), and
   ``policy.query_role`` with ``SET LOCAL ROLE``. Connections carry no session settings of ours
   (no startup ``options``): behind a PgBouncer in transaction mode the next transaction may
   run on another server connection, and this one's next user may be another client.
2. The statement goes over the **extended** query protocol, inside psycopg's pipeline mode
   (libpq allows nothing else there), wrapped in a server-side cursor:
   ``DECLARE "pg_mcp_cursor" NO SCROLL CURSOR FOR <sql>``. The extended protocol parses exactly
   one statement ("cannot insert multiple commands into a prepared statement"), so ``COMMIT;
   DROP ...`` never runs, and ``DECLARE ... CURSOR FOR`` only accepts a query, so a bare
   INSERT/UPDATE/DELETE/DDL/utility statement is refused by the server's grammar (reported as
   READ_ONLY_VIOLATION, like writes the read-only transaction stops). ``EXPLAIN`` (which cannot
   be a cursor) is streamed directly, over the extended protocol too (``Cursor.stream``).
3. Rows are streamed (psycopg's single-row mode): at most ``max_rows + 1`` (so ``truncated``
   is known), measured against the byte budget as they arrive, and the fetch stops as soon as
   the budget is crossed (the rest is cancelled on the server): client memory stays near the
   budget plus one row, whatever the rows hold.
4. An optional EXPLAIN guard refuses before fetching when the planner's estimate is too big.
5. A watchdog (pg_mcp.db.watchdog) cancels the statement on the server if the server has not
   stopped it shortly after the statement timeout, and cuts the connection's socket when the
   cancel cannot be delivered or does not help: no call waits forever. Such a connection is
   discarded.
6. Every use ends with ``ROLLBACK``, which also undoes any session-level ``set_config(...,
   false)`` the statement made: no setting reaches the next use and no ``DISCARD ALL`` is
   needed (a PgBouncer's ``server_reset_query`` is its own business). Session advisory locks
   outlive a rollback; the validator refuses every advisory-lock function, and when validation
   is bypassed a lock left behind is released by the connection's next call
   (``pg_advisory_unlock_all()`` in its settings statement, before its query runs). Psycopg
   never prepares statements (``prepare_threshold=None``). A connection that cannot be ended
   cleanly is closed.

The statement kind (EXPLAIN or a query) comes from the validator's verdict, or, without
validation, from the validator's own lexer: one lexer decides what a statement is.

Round trips: BEGIN, the settings, DECLARE and a zero-row FETCH (the columns) in one pipelined
trip; the FETCH streamed; ROLLBACK (a plain statement: no pipeline needed for one). The EXPLAIN guard adds a
statement to the first trip, and a result with types not seen before one type lookup.

Failures are returned (``RunResult(ok=False, code=...)``), never raised.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.secrets import Redactor
from pg_mcp.core.settings import Settings
from pg_mcp.db import audit
from pg_mcp.db.pools import (
    MAX_TIMEOUT,
    SEARCH_PATH_SQL,
    Pools,
    ServerDown,
    local_settings_sql,
    statement_settings,
)
from pg_mcp.db.watchdog import CANCEL_TIMEOUT

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "DECLARE_PREFIX",
    "FETCH_CHUNK",
    "Pools",
    "RunResult",
    "check_role",
    "first_keyword",
    "run_readonly",
    "statement_settings",
]

CURSOR_NAME = "pg_mcp_cursor"
# what is put in front of the SQL (used to map error positions back to the user's text)
DECLARE_PREFIX = f'DECLARE "{CURSOR_NAME}" NO SCROLL CURSOR FOR '
EXPLAIN_PREFIX = "EXPLAIN (FORMAT JSON) "
FETCH_CHUNK = 1000  # rows converted to JSON and measured at a time (fewer when they are big)
WATCHDOG_GRACE = 2.0  # seconds past the statement timeout before the client cancels itself
BEGIN_SQL = "BEGIN TRANSACTION READ ONLY"
END_SQL = "ROLLBACK"
# Session advisory locks are the one state a rollback leaves (the validator refuses them; this
# holds when validation is bypassed): released by the next call's settings statement, at no
# cost of a statement of its own.
UNLOCK_SQL = "pg_advisory_unlock_all()"

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


# --- least privilege -------------------------------------------------------------------------

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
    """Refuse (PRIVILEGED_ROLE) when queries would run as a superuser or a member of
    pg_read_server_files, pg_write_server_files or pg_execute_server_program: the role
    ``policy.query_role`` names, else the login role; unless ``policy.allow_privileged_role``.
    CONFIG_ERROR when the query role does not exist or the login role cannot assume it."""
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

    logging.getLogger("pg_mcp.db.executor").debug("run_readonly failed", exc_info=exc)
    text = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    if isinstance(exc, psycopg.OperationalError):
        return PgMcpError("CONNECTION_ERROR", f"database connection failed: {detail}")
    return PgMcpError("DB_ERROR", f"unexpected error: {detail}")


def _default_settings() -> Settings:
    from pg_mcp.core.settings import load_settings

    return load_settings()


def first_keyword(sql: str) -> str:
    """The statement's first word, upper-cased, as the validator's lexer reads it (comments,
    whitespace and opening parentheses skipped); "" when there is none or it does not lex."""
    from pg_mcp.core.validator import LexError, iter_lex

    try:
        for tok in iter_lex(sql):
            text = sql[tok.start : tok.end]
            if tok.kind == "punct" and text == "(":
                continue
            return text.upper() if tok.kind == "word" else ""
    except LexError:
        return ""
    return ""


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
        verdict = pools.checker.validate(sql, db)
        if not verdict.ok:
            return RunResult.failure(PgMcpError.of(verdict), db)
        explain = verdict.kind == "explain"
    else:
        explain = first_keyword(sql) == "EXPLAIN"
    wait = settings.connect_timeout + seconds
    call = _Call(pools, db, sql, settings, rows_cap, seconds, explain)
    try:
        try:
            return call.once(wait, may_retry=True)
        except _StaleConnection:
            # It had died unnoticed, before answering: like a dead connection on checkout.
            pools.get(db).drain()
            if not pools.server_answers(db):
                raise ServerDown from None
            return call.once(wait)
    except (_pool_timeout(), ServerDown) as exc:
        if not isinstance(exc, ServerDown) and pools.server_answers(db):
            raise PgMcpError(
                "CONNECTION_ERROR",
                f"all {settings.pool_max_size} connections to {db!r} stayed busy for {wait:g} s",
                hint="retry later, or raise pool_max_size",
            ) from None
        pools.forget(db)  # the server does not answer: re-resolve next time
        raise PgMcpError(
            "CONNECTION_ERROR",
            f"could not connect to database {db!r}"
            + ("" if isinstance(exc, ServerDown) else f" within {wait:g} s"),
            hint="is the server up? check PG_MCP_DSN",
        ) from None


def _pool_timeout() -> type[Exception]:
    from psycopg_pool import PoolTimeout  # (evaluated only when an exception is raised)

    return PoolTimeout


class _StaleConnection(Exception):
    """The connection, handed out without a health check, was dead: it failed before the server
    acknowledged anything (not even BEGIN), so the statement never ran."""


class _Failed(Exception):
    """A statement we sent failed: the error, the prefix put in front of the user's SQL in the
    statement that failed ("" when it was not the user's statement), and how many statements of
    its round trip the server had answered."""

    def __init__(self, error: Exception, prefix: str, answered: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.prefix = prefix
        self.answered = answered


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def settings_sql(seconds: float, settings: Settings) -> str:
    """The transaction's local settings, in one statement (``set_config(..., true)`` is ``SET
    LOCAL``), which also releases any session advisory lock a previous call left."""
    pairs = statement_settings(seconds, settings.lock_timeout, settings.idle_in_transaction_timeout)
    return local_settings_sql(pairs) + ", " + UNLOCK_SQL


def fetch_sql(n: int) -> str:
    return f'FETCH FORWARD {n} FROM "{CURSOR_NAME}"'


@dataclass
class _Call:
    """One run_readonly call's statement on one connection (``once``)."""

    pools: Pools
    db: str
    sql: str
    settings: Settings
    max_rows: int
    seconds: float
    explain: bool

    def once(self, wait: float, *, may_retry: bool = False) -> RunResult:
        pools = self.pools
        pool = pools.get(self.db)
        conn, checked = pools.checkout(self.db, wait)
        try:
            pools.check_role(self.db, conn)
            return self._execute(conn, may_retry=may_retry and not checked)
        finally:
            pool.putconn(conn)

    def _execute(self, conn: psycopg.Connection[Any], *, may_retry: bool) -> RunResult:
        """BEGIN, the local settings, DECLARE (one trip), the streamed FETCH, ROLLBACK; the
        watchdog over all of it. Every path ends rolled back, or closed."""
        import psycopg

        s = self.settings
        guard = not self.explain and (s.explain_max_cost > 0 or s.explain_max_rows > 0)
        steps: list[tuple[str, str]] = [("", BEGIN_SQL)]
        if s.policy.query_role:
            steps.append(("", "SET LOCAL ROLE " + _quote_ident(s.policy.query_role)))
        steps.append(("", settings_sql(self.seconds, s)))
        steps.append(("", SEARCH_PATH_SQL))
        if not self.explain:
            steps.append((DECLARE_PREFIX, DECLARE_PREFIX + self.sql))
            steps.append((DECLARE_PREFIX, fetch_sql(0)))  # no row: the columns, at no cost
            if guard:
                steps.append((EXPLAIN_PREFIX, EXPLAIN_PREFIX + self.sql))
        watchdog = self.pools.deadlines.watch(
            conn,
            self.seconds + WATCHDOG_GRACE,
            grace=WATCHDOG_GRACE,
            cancel_timeout=min(CANCEL_TIMEOUT, max(1.0, s.connect_timeout)),
        )
        try:
            with watchdog:
                try:
                    cursors = _pipeline(conn, steps)
                    self.pools.answered(conn)
                    if self.explain:
                        return self._explain(conn)
                    if guard:
                        _explain_guard([row[0] for row in cursors[-1].fetchall()], s)
                    describe = cursors[-2] if guard else cursors[-1]
                    return self._fetch(conn, describe.description or [])
                finally:
                    if not conn.closed and not watchdog.cut:
                        _end(conn)
        except _Failed as failed:
            exc = failed.error
            lost = isinstance(exc, psycopg.OperationalError)
            if may_retry and lost and failed.answered == 0 and not watchdog.fired:
                raise _StaleConnection from None  # dead before BEGIN: safe to run on a fresh one
            raise _map_error(exc, self.sql, failed.prefix, self.seconds, watchdog.fired) from None
        except psycopg.Error as exc:  # the FETCH, the type lookup, the reset
            raise _map_error(exc, self.sql, DECLARE_PREFIX, self.seconds, watchdog.fired) from None
        finally:
            if watchdog.fired and not conn.closed:
                conn.close()  # the pool discards it: no stray cancel can reach its next user

    def _fetch(self, conn: psycopg.Connection[Any], description: Any) -> RunResult:
        columns, arrays = _columns(conn, description, self.pools.type_names(self.db))
        cur = conn.cursor()
        rows, truncated, reason = _stream(
            cur, fetch_sql(self.max_rows + 1), self.max_rows, self.settings.max_bytes, arrays
        )
        return RunResult(
            ok=True,
            columns=columns,
            rows=rows,
            row_count=len(rows),
            truncated=truncated,
            truncated_reason=reason,
        )

    def _explain(self, conn: psycopg.Connection[Any]) -> RunResult:
        """EXPLAIN cannot be a cursor: its (text or JSON) plan is streamed like any result."""
        cur = conn.cursor()
        try:
            rows, truncated, reason = _stream(
                cur, self.sql, self.max_rows, self.settings.max_bytes, {}
            )
        except psycopg_error() as exc:
            raise _Failed(exc, "", 1) from None
        columns, _ = _columns(conn, cur.description or [], self.pools.type_names(self.db))
        return RunResult(
            ok=True,
            columns=columns,
            rows=rows,
            row_count=len(rows),
            truncated=truncated,
            truncated_reason=reason,
        )


def psycopg_error() -> type[Exception]:
    import psycopg

    return psycopg.Error


def _pipeline(conn: psycopg.Connection[Any], steps: list[tuple[str, str]]) -> list[Any]:
    """The ``(prefix, statement)`` steps in one pipelined round trip (psycopg's pipeline mode:
    the extended protocol, one statement per message); their cursors. Raises ``_Failed`` with
    the first error (the server skips the rest up to the Sync, so the query never runs without
    its transaction and settings)."""
    import psycopg

    cursors = [conn.cursor() for _ in steps]
    try:
        with conn.pipeline():
            for cur, (_, statement) in zip(cursors, steps, strict=True):
                cur.execute(statement)
    except psycopg.Error as exc:
        answered = next(
            (i for i, cur in enumerate(cursors) if cur.statusmessage is None), len(steps)
        )
        prefix = steps[answered][0] if answered < len(steps) else ""
        raise _Failed(exc, prefix, answered) from None
    return cursors


def _end(conn: psycopg.Connection[Any]) -> None:
    """ROLLBACK; a connection that cannot be ended cleanly is closed (the pool replaces it)."""
    import psycopg

    try:
        conn.execute(END_SQL)
    except psycopg.Error:
        conn.close()


def _stream(
    cur: Any, query: str, max_rows: int, max_bytes: int, arrays: dict[int, str]
) -> tuple[list[list[Any]], bool, str | None]:
    """At most ``max_rows`` rows of ``query`` (one more is read to know it was cut), within the
    byte budget, streamed row by row (single-row mode): rows are turned JSON-safe and measured
    in batches of at most FETCH_CHUNK rows or a quarter of the budget in raw bytes, and the
    stream stops (the rest is cancelled on the server) as soon as the budget is crossed.

    The budget counts the bytes of the compact JSON array of the rows."""
    from pg_mcp.core.values import json_size, rows_jsonable

    rows: list[list[Any]] = []
    size = 2  # "[]"
    pending: list[Any] = []
    pending_raw = 0
    flush_at = max(8192, max_bytes // 4) if max_bytes > 0 else None
    seen = 0
    truncated: tuple[bool, str | None] = (False, None)

    def flush() -> bool:
        """Convert and measure the pending rows; True when the budget is crossed."""
        nonlocal size, pending, pending_raw
        converted = rows_jsonable(pending, arrays)
        pending, pending_raw = [], 0
        grown = size + json_size(converted) - 2 + (1 if rows and converted else 0)
        if max_bytes <= 0 or grown <= max_bytes:
            rows.extend(converted)
            size = grown
            return False
        for row in converted:
            size += json_size(row) + (1 if rows else 0)
            if size > max_bytes:
                if not rows:
                    raise PgMcpError(
                        "RESULT_TOO_LARGE",
                        f"the first row alone serialises to more than max_bytes ({max_bytes:,} bytes)",
                        hint="select fewer or narrower columns (e.g. left(col, 200)), or raise max_bytes",
                    )
                return True
            rows.append(row)
        return False

    stream = cur.stream(query)
    varlena: list[int] | None = None  # columns of variable width (the others: fixed, small)
    fixed = 0
    try:
        for row in stream:
            seen += 1
            if seen > max_rows:  # the one row too many (the FETCH asked for max_rows + 1)
                truncated = (True, "max_rows")
                continue
            pending.append(row)
            if flush_at is not None:
                res = cur.pgresult  # this row's raw result (single-row mode)
                if varlena is None:
                    sizes = [res.fsize(i) for i in range(res.nfields)]
                    varlena = [i for i, n in enumerate(sizes) if n < 0]
                    fixed = sum(n for n in sizes if n > 0)
                pending_raw += fixed
                for i in varlena:
                    value = res.get_value(0, i)
                    if value is not None:
                        pending_raw += len(value)
            full = len(pending) >= FETCH_CHUNK or (flush_at is not None and pending_raw >= flush_at)
            if full and flush():
                return rows, True, "max_bytes"
        if pending and flush():
            return rows, True, "max_bytes"
    finally:
        stream.close()  # an unfinished stream is cancelled on the server and drained
    return rows, truncated[0], truncated[1]


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
    description: Any,
    cache: dict[int, tuple[str, str | None]],
) -> tuple[list[dict[str, str]], dict[int, str]]:
    """Column names and type names (``format_type``), and array columns (index -> delimiter).

    Type OIDs are looked up once per database and cached (a query in the open transaction)."""
    pairs = [(col.name, col.type_code) for col in description]
    missing = sorted({oid for _, oid in pairs if oid not in cache})
    if missing:
        found = conn.execute(
            "SELECT t.oid::int8, format_type(t.oid, NULL), e.typdelim::text"
            " FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'"
            " WHERE t.oid = ANY(%s::oid[])",
            ["{" + ",".join(map(str, missing)) + "}"],
        ).fetchall()
        cache.update({int(o): (str(name), delim) for o, name, delim in found})
    from psycopg.pq import Format

    columns, arrays = [], {}
    for i, (name, oid) in enumerate(pairs):
        type_name, delim = cache.get(oid, (str(oid), None))
        columns.append({"name": name, "type": type_name})
        if delim and conn.adapters.get_loader(oid, Format.TEXT) is None:  # loaded as its text
            arrays[i] = delim
    return columns, arrays


# --- errors --------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z_]+")


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
