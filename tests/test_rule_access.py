"""rules/access.py alone: deny_schemas, deny_tables, deny_columns; * and whole rows."""

from __future__ import annotations

import pytest

from pg_mcp.core.model import Column, Table
from pg_mcp.core.validation.context import Context
from pg_mcp.core.validation.parse import norm
from pg_mcp.core.validation.rules import access
from rulekit import codes, context, reported, shop

POLICY = {
    "deny_columns": ["*.password_hash", "public.customers.email"],
    "deny_tables": ["hr.employees"],
    "deny_schemas": ["analytics"],
}


def tables(ctx: Context) -> None:
    for ref in ctx.facts.tables:
        if not ref.system:
            access.table_denied(ctx, ref)


def columns(ctx: Context) -> None:
    """The policy half of validate's column check (the names half is rules/names.py)."""
    for node, scope in ctx.facts.columns:
        table = node.args.get("table")
        if table is not None:
            db = node.args.get("db")
            schema = norm(db) if db is not None else None
            access.qualified_column(ctx, node, norm(node.this), norm(table), schema, scope)
        elif scope is not None:
            access.unqualified_column(ctx, node, norm(node.this), scope)


# (sql, without a schema, with the shop schema): the code table_denied reports, or None
TABLES = [
    ("SELECT * FROM customers", None, None),
    ("SELECT * FROM pg_class", None, None),
    ("SELECT * FROM hr.employees", "ACCESS_DENIED", "ACCESS_DENIED"),
    ("SELECT * FROM HR.Employees", "ACCESS_DENIED", "ACCESS_DENIED"),
    ("SELECT * FROM employees", "ACCESS_DENIED", "ACCESS_DENIED"),  # it might be hr's
    ("SELECT * FROM analytics.daily", "ACCESS_DENIED", "ACCESS_DENIED"),
    ("SELECT 1 FROM orders o JOIN hr.employees e ON e.id = o.id", "ACCESS_DENIED", "ACCESS_DENIED"),
    ("SELECT (SELECT max(day) FROM analytics.daily)", "ACCESS_DENIED", "ACCESS_DENIED"),
    ('SELECT * FROM "hr"."employees"', "ACCESS_DENIED", "ACCESS_DENIED"),
    ('SELECT * FROM "HR".employees', "ACCESS_DENIED", "ACCESS_DENIED"),  # patterns ignore case
]


@pytest.mark.parametrize(("sql", "bare", "with_schema"), TABLES)
def test_table_denied(sql: str, bare: str | None, with_schema: str | None) -> None:
    assert codes(tables, sql, bind=True, **POLICY) == ([bare] if bare else [])
    assert codes(tables, sql, schema=shop(), bind=True, **POLICY) == (
        [with_schema] if with_schema else []
    )


def test_a_table_the_policy_hides_says_by_which_pattern() -> None:
    [(_, message)] = reported(tables, "SELECT * FROM hr.employees", **POLICY)
    assert message.startswith(
        "hr.employees is hidden by the access policy (pattern 'hr.employees')"
    )


# (sql, without a schema, with the shop schema): what stars reports ("" for nothing)
STARS = [
    ("SELECT * FROM orders", "might read column password_hash", ""),  # *.password_hash
    ("SELECT * FROM users", "might read column password_hash", "would read column password_hash"),
    (
        "SELECT u.* FROM users u",
        "might read column password_hash",
        "would read column password_hash",
    ),
    ("SELECT o.* FROM orders o JOIN users u ON u.id = o.id", "might read column password_hash", ""),
    ("SELECT * FROM customers", "might read column password_hash", "would read column email"),
    ("SELECT 1 WHERE EXISTS (SELECT * FROM users)", "", ""),  # EXISTS reads no column
    ("SELECT count(*) FROM users", "", ""),
    ("SELECT * FROM (SELECT id FROM users) s", "", ""),
    ("SELECT * FROM pg_class", "", ""),
    # an aliased parenthesised join: j.* reads its tables' columns
    (
        "SELECT j.* FROM (users u CROSS JOIN orders o) j",
        "j.* over users might read column password_hash",
        "j.* over public.users would read column password_hash",
    ),
]


