"""Secrets beyond the catalogs (issue 10, item 2) and the validator's bounds (item 7).

Each family of ``pg_mcp.core.policy.SECRET_FAMILIES`` is refused by default with ACCESS_DENIED and a
hint naming its switch, and accepted once the switch is set; then the same against a real
PostgreSQL: planted secrets (a role's password after ANALYZE, a custom setting, a database
setting) never come back through run_readonly, and an error that echoes a token is scrubbed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from conftest import scratch_database
from pg_mcp.core.model import Column, DatabaseSchema, Table
from pg_mcp.core.settings import Policy, Settings
from pg_mcp.db.checker import validate_sql
from pg_mcp.db.embedded import READER_ROLE
from pg_mcp.db.executor import run_readonly

# (SQL, the policy switch that allows it)
REFUSED = [
    ("SELECT * FROM pg_stats", "allow_statistics"),
    (
        "SELECT most_common_vals FROM pg_catalog.pg_stats WHERE tablename = 'pg_authid'",
        "allow_statistics",
    ),
    ("SELECT stavalues1 FROM pg_statistic", "allow_statistics"),
    ("SELECT * FROM pg_stats_ext", "allow_statistics"),
    ("SELECT * FROM pg_stats_ext_exprs", "allow_statistics"),
    ("SELECT 1 FROM pg_statistic_ext_data", "allow_statistics"),
    ("SELECT query FROM pg_stat_activity", "allow_session_activity"),
    ("SELECT a.query FROM pg_stat_activity a", "allow_session_activity"),
    ("SELECT * FROM pg_stat_activity", "allow_session_activity"),
    ("SELECT to_json(a) FROM pg_stat_activity a", "allow_session_activity"),
    ("SELECT q FROM (SELECT query AS q FROM pg_stat_activity) s", "allow_session_activity"),
    ("SELECT query FROM public.pg_stat_statements", "allow_session_activity"),
    ("SELECT * FROM ext.pg_stat_statements_info", "allow_session_activity"),
    ("SELECT * FROM pg_stat_get_activity(NULL)", "allow_session_activity"),
    ("SELECT pg_stat_get_backend_activity(1)", "allow_session_activity"),
    ("SELECT current_setting('primary_conninfo')", "allow_secret_settings"),
    ("SELECT current_setting('app.jwt_secret')", "allow_secret_settings"),
    ("SELECT current_setting('myapp.api_key', true)", "allow_secret_settings"),
    ("SELECT current_setting('custom.db_password')", "allow_secret_settings"),
    ("SELECT pg_catalog.current_setting('ssl_passphrase_command')", "allow_secret_settings"),
    ("SELECT current_setting(name) FROM (VALUES ('work_mem')) v(name)", "allow_secret_settings"),
    ("SELECT current_setting('app.' || 'jwt_secret')", "allow_secret_settings"),
    ("SELECT * FROM pg_settings", "allow_secret_settings"),
    (
        "SELECT setting FROM pg_catalog.pg_settings WHERE name = 'primary_conninfo'",
        "allow_secret_settings",
    ),
    ("SELECT * FROM pg_show_all_settings()", "allow_secret_settings"),
    ("SELECT setconfig FROM pg_db_role_setting", "allow_secret_settings"),
    ("SELECT rolconfig FROM pg_roles", "allow_secret_settings"),
    ("SELECT * FROM pg_roles", "allow_secret_settings"),
    ("SELECT r.* FROM pg_roles r", "allow_secret_settings"),
    ("SELECT row_to_json(r) FROM pg_roles r", "allow_secret_settings"),
    ("SELECT * FROM pg_user", "allow_secret_settings"),
    ("SELECT x.useconfig FROM pg_user x", "allow_secret_settings"),
    ("SELECT conninfo FROM pg_stat_wal_receiver", "allow_secret_settings"),
    ("SELECT get_raw_page('pg_authid', 0)", "allow_raw_pages"),
    ("SELECT * FROM heap_page_items(get_raw_page('pg_authid', 0))", "allow_raw_pages"),
    ("SELECT * FROM public.bt_page_items('pg_authid_rolname_index', 1)", "allow_raw_pages"),
    ("SELECT subconninfo FROM pg_subscription", "allow_secret_catalogs"),
]

ACCEPTED = [
    "SELECT count(*) FROM pg_stat_activity",
    "SELECT pid, state, backend_type FROM pg_stat_activity",
    "SELECT rolname, rolsuper, rolcanlogin FROM pg_roles",
    "SELECT count(*) FROM pg_roles",
    "SELECT usename FROM pg_user",
    "SELECT current_setting('search_path'), current_setting('server_version_num')",
    "SELECT current_setting('TimeZone'), current_setting('statement_timeout')",
    "SELECT query FROM t",  # a user table's column named query
    "SELECT t.query FROM t JOIN pg_stat_activity a ON true",
    "SELECT relname, n_live_tup FROM pg_stat_user_tables",
]


@pytest.mark.parametrize(("sql", "switch"), REFUSED)
def test_refused_by_default_with_the_switch_named(sql: str, switch: str) -> None:
    v = validate_sql(sql)
    assert not v.ok and v.code == "ACCESS_DENIED", (sql, v.code, v.message)
    assert switch in (v.hint or ""), (sql, v.hint)


@pytest.mark.parametrize(("sql", "switch"), REFUSED)
def test_the_switch_allows_it(sql: str, switch: str) -> None:
    settings = Settings(policy=Policy(**{switch: True}))  # type: ignore[arg-type]
    v = validate_sql(sql, settings=settings)
    assert v.code != "ACCESS_DENIED", (sql, v.message)


@pytest.mark.parametrize("sql", ACCEPTED)
def test_harmless_neighbours_stay_accepted(sql: str) -> None:
    v = validate_sql(sql)
    assert v.ok, (sql, v.code, v.message)


def test_secret_settings_patterns_are_configurable() -> None:
    narrow = Settings(policy=Policy(secret_settings=("app.*",)))
    assert validate_sql("SELECT current_setting('myapp.api_key')", settings=narrow).ok
    v = validate_sql("SELECT current_setting('app.anything')", settings=narrow)
    assert v.code == "ACCESS_DENIED" and "app.*" in v.message


# -- against a real PostgreSQL -------------------------------------------------------------

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwZy1tY3AtdGVzdCJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
ROLE = "pgmcp_test_secret_role"
ROLE_PASSWORD = "Sc-91d2-planted"


@pytest.fixture(scope="module")
def planted(pg_dsn: str) -> Iterator[str]:
    """A database with a custom secret setting, and a role with a password, pg_authid analysed."""
    with scratch_database(pg_dsn, "CREATE TABLE t (id int, query text)", "secret") as name:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'")
            conn.execute(f"ALTER DATABASE \"{name}\" SET app.jwt_secret = '{JWT}'")
            conn.execute("ANALYZE pg_authid")
        try:
            yield name
        finally:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(f"DROP ROLE IF EXISTS {ROLE}")


@pytest.fixture
def reader(reader_dsn: str, tmp_path: Path) -> Settings:
    return Settings(dsn=reader_dsn, home=tmp_path)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'pg_authid'",
        "SELECT current_setting('app.jwt_secret')",
        "SELECT setconfig::text FROM pg_db_role_setting",
        "SELECT query FROM pg_stat_activity",
        "SELECT * FROM pg_settings WHERE name LIKE 'app.%'",
    ],
)
def test_planted_secrets_do_not_come_back(planted: str, reader: Settings, sql: str) -> None:
    result = run_readonly(sql, planted, settings=reader)
    assert not result.ok and result.code == "ACCESS_DENIED", result.to_dict()
    text = str(result.to_dict())
    assert JWT not in text and "SCRAM-SHA-256$" not in text


def test_the_custom_setting_is_really_there(planted: str, pg_dsn: str) -> None:
    """Control: the planted value is readable outside pg-mcp, so the refusals above matter."""
    from conftest import db_dsn

    with psycopg.connect(db_dsn(pg_dsn, planted)) as conn:
        got = conn.execute("SELECT current_setting('app.jwt_secret')").fetchone()
    assert got == (JWT,)


def test_an_error_that_echoes_a_token_is_scrubbed(planted: str, reader: Settings) -> None:
    sql = f"SELECT '{JWT}'::int AS n"
    result = run_readonly(sql, planted, settings=reader)
    assert not result.ok and result.code == "DB_ERROR", result.to_dict()
    assert "invalid input syntax" in result.message
    assert JWT not in str(result.to_dict())


def test_a_user_table_column_named_query_is_fine(planted: str, reader: Settings) -> None:
    result = run_readonly("SELECT query FROM t", planted, settings=reader)
    assert result.ok, result.to_dict()
    assert READER_ROLE  # the reader role is the one pg-mcp runs as


# -- bounds on the validator's work --------------------------------------------------------


def test_too_long_sql_is_refused_fast() -> None:
    settings = Settings(max_sql_chars=1_000)
    v = validate_sql("SELECT 1" + " " * 1_000, settings=settings)
    assert v.code == "TOO_COMPLEX" and "max_sql_chars" in (v.hint or "")


def test_too_many_identifiers_are_refused() -> None:
    settings = Settings(max_identifiers=100)
    sql = "SELECT " + ", ".join(f"c{i}" for i in range(200)) + " FROM t"
    v = validate_sql(sql, settings=settings)
    assert v.code == "TOO_COMPLEX" and "max_identifiers" in (v.hint or "")
    assert validate_sql(sql).ok  # the default allows it


def test_the_time_budget_runs_on_the_injected_clock() -> None:
    ticks = itertools.count(0.0, 0.5)  # every look at the clock: half a second later
    sql = "SELECT " + " + ".join(f"c{i}" for i in range(3_000)) + " FROM t"
    settings = Settings(validation_budget=1.0)
    v = validate_sql(sql, settings=settings, clock=lambda: next(ticks))
    assert v.code == "TOO_COMPLEX" and "validation_budget" in (v.hint or "")
    frozen = validate_sql(sql, settings=settings, clock=lambda: 0.0)
    assert frozen.ok, frozen.message


def test_thousands_of_unknown_columns_report_one_with_suggestions() -> None:
    """Suggestions are computed for the one problem reported (it was one difflib pass per
    unknown name: 5-28 s of CPU for tens of thousands)."""
    table = Table(
        schema="public",
        name="t",
        kind="table",
        columns=[Column(name=f"col_{i}", type="int") for i in range(200)],
    )
    schema = DatabaseSchema(name="d", tables=[table])
    sql = "SELECT " + ", ".join(f"colx_{i}" for i in range(8_000)) + " FROM t"
    v = validate_sql(sql, schema=schema, clock=lambda: 0.0)  # no budget trips: a fixed clock
    assert v.code == "UNKNOWN_OBJECT" and "colx_0" in v.message
    assert v.suggestions and all(s.startswith("col_") for s in v.suggestions)
