"""The function rule (issue 10): a call passes only when it is a reviewed read-only built-in,
or a user or extension function that policy.allow_functions names and the catalog shows as
IMMUTABLE or STABLE. Tables of good and bad SQL, without a catalog and against a real
PostgreSQL (a scratch database with a STABLE and a VOLATILE function and pgvector).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import psycopg
import pytest

from conftest import db_dsn, scratch_database
from pg_mcp.core.errors import CODES
from pg_mcp.core.model import DatabaseSchema
from pg_mcp.core.settings import Policy, Settings
from pg_mcp.db.checker import validate_sql

# --- without a catalog: only reviewed built-ins (and SQL syntax) pass ----------------------

GOOD_BUILTINS = [
    "SELECT random(), now(), clock_timestamp(), gen_random_uuid(), pg_backend_pid()",
    "SELECT coalesce(NULL, 1), nullif(1, 2), greatest(1, 2), least(1, 2)",
    "SELECT extract(year FROM now()), date_part('year', now()), date_trunc('day', now())",
    "SELECT CAST('1' AS int), '1'::int, CASE WHEN true THEN 1 ELSE 2 END",
    "SELECT substring('abcdef' FROM 2 FOR 3), substring('abc', 1, 2), position('b' IN 'abc')",
    "SELECT trim(BOTH 'x' FROM 'xax'), ltrim(' a'), overlay('abc' PLACING 'x' FROM 2)",
    "SELECT now() AT TIME ZONE 'UTC', timezone('UTC', now())",
    "SELECT current_date, current_timestamp, localtimestamp, current_user, session_user",
    "SELECT count(*), sum(x), avg(x), string_agg(x::text, ','), array_agg(x) FROM (VALUES (1)) v(x)",
    "SELECT x, row_number() OVER (ORDER BY x), lag(x) OVER () FROM (VALUES (1)) v(x)",
    "SELECT * FROM generate_series(1, 3) g, unnest(ARRAY[1, 2]) u",
    "SELECT jsonb_build_object('a', 1), jsonb_path_query('{}', '$'), to_jsonb(1), json_agg(1)",
    "SELECT to_char(now(), 'YYYY'), to_date('2020', 'YYYY'), make_interval(days => 1)",
    "SELECT length('a'), upper('a'), lower('a'), md5('a'), format('%s', 1), concat('a', 'b')",
    "SELECT currval('s'), lastval(), current_setting('work_mem')",
    "SELECT pg_relation_size('pg_class'), pg_size_pretty(1024::bigint), version()",
    "SELECT pg_catalog.length('a'), pg_catalog.now()",
    "SELECT ts_rewrite('a'::tsquery, 'a'::tsquery, 'b'::tsquery)",
    "SELECT * FROM pg_class TABLESAMPLE SYSTEM (10)",
    "SELECT * FROM pg_class TABLESAMPLE BERNOULLI (10) REPEATABLE (1)",
    "SELECT x FROM (VALUES (1)) v(x) GROUP BY ROLLUP (x)",
    "SELECT 1 WHERE 1 = ANY (ARRAY[1]) AND EXISTS (SELECT 1)",
    "SELECT round(1.5), abs(-1), power(2, 3), sqrt(4), ln(2), floor(1.5), ceil(1.5)",
    "SELECT regexp_replace('a', 'a', 'b'), split_part('a,b', ',', 1), left('abc', 1)",
    "SELECT array_length(ARRAY[1], 1), cardinality(ARRAY[1]), array_to_string(ARRAY[1], ',')",
]


@pytest.mark.parametrize("sql", GOOD_BUILTINS)
def test_builtins_and_syntax_pass_without_a_catalog(sql: str) -> None:
    v = validate_sql(sql)
    assert v.ok, (v.code, v.message)


BAD_WITHOUT_CATALOG = [
    # user functions cannot be seen without the catalog (issue 10: "validate 'SELECT my_fn()'")
    ("SELECT my_fn()", "FUNCTION_NOT_ALLOWED"),
    ("SELECT public.my_fn(1)", "FUNCTION_NOT_ALLOWED"),
    ("SELECT * FROM my_srf()", "FUNCTION_NOT_ALLOWED"),
    ("SELECT l2_distance('[1]', '[2]')", "FUNCTION_NOT_ALLOWED"),  # pgvector's
    ("SELECT pg_catalog.no_such_builtin()", "FUNCTION_NOT_ALLOWED"),
    ('SELECT "Random"()', "FUNCTION_NOT_ALLOWED"),  # quoted: another name than random
    # sqlglot reads these as length(), random(), upper(); PostgreSQL calls len, rand, ucase
    ("SELECT len('a')", "FUNCTION_NOT_ALLOWED"),
    ("SELECT rand()", "FUNCTION_NOT_ALLOWED"),
    ("SELECT ucase('a')", "FUNCTION_NOT_ALLOWED"),
    ("SELECT len/**/('a')", "FUNCTION_NOT_ALLOWED"),
    ("SELECT length('a'), len('a')", "FUNCTION_NOT_ALLOWED"),
    ("SELECT ifnull(NULL, 1)", "FUNCTION_NOT_ALLOWED"),  # sqlglot: COALESCE; PostgreSQL: ifnull
    ("SELECT isnan(1.0)", "FUNCTION_NOT_ALLOWED"),
    ("SELECT json_extract('{}', 'a')", "FUNCTION_NOT_ALLOWED"),
    # the built-ins that did harm
    ("SELECT pg_read_file_old('postgresql.conf', 0, 100)", "FORBIDDEN_FUNCTION"),
    ("SELECT brin_summarize_new_values('i'::regclass)", "FORBIDDEN_FUNCTION"),
    ("SELECT brin_desummarize_range('i'::regclass, 0)", "FORBIDDEN_FUNCTION"),
    ("SELECT gin_clean_pending_list('i'::regclass)", "FORBIDDEN_FUNCTION"),
    ("SELECT pg_nextoid('pg_class'::regclass, 'oid', 'pg_class_oid_index'::regclass)", "FORBIDDEN_FUNCTION"),
    ("SELECT setseed(0.5)", "FORBIDDEN_FUNCTION"),
    ("SELECT pg_terminate_backend(1)", "FORBIDDEN_FUNCTION"),
    ("SELECT pg_export_snapshot()", "FORBIDDEN_FUNCTION"),
    ("SELECT txid_current(), 1", "FORBIDDEN_FUNCTION"),
    ("SELECT * FROM xpath_table('id', 'doc', 'docs', '/a', 'true') AS t(id int, a text)", "FORBIDDEN_FUNCTION"),
    ("SELECT dblink_exec('dbname=x', 'INSERT INTO t VALUES (1)')", "FORBIDDEN_FUNCTION"),
    ("SELECT public.pg_sleep(1)", "FORBIDDEN_FUNCTION"),  # deny families whatever the schema
    ("SELECT pg_catalog.pg_sleep(1)", "FORBIDDEN_FUNCTION"),
    ("SELECT bthandler(NULL)", "FORBIDDEN_FUNCTION"),  # unreviewed VOLATILE built-in
    ("SELECT pg_stat_clear_snapshot()", "FORBIDDEN_FUNCTION"),
    ("SELECT ts_rewrite('a'::tsquery, 'SELECT 1')", "FORBIDDEN_FUNCTION"),
    ("SELECT * FROM pg_hba_file_rules()", "ACCESS_DENIED"),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "expected"), BAD_WITHOUT_CATALOG)
def test_refused_without_a_catalog(sql: str, expected: str) -> None:
    v = validate_sql(sql)
    assert v.code == expected, (v.code, v.message)
    assert v.message and v.hint
    if expected == "FUNCTION_NOT_ALLOWED":
        assert "policy.allow_functions" in v.hint and "--db" in v.hint


def test_allow_functions_does_not_lift_the_deny_families() -> None:
    s = Settings(policy=Policy(allow_functions=("*",)))
    for sql in ("SELECT pg_sleep(1)", "SELECT setseed(0.1)", "SELECT public.dblink('x', 'y')"):
        assert validate_sql(sql, settings=s).code == "FORBIDDEN_FUNCTION", sql
    # and without a catalog, naming a function still does not make it visible
    assert validate_sql("SELECT my_fn()", settings=s).code == "FUNCTION_NOT_ALLOWED"


def test_the_code_is_documented() -> None:
    assert "FUNCTION_NOT_ALLOWED" in CODES


# --- against a real PostgreSQL ------------------------------------------------------------

SETUP = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA app;
CREATE TABLE items (id int PRIMARY KEY, embedding vector(3), price numeric);
INSERT INTO items VALUES (1, '[1,2,3]', 10), (2, '[3,2,1]', 20);
CREATE FUNCTION app.price_with_tax(p numeric) RETURNS numeric
    LANGUAGE sql STABLE AS 'SELECT round(p * 1.2, 2)';
CREATE FUNCTION app.bump() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
CREATE FUNCTION public.pg_sleep(int) RETURNS int LANGUAGE sql STABLE AS 'SELECT 1';
CREATE FUNCTION public.length(point) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
CREATE FUNCTION public.len(t text) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
CREATE FUNCTION public."Random"() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
CREATE FUNCTION public.tidy(t text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT trim(t)';
"""


