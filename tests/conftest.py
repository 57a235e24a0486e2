"""Test databases: PG_MCP_TEST_DSN when set, else testcontainers when Docker answers,
else the embedded PostgreSQL (the same one `make fixtures` loads, under .pg-mcp/).

The fixture databases are loaded once per session when missing or out of date.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "databases"
FIXTURE_DBS = ("db_pg_mcp_small", "db_pg_mcp_medium", "db_pg_mcp_large")


def docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_server() -> Iterator[tuple[str, str]]:
    """(kind, administrator DSN) of the server the tests use: ``env`` (PG_MCP_TEST_DSN),
    ``container`` (testcontainers) or ``embedded``."""
    dsn = os.environ.get("PG_MCP_TEST_DSN")
    if dsn:
        yield "env", dsn
        return
    if os.environ.get("PG_MCP_TEST_DOCKER", "1") != "0" and docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17", driver=None) as pg:
            yield "container", pg.get_connection_url()
        return
    from pg_mcp.db import embedded

    yield "embedded", embedded.ensure_running(ROOT / ".pg-mcp")


@pytest.fixture(scope="session")
def pg_dsn(pg_server: tuple[str, str]) -> str:
    """Administrator DSN of the server the tests use (its `postgres` database)."""
    return pg_server[1]


READER_PASSWORD = "Rd-7c21-reader"  # the test reader role's password on servers that want one


@pytest.fixture(scope="session")
def reader_dsn(pg_server: tuple[str, str]) -> str:
    """The test server as pg-mcp's least-privilege role (``pgmcp_reader``: pg_read_all_data,
    no superuser): what pg-mcp itself connects as. ``pg_dsn`` stays the administrator's, for
    creating databases and loading data."""
    from pg_mcp.db import embedded

    kind, pg_dsn = pg_server
    if kind == "embedded":
        return embedded.reader_dsn(ROOT / ".pg-mcp")
    embedded.provision_reader(pg_dsn, password=READER_PASSWORD)
    return embedded.with_user(pg_dsn, embedded.READER_ROLE, READER_PASSWORD)


@pytest.fixture(scope="session")
def fixture_dsn(pg_dsn: str, reader_dsn: str) -> str:
    """The server DSN as pg-mcp's reader role, with the three fixture databases loaded (once
    per session, by the administrator)."""
    from pg_mcp_dev.fixtures import ensure_loaded

    ensure_loaded(pg_dsn)
    return reader_dsn


@pytest.fixture(scope="session")
def settings(fixture_dsn: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Settings pointing at the test server (as the reader role), with no config file and a
    private home."""
    from pg_mcp.core.settings import load_settings

    home = tmp_path_factory.mktemp("pg-mcp-home")
    return load_settings(
        env={"PG_MCP_DSN": fixture_dsn, "PG_MCP_HOME": str(home)}, config_path=None
    )


def db_dsn(server_dsn: str, dbname: str) -> str:
    from pg_mcp.db.discovery import database_dsn

    return database_dsn(server_dsn, dbname)


@contextmanager
def scratch_database(server_dsn: str, setup_sql: str = "", tag: str = "") -> Iterator[str]:
    """A fresh database (name yielded), set up with ``setup_sql``, dropped afterwards.

    Named ``pgmcp_scratch_[tag_]<hex>``: discovery-wide runs (``pg-mcp references`` without
    ``--db``) skip that prefix, so a scratch database never leaks into committed references.
    """
    import psycopg

    name = f"pgmcp_scratch_{tag + '_' if tag else ''}{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        if setup_sql:
            with psycopg.connect(db_dsn(server_dsn, name), autocommit=True) as conn:
                conn.execute(setup_sql)
        yield name
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def scratch_db(pg_dsn: str) -> Iterator[str]:
    """A fresh, empty database (name returned), dropped afterwards."""
    with scratch_database(pg_dsn) as name:
        yield name
