"""validate_sql unit tests: pure and fast (schemas built from the model dataclasses).

The golden corpora and the PostgreSQL-backed checks are in test_validator_corpus.py.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pg_mcp import validate_sql as exported_validate_sql
from pg_mcp.core.functions import FAMILIES, all_exact_names, describe, forbidden_family
from pg_mcp.core.model import Column, DatabaseSchema, Extension, Function, Table
from pg_mcp.core.policy import (
    apply_policy,
    column_denial,
    is_column_denied,
    is_function_allowed,
    is_schema_denied,
    is_secret_catalog,
    is_table_denied,
    table_denial,
)
from pg_mcp.core.settings import Policy, Settings
from pg_mcp.core.validator import Verdict
from pg_mcp.db.checker import validate_sql

# --- fixtures ---------------------------------------------------------------------------------


def _table(schema: str, name: str, cols: list[str], kind: str = "table") -> Table:
    return Table(schema=schema, name=name, kind=kind, columns=[Column(c, "text") for c in cols])


def shop() -> DatabaseSchema:
    return DatabaseSchema(
        name="shop",
        schemas=["public", "hr", "analytics"],
        search_path=["public"],
        tables=[
            _table("public", "customers", ["id", "name", "email", "country", "created_at"]),
            _table("public", "orders", ["id", "customer_id", "status", "total", "created_at"]),
            _table("public", "order_items", ["order_id", "product_id", "qty", "price"]),
            _table("public", "products", ["id", "name", "price", "category", "attrs"]),
            _table("public", "users", ["id", "login", "password_hash"]),
            _table("hr", "employees", ["id", "name", "dept", "salary", "manager_id"]),
            _table("analytics", "daily", ["day", "revenue"], kind="materialized view"),
        ],
        functions=[
            Function("public", "slugify", "t text", "text", "sql", "immutable"),
            Function("public", "now_utc", "", "timestamp", "sql", "stable"),
            Function("public", "log_visit", "id integer", "void", "plpgsql", "volatile"),
            Function("public", "audit", "c customers", "integer", "sql", "volatile"),
            Function("analytics", "refresh_all", "", "void", "plpgsql", "volatile"),
        ],
    )


def policy_settings(**kw: object) -> Settings:
    return Settings(policy=Policy(**kw))  # type: ignore[arg-type]


def code(sql: object, **kw: object) -> str | None:
    v = validate_sql(sql, **kw)  # type: ignore[arg-type]
    assert isinstance(v, Verdict)
    return v.code


# --- the verdict --------------------------------------------------------------------------------


def test_exported_from_package() -> None:
    assert exported_validate_sql is validate_sql


def test_accepted_verdict_shape() -> None:
    v = validate_sql(
        "SELECT c.name, count(*) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY 1"
    )
    assert v.ok and v.code is None and v.message.startswith("accepted")
    assert v.kind == "select"
    assert v.tables == ["customers", "orders"]
    assert v.functions == ["count"]
    d = v.to_dict()
    assert d["ok"] is True and d["code"] is None and d["tables"] == ["customers", "orders"]
    assert "hint" not in d and "position" not in d


def test_refused_verdict_shape() -> None:
    v = validate_sql("SELECT 1; DROP TABLE x")
    d = v.to_dict()
    assert d["ok"] is False and d["code"] == "MULTIPLE_STATEMENTS"
    assert d["position"] == 11  # 1-based, at DROP
    assert "only one read-only query is allowed" in d["message"]
    assert "DROP TABLE x" in d["message"] and d["hint"]


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT 1", "select"),
        ("WITH a AS (SELECT 1) SELECT * FROM a", "select"),
        ("SELECT 1 UNION SELECT 2", "select"),
        ("(SELECT 1)", "select"),
        ("VALUES (1)", "values"),
        ("TABLE t", "table"),
        ("EXPLAIN SELECT 1", "explain"),
    ],
)
def test_kinds(sql: str, kind: str) -> None:
    v = validate_sql(sql)
    assert v.ok and v.kind == kind


@pytest.mark.parametrize(
    ("sql", "position"),
    [
        ("SELECT pg_sleep(1)", 8),
        ("SELECT 1 FROM t WHERE", 17),
        ("SELECT 1 FOR UPDATE", 10),
        ("SELECT 'abc", 8),
        ("   DELETE FROM t", 4),
        ("EXPLAIN SELECT pg_sleep(1)", 16),
        ("SELECT * FROM pg_authid", 15),
        ("SELECT 1\x00", 9),
    ],
)
def test_positions_are_one_based(sql: str, position: int) -> None:
    assert validate_sql(sql).position == position


def test_messages_show_the_fragment_trimmed() -> None:
    long_tail = ", ".join(f"col_{i}" for i in range(100))
    v = validate_sql(f"DELETE FROM t WHERE x IN ({long_tail})")
    assert v.code == "NOT_READ_ONLY"
    assert "DELETE FROM t WHERE x IN (col_0" in v.message and v.message.endswith("…")
    assert len(v.message) < 300


# --- never raises -----------------------------------------------------------------------------

ODD = [
    None,
    b"",
    b"SELECT 1",
    b"\xff\xfe\x00SELECT",
    bytearray(b"SELECT 1"),
    42,
    3.5,
    [],
    {"sql": "SELECT 1"},
    object(),
    "",
    " ",
    "\n\t\r\f\v",
    "--",
    "/*",
    "/* */",
    "*/",
    "'",
    '"',
    "$$",
    "$a$",
    "$",
    "(",
    ")",
    "((((",
    "))))",
    "SELECT (((1",
    "SELECT 1)))",
    "\x00",
    "SELECT 1\x00; DROP TABLE x",
    "SELECT '\udcff'",
    "\ud800",
    "SELECT 1 -- \udcff",
    "€",
    "SELECT",
    "SELECT *",
    "WITH",
    "EXPLAIN",
    "EXPLAIN (",
    "EXPLAIN (ANALYZE",
    "EXPLAIN ()",
    "TABLE",
    "VALUES",
    "SELECT 1 FROM",
    "SELECT E'\\",
    "U&",
    'U&"',
    "\\",
    "SELECT 1 \\g",
    "SELECT $1",
    "SELECT ?",
    "SELECT :x",
    "SELECT %s",
    "SELECT @",
    "SELECT 1e",
    "SELECT 0x",
    "SELECT 'a' 'b'",
    "SELECT 1 AS explain",
    "SELECT * FROM t AS",
    "SELECT " + "(" * 5000 + "1" + ")" * 5000,
    "SELECT " + "-" * 5000 + "1",
    "SELECT " + "NOT " * 5000 + "true",
    "SELECT " + "CASE WHEN true THEN " * 600 + "1" + " END" * 600,
    "SELECT " + "ARRAY[" * 600 + "1" + "]" * 600,
    "SELECT * FROM " + "(SELECT * FROM " * 300 + "t" + ") s" * 300,
    "SELECT " + " + ".join(["1"] * 20000),
    "SELECT " + ", ".join(["1"] * 20000),
    "SELECT 1 " + "-- x\n" * 20000,
    "SELECT '" + "x" * 500_000 + "'",
    "SELECT 1" + " " * 2_000_000,
    "WITH " + ", ".join(f"c{i} AS (SELECT {i})" for i in range(2000)) + " SELECT 1",
    "SELECT 1" + ";" * 10000,
]


@pytest.mark.parametrize("sql", ODD, ids=[repr(x)[:40] for x in ODD])
def test_never_raises(sql: object) -> None:
    v = validate_sql(sql)  # type: ignore[arg-type]
    assert isinstance(v, Verdict)
    if not v.ok:
        assert v.code and v.message
    d = v.to_dict()
    assert d["ok"] is v.ok


def test_odd_inputs_are_refused_where_postgres_would_refuse() -> None:
    assert code(None) == "EMPTY"
    assert code(42) == "PARSE_ERROR"
    assert code(b"\xff") == "PARSE_ERROR"
    assert validate_sql(b"SELECT 1").ok
    assert code("SELECT 1\x00; DROP TABLE x") == "PARSE_ERROR"
    assert code("SELECT '\udcff'") == "PARSE_ERROR"
    assert code("SELECT " + "(" * 5000 + "1" + ")" * 5000) == "PARSE_ERROR"
    assert code("SELECT 1" + " " * 2_000_000) == "TOO_COMPLEX"  # too long
    assert validate_sql("SELECT 1" + ";" * 10000).ok  # empty statements are nothing
    assert validate_sql("SELECT 'ü' AS \"ü\", 'x;y' AS \"a;b\"").ok


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_text_never_raises(sql: str) -> None:
    v = validate_sql(sql)
    assert isinstance(v, Verdict)
    assert v.ok == (v.code is None)


_TRICKY = st.sampled_from(
    [
        "SELECT ",
        "1",
        ";",
        "'",
        "''",
        '"',
        "$$",
        "$a$",
        "E'",
        "\\",
        "/*",
        "*/",
        "--",
        "\n",
        "(",
        ")",
        "pg_sleep(1)",
        "DROP TABLE x",
        " FOR UPDATE",
        " INTO t",
        "WITH d AS (DELETE FROM t) ",
        "EXPLAIN ",
        "ANALYZE ",
        "pg_authid",
        " FROM ",
        'U&"',
        "é",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_TRICKY, max_size=14).map("".join))
def test_fuzz_tricky_fragments_never_raise_nor_accept_danger(sql: str) -> None:
    v = validate_sql(sql)
    assert isinstance(v, Verdict)
    if v.ok:  # what is accepted holds no dangerous construct outside strings and comments
        from pg_mcp.core.validator import pg_lex, split_statements

        lexed = pg_lex(sql)
        assert len(split_statements(lexed)) == 1, (sql, v)
        text = " ".join(sql[t.start : t.end].upper() for t in lexed if t.kind in ("word", "punct"))
        for bad in ("PG_SLEEP (", "AS ( DELETE", "FOR UPDATE", "INTO T", "FROM PG_AUTHID"):
            assert bad not in text, (sql, v)
        assert not text.startswith("EXPLAIN ANALYZE"), (sql, v)


# --- statements and clauses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1;",
        "SELECT 1 ;  -- done",
        "SELECT 1; /* done */",
        "SELECT 1;;",
        "-- leading comment\nSELECT 1",
        "/* a /* nested */ comment */ SELECT 1",
        "SELECT $$;$$",
        "SELECT $x$ '; DROP TABLE t; ' $x$",
        "SELECT E'\\';'",
        "SELECT 'a;b' AS \"c;d\"",
        "SELECT 1 AS a$b",
        "EXPLAIN (ANALYZE false) SELECT 1",
        "EXPLAIN (ANALYZE off, VERBOSE) SELECT 1",
        "EXPLAIN (ANALYZE 0) SELECT 1",
        "EXPLAIN (ANALYZE 'false', FORMAT JSON) SELECT 1",
        "EXPLAIN (GENERIC_PLAN) SELECT 1",
        "EXPLAIN VERBOSE SELECT 1",
        "EXPLAIN VALUES (1)",
        "EXPLAIN TABLE t",
        "SELECT * FROM t WHERE a = 'FOR UPDATE' -- FOR UPDATE",
        "SELECT 'INSERT INTO x' AS q",
        "SELECT currval('s'), lastval(), current_setting('work_mem'), pg_backend_pid()",
        # pg_export_snapshot() used to be here: it publishes this transaction's snapshot to
        # other sessions, so the function allowlist (issue 10) denies it (test_function_policy)
        "SELECT txid_current_if_assigned(), pg_current_xact_id_if_assigned()",
        "SELECT random(), gen_random_uuid(), clock_timestamp(), now()",
        "SELECT rolname, rolsuper FROM pg_roles",  # * would read rolconfig (settings family)
        "SELECT usename, usesuper FROM pg_user",  # * would read useconfig (settings family)
        "SELECT pid, state, backend_type FROM pg_stat_activity",  # not query (session_activity)
        "SELECT sleep_minutes FROM t",  # a column named like a family, not a call
        "SELECT x AS lo_value FROM t",
        "SELECT update_count, delete_flag FROM t",
    ],
)
def test_accepted(sql: str) -> None:
    v = validate_sql(sql)
    assert v.ok, (v.code, v.message)


def test_explain_inner_query_is_validated() -> None:
    assert code("EXPLAIN SELECT pg_sleep(1)") == "FORBIDDEN_FUNCTION"
    assert code("EXPLAIN DELETE FROM t") == "NOT_READ_ONLY"
    assert code("EXPLAIN EXPLAIN SELECT 1") == "NOT_READ_ONLY"
    assert code("EXPLAIN (ANALYZE") == "PARSE_ERROR"
    assert code("EXPLAIN") == "PARSE_ERROR"


def test_most_fundamental_problem_wins() -> None:
    assert (
        code("WITH d AS (DELETE FROM t) SELECT pg_sleep(1) FROM pg_authid FOR UPDATE")
        == "DATA_MODIFYING_CTE"
    )
    assert code("SELECT pg_sleep(1) INTO x FROM pg_authid") == "SELECT_INTO"
    assert code("SELECT pg_sleep(1) FROM pg_authid FOR UPDATE") == "LOCKING_CLAUSE"
    assert code("SELECT pg_sleep(1) FROM pg_authid") == "FORBIDDEN_FUNCTION"
    # the first problem in the text when they rank the same
    v = validate_sql("SELECT pg_sleep(1), lo_import('x')")
    assert "pg_sleep" in v.message


def test_cte_visibility_for_data_modifying_detection() -> None:
    assert code("WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b") is None
    assert (
        code(
            "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r"
        )
        is None
    )


# --- functions ---------------------------------------------------------------------------------


def test_every_family_has_a_reason_and_names() -> None:
    keys = [f.key for f in FAMILIES]
    assert len(keys) == len(set(keys))
    for fam in FAMILIES:
        assert fam.reason and fam.title and (fam.names or fam.prefixes)
        assert fam.code in ("FORBIDDEN_FUNCTION", "ACCESS_DENIED")
    text = describe()
    assert "pg_sleep" in text and "lo_*" in text


def _call_args(name: str) -> tuple[str, str]:
    base, _, n = name.partition("/")
    return base, ", ".join(["'1'"] * int(n)) if n else "1"


@pytest.mark.parametrize("name", all_exact_names())
def test_every_forbidden_name_is_caught_everywhere(name: str) -> None:
    base, args = _call_args(name)
    fam = forbidden_family(base, len(args.split(", ")) if "/" in name else None)
    assert fam is not None
    for sql in (
        f"SELECT {base}({args})",
        f"SELECT {base.upper()}({args})",
        f'SELECT "{base}"({args})',
        f"SELECT pg_catalog.{base}({args})",
        f'SELECT "pg_catalog"."{base}"({args})',
        f"SELECT * FROM {base}({args})",
        f"SELECT * FROM pg_catalog.{base}({args}) AS f",
        f"SELECT * FROM ROWS FROM ({base}({args}))",
        f"SELECT 1 FROM generate_series(1, 2) g, LATERAL {base}({args}) f",
        f"SELECT 1 WHERE EXISTS (SELECT {base}({args}))",
        f"WITH c AS (SELECT {base}({args})) SELECT * FROM c",
        f"SELECT 1 ORDER BY {base}({args})",
    ):
        v = validate_sql(sql)
        assert v.code == fam.code, (sql, v.code, v.message)


@pytest.mark.parametrize("fam", [f for f in FAMILIES if f.prefixes], ids=lambda f: f.key)
def test_every_forbidden_prefix_is_caught(fam: object) -> None:
    for prefix in fam.prefixes:  # type: ignore[attr-defined]
        v = validate_sql(f"SELECT {prefix}anything(1)")
        assert v.code == fam.code, (prefix, v.code)  # type: ignore[attr-defined]


def test_ts_rewrite_only_with_two_arguments() -> None:
    assert code("SELECT ts_rewrite('a'::tsquery, 'SELECT 1')") == "FORBIDDEN_FUNCTION"
    assert code("SELECT ts_rewrite('a'::tsquery, 'a'::tsquery, 'b'::tsquery)") is None


def test_secret_file_functions_follow_the_secret_catalog_switch() -> None:
    assert code("SELECT * FROM pg_hba_file_rules()") == "ACCESS_DENIED"
    allow = policy_settings(allow_secret_catalogs=True)
    assert code("SELECT * FROM pg_hba_file_rules()", settings=allow) is None
    assert code("SELECT * FROM pg_authid", settings=allow) is None
    assert code("SELECT pg_read_file('x')", settings=allow) == "FORBIDDEN_FUNCTION"


STABLE_FNS = policy_settings(allow_functions=("public.slugify", "public.now_utc"))


def test_user_functions_with_a_schema() -> None:
    db = shop()
    # no schema: only reviewed built-ins pass (issue 10); a user function cannot be seen
    assert code("SELECT log_visit(1)") == "FUNCTION_NOT_ALLOWED"
    assert code("SELECT log_visit(1)", schema=db) == "FUNCTION_NOT_ALLOWED"  # not named
    assert code("SELECT public.log_visit(1)", schema=db) == "FUNCTION_NOT_ALLOWED"
    assert code("SELECT * FROM log_visit(1)", schema=db) == "FUNCTION_NOT_ALLOWED"
    assert code("SELECT 1 WHERE log_visit(1) IS NULL", schema=db) == "FUNCTION_NOT_ALLOWED"
    assert code("SELECT analytics.refresh_all()", schema=db) == "FUNCTION_NOT_ALLOWED"
    # analytics is not on the search_path: refresh_all() does not resolve (PostgreSQL would fail)
    assert code("SELECT refresh_all()", schema=db) == "FUNCTION_NOT_ALLOWED"
    # STABLE / IMMUTABLE user functions pass once allow_functions names them
    assert (
        code("SELECT slugify(name), now_utc() FROM customers", schema=db) == "FUNCTION_NOT_ALLOWED"
    )
    assert (
        code("SELECT slugify(name), now_utc() FROM customers", schema=db, settings=STABLE_FNS)
        is None
    )
    v = validate_sql("SELECT log_visit(1)", schema=db)
    assert "public.log_visit" in v.message and "policy.allow_functions" in (v.hint or "")
    assert 'policy.allow_functions = ["public.log_visit"]' in (v.hint or "")
    named = policy_settings(allow_functions=("public.log_visit", "public.audit"))
    v = validate_sql("SELECT log_visit(1)", schema=db, settings=named)
    assert v.code == "FORBIDDEN_FUNCTION" and "VOLATILE" in v.message
    # attribute notation c.audit means audit(c)
    assert code("SELECT c.audit FROM customers c", schema=db) == "FUNCTION_NOT_ALLOWED"
    assert (
        code("SELECT c.audit FROM customers c", schema=db, settings=named) == "FORBIDDEN_FUNCTION"
    )


@pytest.mark.parametrize(
    ("pattern", "call"),
    [
        ("public.now_utc", "now_utc()"),
        ("now_utc", "public.now_utc()"),
        ("public.*", "slugify('a')"),
        ("*.now_*", "now_utc()"),
    ],
)
def test_allow_functions(pattern: str, call: str) -> None:
    s = policy_settings(allow_functions=(pattern, "*.log_*"))
    assert code(f"SELECT {call}", schema=shop(), settings=s) is None
    assert code(f"SELECT {call}", schema=shop()) == "FUNCTION_NOT_ALLOWED"
    # naming a VOLATILE function no longer lets it through (it used to, before issue 10)
    assert code("SELECT log_visit(1)", schema=shop(), settings=s) == "FORBIDDEN_FUNCTION"
    assert code("SELECT pg_sleep(1)", schema=shop(), settings=s) == "FORBIDDEN_FUNCTION"


# --- access policy ------------------------------------------------------------------------------

SALARY = policy_settings(deny_columns=("hr.employees.salary",))


@pytest.mark.parametrize("with_schema", [False, True])
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT salary FROM hr.employees", "ACCESS_DENIED"),
        ("SELECT e.salary FROM hr.employees e", "ACCESS_DENIED"),
        ("SELECT hr.employees.salary FROM hr.employees", "ACCESS_DENIED"),
        ("SELECT SALARY FROM HR.EMPLOYEES", "ACCESS_DENIED"),
        ('SELECT "salary" FROM "hr"."employees"', "ACCESS_DENIED"),
        ("SELECT max(salary) FROM hr.employees", "ACCESS_DENIED"),
        ("SELECT name FROM hr.employees WHERE salary > 100000", "ACCESS_DENIED"),
        ("SELECT name FROM hr.employees ORDER BY salary DESC", "ACCESS_DENIED"),
        ("SELECT * FROM hr.employees", "ACCESS_DENIED"),
        ("SELECT e.* FROM hr.employees e", "ACCESS_DENIED"),
        ("TABLE hr.employees", "ACCESS_DENIED"),
        ("SELECT x.* FROM (SELECT * FROM hr.employees) x", "ACCESS_DENIED"),
        ("WITH e AS (SELECT * FROM hr.employees) SELECT name FROM e", "ACCESS_DENIED"),
        ("SELECT row_to_json(e) FROM hr.employees e", "ACCESS_DENIED"),
        ("SELECT to_jsonb(e.*) FROM hr.employees e", "ACCESS_DENIED"),
        ("SELECT e FROM hr.employees e", "ACCESS_DENIED"),
        ("SELECT (e).salary FROM hr.employees e", "ACCESS_DENIED"),
        ("SELECT employees FROM hr.employees", "ACCESS_DENIED"),
        ("SELECT name FROM hr.employees", None),
        ("SELECT e.name, e.dept FROM hr.employees e", None),
        ("SELECT count(*) FROM hr.employees", None),
        (
            "SELECT d.name FROM hr.employees d WHERE EXISTS (SELECT * FROM hr.employees x WHERE x.id = d.manager_id)",
            None,
        ),
        ("SELECT salary FROM (SELECT 1 AS salary) s", None),
        ("SELECT * FROM customers", None),
    ],
)
def test_denied_columns(sql: str, expected: str | None, with_schema: bool) -> None:
    schema = shop() if with_schema else None
    v = validate_sql(sql, schema=schema, settings=SALARY)
    assert v.code == expected, (sql, v.message)
    if expected:
        assert "salary" in v.message


def test_star_over_a_table_names_the_denied_column() -> None:
    s = policy_settings(deny_columns=("*.*.password_hash",))
    v = validate_sql("SELECT * FROM users", schema=shop(), settings=s)
    assert v.code == "ACCESS_DENIED" and "password_hash" in v.message and "*" in v.message
    assert (
        code("SELECT * FROM customers", schema=shop(), settings=s) is None
    )  # no such column there
    assert code("SELECT id, login FROM users", schema=shop(), settings=s) is None
    # without a schema the columns of * are unknown: refused, conservatively
    assert code("SELECT * FROM customers", settings=s) == "ACCESS_DENIED"


def test_star_over_a_policy_filtered_model() -> None:
    """introspect drops denied columns from the model; * must still be refused."""
    db = shop()
    emp = db.table("employees", "hr")
    assert emp is not None
    emp.columns = [c for c in emp.columns if c.name != "salary"]
    assert code("SELECT * FROM hr.employees", schema=db, settings=SALARY) == "ACCESS_DENIED"
    assert code("SELECT salary FROM hr.employees", schema=db, settings=SALARY) == "ACCESS_DENIED"
    assert code("SELECT name FROM hr.employees", schema=db, settings=SALARY) is None


@pytest.mark.parametrize("with_schema", [False, True])
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM secret.keys", "ACCESS_DENIED"),
        ('SELECT * FROM "SECRET"."KEYS"', "ACCESS_DENIED"),
        ("SELECT a FROM secret_stuff.t", "ACCESS_DENIED"),
        ("SELECT * FROM public.users", "ACCESS_DENIED"),
        ("SELECT id FROM users", "ACCESS_DENIED"),
        ("SELECT u.id FROM public.users u JOIN orders o ON o.customer_id = u.id", "ACCESS_DENIED"),
        ("SELECT * FROM billing.api_keys", "ACCESS_DENIED"),
        ("SELECT secret.f()", "ACCESS_DENIED"),
        ("SELECT 1 FROM orders WHERE EXISTS (SELECT 1 FROM users)", "ACCESS_DENIED"),
        ("WITH users AS (SELECT 1 AS id) SELECT id FROM users", None),
        (
            "SELECT * FROM (WITH users AS (SELECT 1 AS id) SELECT * FROM users) a, users",
            "ACCESS_DENIED",
        ),
        ("WITH a AS (SELECT * FROM users), users AS (SELECT 1) SELECT * FROM a", "ACCESS_DENIED"),
        ("WITH RECURSIVE a AS (SELECT * FROM users), users AS (SELECT 1) SELECT * FROM a", None),
        ("SELECT * FROM orders", None),
    ],
)
def test_denied_schemas_and_tables(sql: str, expected: str | None, with_schema: bool) -> None:
    s = policy_settings(deny_schemas=("secret*",), deny_tables=("public.users", "*.api_keys"))
    db = shop()
    if with_schema:  # as introspect leaves them: denied tables are not in the model
        db = apply_policy(s.policy, db)
    v = validate_sql(sql, schema=db if with_schema else None, settings=s)
    assert v.code == expected, (sql, v.code, v.message)


def test_secret_catalogs_spelled_every_way() -> None:
    for sql in (
        "SELECT * FROM pg_authid",
        "SELECT * FROM pg_catalog.pg_authid",
        'SELECT * FROM "pg_catalog"."pg_authid"',
        "SELECT * FROM PG_CATALOG.PG_AUTHID",
        "SELECT * FROM postgres.pg_catalog.pg_authid",
        "SELECT * FROM pg_catalog.pg_user_mappings",
        "SELECT * FROM information_schema.user_mapping_options",
    ):
        assert code(sql) == "ACCESS_DENIED", sql
        assert code(sql, schema=shop()) == "ACCESS_DENIED", sql
    assert code("SELECT * FROM myschema.pg_authid") is None  # a user table of that name elsewhere


# --- unknown objects ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "suggestion"),
    [
        ("SELECT * FROM custmers", "public.customers"),
        ("SELECT * FROM public.ordrs", "public.orders"),
        ("SELECT * FROM employees", "hr.employees"),
        ("SELECT * FROM hrr.employees", "hr"),
        ("SELECT c.nmae FROM customers c", "c.name"),
        ("SELECT nmae FROM customers", "name"),
        ("SELECT o.totl FROM orders o JOIN customers c ON c.id = o.customer_id", "o.total"),
        ("SELECT id FROM orders WHERE statuss = 'paid'", "status"),
        ("SELECT e.salry FROM hr.employees e", "e.salary"),
        ("SELECT * FROM analytics.dayly", "analytics.daily"),
    ],
)
def test_unknown_objects_with_suggestions(sql: str, suggestion: str) -> None:
    v = validate_sql(sql, "shop", schema=shop())
    assert v.code == "UNKNOWN_OBJECT", (sql, v.code, v.message)
    assert suggestion in v.suggestions, v.suggestions
    assert "did you mean" in (v.hint or "") and suggestion in (v.hint or "")
    assert "shop" in v.message
    assert validate_sql(sql).ok  # without a schema nothing is known


@pytest.mark.parametrize(
    "sql",
    [
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r",
        "SELECT c.name AS n FROM customers c ORDER BY n",
        "SELECT country AS land, count(*) FROM customers GROUP BY land",
        "SELECT s.anything FROM (SELECT 1 AS anything) s",
        "SELECT anything FROM (SELECT 1 AS anything) s",
        "SELECT relname, relkind FROM pg_class",
        "SELECT relname FROM pg_catalog.pg_class c WHERE c.relnamespace = 2200",
        "SELECT column_name FROM information_schema.columns",
        "SELECT x FROM generate_series(1, 3) x",
        "SELECT g.x FROM generate_series(1, 3) AS g(x)",
        "SELECT value FROM jsonb_array_elements('[1]')",
        "SELECT key, value FROM products p, jsonb_each(p.attrs)",
        "SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND total > 1)",
        "SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE total > 1)",
        "SELECT ctid, xmin, tableoid FROM orders",
        "SELECT orders FROM orders",
        "SELECT c FROM customers c",
        "SELECT current_user, user, current_role, session_user, current_date",
        "SELECT id FROM customers UNION SELECT id FROM orders ORDER BY id",
        "SELECT 1 AS a UNION SELECT 2 ORDER BY a",
        "SELECT x.a FROM customers c, LATERAL (SELECT c.id AS a) x",
        "SELECT a, b FROM customers AS c(a, b)",
        "SELECT e.name, m.name FROM hr.employees e LEFT JOIN hr.employees m ON m.id = e.manager_id",
        "SELECT * FROM analytics.daily",
        "SELECT day FROM analytics.daily",
        "SELECT v.code FROM (VALUES ('FR')) AS v(code)",
        "SELECT id FROM customers JOIN orders USING (id)",
        "SELECT tag FROM customers, unnest(ARRAY['a']) AS tag",
        "SELECT make_interval(days => 1), slugify(t => name) FROM customers",
        "SELECT count(*) FILTER (WHERE total > 10) FROM orders",
        "SELECT extract(year FROM created_at) FROM orders",
        "SELECT * FROM customers c WHERE c.name = ANY (SELECT name FROM products)",
        "SELECT o.id FROM orders o WHERE o.total > (SELECT avg(total) FROM orders)",
        "SELECT (SELECT max(total) FROM orders o WHERE o.customer_id = customers.id) FROM customers",
    ],
)
def test_no_false_unknown_objects(sql: str) -> None:
    v = validate_sql(sql, "shop", schema=shop(), settings=STABLE_FNS)
    assert v.ok, (sql, v.code, v.message)


def test_extension_schemas_are_not_judged() -> None:
    db = shop()
    assert code("SELECT * FROM spatial_ref_sys", schema=db) == "UNKNOWN_OBJECT"
    db.extensions = [Extension("postgis", "3.4", "public")]
    assert (
        code("SELECT * FROM spatial_ref_sys", schema=db) is None
    )  # extension tables are not modelled


def test_unknown_database_is_a_refusal_without_secrets(tmp_path: object) -> None:
    s = Settings(
        dsn="postgresql://alice:s3cr3t-pw@127.0.0.1:1/postgres", home=tmp_path, connect_timeout=1.0
    )  # type: ignore[arg-type]
    v = validate_sql("SELECT 1", "nowhere", settings=s)
    assert not v.ok and v.code
    text = f"{v.message} {v.hint}"
    assert "s3cr3t-pw" not in text
    # structural problems are reported without touching the database
    assert validate_sql("DELETE FROM t", "nowhere", settings=s).code == "NOT_READ_ONLY"


# --- policy.py ----------------------------------------------------------------------------------


def test_policy_globs() -> None:
    p = Policy(
        deny_schemas=("secret*",),
        deny_tables=("*.api_keys", "public.users"),
        deny_columns=("*.*.password_hash", "hr.employees.salary"),
        allow_functions=("public.safe_*",),
    )
    assert (
        is_schema_denied(p, "secret")
        and is_schema_denied(p, "Secret_2")
        and not is_schema_denied(p, "public")
    )
    assert is_table_denied(p, "billing", "api_keys") and is_table_denied(p, "secret", "anything")
    assert is_table_denied(p, "PUBLIC", "Users") and not is_table_denied(p, "public", "orders")
    assert is_column_denied(p, "public", "users", "password_hash")
    assert is_column_denied(p, "hr", "employees", "salary") and not is_column_denied(
        p, "hr", "employees", "name"
    )
    assert is_column_denied(p, "public", "users", "login")  # the whole table is denied
    assert table_denial(p, None, "api_keys") == "*.api_keys"
    assert column_denial(p, None, "employees", "salary") == "hr.employees.salary"
    assert is_function_allowed(p, "public", "safe_len") and not is_function_allowed(
        p, "other", "safe_len"
    )
    assert is_secret_catalog(None, "PG_SHADOW") and is_secret_catalog("pg_catalog", "pg_authid")
    assert not is_secret_catalog("public", "pg_authid") and not is_secret_catalog(None, "pg_roles")


def test_apply_policy_leaves_denied_things_out() -> None:
    p = Policy(
        deny_schemas=("analytics",),
        deny_tables=("public.users",),
        deny_columns=("hr.employees.salary",),
    )
    db = shop()
    out = apply_policy(p, db)
    names = {t.qualified for t in out.tables}
    assert (
        "public.users" not in names and "analytics.daily" not in names and "public.orders" in names
    )
    emp = out.table("employees", "hr")
    assert emp is not None and emp.column("salary") is None and emp.column("name") is not None
    assert "analytics" not in out.schemas
    assert all(f.schema != "analytics" for f in out.functions)
    assert {t.qualified for t in db.tables} >= {
        "public.users",
        "analytics.daily",
    }  # input untouched
    assert apply_policy(Policy(), db) is db


def test_verdict_is_a_plain_dataclass() -> None:
    v = validate_sql("SELECT 1")
    assert dataclasses.asdict(v)["ok"] is True