@pytest.fixture(scope="module")
def funcdb(pg_dsn: str) -> Iterator[tuple[str, DatabaseSchema]]:
    from pg_mcp.db.introspect import introspect

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone():
            pytest.skip("the vector extension is not available on this server")
    with scratch_database(pg_dsn, SETUP, "func") as name:
        dsn = db_dsn(pg_dsn, name)
        schema = introspect(dsn, name, Settings())
        yield dsn, schema


def test_the_model_knows_extension_and_user_functions(funcdb: tuple[str, DatabaseSchema]) -> None:
    db = funcdb[1]
    l2 = db.functions_named("l2_distance")
    assert l2 and all(f.extension == "vector" and f.volatility == "immutable" for f in l2)
    (tax,) = db.functions_named("price_with_tax")
    assert tax.extension is None and tax.volatility == "stable" and tax.schema == "app"


ALLOW = ("app.price_with_tax", "app.bump", "public.l2_distance", "public.hnswhandler", "tidy",
         "public.pg_sleep", "public.vector_dims")  # fmt: skip

CASES = [
    # (sql, allow_functions, expected code or None)
    ("SELECT app.price_with_tax(price) FROM items", ALLOW, None),
    ("SELECT app.price_with_tax(price) FROM items", (), "FUNCTION_NOT_ALLOWED"),
    ("SELECT app.price_with_tax(price) FROM items", ("public.*",), "FUNCTION_NOT_ALLOWED"),
    ("SELECT app.price_with_tax(price) FROM items", ("app.*",), None),
    ("SELECT app.price_with_tax(price) FROM items", ("price_with_tax",), None),
    ("SELECT price_with_tax(price) FROM items", ALLOW, "FUNCTION_NOT_ALLOWED"),  # app: not on the path
    ("SELECT app.bump()", ALLOW, "FORBIDDEN_FUNCTION"),  # named, but VOLATILE
    ("SELECT app.bump()", (), "FUNCTION_NOT_ALLOWED"),
    ("SELECT tidy(' a ')", ALLOW, None),
    ("SELECT public.tidy(' a ')", ALLOW, None),
    ("SELECT tidy(' a ')", (), "FUNCTION_NOT_ALLOWED"),
    # extension functions: like user functions
    ("SELECT id FROM items ORDER BY l2_distance(embedding, '[1,1,1]') LIMIT 1", ALLOW, None),
    ("SELECT id FROM items ORDER BY l2_distance(embedding, '[1,1,1]') LIMIT 1", (), "FUNCTION_NOT_ALLOWED"),
    ("SELECT vector_dims(embedding) FROM items", ALLOW, None),
    ("SELECT hnswhandler(NULL)", ALLOW, "FORBIDDEN_FUNCTION"),  # VOLATILE extension function
    # operators are not calls: pgvector's <-> needs no allow_functions
    ("SELECT id FROM items ORDER BY embedding <-> '[1,1,1]' LIMIT 1", (), None),
    # resolution: pg_catalog is searched first
    ("SELECT pg_sleep(0)", ALLOW, "FORBIDDEN_FUNCTION"),
    ("SELECT public.pg_sleep(0)", ALLOW, "FORBIDDEN_FUNCTION"),  # the deny family still holds
    ("SELECT length('abc')", (), "FORBIDDEN_FUNCTION"),  # a VOLATILE public.length overloads it
    ("SELECT pg_catalog.length('abc')", (), None),
    ("SELECT upper('abc'), count(*) FROM items", (), None),
    ("SELECT no_such_fn()", ALLOW, "FUNCTION_NOT_ALLOWED"),
    # sqlglot parses "Random"() as random(); PostgreSQL calls the user's VOLATILE "Random"
    ('SELECT "Random"()', ALLOW, "FUNCTION_NOT_ALLOWED"),
    ('SELECT "Random"()', ("public.*",), "FORBIDDEN_FUNCTION"),
    ('SELECT "random"()', (), None),
    ("SELECT len('abc')", ALLOW, "FUNCTION_NOT_ALLOWED"),  # not length(): the user's len
    ("SELECT len('abc')", ("public.len",), "FORBIDDEN_FUNCTION"),
    ("SELECT length('abc'), 'len(' AS s", (), "FORBIDDEN_FUNCTION"),  # public.length overload
    ("SELECT upper('abc'), 'len(x)' AS s", (), None),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "allow", "expected"), CASES)
