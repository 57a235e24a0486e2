"""Inferred relationships: the name rules (pure), and the data pass against a real database
with no declared keys (the references then say so, and show the joins with their evidence)."""

from __future__ import annotations

import psycopg
import pytest

from pg_mcp.core.model import INFERRED, Column, DatabaseSchema, Table
from pg_mcp.core.settings import Settings
from pg_mcp.db.discovery import database_dsn
from pg_mcp.db.inference import infer, name_rule, tokens
from pg_mcp.db.introspect import introspect
from pg_mcp.refs.render import keys_note, render_database


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sbTxCustId", ("sb", "tx", "cust", "id")),
        ("customer_id", ("customer", "id")),
        ("order_items", ("order", "item")),
        ("categories", ("category",)),
        ("HTTPStatus", ("http", "status")),
    ],
)
def test_tokens(name: str, expected: tuple[str, ...]) -> None:
    assert tokens(name) == expected


@pytest.mark.parametrize(
    ("column", "key", "table", "declared", "rule"),
    [
        ("film_id", "film_id", "film", "primary key", 0),  # the same name
        ("customer_id", "id", "customers", "primary key", 0),  # <table>_id
        ("customerid", "id", "customers", "primary key", 0),  # <table>id
        ("parent_company_id", "company_id", "companies", "primary key", 1),  # a role before it
        ("preferred_language", "language_code", "languages", "primary key", 2),
        ("from_uom", "uom_code", "units_of_measure", "primary key", 2),  # initials
        ("sbTxCustId", "sbCustId", "sbCustomer", None, 2),  # a shared prefix
        ("approved_by", "employee_id", "employees", "primary key", 3),  # people by role
        ("assigned_to", "user_id", "users", "primary key", 3),
        ("id", "id", "customers", "primary key", None),  # generic
        ("email", "email", "employees", "unique", None),  # equal names, not a key
        ("package_count", "count_id", "cycle_counts", "primary key", None),  # a measure
        ("warehouse_id", "member_id", "campaign_members", "primary key", None),
        ("status", "status", "statuses", None, 0),  # names its table
        ("semester", "semester_id", "semester", None, 2),  # the key's stem alone
    ],
)
def test_name_rules(
    column: str, key: str, table: str, declared: str | None, rule: int | None
) -> None:
    assert name_rule(column, key, table, False, declared) == rule


def test_glued_names_share_the_tables_prefix() -> None:
    assert name_rule("sbtxcustid", "sbcustid", "sbcustomer", False, None, "sbtransaction") == 2
    assert name_rule("sbtxcustid", "sbcustid", "customer", False, None, "sbtransaction") is None


def _db(*tables: Table) -> DatabaseSchema:
    return DatabaseSchema(name="t", tables=list(tables))


def test_infer_takes_the_strongest_confirmed_rule_and_respects_the_budget() -> None:
    customers = Table("public", "customers", "table", [Column("id", "integer")], row_estimate=100)
    orders = Table(
        "public",
        "orders",
        "table",
        [Column("id", "integer"), Column("customer_id", "integer")],
        row_estimate=500,
    )
    asked: list[str] = []

    def query(sql: str) -> tuple[int, int] | None:
        asked.append(sql)
        return (10, 10) if "count(DISTINCT" in sql else (412, 412)

    found = infer(_db(customers, orders), query, budget=10.0)
    assert [(c.column.name, c.target.table.name) for c, _ in found] == [
        ("customer_id", "customers")
    ]
    assert found[0][1] == "100 % of 412 values match, target unique (observed)"
    con = next(c for c in orders.constraints if c.kind == INFERRED)
    assert (con.columns, con.ref_table, con.ref_columns) == (["customer_id"], "customers", ["id"])

    # a clock past the deadline: nothing is checked, nothing claimed
    again = Table("public", "orders", "table", [Column("customer_id", "integer")])
    ticks = iter([0.0, 100.0, 100.0, 100.0])
    assert infer(_db(customers, again), query, budget=1.0, clock=lambda: next(ticks)) == []
    assert not any(c.kind == INFERRED for c in again.constraints)


