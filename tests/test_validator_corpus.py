"""The golden corpora of validate_sql, checked against a real PostgreSQL.

- tests/corpus/hostile.txt: every entry is refused with exactly its expected code.
- tests/corpus/legit.sql: every query is accepted (without a schema and with the real
  schema of a scratch database, so no false UNKNOWN_OBJECT) and runs through
  pg_mcp.db.executor.run_readonly (validated again against the cached schema, then run in a
  read-only transaction on PostgreSQL).
- PostgreSQL itself is the oracle for statement splitting: whatever validate_sql calls
  MULTIPLE_STATEMENTS, PostgreSQL refuses to prepare as one statement, and random
  texts built from quoting/comment tricks split the same way in both.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from conftest import scratch_database
from pg_mcp.core.model import Column, DatabaseSchema, Function, Table
from pg_mcp.core.settings import Policy, Settings
from pg_mcp.core.validator import statement_starts
from pg_mcp.db.checker import validate_sql

if TYPE_CHECKING:
    from pg_mcp.db.executor import Pools

CORPUS = Path(__file__).parent / "corpus"


# --- corpus files ------------------------------------------------------------------------------


def load_hostile(path: Path = CORPUS / "hostile.txt") -> list[tuple[str, str, str]]:
    """(expected code, description, sql) for every case of the hostile corpus."""
    cases: list[tuple[str, str, list[str]]] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.startswith("@@"):
            code, _, desc = line[2:].partition("|")
            cases.append((code.strip(), desc.strip(), []))
        elif cases:
            cases[-1][2].append(line)
    out = []
    for code, desc, lines in cases:
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and (not lines[-1].strip() or lines[-1].startswith("# ----")):
            lines.pop()
        out.append((code, desc, "\n".join(lines)))
    return out


def load_legit(path: Path = CORPUS / "legit.sql") -> list[tuple[str, str]]:
    """(description, sql) for every query of the legitimate corpus."""
    cases: list[tuple[str, list[str]]] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.startswith("-- @@"):
            cases.append((line[5:].strip(), []))
        elif cases:
            cases[-1][1].append(line)
    return [(desc, "\n".join(lines).strip()) for desc, lines in cases]


HOSTILE = load_hostile()
LEGIT = load_legit()


def test_corpus_sizes() -> None:
    assert len(HOSTILE) >= 150
    assert len(LEGIT) >= 60
    codes = {code for code, _, _ in HOSTILE}
    assert codes >= {
        "MULTIPLE_STATEMENTS",
        "NOT_READ_ONLY",
        "DATA_MODIFYING_CTE",
        "SELECT_INTO",
        "LOCKING_CLAUSE",
        "EXPLAIN_ANALYZE",
        "FORBIDDEN_FUNCTION",
        "ACCESS_DENIED",
        "PARSE_ERROR",
        "EMPTY",
    }


@pytest.mark.parametrize(("code", "desc", "sql"), HOSTILE, ids=[f"{c}:{d}" for c, d, _ in HOSTILE])
def test_hostile(code: str, desc: str, sql: str) -> None:
    verdict = validate_sql(sql)
    assert not verdict.ok, f"accepted: {desc}"
    assert verdict.code == code, f"{desc}: {verdict.code}: {verdict.message}"
    assert verdict.message
    if code not in ("EMPTY",):
        assert len(verdict.message) < 600


def test_every_forbidden_family_is_in_the_corpus() -> None:
    from pg_mcp.core.functions import FAMILIES, UNREVIEWED_VOLATILE, builtin, forbidden_family

    seen = set()
    for code, _, sql in HOSTILE:
        if code in ("FORBIDDEN_FUNCTION", "ACCESS_DENIED"):
            for fn in validate_sql(sql).functions:
                b = builtin(fn)
                fam = forbidden_family(fn) or (b.family if b is not None else None)
                if fam is not None:
                    seen.add(fam.key)
    assert seen == {f.key for f in (*FAMILIES, UNREVIEWED_VOLATILE)}


# --- a scratch database with the legit corpus's tables ------------------------------------------


def catalog_schema(conn: psycopg.Connection, name: str) -> DatabaseSchema:
    """A DatabaseSchema read straight from the catalog (independent of introspect.py)."""
    db = DatabaseSchema(name=name)
    db.search_path = [r[0] for r in conn.execute("SELECT unnest(current_schemas(false))")]
    db.schemas = [
        r[0]
        for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
        )
    ]
    kinds = {
        "r": "table",
        "v": "view",
        "m": "materialized view",
        "p": "partitioned table",
        "f": "foreign table",
    }
    tables: dict[tuple[str, str], Table] = {}
    rows = conn.execute(
        """SELECT n.nspname, c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND n.nspname = ANY(%s)
           ORDER BY n.nspname, c.relname, a.attnum""",
        (db.schemas,),
    )
    for nsp, rel, kind, col, typ in rows:
        t = tables.setdefault((nsp, rel), Table(schema=nsp, name=rel, kind=kinds[kind]))
        t.columns.append(Column(name=col, type=typ))
    db.tables = list(tables.values())
    vol = {"i": "immutable", "s": "stable", "v": "volatile"}
    for nsp, fname, args, res, v in conn.execute(
        """SELECT n.nspname, p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
                  p.provolatile
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY(%s)""",
        (db.schemas,),
    ):
        db.functions.append(Function(nsp, fname, args, res or "", "sql", vol[v]))
    return db


@pytest.fixture(scope="module")
def legit_db(pg_dsn: str) -> Iterator[tuple[str, DatabaseSchema]]:
    """A module-wide scratch database holding legit_setup.sql: (dsn, schema)."""
    from pg_mcp.db.discovery import database_dsn

    setup = (CORPUS / "legit_setup.sql").read_text(encoding="utf-8")
    with scratch_database(pg_dsn, setup, "validator") as name:
        dsn = database_dsn(pg_dsn, name)
        with psycopg.connect(dsn, autocommit=True) as conn:
            schema = catalog_schema(conn, name)
        yield dsn, schema


@pytest.fixture(scope="module")
def ro_conn(legit_db: tuple[str, DatabaseSchema]) -> Iterator[psycopg.Connection]:
    with psycopg.connect(legit_db[0]) as conn:
        conn.read_only = True
        conn.execute("SET statement_timeout = '10s'")
        conn.commit()
        yield conn


@pytest.fixture(scope="module")
def executor(
    pg_dsn: str,
    reader_dsn: str,
    legit_db: tuple[str, DatabaseSchema],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, Pools]]:
    """Settings for the test server and a pool set, for pg_mcp.db.executor.run_readonly."""
    from pg_mcp.core.settings import load_settings
    from pg_mcp.db.executor import Pools

    home = tmp_path_factory.mktemp("validator-home")
    s = allow_discounted(
        load_settings(env={"PG_MCP_DSN": reader_dsn, "PG_MCP_HOME": str(home)}, config_path=None)
    )
    with Pools(s) as pools:
        yield s, pools


# legit_setup.sql's IMMUTABLE user function: since issue 10 a user function is accepted only
# with the catalog at hand and when policy.allow_functions names it
USER_FUNCTIONS = ("public.discounted",)


def allow_discounted(s: Settings) -> Settings:
    import dataclasses

    return dataclasses.replace(
        s, policy=dataclasses.replace(s.policy, allow_functions=USER_FUNCTIONS)
    )


def calls_user_function(sql: str) -> bool:
    return "discounted(" in sql


@pytest.mark.parametrize(("desc", "sql"), LEGIT, ids=[d for d, _ in LEGIT])
def test_legit(
    desc: str,
    sql: str,
    legit_db: tuple[str, DatabaseSchema],
    executor: tuple[Settings, Pools],
) -> None:
    from pg_mcp.db.executor import run_readonly

    plain = validate_sql(sql)
    if calls_user_function(sql):  # without the catalog only reviewed built-ins pass
        assert plain.code == "FUNCTION_NOT_ALLOWED", f"{desc}: {plain.code}: {plain.message}"
    else:
        assert plain.ok, f"{desc}: {plain.code}: {plain.message}"
    schema = legit_db[1]
    allowed = allow_discounted(Settings())
    checked = validate_sql(sql, schema.name, schema=schema, settings=allowed)
    assert checked.ok, f"{desc}: {checked.code}: {checked.message} (hint: {checked.hint})"
    # the real path: run_readonly validates against the cached schema, then runs the query
    # in a read-only transaction over the extended protocol
    settings, pools = executor
    result = run_readonly(sql, schema.name, settings=settings, pools=pools)
    assert result.ok, f"{desc}: {result.code}: {result.message}"


def test_legit_tables_are_resolved(legit_db: tuple[str, DatabaseSchema]) -> None:
    v = validate_sql(
        "SELECT * FROM orders o JOIN hr.employees e ON e.id = o.id", schema=legit_db[1]
    )
    assert v.ok and v.tables == ["public.orders", "hr.employees"]


def test_volatile_user_function_refused_with_schema(legit_db: tuple[str, DatabaseSchema]) -> None:
    schema = legit_db[1]
    # without a schema it is not known, so (issue 10) it is refused
    assert validate_sql("SELECT touch_counter()").code == "FUNCTION_NOT_ALLOWED"
    v = validate_sql("SELECT touch_counter()", schema.name, schema=schema)
    assert v.code == "FUNCTION_NOT_ALLOWED"  # not named by policy.allow_functions
    named = Settings(policy=Policy(allow_functions=("touch_counter", *USER_FUNCTIONS)))
    v = validate_sql("SELECT touch_counter()", schema.name, schema=schema, settings=named)
    assert v.code == "FORBIDDEN_FUNCTION" and "VOLATILE" in v.message  # named, still VOLATILE
    assert validate_sql("SELECT discounted(10, 5)", schema.name, schema=schema, settings=named).ok


# --- PostgreSQL as the oracle for statement splitting -------------------------------------------


def pg_statement_count(conn: psycopg.Connection, sql: str) -> int | None:
    """1 when PostgreSQL prepares ``sql`` as one statement, 2+ when it refuses because of
    several, None on any other error (syntax). Nothing runs: Parse fails before execution
    for several statements, and the transaction is read only and rolled back anyway."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql, prepare=True)
        return 1
    except psycopg.errors.SyntaxError as exc:
        return 2 if "multiple commands" in str(exc) else None
    except psycopg.Error:
        return None
    finally:
        conn.rollback()


