"""The walk's facts and the ranking of problems (pg_mcp.core.validation.walk, verdict)."""

from __future__ import annotations

import pytest

from pg_mcp.core.validation import Tools, validate_sql
from pg_mcp.core.validation.verdict import AFTER_WALK, Problems
from rulekit import context

# (sql, tables, calls, statements, selects with INTO or a lock)
FACTS = [
    ("SELECT 1", [], [], 0, 0),
    ("SELECT lower(a) FROM t JOIN s.u ON true", ["t", "s.u"], ["lower"], 0, 0),
    ("WITH c AS (SELECT * FROM t) SELECT * FROM c", ["t"], [], 0, 0),  # c is a CTE
    ("SELECT * FROM c", ["c"], [], 0, 0),
    ("WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d", [], [], 1, 0),  # not walked into
    ("SELECT * FROM t FOR UPDATE", ["t"], [], 0, 1),
    (
        "SELECT x FROM generate_series(1, 3) x, LATERAL (SELECT now()) n",
        [],
        ["generate_series", "now"],
        0,
        0,
    ),
]


@pytest.mark.parametrize(("sql", "tables", "calls", "statements", "selects"), FACTS)
def test_facts(
    sql: str, tables: list[str], calls: list[str], statements: int, selects: int
) -> None:
    facts = context(sql).facts
    assert [r.qualified for r in facts.tables] == tables
    assert [c.name for c in facts.calls] == calls
    assert len(facts.statements) == statements and len(facts.selects) == selects


def test_scopes_know_their_sources() -> None:
    facts = context(
        "SELECT o.id FROM orders o, (SELECT 1) s WHERE EXISTS (SELECT 1 FROM users)"
    ).facts
    [(_, outer)] = [(n, s) for n, s in facts.columns if n.name == "id"]
    assert outer is not None
    assert [(src.kind, src.alias) for src in outer.sources] == [("table", "o"), ("subquery", "s")]


def test_problems_rank_by_code_then_walk_order() -> None:
    problems = Problems()
    problems.add("UNKNOWN_OBJECT", "late", None)
    problems.add("ACCESS_DENIED", "after the walk", None)
    problems.add("ACCESS_DENIED", "step 9", None, at=9)
    problems.add("ACCESS_DENIED", "step 3", None, at=3)
    best = problems.best()
    assert best is not None and best.message == "step 3"
    assert problems[1].at == AFTER_WALK and problems.has("UNKNOWN_OBJECT")
    assert not problems.fundamental()
    problems.add("FORBIDDEN_FUNCTION", "x", None)
    assert problems.fundamental()


def test_a_caller_may_pass_its_own_tools() -> None:
    tools = Tools()
    v = validate_sql("SELECT lower(a) FROM t", tools=tools)
    assert v.ok and v.functions == ["lower"] and tools.kinds and tools.typed
