"""pg-mcp through a real PgBouncer (Debian's 1.18) left at its defaults, in transaction mode.

The PgBouncer (tests/pgbouncer.py) pools 4 server connections per database and user and has
no ``ignore_startup_parameters``: a client that sends ``options`` is refused. pg-mcp sends
none: every setting lives in the transaction (``SET LOCAL``), so calls that PgBouncer moves
between server connections, shared with other clients, keep their settings and leave
nothing behind; psycopg never prepares (``prepare_threshold=None``), which PgBouncer 1.18
does not track across server connections.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import scratch_database
from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.settings import Settings, load_settings
from pg_mcp.db.discovery import database_dsn, list_databases
from pg_mcp.db.executor import Pools, RunResult, run_readonly
from pgbouncer import ADMIN_DB, POOL_SIZE, PgBouncer, pgbouncer_fixture  # noqa: F401

PGMCP = str(Path(sys.executable).parent / "pg-mcp")
READER = "pgmcp_reader"
THREADS = 40
CALLS = 200


@pytest.fixture(scope="module")
def db(pg_dsn: str) -> Iterator[str]:
    setup = (
        "CREATE TABLE t (id int PRIMARY KEY, label text NOT NULL);"
        "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g; ANALYZE t;"
    )
    with scratch_database(pg_dsn, setup, "bouncer") as name:
        yield name


def bouncer_settings(bouncer: PgBouncer, tmp: Path, **overrides: Any) -> Settings:
    dsn = bouncer.client_dsn("postgres", READER)
    return load_settings(
        env={"PG_MCP_DSN": dsn, "PG_MCP_HOME": str(tmp)}, config_path=None, **overrides
    )


def parallel(n: int, call: Any) -> list[Any]:
    """``call(i)`` for i in range(n), from THREADS threads at once (every join has a deadline)."""
    results: list[Any] = [None] * n
    lock = threading.Lock()
    todo = iter(range(n))

    def worker() -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            results[i] = call(i)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a call did not return within 120 s"
    return results


def admin_rows(bouncer: PgBouncer, command: str) -> list[dict[str, Any]]:
    """A SHOW command of PgBouncer's admin console, as dicts."""
    from psycopg.rows import dict_row

    dsn = bouncer.client_dsn(ADMIN_DB, next(iter(bouncer.backend.users)))
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(command).fetchall()


def test_the_default_configuration_refuses_startup_options(pgbouncer: PgBouncer) -> None:
    """What pg-mcp used to send (``-c default_transaction_read_only=on ...``)."""
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        psycopg.connect(
            pgbouncer.client_dsn("postgres", READER), options="-c statement_timeout=1000"
        ).close()


def test_many_concurrent_calls_share_four_server_connections(
    pgbouncer: PgBouncer, db: str, tmp_path: Path
) -> None:
    settings = bouncer_settings(
        pgbouncer, tmp_path, pool_min_size=12, pool_max_size=20, include=(db,)
    )
    with Pools(settings) as pools:
        pools.get(db).wait(timeout=30)  # 12 client connections to PgBouncer, 4 to the server
        results: list[RunResult] = parallel(
            CALLS,
            lambda i: run_readonly(
                f"SELECT id, label FROM t WHERE id = {i % 100 + 1}", db, pools=pools
            ),
        )
        assert [r.code for r in results if not r.ok] == []
        assert all(r.rows == [[i % 100 + 1, f"row {i % 100 + 1}"]] for i, r in enumerate(results))
        clients = [c for c in admin_rows(pgbouncer, "SHOW CLIENTS") if c["database"] == db]
        servers = [s for s in admin_rows(pgbouncer, "SHOW SERVERS") if s["database"] == db]
    assert len(clients) >= 12  # pg-mcp's own pool is three times PgBouncer's
    assert 1 <= len(servers) <= POOL_SIZE


def test_session_state_never_reaches_another_call(
    pgbouncer: PgBouncer, db: str, tmp_path: Path
) -> None:
    """Another client of the same PgBouncer pool leaves session settings on every server
    connection (allowed in transaction mode: PgBouncer resets nothing there), and an
    unvalidated call changes session settings itself: no call ever sees any of it."""
    bouncer_dsn = database_dsn(pgbouncer.client_dsn("postgres", READER), db)
    # Four clients in a transaction at once hold the four server connections: each gets one.
    others = [psycopg.connect(bouncer_dsn) for _ in range(POOL_SIZE)]
    try:
        for conn in others:
            conn.execute("SET search_path = pg_catalog")  # session level, committed below
            conn.execute("SET lock_timeout = '7ms'")
            conn.execute("SET statement_timeout = '3min'")
        for conn in others:
            conn.commit()
        with psycopg.connect(bouncer_dsn, autocommit=True) as probe:
            seen = probe.execute("SHOW search_path").fetchone()
        assert seen == ("pg_catalog",)  # every server connection carries it now
    finally:
        for conn in others:
            conn.close()

    settings = bouncer_settings(pgbouncer, tmp_path, pool_max_size=8, include=(db,))
    with Pools(settings) as pools:
        leak = run_readonly(
            "SELECT set_config('pgmcp.leak', 'yes', false), set_config('work_mem', '1GB', false),"
            " set_config('search_path', 'information_schema', false), pg_advisory_lock(77)",
            db,
            pools=pools,
            validate=False,
        )
        assert leak.ok, leak
        seen_sql = (
            "SELECT current_setting('search_path'), current_setting('statement_timeout'),"
            " current_setting('lock_timeout'), coalesce(current_setting('pgmcp.leak', true), ''),"
            " current_setting('work_mem') <> '1GB', current_setting('transaction_read_only'),"
            " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())"
        )
        results = parallel(40, lambda i: run_readonly(seen_sql, db, pools=pools, validate=False))
    assert [r.code for r in results if not r.ok] == []
    assert {tuple(r.rows[0]) for r in results} == {
        ('"$user", public', "10s", "1s", "", True, "on", 0)
    }


