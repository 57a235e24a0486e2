"""run_readonly's fast path keeps every safety property (real PostgreSQL throughout).

The fast path: BEGIN READ ONLY, the settings and DECLARE in one pipelined round trip, the
FETCH streamed, ROLLBACK in one round trip; the checkout ping skipped for a
connection that answered moments ago and whose socket is quiet, with one retry when such a
connection proves dead before the server answered anything; and a cache of validation
verdicts that lapses when the schema cache serves a new model.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import pg_mcp.db.pools
from conftest import scratch_database
from pg_mcp.core.settings import Policy, Settings, load_settings
from pg_mcp.db.checker import Checker, validate_sql
from pg_mcp.db.discovery import database_dsn as db_dsn
from pg_mcp.db.executor import FETCH_CHUNK, Pools, RunResult, run_readonly
from pg_mcp.db.pools import CHECK_SKIP_SECONDS, quiet_socket


def make_settings(dsn: str, tmp: Path, **overrides: object) -> Settings:
    """Settings for the administrator's DSN, privileged role allowed on purpose: these tests
    prove the execution envelope holds for the worst role a user might configure (a superuser
    that could write anything), so no privilege of the role is what stops a write."""

    overrides.setdefault("policy", Policy(allow_privileged_role=True))
    return load_settings(
        env={"PG_MCP_DSN": dsn, "PG_MCP_HOME": str(tmp)}, config_path=None, **overrides
    )


@pytest.fixture(scope="module")
def db(pg_dsn: str) -> Iterator[str]:
    setup = (
        "CREATE TABLE t (id int PRIMARY KEY, name text);"
        "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 2500) g;"
    )
    with scratch_database(pg_dsn, setup, "fast") as name:
        yield name


@pytest.fixture
def pools(pg_dsn: str, tmp_path: Path) -> Iterator[Pools]:
    with Pools(make_settings(pg_dsn, tmp_path, pool_max_size=1)) as p:
        yield p


def run(sql: str, db: str, pools: Pools, **kw: object) -> RunResult:
    return run_readonly(sql, db, pools=pools, validate=False, **kw)  # type: ignore[arg-type]


SESSION_STATE = (
    "SELECT pg_backend_pid(), current_setting('work_mem'), current_setting('search_path'),"
    " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),"
    " (SELECT count(*) FROM pg_cursors)"
)


# --- one round trip, and every path ends clean ----------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "max_rows"),
    [
        ({}, 10),  # one round trip: ROLLBACK after the Sync
        ({"explain_max_cost": 1e12}, 10),  # EXPLAIN guard: two round trips
        ({}, FETCH_CHUNK + 500),  # chunked fetch, then the reset
    ],
)
def test_every_path_leaves_the_connection_clean_and_alive(
    pg_dsn: str, db: str, tmp_path: Path, overrides: dict[str, object], max_rows: int
) -> None:
    with Pools(make_settings(pg_dsn, tmp_path, pool_max_size=1, **overrides)) as p:
        before = run(SESSION_STATE, db, p)
        assert before.ok, before
        pid, work_mem, path, locks, cursors = before.rows[0]
        assert locks == 0  # (the cursors: ours and the protocol's portal running the FETCH)
        attempts = [
            # succeeds, after changing the session and taking a session-level lock
            "SELECT set_config('work_mem', '1GB', false), set_config('search_path', 'pg_catalog',"
            " false), pg_advisory_lock(4242), id FROM t ORDER BY id",
            # changes the session, then fails at run time
            "SELECT set_config('work_mem', '2GB', false), pg_advisory_lock(4243), 1 / (id - id)"
            " FROM t",
            "SELECT * FROM no_such_table",  # fails in DECLARE
        ]
        outcomes = [run(sql, db, p, max_rows=max_rows) for sql in attempts]
        assert outcomes[0].ok and outcomes[0].row_count == min(max_rows, 2500), outcomes[0]
        assert outcomes[0].truncated == (max_rows < 2500)
        assert [o.code for o in outcomes[1:]] == ["DB_ERROR", "DB_ERROR"]
        assert [o.sqlstate for o in outcomes[1:]] == ["22012", "42P01"]
        after = run(SESSION_STATE, db, p)
        assert after.rows == [[pid, work_mem, path, 0, cursors]]  # same backend, nothing kept
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        left = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            " AND state LIKE 'idle in transaction%%'",
            [db],
        ).fetchone()
    assert left == (0,)


def test_the_statement_never_runs_without_its_settings(db: str, pools: Pools) -> None:
    """A failure before DECLARE skips the rest of the trip up to the Sync: here set_config
    refuses the lock_timeout (out of range), and the query's own error never happens."""
    settings = pools.settings.with_(lock_timeout=1e8)  # 1e11 ms: above PostgreSQL's maximum
    r = run_readonly("SELECT 1 / 0", db, settings=settings, pools=pools, validate=False)
    assert r.code == "DB_ERROR" and r.sqlstate == "22023", r  # not 22012 (division by zero)
    assert "lock_timeout" in r.message
    assert run("SELECT 1", db, pools, timeout=1e10).code == "CONFIG_ERROR"  # said, not crashed
    assert run("SELECT 1", db, pools).rows == [[1]]


