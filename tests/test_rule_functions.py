"""rules/functions.py alone: denied built-ins, and calls resolved against the catalog."""

from __future__ import annotations

import pytest

from pg_mcp.core.validation.rules import functions
from rulekit import codes, context, reported, shop

DENIED_GOOD = [
    "SELECT lower(name), count(*), now() FROM t GROUP BY 1",
    "SELECT * FROM generate_series(1, 3)",
    "SELECT coalesce(a, 0), greatest(a, b) FROM t",
    "SELECT len('x')",  # not a built-in: user_functions judges it
    'SELECT "Random"()',  # the same
    "SELECT my_udf(1)",
    "SELECT 'pg_sleep(1)'",
]
DENIED_BAD = [
    ("SELECT pg_sleep(1)", "FORBIDDEN_FUNCTION", "pg_sleep() is never allowed (sleeping)"),
    ("SELECT pg_catalog.pg_sleep(1)", "FORBIDDEN_FUNCTION", "pg_catalog.pg_sleep()"),
    ("SELECT * FROM t WHERE pg_terminate_backend(1)", "FORBIDDEN_FUNCTION", "signalling"),
    ("SELECT lo_import('/etc/passwd')", "FORBIDDEN_FUNCTION", "large objects"),
    ("SELECT dblink('x', 'y')", "FORBIDDEN_FUNCTION", "dblink"),
    ("SELECT pg_read_file('/etc/passwd')", "FORBIDDEN_FUNCTION", "file and directory access"),
    ("SELECT nextval('s')", "FORBIDDEN_FUNCTION", "sequence changes"),
    ("SELECT set_config('a', 'b', false)", "FORBIDDEN_FUNCTION", "set_config"),
    ("SELECT txid_current()", "FORBIDDEN_FUNCTION", "transaction id"),
    ("SELECT * FROM t, LATERAL pg_sleep(1)", "FORBIDDEN_FUNCTION", "pg_sleep"),
    ("SELECT pg_hba_file_rules()", "ACCESS_DENIED", "reads a catalog that holds secrets"),
]


@pytest.mark.parametrize("sql", DENIED_GOOD)
def test_denied_calls_good(sql: str) -> None:
    assert codes(functions.denied_calls, sql) == []


@pytest.mark.parametrize(("sql", "code", "shown"), DENIED_BAD)
def test_denied_calls_bad(sql: str, code: str, shown: str) -> None:
    [(found, message)] = reported(functions.denied_calls, sql)
    assert found == code and shown in message


def test_a_secret_catalog_function_follows_its_switch() -> None:
    assert (
        codes(functions.denied_calls, "SELECT pg_hba_file_rules()", allow_secret_catalogs=True)
        == []
    )


ALLOW = {"allow_functions": ["public.*", "analytics.*"], "deny_schemas": ["hr"]}
# (sql, without a schema, with the shop schema, with the shop schema and ALLOW)
USER = [
    ("SELECT count(*) FROM orders", None, None, None),
    ("SELECT pg_catalog.lower(name) FROM customers", None, None, None),
    ("SELECT slugify(name) FROM customers", "FUNCTION_NOT_ALLOWED", "FUNCTION_NOT_ALLOWED", None),
    ("SELECT public.slugify('x')", "FUNCTION_NOT_ALLOWED", "FUNCTION_NOT_ALLOWED", None),
    ("SELECT log_visit(1)", "FUNCTION_NOT_ALLOWED", "FUNCTION_NOT_ALLOWED", "FORBIDDEN_FUNCTION"),
    (
        "SELECT analytics.refresh_all()",
        "FUNCTION_NOT_ALLOWED",
        "FUNCTION_NOT_ALLOWED",
        "FORBIDDEN_FUNCTION",
    ),
    (
        "SELECT refresh_all()",
        "FUNCTION_NOT_ALLOWED",
        "FUNCTION_NOT_ALLOWED",
        "FUNCTION_NOT_ALLOWED",
    ),
    ("SELECT nope(1)", "FUNCTION_NOT_ALLOWED", "FUNCTION_NOT_ALLOWED", "FUNCTION_NOT_ALLOWED"),
    ("SELECT lower(name) FROM customers", None, "FORBIDDEN_FUNCTION", "FORBIDDEN_FUNCTION"),
    ("SELECT hr.f(1)", "FUNCTION_NOT_ALLOWED", "FUNCTION_NOT_ALLOWED", "ACCESS_DENIED"),
]