def test_stacked_corpus_cases_are_several_statements_for_postgres(
    ro_conn: psycopg.Connection,
) -> None:
    checked = 0
    for code, desc, sql in HOSTILE:
        if code != "MULTIPLE_STATEMENTS" or "standard_conforming_strings is off" in desc:
            continue
        assert pg_statement_count(ro_conn, sql) in (2, None), desc
        checked += 1
    assert checked >= 20


# Fragments that change how the rest of the text is read.
_PIECES = [
    "SELECT 1",
    ";",
    " ",
    "\n",
    "'a;b'",
    "'it''s;'",
    "E'\\';'",
    "E'\\\\'",
    "$$;$$",
    "$a$;$$;$a$",
    '"x;y"',
    "/* ; */",
    "/* /* ; */ ; */",
    "-- ;\n",
    "a$b$",
    "1",
    "AS",
    "x",
    ",",
    "(",
    ")",
]


def _random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 12))) for _ in range(n)]


def test_fast_splitter_matches_the_token_lexer() -> None:
    from pg_mcp.core.validator import LexError, pg_lex, split_statements

    for text in _random_texts(3000, seed=7):
        try:
            slow = [s[0].start for s in split_statements(pg_lex(text))]
        except LexError:
            slow = None
        try:
            fast = statement_starts(text)[0]
        except LexError:
            fast = None
        assert fast == slow, repr(text)


