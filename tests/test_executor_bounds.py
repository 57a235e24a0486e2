"""Bounded before buffered, one lexer, no hang: run_readonly on a real PostgreSQL.

- Huge rows: the byte budget applies while rows stream in, so client memory stays near the
  budget (tracemalloc) and the server stops producing (no backend left running).
- The executor reads a statement's kind with the validator's lexer (a ``--`` comment ends at
  ``\\r`` as in PostgreSQL), so ``--\\rSELECT ... \\nEXPLAIN`` is run as the query it is.
- A network partition mid-query (a real TCP proxy that freezes): the watchdog's cancel cannot
  be delivered, so it cuts the socket and the call returns a clean error instead of hanging.
- Every connection carries TCP keepalives and tcp_user_timeout.
- A value that looks like a stored password is scrubbed from error messages.
"""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from conftest import scratch_database
from netfault import Proxy
from pg_mcp.core.settings import Settings
from pg_mcp.db.executor import Pools, RunResult, first_keyword, run_readonly


@pytest.fixture(scope="module")
def db(pg_dsn: str) -> Iterator[str]:
    with scratch_database(
        pg_dsn, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)", "bound"
    ) as n:
        yield n


def settings_for(dsn: str, tmp: Path, **kw: object) -> Settings:
    return Settings(dsn=dsn, home=tmp, **kw)  # type: ignore[arg-type]


def peak(fn) -> tuple[int, RunResult]:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        result = fn()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def active(pg_dsn: str, db: str) -> int:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
            " AND application_name = 'pg-mcp'",
            [db],
        ).fetchone()
    return int(row[0]) if row else 0


def test_huge_rows_stop_at_the_byte_budget(
    reader_dsn: str, pg_dsn: str, db: str, tmp_path: Path
) -> None:
    # 501 rows of 200 kB: 100 MB of result against a 1 MB budget
    sql = "SELECT g, repeat('x', 200000) AS big FROM generate_series(1, 501) g"
    with Pools(settings_for(reader_dsn, tmp_path, max_bytes=1_000_000)) as pools:
        assert run_readonly("SELECT 1", db, pools=pools).ok  # warm
        used, r = peak(lambda: run_readonly(sql, db, pools=pools))
        assert r.ok and r.truncated and r.truncated_reason == "max_bytes", r
        assert 1 <= r.row_count <= 5
        assert used < 6_000_000, used  # the budget, a batch and one row: not the 100 MB
        assert active(pg_dsn, db) == 0  # the rest of the FETCH was cancelled on the server
        assert run_readonly("SELECT 1", db, pools=pools).rows == [[1]]


def test_a_single_row_over_the_budget_is_refused_without_reading_the_rest(
    reader_dsn: str, db: str, tmp_path: Path
) -> None:
    sql = "SELECT repeat('x', 2000000) FROM generate_series(1, 501)"  # ~1 GB in all
    with Pools(settings_for(reader_dsn, tmp_path, max_bytes=1_000_000)) as pools:
        used, r = peak(lambda: run_readonly(sql, db, pools=pools))
        assert r.code == "RESULT_TOO_LARGE", r
        assert used < 20_000_000, used  # one 2 MB row (and its copies), never the gigabyte
        assert run_readonly("SELECT 1", db, pools=pools).rows == [[1]]


def test_the_executor_reads_the_statement_kind_with_the_validators_lexer(
    reader_dsn: str, db: str, tmp_path: Path
) -> None:
    sql = "--\rSELECT 1\nEXPLAIN"  # PostgreSQL ends the comment at \r: SELECT 1 AS explain
    assert first_keyword(sql) == "SELECT"
    assert first_keyword("-- c\n /* a /* nested */ b */ (explain select 1)") == "EXPLAIN"
    with Pools(settings_for(reader_dsn, tmp_path)) as pools:
        unchecked = run_readonly(sql, db, pools=pools, validate=False)
        checked = run_readonly(sql, db, pools=pools)
    for r in (unchecked, checked):
        assert r.ok and r.rows == [[1]] and r.columns[0]["name"] == "explain", r


def test_connections_carry_tcp_keepalives_and_user_timeout(
    reader_dsn: str, db: str, tmp_path: Path
) -> None:
    s = settings_for(reader_dsn, tmp_path, tcp_keepalives_idle=7.0, tcp_user_timeout=12.0)
    with Pools(s) as pools, pools.get(db).connection() as conn:
        params = conn.info.get_parameters()
    assert params["keepalives"] == "1" and params["keepalives_idle"] == "7"
    assert params["tcp_user_timeout"] == "12000"


def test_a_partition_mid_query_ends_in_a_clean_error(db: str, tmp_path: Path) -> None:
    """The proxy freezes while the query runs: neither the answer nor the cancel request gets
    through. The watchdog cuts the socket after its grace; the call returns TIMEOUT."""
    from pg_mcp.db import embedded

    root = Path(__file__).resolve().parent.parent / ".pg-mcp"
    socket_dir = embedded.pgdata_dir(root)
    port = 5432
    admin = embedded.ensure_running(root)
    with psycopg.connect(admin) as conn:
        port = int(conn.execute("SHOW port").fetchone()[0])  # type: ignore[index]
    upstream = str(socket_dir / f".s.PGSQL.{port}")
    with Proxy(upstream) as proxy:
        dsn = f"host=127.0.0.1 port={proxy.port} user={embedded.READER_ROLE} dbname=postgres"
        s = settings_for(dsn, tmp_path, statement_timeout=1.0, connect_timeout=2.0)
        with Pools(s) as pools:
            assert run_readonly("SELECT 1", db, pools=pools).ok  # through the proxy
            out: list[RunResult] = []
            th = threading.Thread(
                target=lambda: out.append(
                    run_readonly(
                        "SELECT pg_sleep(0.3), 1", db, pools=pools, timeout=1.0, validate=False
                    )
                ),
                daemon=True,
            )
            th.start()
            proxy.freeze()  # the link drops everything from now on
            th.join(timeout=60)  # a deadline for the test itself; the call has its own
            assert not th.is_alive(), "run_readonly hung on a partitioned connection"
            r = out[0]
            assert not r.ok and r.code in ("TIMEOUT", "CONNECTION_ERROR"), r
            proxy.thaw()
            assert run_readonly("SELECT 1", db, pools=pools).rows == [[1]]  # a new connection


def test_stored_password_shapes_are_scrubbed_from_errors(
    reader_dsn: str, db: str, tmp_path: Path
) -> None:
    scram = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVka2V5c3RvcmVka2V5:c2VydmVya2V5c2VydmVya2V5"
    md5 = "md5" + "0123456789abcdef" * 2
    with Pools(settings_for(reader_dsn, tmp_path)) as pools:
        for secret in (scram, md5):
            r = run_readonly(f"SELECT '{secret}'::int", db, pools=pools)
            assert r.code == "DB_ERROR" and r.sqlstate == "22P02", r
            assert secret not in str(r.to_dict()) and "***" in r.message