@pytest.mark.parametrize(("sql", "bare", "with_schema", "allowed"), USER)
def test_user_functions(
    sql: str, bare: str | None, with_schema: str | None, allowed: str | None
) -> None:
    def one(**kw: object) -> str | None:
        found = codes(functions.user_functions, sql, **kw)  # type: ignore[arg-type]
        assert len(found) <= 1
        return found[0] if found else None

    assert one() == bare
    assert one(schema=shop()) == with_schema
    assert one(schema=shop(), **ALLOW) == allowed


def test_a_misspelt_function_gets_suggestions() -> None:
    ctx = context("SELECT slugifi('x')", schema=shop())
    functions.user_functions(ctx)
    [problem] = ctx.problems
    assert problem.suggestions == ["slugify"] and "did you mean slugify?" in (problem.hint or "")


def test_the_message_says_what_the_catalog_knows() -> None:
    [(_, message)] = reported(
        functions.user_functions, "SELECT log_visit(1)", schema=shop(), **ALLOW
    )
    assert "public.log_visit() is a VOLATILE user function" in message
    [(_, message)] = reported(functions.user_functions, "SELECT slugify('a')")
    assert "without the database's catalog" in message


# an explicit OPERATOR(): only pg_catalog's pass (a user-defined one runs any function)
OPERATORS_BAD = [
    ("SELECT 1 OPERATOR(public.+) 1", "OPERATOR(public.+) calls the function behind an operator"),
    ("SELECT 1 OPERATOR(#~#) 2", "OPERATOR(#~#)"),  # resolved through search_path
    ('SELECT 1 OPERATOR("public".#~#) 2', "OPERATOR(public.#~#)"),
    ("SELECT * FROM orders WHERE id OPERATOR(x.=) 1", "OPERATOR(x.=)"),
]
OPERATORS_GOOD = [
    "SELECT 1 OPERATOR(pg_catalog.+) 2",
    'SELECT 1 OPERATOR("pg_catalog".+) 2',
    "SELECT 'a' OPERATOR(pg_catalog.~~) 'a%'",
    "SELECT 1 + 2",
]


@pytest.mark.parametrize(("sql", "shown"), OPERATORS_BAD)
def test_explicit_operators_bad(sql: str, shown: str) -> None:
    for schema in (None, shop()):
        [(code, message)] = reported(functions.explicit_operators, sql, schema=schema)
        assert code == "FUNCTION_NOT_ALLOWED" and shown in message, message


@pytest.mark.parametrize("sql", OPERATORS_GOOD)
def test_explicit_operators_good(sql: str) -> None:
    assert codes(functions.explicit_operators, sql) == []


# (t).f and (t.*).f are f(t): (sql, with the shop schema, with the shop schema and ALLOW);
# without a schema nothing says f is a function (the column rules judge it)
FIELDS = [
    ("SELECT (c).slugify FROM customers c", "FUNCTION_NOT_ALLOWED", None),
    ("SELECT (c.*).slugify FROM customers c", "FUNCTION_NOT_ALLOWED", None),
    ("SELECT (c).log_visit FROM customers c", "FUNCTION_NOT_ALLOWED", "FORBIDDEN_FUNCTION"),
    ("SELECT (c.*).log_visit FROM customers c", "FUNCTION_NOT_ALLOWED", "FORBIDDEN_FUNCTION"),
    ("SELECT (c).name FROM customers c", None, None),
    ("SELECT (c.*).name FROM customers c", None, None),
]


@pytest.mark.parametrize(("sql", "with_schema", "allowed"), FIELDS)
def test_field_calls(sql: str, with_schema: str | None, allowed: str | None) -> None:
    assert codes(functions.field_calls, sql) == []
    assert codes(functions.field_calls, sql, schema=shop()) == (
        [with_schema] if with_schema else []
    )
    assert codes(functions.field_calls, sql, schema=shop(), **ALLOW) == (
        [allowed] if allowed else []
    )
