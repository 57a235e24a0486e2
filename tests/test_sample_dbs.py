"""Real-world sample databases from ../shared/databases (pagila, northwind): loaded by
`ensure_sample_dbs` / `pg-mcp sample-dbs` when the folder exists, skipped otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from pg_mcp.core.errors import PgMcpError
from pg_mcp.db.discovery import database_dsn
from pg_mcp_dev.fixtures import SAMPLE_DBS, _psql_target, ensure_sample_dbs

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "databases"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"no sample databases folder at {SHARED}"
)


@pytest.fixture(scope="module")
def sample_dsn(pg_dsn: str) -> str:
    """The test server with pagila and northwind loaded (a no-op when already up to date)."""
    result = ensure_sample_dbs(pg_dsn, SHARED)
    assert set(result) == set(SAMPLE_DBS)
    assert all(status in ("loaded", "up to date") for status in result.values()), result
    return pg_dsn


def _catalog(dsn: str, sql: str, *params: object) -> list[tuple]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


@needs_shared
def test_second_call_skips_what_is_loaded(sample_dsn: str) -> None:
    assert ensure_sample_dbs(sample_dsn, SHARED) == {name: "up to date" for name in SAMPLE_DBS}


PUBLIC_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""
PARTITIONS = """
SELECT c.relkind, (SELECT count(*) FROM pg_inherits i WHERE i.inhparent = c.oid)
FROM pg_class c WHERE c.oid = 'public.payment'::regclass
"""
ENUM_LABELS = """
SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
WHERE t.typname = %s ORDER BY e.enumsortorder
"""


@needs_shared
def test_pagila_has_its_tables_partitions_and_enum(sample_dsn: str) -> None:
    dsn = database_dsn(sample_dsn, "pagila")
    tables = {r[0] for r in _catalog(dsn, PUBLIC_TABLES)}
    assert len(tables) >= 14, sorted(tables)
    assert {"actor", "film", "customer", "rental", "inventory", "payment", "store"} <= tables
    ((kind, partitions),) = _catalog(dsn, PARTITIONS)
    assert kind == "p" and partitions == 7
    labels = [r[0] for r in _catalog(dsn, ENUM_LABELS, "mpaa_rating")]
    assert labels == ["G", "PG", "PG-13", "R", "NC-17"]
    ((films,),) = _catalog(dsn, "SELECT count(*) FROM film")
    assert films == 1000


@needs_shared
def test_northwind_has_its_fourteen_tables(sample_dsn: str) -> None:
    dsn = database_dsn(sample_dsn, "northwind")
    tables = {r[0] for r in _catalog(dsn, PUBLIC_TABLES)}
    assert len(tables) == 14, sorted(tables)
    assert {"orders", "order_details", "products", "customers", "employees"} <= tables
    ((orders,),) = _catalog(dsn, "SELECT count(*) FROM orders")
    assert orders > 800


@needs_shared
def test_comment_records_the_files_hash(sample_dsn: str) -> None:
    rows = _catalog(
        sample_dsn,
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = ANY(%s)",
        list(SAMPLE_DBS),
    )
    assert len(rows) == 2 and all("[sha256:" in (comment or "") for _, comment in rows)


def test_missing_folder_is_refused(pg_dsn: str, tmp_path: Path) -> None:
    with pytest.raises(PgMcpError) as err:
        ensure_sample_dbs(pg_dsn, tmp_path / "no-such-folder")
    assert err.value.code == "CONFIG_ERROR"


def test_cli_skips_cleanly_without_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pg_mcp.cli import main as cli

    monkeypatch.setenv("PG_MCP_HOME", str(tmp_path))
    monkeypatch.delenv("PG_MCP_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sample-dbs", "--shared", str(tmp_path / "absent")]) == 0
    assert "skipped" in capsys.readouterr().out


def test_psql_gets_the_password_through_the_environment() -> None:
    target, env = _psql_target(
        "postgresql://loader:s3cr3t-pw@db.example:5433/pagila?sslmode=disable"
    )
    assert "s3cr3t-pw" not in target and env["PGPASSWORD"] == "s3cr3t-pw"
    assert "dbname=pagila" in target and "port=5433" in target
