"""rules/secrets.py alone: secret catalogs and the secret families, each with its switch."""

from __future__ import annotations

import pytest

from pg_mcp.core.validation.context import Context
from pg_mcp.core.validation.rules import secrets
from rulekit import codes, reported


def relations(ctx: Context) -> None:
    for ref in ctx.facts.tables:
        secrets.secret_relation(ctx, ref)


def renamed(ctx: Context) -> None:
    for ref, _ in ctx.facts.renamed:
        secrets.renamed_view(ctx, ref)


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
    # wp/red: renaming, join aliases, toast, more settings and extension views
    (
        renamed,
        "SELECT l FROM pg_roles AS r(a, b, c, d, e, f, g, h, i, j, k, l)",
        "a column alias list over pg_roles can rename rolconfig",
        "allow_secret_settings",
    ),
    (
        renamed,
        "SELECT q FROM pg_stat_activity a(a1, q)",
        "a column alias list over pg_stat_activity can rename query",
        "allow_session_activity",
    ),
    (
        secrets.secret_views,
        "SELECT j.query FROM (pg_stat_activity a CROSS JOIN pg_database d) AS j",
        "column query of pg_stat_activity",
        "allow_session_activity",
    ),
    (
        secrets.secret_views,
        "SELECT to_json(j) FROM (pg_stat_activity a CROSS JOIN pg_database d) AS j",
        "j over pg_stat_activity",
        "allow_session_activity",
    ),
    (
        secrets.secret_views,
        "SELECT j.* FROM (pg_roles r CROSS JOIN pg_database d) j",
        "j.* over pg_roles",
        "allow_secret_settings",
    ),
    (
        relations,
        "SELECT chunk_data FROM pg_toast.pg_toast_2619",
        "pg_toast.pg_toast_2619 can show secrets",
        "allow_raw_pages",
    ),
    (relations, "TABLE pg_toast.pg_toast_2964", "pg_toast.pg_toast_2964", "allow_raw_pages"),
    (relations, "SELECT * FROM pg_qualstats", "pg_qualstats can show", "allow_session_activity"),
    (
        relations,
        "SELECT * FROM ext.pg_store_plans",
        "ext.pg_store_plans can show",
        "allow_session_activity",
    ),
    (
        secrets.secret_calls,
        "SELECT pg_qualstats_example_query(1)",
        "pg_qualstats_example_query() can show secrets",
        "allow_session_activity",
    ),
    (
        secrets.secret_calls,
        "SELECT current_setting('restore_command')",
        "pattern '*_command'",
        "allow_secret_settings",
    ),
    (
        secrets.secret_calls,
        "SELECT current_setting('app.signing_pwd')",
        "pattern '*pwd*'",
        "allow_secret_settings",
    ),
    (
        secrets.secret_columns,
        "SELECT proconfig FROM pg_proc",
        "column proconfig can show secrets",
        "allow_secret_settings",
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
    (renamed, "SELECT relname FROM pg_class c(oid2, relname)"),
    (renamed, "SELECT a FROM orders o(a)"),
    (
        secrets.secret_views,
        "SELECT j.pid, j.datname FROM (pg_stat_activity a JOIN pg_database d ON true) j",
    ),
    (secrets.secret_views, "SELECT j.k FROM ((orders o CROSS JOIN pg_class c) j1 CROSS JOIN t) j"),
    (relations, "SELECT * FROM pg_catalog.pg_class"),
    (secrets.secret_calls, "SELECT current_setting('search_path'), current_setting('TimeZone')"),
    (secrets.secret_columns, "SELECT proname, prosrc FROM pg_proc"),
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