def test_statement_timeout_is_enforced_by_the_server(
    pgbouncer: PgBouncer, db: str, tmp_path: Path
) -> None:
    settings = bouncer_settings(pgbouncer, tmp_path, include=(db,))
    with Pools(settings) as pools:
        shown = run_readonly("SELECT current_setting('statement_timeout')", db, pools=pools)
        assert shown.rows == [["10s"]], shown
        slow = run_readonly("SELECT pg_sleep(30)", db, pools=pools, timeout=1, validate=False)
    assert slow.code == "TIMEOUT" and slow.sqlstate == "57014", slow
    # the server's own timeout, not the client's watchdog cancel ("due to user request")
    assert "statement timeout" in slow.message, slow.message


def test_discovery_skips_the_admin_console_and_refuses_it_as_a_server(
    pgbouncer: PgBouncer, pg_dsn: str, reader_dsn: str, tmp_path: Path
) -> None:
    through = list_databases(bouncer_settings(pgbouncer, tmp_path))
    direct = list_databases(
        load_settings(
            env={"PG_MCP_DSN": reader_dsn, "PG_MCP_HOME": str(tmp_path)}, config_path=None
        )
    )
    assert [d.name for d in through] == [d.name for d in direct]
    assert ADMIN_DB not in {d.name for d in through}
    admin = load_settings(
        env={
            "PG_MCP_DSN": pgbouncer.client_dsn(ADMIN_DB, READER),
            "PG_MCP_HOME": str(tmp_path),
        },
        config_path=None,
    )
    with pytest.raises(PgMcpError) as err:
        list_databases(admin)
    assert err.value.code == "CONFIG_ERROR" and "admin console" in err.value.message


@pytest.mark.parametrize("via", ["psql", "psycopg"])
def test_references_and_doctor_through_pgbouncer(
    pgbouncer: PgBouncer, db: str, tmp_path: Path, via: str
) -> None:
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "PG_MCP_DSN": pgbouncer.client_dsn("postgres", READER),
        "PG_MCP_HOME": str(tmp_path / "home"),
        "PG_MCP_INTROSPECT_VIA": via,
    }
    out = tmp_path / "refs"
    proc = subprocess.run(
        [PGMCP, "references", "--db", db, "--out", str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    page = (out / f"{db}.md").read_text(encoding="utf-8")
    assert "label" in page and "search_path: public" in page
    doctor = subprocess.run(
        [PGMCP, "doctor", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert doctor.returncode in (0, 1), doctor.stderr
    assert '"role": "pgmcp_reader"' in doctor.stdout, doctor.stdout[:2000]


def test_repeated_identical_calls_never_prepare_a_statement(
    pgbouncer: PgBouncer, db: str, tmp_path: Path
) -> None:
    """psycopg prepares a statement after 5 executions by default; PgBouncer 1.18 moves the
    client to another server connection, where that statement does not exist. pg-mcp's
    connections never prepare, so 50 identical calls (and 50 identical type lookups,
    validations, health checks) all succeed."""
    settings = bouncer_settings(pgbouncer, tmp_path, pool_max_size=6, include=(db,))
    sql = "SELECT count(*) FROM t WHERE id > 10"
    with Pools(settings) as pools:
        results = parallel(50, lambda i: run_readonly(sql, db, pools=pools))
        with pools.get(db).connection() as conn:
            assert conn.prepare_threshold is None
    assert [r.code for r in results if not r.ok] == []
    assert {r.rows[0][0] for r in results} == {90}


def test_query_role_is_the_transactions_own(
    pgbouncer: PgBouncer, pg_dsn: str, db: str, tmp_path: Path
) -> None:
    """``policy.query_role`` is assumed with SET LOCAL ROLE: every call runs as it, and the
    server connections PgBouncer hands to the next client are back to the login role."""
    from psycopg.conninfo import conninfo_to_dict

    from pg_mcp.core.settings import Policy

    admin = str(conninfo_to_dict(pg_dsn).get("user") or "postgres")
    settings = load_settings(
        env={"PG_MCP_DSN": pgbouncer.client_dsn("postgres", admin), "PG_MCP_HOME": str(tmp_path)},
        config_path=None,
        include=(db,),
        pool_max_size=8,
        policy=Policy(query_role=READER),
    )
    with Pools(settings) as pools:
        results = parallel(
            40,
            lambda i: run_readonly(
                "SELECT current_user::text, session_user::text", db, pools=pools
            ),
        )
    assert [r.code for r in results if not r.ok] == []
    assert {tuple(r.rows[0]) for r in results} == {(READER, admin)}
    bouncer_dsn = database_dsn(pgbouncer.client_dsn("postgres", admin), db)
    others = [psycopg.connect(bouncer_dsn) for _ in range(POOL_SIZE)]  # every server connection
    try:
        seen = {conn.execute("SELECT current_user::text").fetchone() for conn in others}
    finally:
        for conn in others:
            conn.close()
    assert seen == {(admin,)}
