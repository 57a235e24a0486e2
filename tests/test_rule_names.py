"""rules/names.py alone: relations and columns against the schema model (UNKNOWN_OBJECT)."""

from __future__ import annotations

import pytest

from pg_mcp.core.validation.context import Context
from pg_mcp.core.validation.parse import norm
from pg_mcp.core.validation.rules import access, names
from rulekit import context, shop


def tables(ctx: Context) -> None:
    for ref in ctx.facts.tables:
        names.resolve(ctx, ref)
        if not ref.system:
            names.unknown_table(ctx, ref)


def columns(ctx: Context) -> None:
    """validate's column check: the policy decides first (nothing is denied here)."""
    for node, scope in ctx.facts.columns:
        name, table = norm(node.this), node.args.get("table")
        if table is not None:
            src = access.qualified_column(ctx, node, name, norm(table), None, scope)
            if src is not None:
                names.qualified_column(ctx, node, name, norm(table), src)
        elif scope is not None and not access.unqualified_column(ctx, node, name, scope):
            names.unqualified_column(ctx, node, name, scope)


def found(rule: object, sql: str) -> list[tuple[str, str, list[str]]]:
    ctx = context(sql, schema=shop(), bind=rule is columns)
    rule(ctx)  # type: ignore[operator]
    return [(p.code, p.message, p.lazy() if p.lazy else p.suggestions) for p in ctx.problems]


TABLES_GOOD = [
    "SELECT * FROM customers",
    "SELECT * FROM public.customers",
    "SELECT * FROM hr.employees",
    "SELECT * FROM analytics.daily",
    "SELECT * FROM pg_class",  # the catalogs are not in the model
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM other_db.public.t",  # a catalog-qualified name is not judged
    "WITH nope AS (SELECT 1) SELECT * FROM nope",
]
TABLES_BAD = [
    ("SELECT * FROM nope", 'relation "nope" does not exist in database shop', []),
    ("SELECT * FROM customer", 'relation "customer" does not exist', ["public.customers"]),
    ("SELECT * FROM nope.t", 'schema "nope" does not exist', []),
    ("SELECT * FROM hrr.employees", 'schema "hrr" does not exist', ["hr"]),
    ("SELECT * FROM hr.employes", 'relation "hr.employes" does not exist', ["hr.employees"]),
]


@pytest.mark.parametrize("sql", TABLES_GOOD)
def test_unknown_tables_good(sql: str) -> None:
    assert found(tables, sql) == []


@pytest.mark.parametrize(("sql", "message", "suggestions"), TABLES_BAD)
def test_unknown_tables_bad(sql: str, message: str, suggestions: list[str]) -> None:
    [(code, text, sugg)] = found(tables, sql)
    assert code == "UNKNOWN_OBJECT" and text.startswith(message) and sugg == suggestions


def test_only_the_first_unknown_name_is_reported() -> None:
    [(_, text, _)] = found(tables, "SELECT * FROM nope1, nope2")
    assert '"nope1"' in text


def test_without_a_schema_no_name_is_unknown() -> None:
    ctx = context("SELECT * FROM nope")
    tables(ctx)
    assert list(ctx.problems) == []


COLUMNS_GOOD = [
    "SELECT id, name FROM customers",
    "SELECT c.name FROM customers c",
    "SELECT x FROM customers, (SELECT 1 AS x) s",  # a subquery in reach: not judged
    "SELECT current_user, now() FROM customers",
    "SELECT ctid, xmin FROM customers",
    "SELECT total AS t FROM orders ORDER BY t",
    "SELECT a FROM customers c(a, b)",  # renamed columns
    "SELECT id FROM customers UNION SELECT id FROM orders ORDER BY id",
    "SELECT o.status, c.country FROM orders o JOIN customers c ON c.id = o.customer_id",
]
COLUMNS_BAD = [
    ("SELECT nam FROM customers", 'column "nam" does not exist in public.customers', ["name"]),
    (
        "SELECT c.nam FROM customers c",
        'column "nam" does not exist in public.customers',
        ["c.name"],
    ),
    ("SELECT id FROM orders WHERE statu = 'x'", 'column "statu" does not exist', ["status"]),
]


@pytest.mark.parametrize("sql", COLUMNS_GOOD)
def test_unknown_columns_good(sql: str) -> None:
    assert found(columns, sql) == []


@pytest.mark.parametrize(("sql", "message", "suggestions"), COLUMNS_BAD)
def test_unknown_columns_bad(sql: str, message: str, suggestions: list[str]) -> None:
    [(code, text, sugg)] = found(columns, sql)
    assert code == "UNKNOWN_OBJECT" and text.startswith(message) and sugg == suggestions


def test_attribute_notation_is_a_user_function_call() -> None:
    """t.f means f(t): the user-function rule judges it, not the names."""
    [(code, text, _)] = found(columns, "SELECT c.slugify FROM customers c")
    assert code == "FUNCTION_NOT_ALLOWED" and text.startswith("public.slugify() is a user function")


def test_resolve_binds_the_model_and_the_schema() -> None:
    ctx = context("SELECT * FROM customers, pg_class, nope", schema=shop())
    for ref in ctx.facts.tables:
        names.resolve(ctx, ref)
    assert [r.qualified for r in ctx.facts.tables] == [
        "public.customers",
        "pg_catalog.pg_class",
        "nope",
    ]
    assert ctx.facts.tables[0].model is not None and ctx.facts.tables[2].model is None
