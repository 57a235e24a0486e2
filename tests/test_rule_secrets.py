"""rules/secrets.py alone: secret catalogs and the secret families, each with its switch."""

from __future__ import annotations

import pytest

from pg_mcp.core.validation.context import Context
from pg_mcp.core.validation.rules import secrets
from rulekit import codes, reported


def relations(ctx: Context) -> None:
    for ref in ctx.facts.tables:
        secrets.secret_relation(ctx, ref)


# (rule, sql, what the one ACCESS_DENIED message says, the policy switch that allows it)
BAD = [
    (
        secrets.secret_calls,
        "SELECT current_setting('app.jwt_secret')",
        "setting 'app.jwt_secret' may hold a credential",
        "allow_secret_settings",
    ),
    (
        secrets.secret_calls,
        "SELECT pg_catalog.current_setting('primary_conninfo')",
        "setting 'primary_conninfo'",
        "allow_secret_settings",
    ),
    (
        secrets.secret_calls,
        "SELECT current_setting(name) FROM t",
        "a setting name that is not a constant",
        "allow_secret_settings",
    ),
    (
        secrets.secret_calls,
        "SELECT pg_show_all_settings()",
        "pg_show_all_settings() can show secrets",
        "allow_secret_settings",
    ),
    (
        secrets.secret_calls,
        "SELECT get_raw_page('t', 0)",
        "get_raw_page() can show secrets",
        "allow_raw_pages",
    ),
    (
        secrets.secret_columns,
        "SELECT rolconfig FROM pg_roles",
        "column rolconfig can show secrets",
        "allow_secret_settings",
    ),
    (
        secrets.secret_columns,
        "SELECT useconfig FROM pg_user",
        "column useconfig",
        "allow_secret_settings",
    ),
    (
        secrets.secret_columns,
        "SELECT s.setconfig FROM pg_db_role_setting s",
        "column setconfig",
        "allow_secret_settings",
    ),
    (
        relations,
        "SELECT * FROM pg_authid",
        "pg_authid is a catalog that holds secrets",
        "allow_secret_catalogs",
    ),
    (
        relations,
        "SELECT * FROM pg_catalog.pg_shadow",
        "pg_catalog.pg_shadow is a catalog",
        "allow_secret_catalogs",
    ),
    (
        relations,
        "SELECT * FROM pg_settings",
        "pg_settings can show secrets",
        "allow_secret_settings",
    ),
    (
        relations,
        "SELECT * FROM pg_stats",
        "pg_stats can show secrets (planner statistics",
        "allow_statistics",
    ),
    (
        relations,
        "SELECT * FROM pg_stat_statements",
        "pg_stat_statements can show secrets",
        "allow_session_activity",
    ),
    (
        secrets.secret_views,
        "SELECT * FROM pg_roles",
        "* over pg_roles can show secrets",
        "allow_secret_settings",
    ),
    (secrets.secret_views, "SELECT r FROM pg_roles r", "r over pg_roles", "allow_secret_settings"),
    (
        secrets.secret_views,
        "SELECT u.* FROM pg_user u",
        "u.* over pg_user",
        "allow_secret_settings",
    ),
    (
        secrets.secret_views,
        "SELECT query FROM pg_stat_activity",
        "column query of pg_stat_activity",
        "allow_session_activity",
    ),
    (
        secrets.secret_views,
        "SELECT a.query FROM pg_stat_activity a",
        "column query of pg_stat_activity",
        "allow_session_activity",
    ),
]
GOOD = [
    (secrets.secret_calls, "SELECT current_setting('work_mem')"),
    (secrets.secret_calls, "SELECT lower('app.jwt_secret')"),
    (secrets.secret_calls, "SELECT myschema.current_setting('app.jwt_secret')"),  # not the built-in
    (secrets.secret_columns, "SELECT rolname FROM pg_roles"),
    (secrets.secret_columns, "SELECT 'rolconfig'"),
    (relations, "SELECT * FROM pg_roles"),
    (relations, "SELECT * FROM orders"),
    (relations, "SELECT * FROM pg_class"),
    (secrets.secret_views, "SELECT rolname FROM pg_roles"),
    (secrets.secret_views, "SELECT pid, state FROM pg_stat_activity"),
    (secrets.secret_views, "SELECT count(*) FROM pg_stat_activity"),
    (secrets.secret_views, "SELECT * FROM orders"),
]


@pytest.mark.parametrize(("rule", "sql", "shown", "switch"), BAD)
def test_secrets_bad(rule: object, sql: str, shown: str, switch: str) -> None:
    [(code, message)] = reported(rule, sql)  # type: ignore[arg-type]
    assert code == "ACCESS_DENIED" and shown in message, message
    assert codes(rule, sql, **{switch: True}) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(("rule", "sql"), GOOD)
def test_secrets_good(rule: object, sql: str) -> None:
    assert codes(rule, sql) == []  # type: ignore[arg-type]


def test_the_first_secret_of_a_view_is_reported() -> None:
    [(_, message)] = reported(
        secrets.secret_views, "SELECT query, r.* FROM pg_stat_activity, pg_roles r"
    )
    assert "over pg_roles" in message  # stars are looked at before columns