def test_splitting_agrees_with_postgres(ro_conn: psycopg.Connection) -> None:
    """Random well-formed multi-statement texts: where PostgreSQL gives a clear answer, the
    validator counts the same number (one vs several) of statements."""
    rng = random.Random(11)
    tails = ["", ";", " ; ", "-- x;\n", "/* ; */", "; /* c */"]
    literals = ["'a;b'", "'it''s;'", "E'\\';'", "E'\\\\'", "$$;$$", "$a$;$$;$a$", "1", "'x'"]
    aliases = ['"x;y"', "a$b$", "c", '"q"']
    trailers = ["", "/* ; */", "-- ;\n"]
    compared = 0
    for _ in range(250):
        stmts = []
        for _ in range(rng.randint(1, 3)):
            stmts.append(
                f"SELECT {rng.choice(literals)} AS {rng.choice(aliases)} {rng.choice(trailers)}"
            )
        text = ";".join(stmts) + rng.choice(tails)
        pg = pg_statement_count(ro_conn, text)
        if pg is None:
            continue
        ours = len(statement_starts(text)[0])
        assert (ours > 1) == (pg > 1), repr(text)
        v = validate_sql(text)
        assert (v.code == "MULTIPLE_STATEMENTS") == (pg > 1), (text, v.code, v.message)
        compared += 1
    assert compared >= 150


