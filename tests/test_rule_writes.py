"""rules/writes.py alone: writes nested in a query, SELECT INTO, locking clauses."""

from __future__ import annotations

import pytest

from pg_mcp.core.validation.rules import writes
from pg_mcp.core.validation.validate import context_for
from pg_mcp.core.validation.verdict import Refusal
from rulekit import codes, reported

NESTED_GOOD = [
    "SELECT * FROM t",
    "WITH a AS (SELECT 1) SELECT * FROM a",
    "WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r",
    "SELECT 1 WHERE EXISTS (SELECT 1 FROM (SELECT 1) s)",
    "SELECT 'DELETE FROM t' AS text",
]
NESTED_BAD = [
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "contains DELETE"),
    ("WITH x AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM x", "contains INSERT"),
    ("WITH u AS (UPDATE t SET a = 1 RETURNING a) SELECT * FROM u", "contains UPDATE"),
    ("WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE) SELECT 1", "MERGE"),
    ("SELECT 1 WHERE EXISTS (WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d)", "DELETE"),
    (
        "SELECT * FROM t WHERE id IN (WITH w AS (INSERT INTO x VALUES (1) RETURNING 1) SELECT * FROM w)",
        "INSERT",
    ),
]
CLAUSES_GOOD = [
    "SELECT * FROM t",
    "SELECT 'FOR UPDATE' FROM t",
    "SELECT 1 AS into_x",
    "SELECT for_update FROM t",
]
CLAUSES_BAD = [
    ("SELECT * INTO new_t FROM t", "SELECT_INTO", "creates a table (new_t)"),
    ("SELECT * FROM t FOR UPDATE", "LOCKING_CLAUSE", "FOR UPDATE takes row locks"),
    ("SELECT * FROM t FOR NO KEY UPDATE", "LOCKING_CLAUSE", "FOR NO KEY UPDATE"),
    ("SELECT * FROM t FOR SHARE", "LOCKING_CLAUSE", "FOR SHARE takes"),
    ("SELECT * FROM t FOR KEY SHARE", "LOCKING_CLAUSE", "FOR KEY SHARE"),
    ("SELECT * FROM (SELECT * FROM t FOR UPDATE) s", "LOCKING_CLAUSE", "FOR UPDATE"),
    ("SELECT * FROM t WHERE a IN (SELECT b FROM u FOR SHARE)", "LOCKING_CLAUSE", "FOR SHARE"),
]


@pytest.mark.parametrize("sql", NESTED_GOOD + [s for s, *_ in CLAUSES_BAD])
def test_nested_statements_good(sql: str) -> None:
    assert codes(writes.nested_statements, sql) == []


@pytest.mark.parametrize(("sql", "shown"), NESTED_BAD)
def test_nested_statements_bad(sql: str, shown: str) -> None:
    [(code, message)] = reported(writes.nested_statements, sql)
    assert code == "DATA_MODIFYING_CTE" and shown in message


def test_the_last_of_two_data_modifying_ctes_is_met_first() -> None:
    sql = "WITH a AS (DELETE FROM t RETURNING 1), b AS (INSERT INTO u VALUES (1) RETURNING 1) SELECT 1"
    found = reported(writes.nested_statements, sql)
    assert [m.split(" (")[0] for _, m in found] == [
        "the WITH clause contains INSERT",
        "the WITH clause contains DELETE",
    ]


@pytest.mark.parametrize("sql", CLAUSES_GOOD + [s for s, _ in NESTED_BAD])
def test_select_clauses_good(sql: str) -> None:
    assert codes(writes.select_clauses, sql) == []


@pytest.mark.parametrize(("sql", "code", "shown"), CLAUSES_BAD)
def test_select_clauses_bad(sql: str, code: str, shown: str) -> None:
    [(found, message)] = reported(writes.select_clauses, sql)
    assert found == code and shown in message


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("WITH a AS (SELECT 1 AS x) INSERT INTO t SELECT x FROM a", "NOT_READ_ONLY"),
        ("(DELETE FROM t)", "NOT_READ_ONLY"),
        ("DELETE FROM t", "NOT_READ_ONLY"),
        ("SELECT * FROM (DELETE FROM t RETURNING *) x", "PARSE_ERROR"),
    ],
)
def test_a_statement_at_the_root_never_reaches_the_rules(sql: str, code: str) -> None:
    with pytest.raises(Refusal) as caught:
        context_for(sql)
    assert caught.value.verdict.code == code
