"""run_readonly on the real PostgreSQL, mostly with validation bypassed (validate=False):
the executor alone must stop writes, stacked statements, leaking session state and runaway
queries, and fetch big results without loading them."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from conftest import scratch_database
from pg_mcp.core.settings import Settings, load_settings
from pg_mcp.db.discovery import database_dsn as db_dsn
from pg_mcp.db.executor import (
    DECLARE_PREFIX,
    Pools,
    RunResult,
    first_keyword,
    run_readonly,
)
from pg_mcp.db.watchdog import Deadlines


def make_settings(dsn: str, tmp: Path, **overrides: object) -> Settings:
    """Settings for the administrator's DSN, privileged role allowed on purpose: these tests
    prove the execution envelope holds for the worst role a user might configure (a superuser
    that could write anything), so no privilege of the role is what stops a write."""
    from pg_mcp.core.settings import Policy

    overrides.setdefault("policy", Policy(allow_privileged_role=True))
    return load_settings(
        env={"PG_MCP_DSN": dsn, "PG_MCP_HOME": str(tmp)}, config_path=None, **overrides
    )


@pytest.fixture(scope="module")
def db(pg_dsn: str) -> Iterator[str]:
    """A database for this module with a small table t, a sequence and a function that writes.

    Shared by the tests: the executor never changes it (that is what they check)."""
    setup = """
        CREATE TABLE t (id int PRIMARY KEY, name text);
        INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 5) g;
        CREATE SEQUENCE s;
        CREATE FUNCTION write_t() RETURNS int LANGUAGE sql VOLATILE
          AS 'INSERT INTO t VALUES (99, ''sneaky'') RETURNING id';
    """
    with scratch_database(pg_dsn, setup, "exec") as name:
        yield name


@pytest.fixture
def pools(pg_dsn: str, tmp_path: Path) -> Iterator[Pools]:
    with Pools(make_settings(pg_dsn, tmp_path, pool_max_size=1)) as p:
        yield p


def t_state(pg_dsn: str, db: str) -> tuple[bool, int]:
    """(does table t exist, its row count) seen from an independent connection."""
    with psycopg.connect(db_dsn(pg_dsn, db), autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('public.t') IS NOT NULL").fetchone()[0]  # type: ignore[index]
        count = conn.execute("SELECT count(*) FROM t").fetchone()[0] if exists else -1  # type: ignore[index]
        return bool(exists), int(count)


def run(sql: str, db: str, pools: Pools, **kw: object) -> RunResult:
    return run_readonly(sql, db, pools=pools, validate=False, **kw)  # type: ignore[arg-type]


# --- plain queries -------------------------------------------------------------------------


def test_select_returns_columns_rows_and_types(db: str, pools: Pools) -> None:
    r = run(
        "SELECT id, name, id::numeric / 2 AS half FROM t WHERE name LIKE 'row %' ORDER BY id",
        db,
        pools,
    )
    assert r.ok, r
    assert r.columns == [
        {"name": "id", "type": "integer"},
        {"name": "name", "type": "text"},
        {"name": "half", "type": "numeric"},
    ]
    assert r.rows[0] == [1, "row 1", "0.50000000000000000000"]  # numeric: exact text
    assert (r.row_count, r.truncated, r.database) == (5, False, db)
    d = r.to_dict()
    assert (
        d["ok"] is True and d["row_count"] == 5 and d["truncated"] is False and d["elapsed_ms"] > 0
    )
    json.dumps(d, allow_nan=False)


def test_values_table_with_and_trailing_semicolon_run(db: str, pools: Pools) -> None:
    assert run("VALUES (1), (2);", db, pools).rows == [[1], [2]]
    assert run("TABLE t", db, pools).row_count == 5
    assert run("WITH x AS (SELECT 1 AS a) SELECT a FROM x -- trailing comment", db, pools).rows == [
        [1]
    ]
    assert run("(SELECT 1) UNION ALL (SELECT 2) ORDER BY 1", db, pools).rows == [[1], [2]]


def test_explain_statement_runs_over_extended_protocol(db: str, pools: Pools) -> None:
    r = run("/* plan */ EXPLAIN SELECT * FROM t WHERE id = 1", db, pools)
    assert r.ok and r.columns == [{"name": "QUERY PLAN", "type": "text"}]
    assert any("t" in row[0] for row in r.rows)
    r = run("EXPLAIN (FORMAT JSON) SELECT 1", db, pools)
    assert r.ok and r.rows[0][0][0]["Plan"]["Node Type"] == "Result"
    assert first_keyword("-- c\n /* a /* nested */ b */ (explain select 1)") == "EXPLAIN"


# --- writes, stacked statements ------------------------------------------------------------

WRITES = [
    "INSERT INTO t VALUES (100, 'x')",
    "UPDATE t SET name = 'changed'",
    "DELETE FROM t",
    "MERGE INTO t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE",
    "TRUNCATE t",
    "DROP TABLE t",
    "ALTER TABLE t ADD COLUMN c int",
    "CREATE TABLE t2 (a int)",
    "CREATE TEMP TABLE tmp AS SELECT 1",
    "GRANT ALL ON t TO PUBLIC",
    "COPY t FROM STDIN",
    "COPY (SELECT 1) TO STDOUT",
    "VACUUM t",
    "SET ROLE postgres",
    "  insert into t values (101, 'lower case, leading space')",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
    "WITH x AS (SELECT 1) INSERT INTO t SELECT 102, 'cte'",
    "SELECT nextval('s')",
    "SELECT write_t()",
    "SELECT * FROM write_t()",
    "SELECT * INTO t3 FROM t",
    "EXPLAIN ANALYZE DELETE FROM t",
    "EXPLAIN ANALYZE SELECT write_t()",
]


@pytest.mark.parametrize("sql", WRITES)
def test_executor_alone_refuses_writes(sql: str, pg_dsn: str, db: str, pools: Pools) -> None:
    r = run(sql, db, pools)
    assert not r.ok
    assert r.code in ("READ_ONLY_VIOLATION", "DB_ERROR"), r
    assert t_state(pg_dsn, db) == (True, 5)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t VALUES (100, 'x')",
        "UPDATE t SET name = 'changed'",
        "DELETE FROM t",
        "DROP TABLE t",
        "CREATE TABLE t2 (a int)",
        "SELECT nextval('s')",
        "SELECT write_t()",
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "EXPLAIN ANALYZE DELETE FROM t",
    ],
)
def test_writes_come_back_as_read_only_violation(sql: str, db: str, pools: Pools) -> None:
    r = run(sql, db, pools)
    assert r.code == "READ_ONLY_VIOLATION", r
    assert r.sqlstate in ("25006", "42601", "0A000")


STACKED = [
    "COMMIT; DROP TABLE t",
    "SELECT 1; DROP TABLE t",
    "ROLLBACK; DROP TABLE t",
    "END; DROP TABLE t",
    "SELECT 1; COMMIT; DROP TABLE t",
    "SELECT 1;; DROP TABLE t",
    "SELECT 1 /* ; */; COMMIT; DELETE FROM t",
    "EXPLAIN SELECT 1; COMMIT; DROP TABLE t",
    "select 1;\ncommit;\ndrop table t;",
    "SELECT $$;$$; COMMIT; DROP TABLE t",
]


@pytest.mark.parametrize("sql", STACKED)
def test_stacked_statements_never_run(sql: str, pg_dsn: str, db: str, pools: Pools) -> None:
    r = run(sql, db, pools)
    assert not r.ok
    assert t_state(pg_dsn, db) == (True, 5)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DROP TABLE t",
        "SELECT 1; COMMIT; DROP TABLE t",
        "EXPLAIN SELECT 1; COMMIT; DROP TABLE t",
    ],
)
def test_extended_protocol_rejects_multiple_commands(
    sql: str, pg_dsn: str, db: str, pools: Pools
) -> None:
    """The server's parser refuses a second command in one extended-protocol Parse message."""
    r = run(sql, db, pools)
    assert (r.code, r.sqlstate) == ("MULTIPLE_STATEMENTS", "42601")
    assert "cannot insert multiple commands into a prepared statement" in r.message
    assert t_state(pg_dsn, db) == (True, 5)