def test_user_and_extension_functions(
    funcdb: tuple[str, DatabaseSchema], sql: str, allow: tuple[str, ...], expected: str | None
) -> None:
    dsn, db = funcdb
    s = Settings(policy=Policy(allow_functions=allow))
    v = validate_sql(sql, db.name, schema=db, settings=s)
    assert v.code == expected, (v.code, v.message, v.hint)
    if expected == "FUNCTION_NOT_ALLOWED":
        assert "policy.allow_functions" in (v.hint or "") or "catalog" in v.message
    if expected is None:  # accepted: it also runs, read-only
        with psycopg.connect(dsn) as conn:
            conn.read_only = True
            conn.execute(sql).fetchall()
            conn.rollback()


def test_the_hint_names_the_setting(funcdb: tuple[str, DatabaseSchema]) -> None:
    db = funcdb[1]
    v = validate_sql("SELECT app.price_with_tax(1)", db.name, schema=db)
    assert v.code == "FUNCTION_NOT_ALLOWED"
    assert 'policy.allow_functions = ["app.price_with_tax"]' in (v.hint or "")
    v = validate_sql(
        "SELECT app.bump()",
        db.name,
        schema=db,
        settings=Settings(policy=Policy(allow_functions=("app.bump",))),
    )
    assert v.code == "FORBIDDEN_FUNCTION" and "VOLATILE" in v.message