def test_values_that_do_not_match_are_not_a_relationship() -> None:
    customers = Table("public", "customers", "table", [Column("id", "integer")], row_estimate=100)
    orders = Table("public", "orders", "table", [Column("customer_id", "integer")])
    found = infer(
        _db(customers, orders),
        lambda sql: (10, 10) if "count(DISTINCT" in sql else (100, 90),
        budget=10.0,
    )
    assert found == []


NO_KEYS = """
CREATE TABLE sbcustomer (sbcustid text, sbcustname text, sbcuststate text);
INSERT INTO sbcustomer SELECT 'C' || g, 'name ' || g, (ARRAY['CA','NY','TX'])[g % 3 + 1]
  FROM generate_series(1, 60) g;
CREATE TABLE sbtransaction (sbtxid int, "sbTxCustId" text, sbtxamount numeric(10,2));
INSERT INTO sbtransaction SELECT g, 'C' || (g % 50 + 1), g * 1.5 FROM generate_series(1, 400) g;
CREATE TABLE semester (semester_id int, name text);
INSERT INTO semester SELECT g, 'S' || g FROM generate_series(1, 8) g;
CREATE TABLE course_offering (offering_id int, semester int, course text);
INSERT INTO course_offering SELECT g, g % 8 + 1, 'c' || g FROM generate_series(1, 100) g;
CREATE TABLE category (id int, business_id text, category_name text);
INSERT INTO category SELECT g % 20, 'b' || (g % 30 + 1), 'x' FROM generate_series(1, 40) g;
CREATE TABLE business (bid int, business_id text, name text);
INSERT INTO business SELECT g, 'b' || g, 'n' || g FROM generate_series(1, 40) g;
"""


def test_a_database_without_keys_gets_inferred_joins(pg_dsn: str, scratch_db: str) -> None:
    dsn = database_dsn(pg_dsn, scratch_db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(NO_KEYS)
    db = introspect(dsn, scratch_db, Settings())
    inferred = {
        (t.name, c.columns[0]): (c.ref_table, c.ref_columns[0], c.definition)
        for t in db.tables
        for c in t.constraints
        if c.kind == INFERRED
    }
    assert inferred[("sbtransaction", "sbTxCustId")][:2] == ("sbcustomer", "sbcustid")
    assert inferred[("sbtransaction", "sbTxCustId")][2] == (
        "100 % of 50 values match, target unique (observed)"
    )
    assert inferred[("course_offering", "semester")][:2] == ("semester", "semester_id")
    assert inferred[("category", "business_id")][:2] == ("business", "business_id")
    # category.id is not unique: nothing may point at it
    assert not any(v[0] == "category" for v in inferred.values())

    assert keys_note(db).startswith("This database declares no keys")
    text = render_database(db)[f"{scratch_db}.md"]
    assert "This database declares no keys" in text
    assert (
        '`sbtransaction."sbTxCustId" -> sbcustomer.sbcustid` (inferred: 100 % of 50 values match'
        in text
    )
    assert "inferred FK sbcustomer.sbcustid" in text

    off = introspect(dsn, scratch_db, Settings(data_budget=0))
    assert not any(c.kind == INFERRED for t in off.tables for c in t.constraints)


def test_ask_context_shows_inferred_joins_and_follows_them() -> None:
    from pg_mcp.ask.context import render_table, score_tables

    customers = Table("public", "customers", "table", [Column("id", "integer")], row_estimate=100)
    orders = Table("public", "orders", "table", [Column("customer_id", "integer")], row_estimate=5)
    infer(_db(customers, orders), lambda sql: (5, 5), budget=10.0)
    assert "customer_id integer -> public.customers.id (inferred)" in render_table(orders)
    # the neighbour of a matched table gets a share of its score, as with declared keys
    ranked = {s.table.name: s for s in score_tables(_db(customers, orders), "orders")}
    assert ranked["customers"].final > ranked["customers"].base