@pytest.mark.parametrize(("sql", "bare", "with_schema"), STARS)
def test_stars(sql: str, bare: str, with_schema: str) -> None:
    for schema, expected in ((None, bare), (shop(), with_schema)):
        found = reported(access.stars, sql, schema=schema, bind=True, **POLICY)
        if not expected:
            assert found == []
        else:
            [(code, message)] = found
            assert code == "ACCESS_DENIED" and expected in message


def test_stars_need_deny_columns() -> None:
    assert codes(access.stars, "SELECT * FROM users", bind=True) == []


def test_a_star_over_a_filtered_model_is_cleared_only_by_its_record() -> None:
    """A model from introspection has the denied columns removed: hidden_columns says so."""
    db = shop()
    db.tables.append(Table("public", "accounts", "table", [Column("id", "int")], hidden_columns=[]))
    assert (
        codes(
            access.stars, "SELECT * FROM accounts", schema=db, bind=True, deny_columns=["*.secret"]
        )
        == []
    )
    db.tables[-1] = Table(
        "public", "accounts", "table", [Column("id", "int")], hidden_columns=["secret"]
    )
    [(_, message)] = reported(
        access.stars, "SELECT * FROM accounts", schema=db, bind=True, deny_columns=["*.secret"]
    )
    assert "would read column secret" in message


# (sql, without a schema, with the shop schema): what the column checks report
COLUMNS = [
    ("SELECT id, login FROM users", "", ""),
    (
        "SELECT password_hash FROM users",
        "column password_hash of users",
        "column password_hash of public.users",
    ),
    (
        "SELECT u.password_hash FROM users u",
        "column password_hash of users",
        "column password_hash of public.users",
    ),
    (
        "SELECT public.users.password_hash FROM users",
        "column password_hash of public.users",
        "column password_hash of public.users",
    ),
    (
        "SELECT email FROM customers",
        "column email of customers",
        "column email of public.customers",
    ),
    (
        "SELECT (SELECT email FROM customers LIMIT 1)",
        "column email of customers",
        "column email of public.customers",
    ),
    (
        "SELECT o.id FROM orders o WHERE o.customer_id IN (SELECT id FROM customers WHERE email <> '')",
        "column email of customers",
        "column email of public.customers",
    ),
    (
        "SELECT u FROM users u",
        "u is a whole-row reference to users",
        "u is a whole-row reference to public.users",
    ),
    ("SELECT email FROM orders", "", ""),  # no such column there: not the policy's business
    ("SELECT x.password_hash FROM (SELECT 1 AS password_hash) x", "", ""),
    # aliased parenthesised joins: j.col, the whole row j, nested groups
    (
        "SELECT j.password_hash FROM (users u CROSS JOIN orders o) j",
        "column password_hash of users",
        "column password_hash of public.users",
    ),
    (
        "SELECT j FROM (users u CROSS JOIN orders o) j",
        "j is a whole-row reference to users",
        "j is a whole-row reference to public.users",
    ),
    (
        "SELECT j.password_hash FROM ((users u CROSS JOIN orders o) j1 CROSS JOIN customers c) j",
        "column password_hash of users",
        "column password_hash of public.users",
    ),
    (
        "SELECT j1.password_hash FROM ((users u CROSS JOIN orders o) j1 CROSS JOIN customers c) j",
        "column password_hash of users",
        "column password_hash of public.users",
    ),
    ("SELECT j.login FROM (users u CROSS JOIN orders o) j", "", ""),
]


