"""Rendering: the golden schema against committed Markdown, and the pure helpers.

Set PG_MCP_UPDATE_GOLDEN=1 to rewrite tests/golden/ from the current renderer.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pg_mcp.core.model import Column, Constraint, DatabaseSchema, Index, Table
from pg_mcp.refs import render

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PG_MCP_UPDATE_GOLDEN") == "1"


def _load_golden_db(pg_dsn: str, dbname: str) -> DatabaseSchema:
    import psycopg

    from pg_mcp.core.settings import Settings
    from pg_mcp.db.discovery import database_dsn
    from pg_mcp.db.introspect import introspect

    dsn = database_dsn(pg_dsn, dbname)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((GOLDEN / "small_schema.sql").read_text(encoding="utf-8"))
    db = introspect(dsn, dbname, Settings())
    # figures that differ between servers and runs, pinned so the Markdown is comparable
    db.name, db.server_version, db.size_bytes = "golden", "18.0", 9 * 1024 * 1024
    for t in db.tables:  # the golden rows' DEFAULT now(): their range moves with every run
        for c in t.columns:
            if c.type.startswith("timestamp") and c.min_value is not None:
                c.min_value = c.max_value = "2025-01-01 00:00:00+00"
    return db


def _compare(files: dict[str, str], folder: Path) -> None:
    if UPDATE:
        for old in folder.rglob("*.md") if folder.exists() else []:
            old.unlink()
        for rel, text in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text, encoding="utf-8")
    expected = {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
        for p in folder.rglob("*.md")
    }
    assert sorted(files) == sorted(expected), (
        "set of files differs (PG_MCP_UPDATE_GOLDEN=1 to accept)"
    )
    for rel, text in files.items():
        assert text == expected[rel], (
            f"{rel} differs from the golden file (PG_MCP_UPDATE_GOLDEN=1 to accept)"
        )


def test_golden_single_file(pg_dsn: str, scratch_db: str) -> None:
    db = _load_golden_db(pg_dsn, scratch_db)
    files = render.render_database(db)
    assert list(files) == ["golden.md"]
    _compare(files, GOLDEN / "single")
    text = files["golden.md"]
    # a few things the golden file must show, spelled out so a careless --update is caught
    for needle in [
        "`order_status`: 'pending', 'paid', 'shipped', 'cancelled' — \"Lifecycle of an order\"",
        "`email`: text NOT NULL CHECK (VALUE ~~ '%@%'::text) — \"An e-mail address\"",
        "`money_amount` (amount numeric(12,2), currency character(3))",
        "`orders.customer_id -> customers.id`",
        "`order_lines.(order_id, ordered_at) -> orders.(id, ordered_at)`",
        "Partitioned by RANGE (ordered_at) into 2 partitions",
        '`products_title_lower_idx` btree (lower(title)) — "Case-insensitive title search"',
        "`products_active_idx` btree (sku) WHERE active",
        '"ISO 3166 code \\u007c two letters"',  # quoted data: no table pipe survives
        '"Display order (a reserved word as a column name)"',
        render.DATA_NOTE,
        '| "order" | integer |',
        "(samples withheld)",
        "values: 'FI', 'FR', 'GB', 'US'",
        '### audit."Events"',
        '`order_total(p_order_id bigint)` | numeric | function | sql | stable | "Total of one order"',
        'Materialized view · 2 rows (counted) — "Units sold per product"',
        "generated (price * 1.2)",
        "identity always",
    ]:
        assert needle in text, needle


def test_golden_index_layout(pg_dsn: str, scratch_db: str) -> None:
    db = _load_golden_db(pg_dsn, scratch_db)
    files = render.render_database(db, single_file_limit=1)  # force the large-database layout
    _compare(files, GOLDEN / "split")
    assert "golden/shop.customers.md" in files
    index = files["golden.md"]
    assert "[audit](golden/audit.md)" in index  # even the index was over the limit: per schema
    for t in db.tables:
        if not t.partition_of:  # every table is in its schema's index, linking its own file
            assert f"]({t.schema}.{t.name}.md)" in files[f"golden/{t.schema}.md"]
            assert f"golden/{t.schema}.{t.name}.md" in files
    assert (
        '- [shop.customers](shop.customers.md) · ~4 rows — "People who buy things."'
        in files["golden/shop.md"]
    )


def test_rendering_is_deterministic(pg_dsn: str, scratch_db: str) -> None:
    db = _load_golden_db(pg_dsn, scratch_db)
    again = DatabaseSchema.from_json(db.to_json())
    assert render.render_database(db) == render.render_database(again)


# --- pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("orders", "orders"),
        ("Orders", '"Orders"'),
        ("order", '"order"'),
        ("two words", '"two words"'),
        ('we"ird', '"we""ird"'),
        ("bıgınt", "bıgınt"),
        ("客户", "客户"),
        ("1st", '"1st"'),
    ],
)
def test_ident(name: str, expected: str) -> None:
    assert render.ident(name) == expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (None, "not analysed"),
        (0, "0"),
        (7, "7"),
        (99, "99"),
        (243, "240"),
        (999, "1k"),
        (4567, "4.6k"),
        (16044, "16k"),
        (123456, "120k"),
        (1_234_567, "1.2M"),
        (98_765_432, "99M"),
        (3_000_000_000, "3B"),
    ],
)
def test_approx_count(n: int | None, expected: str) -> None:
    assert render.approx_count(n) == expected


def test_approx_bytes() -> None:
    assert render.approx_bytes(17_200_831) == "16 MB"
    assert render.approx_bytes(125 * 1024 * 1024) == "120 MB"
    assert render.approx_bytes(8192) == "8 kB"


def test_cells_and_code_spans_escape_markdown() -> None:
    assert render.cell("a | b\nc\t d") == "a \\| b c d"
    assert render.code("x|y") == "`x\\|y`"
    assert render.code("a`b") == "`` a`b ``"
    assert render.cell("x" * 300, 10) == "xxxxxxxxx…"


def _wide_db(tables: int, columns: int, comment: str = "") -> DatabaseSchema:
    db = DatabaseSchema(name="wide", server_version="18.0", size_bytes=1, schemas=["public"])
    for i in range(tables):
        t = Table("public", f"t{i:04d}", "table", row_estimate=1000 + i)
        t.columns = [Column(f"c{j:04d}", "text", comment=comment or None) for j in range(columns)]
        t.constraints = [
            Constraint(f"t{i:04d}_pkey", "primary key", ["c0000"], "PRIMARY KEY (c0000)")
        ]
        t.indexes = [Index(f"t{i:04d}_pkey", "btree", ["c0000"], unique=True, primary=True)]
        db.tables.append(t)
    return db


def test_no_file_exceeds_the_limit_even_for_a_huge_table() -> None:
    db = _wide_db(3, 1500, comment="a long comment " * 5)
    files = render.render_database(db)
    assert all(len(t.encode()) <= render.MAX_FILE_BYTES for t in files.values()), {
        k: len(v) for k, v in files.items()
    }
    parts = [p for p in files if "~" in p]
    assert parts, "the wide table should have been cut into parts"
    # every part of a cut table repeats the column header and the columns all appear once
    text = "".join(files[p] for p in sorted(files) if p.startswith("wide/public.t0000"))
    assert all(f"| c{j:04d} |" in text for j in range(1500))
    for p in sorted(files):
        if p.startswith("wide/public.t0000~"):
            assert "| column | type | constraints | notes |" in files[p]


def test_many_tables_use_per_schema_indexes() -> None:
    db = _wide_db(1500, 3)
    files = render.render_database(db)
    assert "wide/public.md" in files or "wide/public~2.md" in files
    assert len([p for p in files if p.startswith("wide/public.t")]) == 1500
    assert all(len(t.encode()) <= render.MAX_FILE_BYTES for t in files.values())


def test_safe_filenames_are_distinct_on_case_insensitive_file_systems() -> None:
    db = _wide_db(0, 0)
    for name in ("Orders", "orders", "a/b", "a_b"):
        t = Table("public", name, "table", row_estimate=1)
        t.columns = [Column("x" * 40 + str(k), "text", comment="c" * 200) for k in range(300)]
        db.tables.append(t)
    files = render.render_database(db)
    lowered = [p.lower() for p in files]
    assert len(lowered) == len(set(lowered))
    assert all("/" not in p.split("/", 1)[1] for p in files if p.startswith("wide/"))