def test_database_name_loads_the_schema_lazily(
    pg_dsn: str, reader_dsn: str, legit_db: tuple[str, DatabaseSchema], tmp_path: Path
) -> None:
    """validate_sql(sql, database) reads the schema through pg_mcp.db.cache (introspection)."""
    from pg_mcp.core.settings import load_settings

    name = legit_db[1].name
    s = allow_discounted(
        load_settings(
            env={"PG_MCP_DSN": reader_dsn, "PG_MCP_HOME": str(tmp_path)}, config_path=None
        )
    )
    assert validate_sql("SELECT id, total FROM orders", name, settings=s).ok
    v = validate_sql("SELECT * FROM ordrs", name, settings=s)
    assert v.code == "UNKNOWN_OBJECT" and "public.orders" in v.suggestions, v
    assert validate_sql("SELECT o.totl FROM orders o", name, settings=s).code == "UNKNOWN_OBJECT"
    assert validate_sql("SELECT touch_counter()", name, settings=s).code == "FUNCTION_NOT_ALLOWED"
    assert validate_sql("SELECT discounted(price, 5) FROM products", name, settings=s).ok


def test_policy_with_an_introspected_schema(
    pg_dsn: str, reader_dsn: str, legit_db: tuple[str, DatabaseSchema], tmp_path: Path
) -> None:
    """introspect leaves denied columns out of the model: * and explicit names are still refused."""
    from pg_mcp.core.settings import Policy, load_settings

    name = legit_db[1].name
    s = load_settings(
        env={"PG_MCP_DSN": reader_dsn, "PG_MCP_HOME": str(tmp_path)},
        config_path=None,
        policy=Policy(deny_columns=("hr.employees.salary",), deny_tables=("public.order_items",)),
    )
    assert validate_sql("SELECT * FROM hr.employees", name, settings=s).code == "ACCESS_DENIED"
    assert (
        validate_sql("SELECT e.salary FROM hr.employees e", name, settings=s).code
        == "ACCESS_DENIED"
    )
    assert validate_sql("SELECT name, dept FROM hr.employees", name, settings=s).ok
    assert validate_sql("SELECT * FROM orders", name, settings=s).ok
    assert (
        validate_sql("SELECT count(*) FROM order_items", name, settings=s).code == "ACCESS_DENIED"
    )