def test_commit_first_is_refused_by_the_cursor_grammar(pg_dsn: str, db: str, pools: Pools) -> None:
    """DECLARE ... CURSOR FOR COMMIT fails in the grammar, before the second command matters."""
    r = run("COMMIT; DROP TABLE t", db, pools)
    assert (r.code, r.sqlstate, r.position) == ("READ_ONLY_VIOLATION", "42601", 1)
    assert "COMMIT" in r.message
    assert t_state(pg_dsn, db) == (True, 5)


def test_extended_protocol_alone_refuses_commit_drop(pg_dsn: str, db: str) -> None:
    """Without any cursor: the extended protocol (psycopg stream(), as the EXPLAIN path uses)
    refuses "COMMIT; DROP" at Parse time, so the read-only transaction is never escaped."""
    with psycopg.connect(db_dsn(pg_dsn, db), autocommit=True) as conn:
        conn.execute("BEGIN READ ONLY")
        with conn.cursor() as cur, pytest.raises(psycopg.errors.SyntaxError) as err:
            list(cur.stream("COMMIT; DROP TABLE t"))
        assert "cannot insert multiple commands into a prepared statement" in str(err.value)
        conn.rollback()
    assert t_state(pg_dsn, db) == (True, 5)


def test_extended_protocol_rejection_holds_with_the_explain_guard(
    pg_dsn: str, db: str, tmp_path: Path
) -> None:
    s = make_settings(pg_dsn, tmp_path, explain_max_cost=1e12)
    with Pools(s) as p:
        for sql in ("SELECT 1; COMMIT; DROP TABLE t", "COMMIT; DROP TABLE t"):
            assert not run_readonly(sql, db, pools=p, validate=False).ok
    assert t_state(pg_dsn, db) == (True, 5)