@pytest.mark.parametrize(("sql", "bare", "with_schema"), COLUMNS)
def test_columns(sql: str, bare: str, with_schema: str) -> None:
    for schema, expected in ((None, bare), (shop(), with_schema)):
        found = reported(columns, sql, schema=schema, bind=True, **POLICY)
        if not expected:
            assert found == [], found
        else:
            [(code, message)] = found
            assert code == "ACCESS_DENIED" and message.startswith(expected), message


def test_without_a_schema_an_unqualified_table_may_be_in_any_schema() -> None:
    """Conservative: deny_tables = ["hr.*"] hides every unqualified table when no catalog
    says where it is (it might be hr's)."""
    assert codes(tables, "SELECT id FROM customers", bind=True, deny_tables=["hr.*"]) == [
        "ACCESS_DENIED"
    ]
    assert (
        codes(tables, "SELECT id FROM customers", schema=shop(), bind=True, deny_tables=["hr.*"])
        == []
    )


def test_restrictive() -> None:
    assert not access.restrictive(context("SELECT 1"))
    assert access.restrictive(context("SELECT 1", deny_schemas=["x"]))


def renamed(ctx: Context) -> None:
    """What validate does for each column alias list (a secret view's is rules/secrets.py's)."""
    for ref, n in ctx.facts.renamed:
        access.renamed_columns(ctx, ref, n)


# (rule, sql, without a schema, with the shop schema): what the alias-list rules report
RENAMED = [
    (
        renamed,
        "SELECT c FROM users x(a, b, c)",
        "over users would rename a hidden column",
        "over public.users would rename column password_hash",
    ),
    # the schema shows the list stops before password_hash; without it, any column may be hit
    (renamed, "SELECT b FROM users x(a, b)", "over users would rename a hidden column", ""),
    (renamed, "SELECT a FROM orders o(a)", "over orders would rename a hidden column", ""),
    (renamed, "SELECT a FROM pg_class c(a)", "", ""),
    (renamed, "SELECT id FROM users x", "", ""),
    (
        access.renamed_groups,
        "SELECT x FROM (users u CROSS JOIN orders o) j(x)",
        "renames the columns of users, which has columns the access policy hides",
        "renames the columns of public.users, which has columns the access policy hides",
    ),
    (
        access.renamed_groups,
        "SELECT x FROM (pg_roles r CROSS JOIN pg_class c) j(x)",
        "renames the columns of pg_catalog.pg_roles, which can show secrets",
        "renames the columns of pg_catalog.pg_roles, which can show secrets",
    ),
    (access.renamed_groups, "SELECT x FROM (pg_class c JOIN pg_namespace n ON true) j(x)", "", ""),
    (access.renamed_groups, "SELECT j.id FROM (users u CROSS JOIN orders o) j", "", ""),
]


@pytest.mark.parametrize(("rule", "sql", "bare", "with_schema"), RENAMED)
def test_column_alias_lists(rule: object, sql: str, bare: str, with_schema: str) -> None:
    for schema, expected in ((None, bare), (shop(), with_schema)):
        found = reported(rule, sql, schema=schema, bind=True, **POLICY)  # type: ignore[arg-type]
        if not expected:
            assert found == [], found
        else:
            [(code, message)] = found
            assert code == "ACCESS_DENIED" and expected in message, message


@pytest.mark.parametrize(("hidden", "refused"), [(None, True), ([], False), (["secret"], True)])
def test_an_alias_list_over_a_filtered_model_is_cleared_only_by_its_record(
    hidden: list[str] | None, refused: bool
) -> None:
    """A model from introspection has the denied columns removed: positions no longer tell
    which column the list renames, unless hidden_columns records that nothing was hidden."""
    db = shop()
    db.tables.append(
        Table("public", "accounts", "table", [Column("id", "int")], hidden_columns=hidden)
    )
    found = codes(
        renamed, "SELECT a FROM accounts x(a)", schema=db, bind=True, deny_columns=["*.secret"]
    )
    assert found == (["ACCESS_DENIED"] if refused else [])
