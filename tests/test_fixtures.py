"""The three fixture databases: every floor of the Foundation issue, counted from the catalog,
and loads that are deterministic (a second load gives the same rows).

Floors (issue 2):

|                      | small    | medium              | large                               |
|----------------------|----------|---------------------|-------------------------------------|
| tables               | >= 6     | >= 25 in >= 2 schemas | >= 120 in >= 5 schemas            |
| views / matviews     | >= 2 / - | >= 8 / >= 1         | >= 30 / >= 3                        |
| enum/domain/composite| >= 1 enum| >= 4, all three kinds | >= 12, >= 3 enums                 |
| indexes (partial, expression and GIN among them) | >= 8 | >= 40 | >= 250                    |
| user functions       | -        | >= 2                | >= 10                               |
| partitioned table    | -        | -                   | >= 1 with >= 12 partitions          |
| comments             | -        | every table         | every table and most columns        |
| rows                 | >= 5,000 | >= 200,000          | >= 2,000,000, one table >= 1,000,000 |

Tables are counted without partitions (a partitioned table counts once), indexes without the
per-partition copies of an index on a partitioned table, so the floors hold without them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from pg_mcp.core.errors import PgMcpError
from pg_mcp.db.discovery import database_dsn as db_dsn
from pg_mcp_dev.fixtures import (
    SIZES,
    database_name,
    ensure_loaded,
    load_into,
    read_fixture,
    recorded_hash,
)

USER_SCHEMAS = """
  n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
"""
NOT_EXTENSION = "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')"


@dataclass(frozen=True)
class Floors:
    tables: int
    table_schemas: int = 1
    views: int = 0
    matviews: int = 0
    types: int = 0
    enums: int = 0
    all_type_kinds: bool = False
    indexes: int = 0
    functions: int = 0
    volatile_functions: int = 0
    partitions: int = 0
    table_comments: bool = False
    column_comment_share: float = 0.0
    rows: int = 0
    biggest_table_rows: int = 0


FLOORS = {
    "db_pg_mcp_small": Floors(tables=6, views=2, types=1, enums=1, indexes=8, rows=5_000),
    "db_pg_mcp_medium": Floors(
        tables=25,
        table_schemas=2,
        views=8,
        matviews=1,
        types=4,
        enums=1,
        all_type_kinds=True,
        indexes=40,
        functions=2,
        table_comments=True,
        rows=200_000,
    ),
    "db_pg_mcp_large": Floors(
        tables=120,
        table_schemas=5,
        views=30,
        matviews=3,
        types=12,
        enums=3,
        all_type_kinds=True,
        indexes=250,
        functions=10,
        volatile_functions=1,
        partitions=12,
        table_comments=True,
        column_comment_share=0.70,
        rows=2_000_000,
        biggest_table_rows=1_000_000,
    ),
}


@dataclass
class Catalog:
    """What a fixture database holds, read from its catalog."""

    tables_per_schema: dict[str, int] = field(default_factory=dict)
    views: int = 0
    matviews: int = 0
    enums: int = 0
    domains: int = 0
    composites: int = 0
    indexes: int = 0
    partial_indexes: int = 0
    expression_indexes: int = 0
    gin_indexes: int = 0
    functions: int = 0
    volatile_functions: int = 0
    max_partitions: int = 0
    tables_without_comment: list[str] = field(default_factory=list)
    columns: int = 0
    commented_columns: int = 0
    rows_per_table: dict[str, int] = field(
        default_factory=dict
    )  # partitions folded into their parent

    @property
    def tables(self) -> int:
        return sum(self.tables_per_schema.values())

    @property
    def types(self) -> int:
        return self.enums + self.domains + self.composites

    @property
    def rows(self) -> int:
        return sum(self.rows_per_table.values())


def exact_counts(conn) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Exact count(*) of every plain table and partition, keyed by schema.table."""
    from psycopg import sql

    rels = conn.execute(
        f"""SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND {USER_SCHEMAS} ORDER BY 1, 2"""
    ).fetchall()
    if not rels:
        return {}
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}::text, count(*) FROM {}").format(
            sql.Literal(f"{s}.{r}"), sql.Identifier(s, r)
        )
        for s, r in rels
    )
    return {name: n for name, n in conn.execute(query).fetchall()}


