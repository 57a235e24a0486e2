"""Introspection against a real PostgreSQL: the golden schema, the policy,
never-analysed tables, extensions, privileges and errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.model import DatabaseSchema
from pg_mcp.core.settings import Policy, Settings
from pg_mcp.db.discovery import database_dsn
from pg_mcp.db.introspect import (
    WITHHELD_DEFINITION,
    catalog_sql,
    glob_regex,
    introspect,
)

GOLDEN_SQL = Path(__file__).parent / "golden" / "small_schema.sql"


def _run(dsn: str, sql: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def golden(pg_dsn: str, scratch_db: str) -> str:
    """DSN of a scratch database holding the golden schema."""
    dsn = database_dsn(pg_dsn, scratch_db)
    _run(dsn, GOLDEN_SQL.read_text(encoding="utf-8"))
    return dsn


def test_golden_schema_model(golden: str) -> None:
    db = introspect(golden, "golden", Settings())
    assert db.name == "golden"
    assert db.server_version and db.size_bytes and db.size_bytes > 0
    assert db.search_path == ["shop", "public"]
    assert db.schemas == ["audit", "public", "shop"]
    assert db.schema_comments["shop"] == "The web shop"

    (enum,) = db.enums
    assert (enum.schema, enum.name, enum.labels) == (
        "shop",
        "order_status",
        ["pending", "paid", "shipped", "cancelled"],
    )
    assert enum.comment == "Lifecycle of an order"
    (domain,) = db.domains
    assert (domain.name, domain.base_type, domain.nullable) == ("email", "text", False)
    assert domain.checks == ["CHECK (VALUE ~~ '%@%'::text)"]
    (comp,) = db.composites
    assert [(f.name, f.type) for f in comp.fields] == [
        ("amount", "numeric(12,2)"),
        ("currency", "character(3)"),
    ]
    assert comp.comment == "An amount with its currency"

    customers = db.table("customers")
    assert customers is not None and customers.comment.startswith("People who buy things")
    cols = {c.name: c for c in customers.columns}
    assert [c.name for c in customers.columns] == [
        "id",
        "email",
        "name",
        "country",
        "api_token",
        "order",
        "created_at",
    ]
    assert cols["id"].identity == "ALWAYS" and not cols["id"].nullable
    assert cols["email"].type == "email" and cols["email"].base_type == "text"
    assert (
        cols["country"].default == "'FR'::text"
        and cols["country"].comment == "ISO 3166 code | two letters"
    )
    assert cols["country"].samples == ["FI", "FR", "GB", "US"] and cols["country"].samples_complete
    assert cols["api_token"].samples is None and cols["api_token"].samples_withheld

    products = db.table("products")
    pcols = {c.name: c for c in products.columns}
    assert (
        pcols["price_with_vat"].generated == "(price * 1.2)"
        and pcols["price_with_vat"].default is None
    )
    idx = {i.name: i for i in products.indexes}
    assert idx["products_title_lower_idx"].columns == ["lower(title)"]
    assert idx["products_title_lower_idx"].comment == "Case-insensitive title search"
    assert idx["products_active_idx"].predicate == "active"
    assert idx["products_active_idx"].definition.endswith("USING btree (sku) WHERE active")
    assert idx["products_pkey"].primary and idx["products_pkey"].unique
    assert [c.definition for c in products.constraints if c.kind == "check"] == [
        "CHECK (price >= 0::numeric)"
    ]

    orders = db.table("orders")
    assert orders.kind == "partitioned table" and orders.partition_key == "RANGE (ordered_at)"
    assert orders.partitions == ["shop.orders_2024", "shop.orders_2025"]
    assert orders.row_estimate == 3
    p2024 = db.table("orders_2024")
    assert p2024.partition_of == "shop.orders"
    assert p2024.partition_bound == "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')"
    assert all(i.inherited for i in p2024.indexes)  # attached copies of the parent's indexes
    assert cols["id"].enum_labels is None
    assert {c.name: c.enum_labels for c in orders.columns}["status"] == enum.labels

    lines = db.table("order_lines")
    fks = sorted(
        (c.columns, c.ref_table, c.ref_columns)
        for c in lines.constraints
        if c.kind == "foreign key"
    )
    assert fks == [
        (["order_id", "ordered_at"], "orders", ["id", "ordered_at"]),
        (["sku"], "products", ["sku"]),
    ]

    view = db.table("customer_totals")
    assert view.kind == "view" and "LEFT JOIN orders o" in view.definition
    assert [c.name for c in view.columns] == ["id", "name", "orders"]
    mat = db.table("product_sales")
    assert (
        mat.kind == "materialized view"
        and mat.populated
        and mat.comment == "Units sold per product"
    )

    events = db.table("Events", "audit")
    assert events is not None and db.table("Events") is None  # audit is not on the search_path

    (fn,) = db.functions
    assert (fn.name, fn.arguments, fn.returns, fn.language, fn.volatility, fn.kind) == (
        "order_total",
        "p_order_id bigint",
        "numeric",
        "sql",
        "stable",
        "function",
    )
    seqs = {s.name: s for s in db.sequences}
    assert seqs["invoice_numbers"].owned_by is None and seqs["invoice_numbers"].comment
    assert seqs["orders_id_seq"].owned_by == "shop.orders.id"


def test_model_round_trips_through_json(golden: str) -> None:
    db = introspect(golden, "golden", Settings())
    assert DatabaseSchema.from_json(db.to_json()) == db


def test_policy_leaves_denied_objects_out(golden: str) -> None:
    policy = Policy(
        deny_schemas=("audit",),
        deny_tables=("shop.products",),
        deny_columns=("shop.customers.email", "shop.customers.country"),
    )
    db = introspect(golden, "golden", Settings(policy=policy))
    text = db.to_json()
    assert "audit" not in db.schemas and db.table("Events", "audit") is None
    assert db.table("products") is None
    customers = db.table("customers")
    assert [c.name for c in customers.columns] == ["id", "name", "api_token", "order", "created_at"]
    # nothing that would reveal them: their constraints, indexes, FKs, sampled values
    assert "customers_email_key" not in text
    assert "ada@example.com" not in text and "'GB'" not in text and '"GB"' not in text
    lines = db.table("order_lines")
    assert all(c.ref_table != "products" for c in lines.constraints)
    assert "Events_id_seq" not in text
    assert db.table("customer_totals").definition  # names neither the table nor the columns

    hide_name = Policy(deny_columns=("shop.customers.name",))
    db = introspect(golden, "golden", Settings(policy=hide_name))
    assert db.table("customer_totals").definition == WITHHELD_DEFINITION  # it reads c.name


def test_never_analysed_tables_are_counted_and_sampled(pg_dsn: str, scratch_db: str) -> None:
    dsn = database_dsn(pg_dsn, scratch_db)
    _run(
        dsn,
        """
        CREATE TABLE small (id int, status text, flag boolean);
        INSERT INTO small SELECT g, (ARRAY['new','open','closed'])[g % 3 + 1], g % 2 = 0
          FROM generate_series(1, 500) g;
        CREATE TABLE empty_one (id int, status text);
        CREATE TABLE big (id int, kind text, label text);
        INSERT INTO big SELECT g, 'k' || (g % 4), 'label ' || g FROM generate_series(1, 12000) g;
        """,
    )
    db = introspect(dsn, scratch_db, Settings())
    small, empty, big = db.table("small"), db.table("empty_one"), db.table("big")
    assert small.row_estimate == 500 and empty.row_estimate == 0
    assert big.row_estimate is None  # too big to count: left to the statistics
    status = small.column("status")
    # every row was read (500 <= SCAN_ROWS): the list is complete, labelled values:
    assert status.samples == ["closed", "new", "open"] and status.samples_complete
    assert small.column("flag").samples == ["false", "true"]
    assert big.column("kind").samples == ["k0", "k1", "k2", "k3"]
    assert big.column("label").samples is None  # more distinct values than max_samples
    assert empty.column("status").samples is None

    no_samples = introspect(dsn, scratch_db, Settings(samples=False))
    assert all(c.samples is None for t in no_samples.tables for c in t.columns)
    assert no_samples.table("small").row_estimate == 500


def test_extension_members_are_skipped_but_their_functions_kept(
    pg_dsn: str, scratch_db: str
) -> None:
    dsn = database_dsn(pg_dsn, scratch_db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
        if not available:
            pytest.skip("the vector extension is not available on this server")
        conn.execute("CREATE EXTENSION vector")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(3))")
    db = introspect(dsn, scratch_db, Settings())
    assert [e.name for e in db.extensions] == ["vector"]
    assert db.domains == [] and db.composites == []
    # extension functions are in the model (issue 10), so their volatility is known
    assert db.functions and {f.extension for f in db.functions} == {"vector"}
    l2 = [f for f in db.functions if f.name == "l2_distance"]
    assert l2 and all(f.volatility == "immutable" and f.schema == "public" for f in l2)
    assert db.table("items").column("embedding").type == "vector(3)"


@pytest.fixture
def limited_role(pg_dsn: str, scratch_db: str) -> Iterator[str]:
    """A role that may read one table of the scratch database but not the other."""
    role = f"pgmcp_intro_{uuid.uuid4().hex[:8]}"
    dsn = database_dsn(pg_dsn, scratch_db)
    _run(
        dsn,
        f"""
        CREATE ROLE {role} LOGIN;
        CREATE TABLE open_t (kind text); INSERT INTO open_t VALUES ('a'), ('b'), ('a');
        CREATE TABLE closed_t (kind text); INSERT INTO closed_t VALUES ('secret-ish'), ('x');
        GRANT SELECT ON open_t TO {role};
        """,
    )
    try:
        yield role
    finally:
        _run(dsn, f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_tables_the_role_cannot_read_are_described_but_not_sampled(
    pg_dsn: str, scratch_db: str, limited_role: str
) -> None:
    dsn = database_dsn(pg_dsn, scratch_db)
    as_role = psycopg.conninfo.make_conninfo(dsn, user=limited_role)
    db = introspect(as_role, scratch_db, Settings())
    assert db.table("open_t").column("kind").samples == ["a", "b"]
    closed = db.table("closed_t")
    assert closed is not None and closed.column("kind").samples is None
    assert closed.row_estimate is None


def test_errors_are_pg_mcp_errors_without_secrets(pg_dsn: str) -> None:
    missing = f"pgmcp_missing_{uuid.uuid4().hex[:6]}"
    with pytest.raises(PgMcpError) as err:
        introspect(database_dsn(pg_dsn, missing), missing, Settings())
    assert err.value.code == "UNKNOWN_DATABASE"
    bad = "postgresql://someone:Sup3rSecretPw@127.0.0.1:1/nowhere?connect_timeout=2"
    with pytest.raises(PgMcpError) as err:
        introspect(bad, "nowhere", Settings(dsn=bad))
    assert err.value.code == "CONNECTION_ERROR"
    assert "Sup3rSecretPw" not in str(err.value.to_dict())


def test_foreign_tables_are_described_not_sampled(pg_dsn: str, scratch_db: str) -> None:
    dsn = database_dsn(pg_dsn, scratch_db)
    try:
        _run(
            dsn,
            """
            CREATE FOREIGN DATA WRAPPER pgmcp_dummy_fdw;
            CREATE SERVER pgmcp_dummy_srv FOREIGN DATA WRAPPER pgmcp_dummy_fdw;
            CREATE FOREIGN TABLE rates (currency char(3), rate numeric) SERVER pgmcp_dummy_srv;
            COMMENT ON FOREIGN TABLE rates IS 'Exchange rates, from elsewhere';
            """,
        )
    except psycopg.errors.InsufficientPrivilege:
        pytest.skip("creating a foreign data wrapper needs a superuser")
    db = introspect(dsn, scratch_db, Settings())  # no handler: reading it would fail
    rates = db.table("rates")
    assert rates.kind == "foreign table" and rates.comment == "Exchange rates, from elsewhere"
    assert [c.name for c in rates.columns] == ["currency", "rate"]
    assert rates.row_estimate is None and rates.column("currency").samples is None


def test_denied_and_sensitive_values_never_leave_the_server(golden: str) -> None:
    policy = Policy(deny_columns=("shop.customers.country",))
    data: dict = {}
    with psycopg.connect(golden, autocommit=True) as conn:
        for sql in catalog_sql(Settings(policy=policy)):
            data.update(json.loads(conn.execute(sql).fetchone()[0]))
    values = {(r[1], r[2]): r[5] for r in data["stats"]}
    assert values[("customers", "country")] is None  # filtered by the server
    assert values[("customers", "api_token")] is None  # a sensitive-looking name
    assert sorted(values[("customers", "name")]) == ["Ada", "Grace", "Linus", "Marie"]


@pytest.mark.parametrize(
    "pattern",
    [
        "*.api_keys",
        "hr.employees.salary",
        "Secret*",
        "a?c.t",
        "s[0-9].t",
        "s[!x].t",
        "x.y.*_hash",
        "o'brien.*",
        "a[b.c",
        "*.*.password*",
    ],
)
def test_policy_globs_match_the_same_names_in_postgres(pg_dsn: str, pattern: str) -> None:
    from fnmatch import fnmatchcase

    names = [
        "hr.api_keys",
        "HR.API_KEYS",
        "hr.employees.salary",
        "secretive",
        "SECRET.x",
        "abc.t",
        "a.c.t",
        "s1.t",
        "sx.t",
        "sy.t",
        "x.y.pw_hash",
        "x.y.hash",
        "o'brien.z",
        "a[b.c",
        "a.b.password_hash",
        "s.t.Password",
    ]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        got = conn.execute(
            "SELECT n ~* %s FROM unnest(%s::text[]) WITH ORDINALITY u(n, o) ORDER BY o",
            [glob_regex(pattern), names],
        ).fetchall()
    expected = [fnmatchcase(n.lower(), pattern.lower()) for n in names]
    assert [g[0] for g in got] == expected