def test_a_denied_schema_hides_its_functions(funcdb: tuple[str, DatabaseSchema]) -> None:
    db = funcdb[1]
    s = Settings(policy=Policy(deny_schemas=("app",), allow_functions=("app.*",)))
    v = validate_sql("SELECT app.price_with_tax(1)", db.name, schema=db, settings=s)
    assert v.code == "ACCESS_DENIED"


def test_the_model_round_trips_the_extension_field(funcdb: tuple[str, DatabaseSchema]) -> None:
    db = funcdb[1]
    again = DatabaseSchema.from_json(db.to_json())
    assert [dataclasses.astuple(f) for f in again.functions] == [
        dataclasses.astuple(f) for f in db.functions
    ]


def _sqlglot_spellings() -> set[str]:
    from sqlglot.dialects.postgres import Postgres

    parser = Postgres().parser_class
    names = set(parser.FUNCTIONS) | set(parser.FUNCTION_PARSERS)
    return {n.lower() for n in names}


def test_no_spelling_sqlglot_types_smuggles_a_denied_function() -> None:
    """sqlglot turns many names into typed nodes (random -> Rand), some through builder
    functions the validator cannot map back. Every such spelling that names a denied built-in
    or a deny family must still be refused, with 0 to 3 arguments."""
    from pg_mcp.core.functions import builtin, forbidden_family

    spellings = _sqlglot_spellings()
    assert len(spellings) > 200
    for name in sorted(spellings):
        b = builtin(name)
        if forbidden_family(name) is None and (b is None or b.allowed):
            continue  # none today; a future sqlglot may add one
        for nargs in range(4):
            args = ", ".join(["NULL"] * nargs)
            v = validate_sql(f"SELECT {name}({args})")
            assert not v.ok, (name, nargs, v.functions)


def test_every_allowed_builtin_sqlglot_types_is_accepted() -> None:
    """The other way round: a typed node standing for an allowed built-in is not refused as
    an unknown function (with the right number of arguments, 0 to 3 tried)."""
    from pg_mcp.core.functions import builtin

    refused = []
    for name in sorted(_sqlglot_spellings()):
        b = builtin(name)
        if b is None or not b.allowed:
            continue
        codes = {validate_sql(f"SELECT {name}({', '.join(['NULL'] * n)})").code for n in range(4)}
        if codes == {"FUNCTION_NOT_ALLOWED"}:
            refused.append(name)
    assert refused == []


def test_ask_context_offers_only_functions_the_policy_names(
    funcdb: tuple[str, DatabaseSchema],
) -> None:
    from pg_mcp.ask.context import select_context
    from pg_mcp.core.policy import is_function_allowed

    db = funcdb[1]
    everything = select_context(db, "price with tax", 4000)
    assert "app.price_with_tax" in everything.text and "l2_distance" not in everything.text
    policy = Policy(allow_functions=("public.tidy",))
    ctx = select_context(
        db, "price with tax", 4000, allowed=lambda f: is_function_allowed(policy, f.schema, f.name)
    )
    assert "app.price_with_tax" not in ctx.text and "tidy" in ctx.text
