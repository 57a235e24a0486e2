"""doctor: the pure assessment and GRANT builder, then a real limited role on the real server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from pg_mcp.core.settings import load_settings
from pg_mcp.db.discovery import database_dsn
from pg_mcp.db.doctor import assess, build_report, config_file, grant_statements, render_text

CLEAN = {
    "role": "reader",
    "superuser": False,
    "createrole": False,
    "createdb": False,
    "bypassrls": False,
    "replication": False,
    "memberships": {"pg_write_all_data": False, "pg_read_all_data": True},
    "databases": {"app": {"writable_tables": 0, "create_schemas": [], "create": False}},
}


def test_a_clean_role_has_no_findings() -> None:
    assert assess(CLEAN) == []


@pytest.mark.parametrize(
    ("change", "level", "words"),
    [
        ({"superuser": True}, "danger", "SUPERUSER"),
        ({"createrole": True}, "danger", "CREATEROLE"),
        ({"bypassrls": True}, "warn", "BYPASSRLS"),
        ({"memberships": {"pg_write_all_data": True}}, "danger", "pg_write_all_data"),
        ({"memberships": {"pg_execute_server_program": True}}, "danger", "run programs"),
        ({"memberships": {"pg_read_server_files": True}}, "danger", "read any file"),
        (
            {
                "databases": {
                    "app": {"writable_tables": 2, "writable_examples": ["public.a", "public.b"]}
                }
            },
            "danger",
            "can write to 2 table(s), e.g. public.a, public.b",
        ),
        (
            {"databases": {"app": {"create_schemas": ["public"]}}},
            "danger",
            "CREATE in schema(s) public",
        ),
        ({"databases": {"app": {"create": True}}}, "warn", "CREATE schemas"),
    ],
)
def test_risky_privileges_are_found(change: dict, level: str, words: str) -> None:  # type: ignore[type-arg]
    findings = assess({**CLEAN, **change})
    assert any(f.level == level and words in f.message for f in findings), findings


def test_grant_statements() -> None:
    sql = grant_statements(
        {"shop": ["public", "secret_hr", 'we"ird']}, 170000, deny_schemas=("secret*",)
    )
    text = "\n".join(sql)
    assert "CREATE ROLE \"pgmcp_reader\" LOGIN PASSWORD '<choose-a-strong-password>'" in text
    assert 'GRANT CONNECT ON DATABASE "shop" TO "pgmcp_reader";' in text
    assert 'GRANT USAGE ON SCHEMA "public" TO "pgmcp_reader";' in text
    assert 'GRANT SELECT ON ALL TABLES IN SCHEMA "public" TO "pgmcp_reader";' in text
    assert (
        'ALTER DEFAULT PRIVILEGES IN SCHEMA "public" GRANT SELECT ON TABLES TO "pgmcp_reader";'
        in text
    )
    assert 'SCHEMA "we""ird"' in text
    assert "secret_hr" not in text  # denied by the policy
    assert "pg_read_all_data" in text and "REVOKE CREATE ON SCHEMA public" not in text
    old = "\n".join(grant_statements({"shop": ["public"]}, 130000))
    assert "pg_read_all_data" not in old and "REVOKE CREATE ON SCHEMA public FROM PUBLIC" in old


def test_config_file(tmp_path: Path) -> None:
    assert config_file(None, {"PG_MCP_CONFIG": str(tmp_path / "none.toml")}) is None
    f = tmp_path / "pg-mcp.toml"
    f.write_text("")
    assert config_file(str(f), {}) == str(f.resolve())


# --- real server -------------------------------------------------------------------------------


def with_user(dsn: str, user: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


@pytest.fixture
def limited(pg_dsn: str, scratch_db: str) -> Iterator[tuple[str, str, str]]:
    """A role that can only read table r.readme in the scratch database: (role, dsn, db)."""
    if "://" not in pg_dsn:
        pytest.skip("needs a URI DSN")
    role = f"pgmcp_doctor_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    with psycopg.connect(database_dsn(pg_dsn, scratch_db), autocommit=True) as conn:
        conn.execute(
            f"""
            REVOKE CREATE ON SCHEMA public FROM PUBLIC;
            CREATE SCHEMA r;
            CREATE TABLE r.readme (a int);
            CREATE TABLE r.ledger (a int);
            GRANT USAGE ON SCHEMA r TO "{role}";
            GRANT SELECT ON r.readme, r.ledger TO "{role}";
            """
        )
    try:
        yield role, with_user(pg_dsn, role), scratch_db
    finally:
        with psycopg.connect(database_dsn(pg_dsn, scratch_db), autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_doctor_on_a_read_only_role_then_a_writer(
    pg_dsn: str, limited: tuple[str, str, str], tmp_path: Path
) -> None:
    role, dsn, db = limited
    s = load_settings(
        env={"PG_MCP_DSN": dsn, "PG_MCP_HOME": str(tmp_path)}, config_path=None, include=(db,)
    )
    report = build_report(s)
    assert report["role"]["role"] == role and report["role"]["superuser"] is False
    assert report["databases"][db]["writable_tables"] == 0, report
    assert report["can_write"] is False and report["warnings"] == []
    assert "ok: the role cannot write anywhere" in render_text(report)
    assert any('GRANT USAGE ON SCHEMA "r"' in line for line in report["grant_sql"])

    with psycopg.connect(database_dsn(pg_dsn, db), autocommit=True) as conn:
        conn.execute(f'GRANT INSERT, DELETE ON r.ledger TO "{role}"')
    report = build_report(s)
    assert report["can_write"] is True
    assert report["databases"][db]["writable_examples"] == ["r.ledger"]
    text = render_text(report)
    assert "!!! DANGER" in text and "r.ledger" in text and "THIS ROLE CAN WRITE" in text