def test_simple_protocol_would_have_let_commit_drop_through(pg_dsn: str, db: str) -> None:
    """Control: why the extended protocol matters. Plain psycopg without parameters uses the
    simple protocol, where COMMIT ends the read-only transaction and the next command writes."""
    with psycopg.connect(db_dsn(pg_dsn, db), autocommit=True) as conn:
        conn.execute("BEGIN READ ONLY")
        conn.execute("COMMIT; CREATE TABLE escaped (a int)")
        assert conn.execute("SELECT to_regclass('escaped') IS NOT NULL").fetchone()[0]  # type: ignore[index]
        conn.execute("DROP TABLE escaped")


def test_server_cursor_declare_goes_over_extended_protocol(db: str, pools: Pools) -> None:
    """psycopg's ServerCursor sends DECLARE with PQsendQueryParams: a second command is refused
    even without parameters, unlike cursor.execute() on a plain cursor."""
    with pools.get(db).connection() as conn:
        conn.execute("BEGIN READ ONLY")
        with conn.cursor(name="probe") as cur, pytest.raises(psycopg.errors.SyntaxError) as err:
            cur.execute("SELECT 1; SELECT 2")
        assert "multiple commands" in str(err.value)
        conn.rollback()


# --- session state ---------------------------------------------------------------------------


def test_session_state_does_not_leak_to_the_next_pooled_use(db: str, pools: Pools) -> None:
    before = run(
        "SELECT pg_backend_pid(), current_setting('search_path'), current_setting('pgmcp.leak', true)",
        db,
        pools,
    )
    assert before.ok
    pid, default_path, default_leak = before.rows[0]
    leak = run(
        "SELECT set_config('search_path', 'pg_catalog', false), set_config('pgmcp.leak', 'yes', false),"
        " set_config('work_mem', '1GB', false), pg_advisory_lock(424242)",
        db,
        pools,
    )
    assert leak.ok, leak
    after = run(
        "SELECT pg_backend_pid(), current_setting('search_path'), current_setting('pgmcp.leak', true),"
        " current_setting('work_mem'),"
        " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())",
        db,
        pools,
    )
    assert after.ok, after
    assert after.rows[0][0] == pid  # the same pooled connection (pool_max_size=1)
    assert after.rows[0][1] == default_path
    # a custom placeholder, once defined, stays defined, but with its empty reset value
    assert after.rows[0][2] in (default_leak, "")
    assert after.rows[0][3] != "1GB"
    assert after.rows[0][4] == 0  # released before this call's query (pg_advisory_unlock_all)


SETTINGS_SEEN = (
    "SELECT current_setting('transaction_read_only'), current_setting('statement_timeout'),"
    " current_setting('lock_timeout'), current_setting('IntervalStyle')"
)


