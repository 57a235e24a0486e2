"""Least privilege by default: no query runs as a superuser or a role that may touch server
files or run programs (PRIVILEGED_ROLE), unless the configuration accepts the risk; an optional
query_role is assumed with SET LOCAL ROLE in every query transaction."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from conftest import scratch_database
from pg_mcp.core.settings import Policy, Settings
from pg_mcp.db.embedded import READER_ROLE, with_user
from pg_mcp.db.executor import run_readonly

FILE_READER = "pgmcp_test_file_reader"
PASSWORD = "Fr-31c9-test"


@pytest.fixture(scope="module")
def db(pg_dsn: str) -> Iterator[str]:
    with scratch_database(pg_dsn, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)", "lp") as n:
        yield n


@pytest.fixture(scope="module")
def file_reader_dsn(pg_dsn: str) -> Iterator[str]:
    """A role that is no superuser but a member of pg_read_server_files."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {FILE_READER}")
        conn.execute(f"CREATE ROLE {FILE_READER} LOGIN PASSWORD '{PASSWORD}' NOSUPERUSER")
        conn.execute(f"GRANT pg_read_server_files, pg_read_all_data TO {FILE_READER}")
    try:
        yield with_user(pg_dsn, FILE_READER, PASSWORD)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {FILE_READER}")


def run(dsn: str, db: str, tmp_path: Path, **policy: object):  # type: ignore[no-untyped-def]
    settings = Settings(dsn=dsn, home=tmp_path, policy=Policy(**policy))  # type: ignore[arg-type]
    return run_readonly("SELECT current_user::text AS who, count(*) FROM t", db, settings=settings)


def test_a_superuser_runs_no_query(pg_dsn: str, db: str, tmp_path: Path) -> None:
    result = run(pg_dsn, db, tmp_path)
    assert not result.ok and result.code == "PRIVILEGED_ROLE"
    assert "superuser" in result.message and "\n" not in result.message
    assert "allow_privileged_role" in (result.hint or "") and "doctor" in (result.hint or "")
    assert any("GRANT pg_read_all_data" in line for line in result.details["grant_sql"])


def test_a_member_of_pg_read_server_files_runs_no_query(
    file_reader_dsn: str, db: str, tmp_path: Path
) -> None:
    result = run(file_reader_dsn, db, tmp_path)
    assert result.code == "PRIVILEGED_ROLE" and "pg_read_server_files" in result.message


def test_the_risk_can_be_accepted_explicitly(pg_dsn: str, db: str, tmp_path: Path) -> None:
    result = run(pg_dsn, db, tmp_path, allow_privileged_role=True)
    assert result.ok, result.message


def test_the_reader_role_runs_queries(reader_dsn: str, db: str, tmp_path: Path) -> None:
    result = run(reader_dsn, db, tmp_path)
    assert result.ok and result.rows == [[READER_ROLE, 1]]


def test_query_role_is_assumed_in_every_transaction(pg_dsn: str, db: str, tmp_path: Path) -> None:
    # a superuser login that assumes the reader role: queries run (and are checked) as the reader
    for _ in range(3):
        result = run(pg_dsn, db, tmp_path, query_role=READER_ROLE)
        assert result.ok and result.rows == [[READER_ROLE, 1]], result.message


def test_a_privileged_query_role_is_refused(reader_dsn: str, db: str, tmp_path: Path) -> None:
    result = run(reader_dsn, db, tmp_path, query_role="postgres")
    assert result.code in ("PRIVILEGED_ROLE", "CONFIG_ERROR"), result.message


def test_a_missing_query_role_is_a_config_error(pg_dsn: str, db: str, tmp_path: Path) -> None:
    result = run(pg_dsn, db, tmp_path, query_role="no_such_role_here")
    assert result.code == "CONFIG_ERROR" and "does not exist" in result.message


def test_cli_run_json_reports_the_refusal(pg_dsn: str, db: str, tmp_path: Path) -> None:
    env = {"PG_MCP_DSN": pg_dsn, "PG_MCP_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    p = subprocess.run(
        [sys.executable, "-m", "pg_mcp.cli.main", "run", "--db", db, "--json", "SELECT 1"],
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["code"] == "PRIVILEGED_ROLE" and out["grant_sql"]


def test_doctor_says_queries_are_refused(pg_dsn: str, tmp_path: Path) -> None:
    from pg_mcp.db.doctor import build_report, render_text

    report = build_report(Settings(dsn=pg_dsn, home=tmp_path))
    assert report["queries_refused"] is True
    assert "REFUSES TO RUN QUERIES" in render_text(report)
