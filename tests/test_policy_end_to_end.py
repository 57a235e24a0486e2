"""The access policy end to end: introspection hides, the validator refuses exactly what is hidden."""

from __future__ import annotations

import psycopg
import pytest

from pg_mcp.core.settings import Policy, load_settings
from pg_mcp.db.checker import validate_sql
from pg_mcp.db.discovery import database_dsn
from pg_mcp.db.introspect import introspect
from pg_mcp.refs.render import render_database


@pytest.fixture
def policy_db(pg_dsn: str, scratch_db: str) -> str:
    with psycopg.connect(database_dsn(pg_dsn, scratch_db), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE users (id int PRIMARY KEY, name text, password_hash text);"
            "CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users, total numeric);"
            "INSERT INTO users VALUES (1, 'ann', 'x'), (2, 'bob', 'y');"
            "INSERT INTO orders VALUES (1, 1, 9.5)"
        )
    return scratch_db


def test_wildcard_column_policy_refuses_only_tables_that_have_the_column(
    pg_dsn: str, reader_dsn: str, policy_db: str
) -> None:
    settings = load_settings(env={"PG_MCP_DSN": reader_dsn}).with_(
        policy=Policy(deny_columns=("*.*.password_hash",)), samples=False
    )
    schema = introspect(database_dsn(pg_dsn, policy_db), policy_db, settings)
    users = schema.table("users")
    assert users is not None and [c.name for c in users.columns] == ["id", "name"]
    assert users.hidden_columns == ["password_hash"]

    ok = validate_sql("SELECT * FROM orders", schema=schema, settings=settings)
    assert ok.ok, ok.message
    assert validate_sql("SELECT id, name FROM users", schema=schema, settings=settings).ok

    star = validate_sql("SELECT * FROM users", schema=schema, settings=settings)
    assert star.code == "ACCESS_DENIED" and "password_hash" in star.message
    explicit = validate_sql("SELECT password_hash FROM users", schema=schema, settings=settings)
    assert explicit.code == "ACCESS_DENIED"

    markdown = "".join(render_database(schema).values())
    assert "password_hash" not in markdown


def test_unknown_object_against_a_stale_cached_schema_rereads_it(
    pg_dsn: str, reader_dsn: str, policy_db: str, tmp_path
) -> None:
    """A table created after the schema was cached is found on the next validation."""
    from pg_mcp.db.cache import SchemaCache
    from pg_mcp.db.checker import STALE_SCHEMA_SECONDS, Checker

    settings = load_settings(env={"PG_MCP_DSN": reader_dsn, "PG_MCP_HOME": str(tmp_path)}).with_(
        samples=False
    )
    checker = Checker(settings)
    cache = checker.cache
    assert isinstance(cache, SchemaCache)
    schema = cache.get(policy_db)
    assert schema.table("invoices") is None
    with psycopg.connect(database_dsn(pg_dsn, policy_db), autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int PRIMARY KEY, amount numeric)")
    fresh = checker.validate("SELECT amount FROM invoices", policy_db)
    assert fresh.code == "UNKNOWN_OBJECT"  # the cache was just read: no re-read storm
    held, at = cache._mem[policy_db]
    cache._mem[policy_db] = (held, at - STALE_SCHEMA_SECONDS - 1)  # age it
    later = checker.validate("SELECT amount FROM invoices", policy_db)
    assert later.ok, later.message