def test_settings_live_in_the_transaction_only(db: str, pools: Pools) -> None:
    """Every setting is the transaction's own (SET LOCAL): a call with another timeout leaves
    nothing for the next call, and the pooled connection's session holds none of them (no
    startup options, nothing to reset: what a PgBouncer in transaction mode needs)."""
    custom = run(SETTINGS_SEEN, db, pools, timeout=3)
    assert custom.rows == [["on", "3s", "1s", "postgres"]], custom
    default = run(SETTINGS_SEEN, db, pools)
    assert default.rows == [["on", "10s", "1s", "postgres"]], default
    with pools.get(db).connection() as conn:  # the same connection, outside any transaction
        session = conn.execute(
            "SELECT current_setting('default_transaction_read_only'),"
            " current_setting('statement_timeout'), current_setting('lock_timeout')"
        ).fetchone()
    assert session == ("off", "0", "0")


def test_cannot_switch_the_transaction_to_read_write(pg_dsn: str, db: str, pools: Pools) -> None:
    r = run("SELECT set_config('transaction_read_only', 'off', true), write_t()", db, pools)
    assert not r.ok
    assert t_state(pg_dsn, db) == (True, 5)


# --- timeouts and cancellation --------------------------------------------------------------


def active_backends(pg_dsn: str, db: str) -> int:
    """Backends of pg-mcp running a statement in ``db`` (the active statement is a FETCH, so it is
    found by database and application name, not by query text)."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND datname = %s"
            " AND application_name = 'pg-mcp' AND pid <> pg_backend_pid()",
            [db],
        ).fetchone()
        return int(row[0])  # type: ignore[index]


def run_in_background(fn) -> tuple[threading.Thread, list[RunResult]]:  # type: ignore[no-untyped-def]
    out: list[RunResult] = []
    th = threading.Thread(target=lambda: out.append(fn()))
    th.start()
    return th, out


def wait_until(predicate, seconds: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_sleep(60)",
        "SELECT count(*) FROM generate_series(1, 1000000000) a",
        "SELECT count(*) FROM t, generate_series(1, 1000000000) a",
    ],
)
def test_runaway_query_times_out_and_is_cancelled_on_the_server(
    sql: str, pg_dsn: str, db: str, pools: Pools
) -> None:
    th, out = run_in_background(lambda: run(sql, db, pools, timeout=1.5))
    assert wait_until(lambda: active_backends(pg_dsn, db) == 1)  # control: we can see it running
    th.join(timeout=30)
    r = out[0]
    assert r.code == "TIMEOUT" and r.sqlstate == "57014", r
    assert "1.5 s" in r.message
    assert active_backends(pg_dsn, db) == 0
    assert run("SELECT 1", db, pools).rows == [[1]]  # the pool is healthy afterwards


def test_watchdog_cancels_on_the_server_when_no_statement_timeout(pg_dsn: str, db: str) -> None:
    marker = "watchdog_marker_9d01"
    with psycopg.connect(db_dsn(pg_dsn, db), autocommit=True) as conn:
        watchdog = Deadlines().watch(conn, 0.5)
        with watchdog, pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute(f"SELECT pg_sleep(60) AS {marker}")
        assert watchdog.fired
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s"
            " AND pid <> pg_backend_pid()",
            [f"%{marker}%"],
        ).fetchone()
    assert row is not None and row[0] == 0


def test_a_cancelled_watchdog_never_fires(db: str, pg_dsn: str) -> None:
    with psycopg.connect(db_dsn(pg_dsn, db), autocommit=True) as conn:
        watchdog = Deadlines().watch(conn, 0.2)
        with watchdog:
            conn.execute("SELECT 1")
        time.sleep(0.4)
        assert not watchdog.fired and watchdog.state == "cancelled"
        assert conn.execute("SELECT pg_sleep(0.1), 1").fetchone() == ("", 1)


def test_invalid_timeout_is_refused(db: str, pools: Pools) -> None:
    assert run("SELECT 1", db, pools, timeout=0).code == "CONFIG_ERROR"


# --- big results ------------------------------------------------------------------------------


def peak_bytes(fn) -> int:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_two_million_rows_come_back_truncated_without_loading_them(
    pg_dsn: str, scratch_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(db_dsn(pg_dsn, scratch_db), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h, now() AS ts"
            " FROM generate_series(1, 2000000) g"
        )
        assert conn.execute("SELECT count(*) FROM big").fetchone()[0] == 2_000_000  # type: ignore[index]
    with Pools(make_settings(pg_dsn, tmp_path)) as p:
        assert run_readonly("SELECT 1", scratch_db, pools=p, validate=False).ok  # warm the pool
        results: dict[int, RunResult] = {}

        def go(n: int) -> None:
            results[n] = run_readonly(
                "SELECT * FROM big", scratch_db, pools=p, max_rows=n, validate=False
            )

        peak100 = peak_bytes(lambda: go(100))
        peak10 = peak_bytes(lambda: go(10))
    for n in (100, 10):
        assert results[n].ok and results[n].truncated and results[n].truncated_reason == "max_rows"
        assert results[n].row_count == n
    # The whole table is ~180 MB as Python objects; a bounded fetch stays far below 1 MB.
    assert peak100 < 1_000_000, peak100
    assert peak10 < 1_000_000, peak10
    with capsys.disabled():
        print(
            f"\n[figures] tracemalloc peak, SELECT * FROM big (2M rows): max_rows=100 {peak100 / 1024:.0f} KiB,"
            f" max_rows=10 {peak10 / 1024:.0f} KiB; elapsed {results[100].elapsed_ms:.1f} / {results[10].elapsed_ms:.1f} ms"
        )


def test_byte_budget_truncates_and_refuses_a_single_oversized_row(
    pg_dsn: str, db: str, tmp_path: Path
) -> None:
    with Pools(make_settings(pg_dsn, tmp_path, max_bytes=60)) as p:
        r = run_readonly("SELECT id, name FROM t ORDER BY id", db, pools=p, validate=False)
        assert r.ok and r.truncated and r.truncated_reason == "max_bytes"
        assert 1 <= r.row_count < 5
        assert len(json.dumps(r.rows, separators=(",", ":"))) <= 60
        big = run_readonly("SELECT repeat('x', 1000)", db, pools=p, validate=False)
        assert big.code == "RESULT_TOO_LARGE"


def test_max_rows_zero_reports_truncation_only(db: str, pools: Pools) -> None:
    r = run("SELECT * FROM t", db, pools, max_rows=0)
    assert r.ok and r.rows == [] and r.truncated


# --- EXPLAIN guard ---------------------------------------------------------------------------


def test_explain_guard_refuses_expensive_queries(pg_dsn: str, db: str, tmp_path: Path) -> None:
    sql = "SELECT * FROM generate_series(1, 10000000) a CROSS JOIN t"
    with Pools(make_settings(pg_dsn, tmp_path, explain_max_cost=1000)) as p:
        r = run_readonly(sql, db, pools=p, validate=False)
        assert r.code == "COST_LIMIT", r
        assert (
            "1,000" in r.message
            and r.details["estimated_cost"] > 1000
            and r.details["limit"] == 1000
        )
        assert run_readonly("SELECT 1", db, pools=p, validate=False).ok
    with Pools(make_settings(pg_dsn, tmp_path, explain_max_rows=100)) as p:
        r = run_readonly(sql, db, pools=p, validate=False)
        assert r.code == "COST_LIMIT" and "rows" in r.message and r.details["estimated_rows"] > 100
        assert run_readonly("SELECT * FROM t WHERE id = 1", db, pools=p, validate=False).ok


# --- errors ------------------------------------------------------------------------------------


def test_database_errors_carry_sqlstate_message_hint_and_position(db: str, pools: Pools) -> None:
    r = run("SELECT * FROM no_such_table", db, pools)
    assert (r.code, r.sqlstate) == ("DB_ERROR", "42P01")
    assert 'relation "no_such_table" does not exist' in r.message
    assert r.position == 15  # mapped back from the DECLARE wrapper to the user's SQL
    r = run("SELECT nam FROM t", db, pools)
    assert (r.code, r.sqlstate, r.position) == ("DB_ERROR", "42703", 8)
    assert r.hint and "name" in r.hint
    d = r.to_dict()
    assert d["ok"] is False and d["code"] == "DB_ERROR" and d["sqlstate"] == "42703"
    r = run("EXPLAIN SELECT nam FROM t", db, pools)
    assert (r.sqlstate, r.position) == ("42703", 16)
    assert len(DECLARE_PREFIX) > 0


def test_unknown_database_and_database_required(pg_dsn: str, tmp_path: Path, db: str) -> None:
    s = make_settings(pg_dsn, tmp_path)
    r = run_readonly("SELECT 1", "no_such_db_pgmcp", settings=s, validate=False)
    assert r.code == "UNKNOWN_DATABASE" and not r.ok
    assert run_readonly("SELECT 1", None, settings=s, validate=False).code == "DATABASE_REQUIRED"
    only = make_settings(pg_dsn, tmp_path, include=(db,))
    r = run_readonly("SELECT current_database()", None, settings=only, validate=False)
    assert r.ok and r.rows == [[db]] and r.database == db
    excluded = make_settings(pg_dsn, tmp_path, exclude=(db,))
    assert (
        run_readonly("SELECT 1", db, settings=excluded, validate=False).code == "UNKNOWN_DATABASE"
    )


def test_connection_errors_are_returned_not_raised(tmp_path: Path) -> None:
    s = make_settings("postgresql://nobody@127.0.0.1:1/postgres", tmp_path, connect_timeout=2)
    r = run_readonly("SELECT 1", "postgres", settings=s, validate=False)
    assert r.code == "CONNECTION_ERROR" and not r.ok
    assert r.to_dict()["code"] == "CONNECTION_ERROR"


# --- audit, pools --------------------------------------------------------------------------------


def test_audit_log_gets_one_json_line_per_statement(pg_dsn: str, db: str, tmp_path: Path) -> None:
    log = tmp_path / "audit" / "audit.jsonl"
    with Pools(make_settings(pg_dsn, tmp_path, audit_log=log)) as p:
        run_readonly("SELECT id FROM t", db, pools=p, validate=False, max_rows=2)
        run_readonly("DELETE FROM t", db, pools=p, validate=False)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["outcome"] for x in lines] == ["ok", "READ_ONLY_VIOLATION"]
    first = lines[0]
    assert first["database"] == db and first["sql"] == "SELECT id FROM t"
    assert first["rows"] == 2 and first["truncated"] is True and first["elapsed_ms"] > 0
    assert first["time"].endswith("Z")
    assert lines[1]["sqlstate"] == "42601"
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_pools_are_thread_safe_and_reused(pg_dsn: str, db: str, tmp_path: Path) -> None:
    results: list[RunResult] = []
    with Pools(make_settings(pg_dsn, tmp_path, pool_max_size=2)) as p:

        def work() -> None:
            for _ in range(5):
                results.append(run_readonly("SELECT count(*) FROM t", db, pools=p, validate=False))

        threads = [threading.Thread(target=work) for _ in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert p.get(db) is p.get(db)
        assert p.get(db).get_stats().get("pool_size", 0) <= 2
    assert len(results) == 30 and all(r.ok and r.rows == [[5]] for r in results)


def test_validation_runs_first_by_default(db: str, pools: Pools) -> None:
    pytest.importorskip("pg_mcp.core.validator")
    r = run_readonly("DELETE FROM t", db, pools=pools)
    assert not r.ok and r.code == "NOT_READ_ONLY"
    r = run_readonly("SELECT id FROM t ORDER BY id LIMIT 1", db, pools=pools)
    assert r.ok and r.rows == [[1]]


def test_lock_timeout_is_reported_as_timeout(pg_dsn: str, db: str, pools: Pools) -> None:
    with psycopg.connect(db_dsn(pg_dsn, db)) as locker:
        locker.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        r = run("SELECT * FROM t", db, pools)
        assert r.code == "TIMEOUT" and r.sqlstate == "55P03", r
        locker.rollback()
    assert run("SELECT count(*) FROM t", db, pools).rows == [[5]]


def test_a_dead_pooled_connection_is_replaced_on_checkout(
    pg_dsn: str, db: str, pools: Pools
) -> None:
    pid = run("SELECT pg_backend_pid()", db, pools).rows[0][0]
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    r = run("SELECT pg_backend_pid()", db, pools)
    assert r.ok, r  # the health check discarded the dead connection and opened a new one
    assert r.rows[0][0] != pid


def test_bad_arguments_are_returned_as_failures(db: str, pools: Pools) -> None:
    assert run(None, db, pools).code == "PARSE_ERROR"  # type: ignore[arg-type]
    assert run("SELECT 1", db, pools, max_rows="many").code == "CONFIG_ERROR"
    assert run("SELECT 1", db, pools, timeout=-1).code == "CONFIG_ERROR"
    assert run("SELECT 1", db, pools, max_rows=-5).rows == []
    assert run("SELECT E'\\x01' || chr(0)", db, pools).code == "DB_ERROR"