def read_catalog(dsn: str) -> Catalog:
    import psycopg

    cat = Catalog()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema, n in conn.execute(
            f"""SELECT n.nspname, count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {USER_SCHEMAS} GROUP BY 1"""
        ).fetchall():
            cat.tables_per_schema[schema] = n
        cat.views, cat.matviews = conn.execute(
            f"""SELECT count(*) FILTER (WHERE c.relkind = 'v'), count(*) FILTER (WHERE c.relkind = 'm')
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMAS}"""
        ).fetchone()
        cat.enums, cat.domains, cat.composites = conn.execute(
            f"""SELECT count(*) FILTER (WHERE t.typtype = 'e'), count(*) FILTER (WHERE t.typtype = 'd'),
                       count(*) FILTER (WHERE t.typtype = 'c' AND r.relkind = 'c')
                FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                LEFT JOIN pg_class r ON r.oid = t.typrelid
                WHERE {USER_SCHEMAS} AND {NOT_EXTENSION.format(oid="t.oid")}"""
        ).fetchone()
        (cat.indexes, cat.partial_indexes, cat.expression_indexes, cat.gin_indexes) = conn.execute(
            f"""SELECT count(*), count(*) FILTER (WHERE i.indpred IS NOT NULL),
                       count(*) FILTER (WHERE i.indexprs IS NOT NULL), count(*) FILTER (WHERE am.amname = 'gin')
                FROM pg_index i
                JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
                JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
                WHERE {USER_SCHEMAS} AND NOT t.relispartition"""
        ).fetchone()
        cat.functions, cat.volatile_functions = conn.execute(
            f"""SELECT count(*), count(*) FILTER (WHERE p.provolatile = 'v')
                FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE {USER_SCHEMAS} AND p.prokind IN ('f', 'p') AND {NOT_EXTENSION.format(oid="p.oid")}"""
        ).fetchone()
        cat.max_partitions = conn.execute(
            """SELECT coalesce(max(n), 0) FROM (
                 SELECT count(*) AS n FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
                 WHERE p.relkind = 'p' GROUP BY i.inhparent) x"""
        ).fetchone()[0]
        cat.tables_without_comment = [
            r[0]
            for r in conn.execute(
                f"""SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMAS}
                      AND coalesce(obj_description(c.oid, 'pg_class'), '') = '' ORDER BY 1"""
            ).fetchall()
        ]
        cat.columns, cat.commented_columns = conn.execute(
            f"""SELECT count(*), count(*) FILTER (WHERE coalesce(col_description(c.oid, a.attnum), '') <> '')
                FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
                  AND {USER_SCHEMAS}"""
        ).fetchone()
        counts = exact_counts(conn)
        parents = dict(
            conn.execute(
                f"""SELECT n.nspname || '.' || c.relname, pn.nspname || '.' || p.relname
                    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                    JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
                    WHERE p.relkind = 'p' AND {USER_SCHEMAS}"""
            ).fetchall()
        )
        for name, n in counts.items():
            top = name
            while top in parents:
                top = parents[top]
            cat.rows_per_table[top] = cat.rows_per_table.get(top, 0) + n
    return cat


@pytest.fixture(scope="module")
def catalogs(fixture_dsn: str) -> dict[str, Catalog]:
    return {db: read_catalog(db_dsn(fixture_dsn, db)) for db in FLOORS}


@pytest.mark.parametrize("db", list(FLOORS))
def test_floors_from_the_catalog(db: str, catalogs: dict[str, Catalog]) -> None:
    f, c = FLOORS[db], catalogs[db]
    problems: list[str] = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    schemas_with_tables = [s for s, n in c.tables_per_schema.items() if n > 0]
    need(c.tables >= f.tables, f"tables {c.tables} < {f.tables} ({c.tables_per_schema})")
    need(
        len(schemas_with_tables) >= f.table_schemas,
        f"tables in {len(schemas_with_tables)} schemas < {f.table_schemas}",
    )
    need(c.views >= f.views, f"views {c.views} < {f.views}")
    need(c.matviews >= f.matviews, f"materialized views {c.matviews} < {f.matviews}")
    need(c.types >= f.types, f"enum+domain+composite types {c.types} < {f.types}")
    need(c.enums >= f.enums, f"enums {c.enums} < {f.enums}")
    if f.all_type_kinds:
        need(
            min(c.enums, c.domains, c.composites) >= 1,
            f"type kinds: {c.enums} enums, {c.domains} domains, {c.composites} composites",
        )
    need(c.indexes >= f.indexes, f"indexes {c.indexes} < {f.indexes}")
    need(c.partial_indexes >= 1, "no partial index")
    need(c.expression_indexes >= 1, "no expression index")
    need(c.gin_indexes >= 1, "no GIN index")
    need(c.functions >= f.functions, f"user functions {c.functions} < {f.functions}")
    need(
        c.volatile_functions >= f.volatile_functions,
        f"volatile functions {c.volatile_functions} < {f.volatile_functions}",
    )
    need(
        c.max_partitions >= f.partitions,
        f"largest partitioned table has {c.max_partitions} partitions < {f.partitions}",
    )
    if f.table_comments:
        need(not c.tables_without_comment, f"tables without a comment: {c.tables_without_comment}")
    if f.column_comment_share:
        share = c.commented_columns / max(c.columns, 1)
        need(
            share >= f.column_comment_share,
            f"{c.commented_columns}/{c.columns} columns commented < {f.column_comment_share:.0%}",
        )
    need(c.rows >= f.rows, f"rows {c.rows:,} < {f.rows:,}")
    if f.biggest_table_rows:
        name, n = max(c.rows_per_table.items(), key=lambda kv: kv[1])
        need(
            n >= f.biggest_table_rows,
            f"biggest table {name} has {n:,} rows < {f.biggest_table_rows:,}",
        )
    assert not problems, f"{db}: " + "; ".join(problems)


