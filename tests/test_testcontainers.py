"""The testcontainers path: a throwaway PostgreSQL in Docker gets the same fixtures.

Skips cleanly where no Docker engine answers (CI has none); the rest of the suite then runs
on PG_MCP_TEST_DSN or the embedded server (see conftest.py).
"""

from __future__ import annotations

import pytest

from conftest import docker_available

pytestmark = pytest.mark.skipif(not docker_available(), reason="no Docker engine answers")


def test_fixtures_and_run_readonly_on_a_container() -> None:
    import psycopg
    from testcontainers.postgres import PostgresContainer

    from pg_mcp.core.settings import load_settings
    from pg_mcp.db.discovery import database_dsn
    from pg_mcp.db.embedded import READER_ROLE, provision_reader, with_user
    from pg_mcp.db.executor import Pools, run_readonly
    from pg_mcp_dev.fixtures import ensure_loaded

    with PostgresContainer("postgres:16", driver=None) as pg:
        dsn = pg.get_connection_url()
        ensure_loaded(dsn, names=["small"])
        with psycopg.connect(database_dsn(dsn, "db_pg_mcp_small")) as conn:
            assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] > 0
        provision_reader(dsn, password="Rd-container-pw")  # pg-mcp refuses a superuser
        reader = with_user(dsn, READER_ROLE, "Rd-container-pw")
        settings = load_settings(env={"PG_MCP_DSN": reader})
        with Pools(settings) as pools:
            result = run_readonly(
                "SELECT count(*) FROM orders", "db_pg_mcp_small", settings=settings, pools=pools
            )
        assert result.ok and result.rows[0][0] > 0