def test_stacked_statements_are_refused_inside_the_pipeline(db: str, pools: Pools) -> None:
    for sql in ("SELECT 1; SELECT 2", "EXPLAIN SELECT 1; COMMIT; SELECT 2"):
        r = run(sql, db, pools)
        assert (r.code, r.sqlstate) == ("MULTIPLE_STATEMENTS", "42601"), r


# --- the checkout ping and the one retry ---------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ping_is_skipped_only_for_a_recent_connection_with_a_quiet_socket(
    pg_dsn: str, db: str, tmp_path: Path
) -> None:
    clock = FakeClock()
    with Pools(make_settings(pg_dsn, tmp_path, pool_max_size=1), clock=clock) as p:
        assert run("SELECT 1", db, p).ok
        conn, checked = p.checkout(db, 5.0)
        p.get(db).putconn(conn)
        assert not checked  # recent and quiet: no round trip
        clock.now += CHECK_SKIP_SECONDS + 1
        conn, checked = p.checkout(db, 5.0)
        pid = conn.info.backend_pid
        p.get(db).putconn(conn)
        assert checked  # too old: pinged
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
        assert not quiet_socket(conn)  # the backend's goodbye is waiting on the socket
        conn, checked = p.checkout(db, 5.0)  # so it is checked, found dead and replaced
        assert checked and conn.info.backend_pid != pid
        p.get(db).putconn(conn)


def test_a_dead_connection_handed_out_unchecked_is_retried_once(
    pg_dsn: str, db: str, pools: Pools, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_mcp.db.pools, "quiet_socket", lambda conn: True)  # as if not yet noticed
    pid = run("SELECT pg_backend_pid()", db, pools).rows[0][0]
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
    r = run("SELECT pg_backend_pid()", db, pools)
    assert r.ok, r
    assert r.rows[0][0] != pid


def test_a_statement_that_kills_its_own_connection_is_not_run_again(
    db: str, pools: Pools, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retrying is only for a connection that was dead before the server answered anything:
    here BEGIN, the settings and DECLARE were answered, so the statement did start."""
    monkeypatch.setattr(pg_mcp.db.pools, "quiet_socket", lambda conn: True)  # handed out unchecked
    assert run("SELECT 1", db, pools).ok
    opened = pools.get(db).get_stats().get("connections_num", 0)
    r = run("SELECT pg_terminate_backend(pg_backend_pid())", db, pools)
    assert r.code == "CONNECTION_ERROR", r
    # no retry: a retry would have drained the pool and opened a new connection to run it again
    assert pools.get(db).get_stats().get("connections_num", 0) == opened
    assert run("SELECT 1", db, pools).rows == [[1]]


# --- the verdict cache -------------------------------------------------------------------------


def test_verdicts_are_cached_per_sql_database_and_settings(
    pg_dsn: str, db: str, tmp_path: Path
) -> None:
    s = make_settings(pg_dsn, tmp_path)
    checker = Checker(s)
    sql = f"SELECT id FROM t /* {uuid.uuid4().hex} */"
    first = checker.validate(sql, db)
    assert first.ok, first
    assert checker.cached(sql, db)
    first.tables.append("mutated")  # callers get copies: the cache is not changed through them
    again = checker.validate(sql, db)
    assert again.ok and again.tables == ["public.t"] and again is not first
    denied = Checker(s.with_(policy=dataclasses.replace(s.policy, deny_tables=("public.t",))))
    assert denied.validate(sql, db).code == "ACCESS_DENIED"
    assert denied.validate(sql).code == "ACCESS_DENIED"
    assert checker.validate(sql).ok


def test_a_cached_verdict_lapses_when_the_schema_cache_serves_a_new_model(
    pg_dsn: str, db: str, tmp_path: Path
) -> None:
    s = make_settings(pg_dsn, tmp_path)
    checker = Checker(s)
    table = f"new_{uuid.uuid4().hex[:8]}"
    sql = f"SELECT a FROM {table}"
    assert checker.validate(sql, db).code == "UNKNOWN_OBJECT"
    with psycopg.connect(db_dsn(pg_dsn, db), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (a int)")
    try:
        # the same model is served (within its TTL): the same verdict, as without a cache
        assert checker.validate(sql, db).code == "UNKNOWN_OBJECT"
        checker.cache.refresh(db)  # a new model object
        assert checker.validate(sql, db).ok
    finally:
        with psycopg.connect(db_dsn(pg_dsn, db), autocommit=True) as conn:
            conn.execute(f"DROP TABLE {table}")


def test_a_callers_own_schema_is_never_cached(pg_dsn: str, db: str, tmp_path: Path) -> None:
    s = make_settings(pg_dsn, tmp_path)
    model = Checker(s).cache.get(db)
    from copy import deepcopy

    mine = deepcopy(model)
    sql = "SELECT name FROM t"
    assert validate_sql(sql, db, schema=mine, settings=s).ok
    mine.tables = [t for t in mine.tables if t.name != "t"]  # changed in place
    assert validate_sql(sql, db, schema=mine, settings=s).code == "UNKNOWN_OBJECT"


def test_run_readonly_validates_through_the_cache(db: str, pools: Pools) -> None:
    for _ in range(2):
        assert run_readonly("DELETE FROM t", db, pools=pools).code == "NOT_READ_ONLY"
        r = run_readonly("SELECT count(*) FROM t", db, pools=pools)
        assert r.ok and r.rows == [[2500]]