def test_large_has_a_monthly_partitioned_ledger_that_balances(fixture_dsn: str) -> None:
    import psycopg

    with psycopg.connect(db_dsn(fixture_dsn, "db_pg_mcp_large")) as conn:
        strategy, partitions = conn.execute(
            """SELECT p.partstrat, (SELECT count(*) FROM pg_inherits i WHERE i.inhparent = p.partrelid)
               FROM pg_partitioned_table p WHERE p.partrelid = 'finance.gl_entries'::regclass"""
        ).fetchone()
        assert strategy == "r" and partitions >= 12
        unbalanced = conn.execute(
            """SELECT count(*) FROM (SELECT journal_entry_id FROM finance.gl_entries
                                     GROUP BY 1 HAVING sum(debit) <> sum(credit)) x"""
        ).fetchone()[0]
        assert unbalanced == 0
        # fixed dates: nothing after the fixtures' "today"
        assert (
            conn.execute("SELECT max(order_date) FROM sales.orders").fetchone()[0].isoformat()
            <= "2025-12-31"
        )


def test_every_fixture_records_the_hash_of_its_file(fixture_dsn: str) -> None:
    for size in SIZES:
        _, digest = read_fixture(size)
        assert recorded_hash(fixture_dsn, database_name(size)) == digest


def test_ensure_loaded_is_idempotent(fixture_dsn: str) -> None:
    assert ensure_loaded(fixture_dsn) == {database_name(s): "up to date" for s in SIZES}


def test_unknown_fixture_names_are_refused() -> None:
    with pytest.raises(PgMcpError) as err:
        database_name("huge")
    assert err.value.code == "CONFIG_ERROR"


def test_cli_fixtures_reports_up_to_date(fixture_dsn: str, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from pg_mcp.cli import main as cli

    monkeypatch.setenv("PG_MCP_DSN", fixture_dsn)
    monkeypatch.setenv("PG_MCP_HOME", str(tmp_path))
    monkeypatch.delenv("PG_MCP_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["fixtures", "--only", "small", "--only", "medium"]) == 0
    out = capsys.readouterr().out
    assert "db_pg_mcp_small" in out and "db_pg_mcp_medium" in out and "up to date" in out
    assert cli.main(["fixtures", "--only", "huge"]) == 1
    assert "CONFIG_ERROR" in capsys.readouterr().err


# ---------------------------------------------------------------- determinism: a second load gives the same rows


def content_digests(dsn: str) -> dict[str, tuple[int, str]]:
    """(exact row count, md5 of all rows in a fixed order) per table."""
    import psycopg
    from psycopg import sql

    out: dict[str, tuple[int, str]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, n in exact_counts(conn).items():
            schema, table = name.split(".", 1)
            digest = conn.execute(
                sql.SQL(
                    "SELECT md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) FROM (SELECT t::text AS r FROM {} t) x"
                ).format(sql.Identifier(schema, table))
            ).fetchone()[0]
            out[name] = (n, digest)
    return out


@pytest.fixture
def second_load(
    pg_dsn: str, fixture_dsn: str, request: pytest.FixtureRequest
) -> Iterator[tuple[str, str]]:
    """(original, scratch copy loaded from the same file) database names."""
    import psycopg

    size = request.param
    original = database_name(size)
    scratch = f"pgmcp_fixcheck_{size}_{uuid.uuid4().hex[:8]}"
    try:
        load_into(pg_dsn, size, scratch)
        yield original, scratch
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


@pytest.mark.parametrize("second_load", ["small", "medium"], indirect=True)
def test_loading_twice_gives_the_same_rows(pg_dsn: str, second_load: tuple[str, str]) -> None:
    original, scratch = second_load
    first = content_digests(db_dsn(pg_dsn, original))
    again = content_digests(db_dsn(pg_dsn, scratch))
    assert first, f"{original} has no tables"
    assert {k: v[0] for k, v in again.items()} == {k: v[0] for k, v in first.items()}, (
        "row counts differ"
    )
    differing = sorted(k for k in first if first[k] != again.get(k))
    assert not differing, f"table contents differ between two loads: {differing}"
